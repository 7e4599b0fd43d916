"""Contract of ``silver_devices`` (the checks every silver table gets, see :mod:`expectations._silver`, plus its own ranges)."""
import great_expectations.expectations as gxe

from expectations._silver import common

EXPECTATIONS = common("devices") + [
    gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="last_seen", column_B="first_seen", or_equal=True),
]
