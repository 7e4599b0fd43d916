"""Contract of ``silver_engagement_events`` (the checks every silver table gets, see :mod:`expectations._silver`, plus its own ranges)."""
import great_expectations.expectations as gxe

from expectations._silver import common

EXPECTATIONS = common("engagement_events") + [
    gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=1),
]
