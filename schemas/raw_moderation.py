"""``raw_moderation``: export of past enforcement decisions (partial, noisy labels), snapshot per run date."""
from pyspark.sql.types import BooleanType, StringType, StructField, StructType, TimestampType

KEYS = ["dt", "case_id"]
PARTITION_COLS = ["dt"]
ACTIONS = ("warning", "strike", "ban")
FORMAT = "parquet"
SCHEMA = StructType([
    StructField("case_id", StringType(), False),
    StructField("creator_id", StringType(), False),
    StructField("action", StringType(), False),      # "warning" | "strike" | "ban"
    StructField("reason", StringType(), False),      # the enforcement tool's reason code
    StructField("decided_at", TimestampType(), False),
    StructField("overturned", BooleanType(), False),  # reversed on appeal
    StructField("dt", StringType(), False),          # snapshot date (the run date)
])
