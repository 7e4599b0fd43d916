"""Contract of ``silver_videos`` (the checks every silver table gets, see :mod:`expectations._silver`, plus its own ranges)."""
import great_expectations.expectations as gxe

from expectations._silver import common

EXPECTATIONS = common("videos") + [
    gxe.ExpectColumnValuesToBeBetween(column="static_frame_ratio", min_value=0, max_value=1),
    gxe.ExpectColumnValuesToBeBetween(column="motion_score", min_value=0, max_value=1),
    gxe.ExpectColumnValuesToBeBetween(column="aesthetic_score", min_value=0, max_value=1),
    gxe.ExpectColumnValuesToBeBetween(column="blur", min_value=0, max_value=1),
    # PDQ-style 256-bit fingerprint: exactly 64 lowercase hex digits.
    gxe.ExpectColumnValuesToMatchRegex(column="fingerprint", regex="^[0-9a-f]{64}$"),
]
