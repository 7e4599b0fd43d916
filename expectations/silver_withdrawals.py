"""Contract of ``silver_withdrawals`` (the checks every silver table gets, see :mod:`expectations._silver`, plus its own ranges)."""
import great_expectations.expectations as gxe

from expectations._silver import common

EXPECTATIONS = common("withdrawals") + [
    gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0, strict_min=True),
]
