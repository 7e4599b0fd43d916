"""``ingest_quarantine``: every raw record silver refused, with the reason and where it came from.

One row per refused record (a replayed duplicate is one row: the copy that was not kept).
``reason`` is the first failed rule in evaluation order; ``reasons`` lists all of them. The raw
record is kept verbatim so an operator can fix and replay it: this table holds raw user ids and
is therefore access-restricted like bronze (silver never holds them).
"""
from pyspark.sql.types import ArrayType, DateType, StringType, StructField, StructType

KEYS = ["feed", "dt", "_source_file", "_line_hash", "reason"]
PARTITION_COLS = ["feed", "dt"]
ZORDER_COLS = ["reason"]
FORMAT = "delta"
REASON_KINDS = ("malformed_json", "schema_type_change", "missing_field", "null_field", "wrong_type",
                "negative_amount", "unknown_market", "unknown_currency", "not_allowed", "future_timestamp",
                "duplicate_key")
SCHEMA = StructType([
    StructField("reason", StringType(), False),          # "<kind>" or "<kind>:<column>", kind in REASON_KINDS
    StructField("reasons", ArrayType(StringType(), False), False),
    StructField("_record", StringType(), False),
    StructField("_source_file", StringType(), False),
    StructField("_line_hash", StringType(), False),
    StructField("_ingest_run_date", DateType(), False),
    StructField("feed", StringType(), False),            # raw feed name, e.g. "engagement_events"
    StructField("dt", StringType(), False),
])
