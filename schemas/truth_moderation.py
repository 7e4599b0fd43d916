"""``truth_moderation``: whether each past enforcement decision was right. Partitioned by seed."""
from pyspark.sql.types import BooleanType, LongType, StringType, StructField, StructType

KEYS = ["seed", "case_id"]
PARTITION_COLS = ["seed"]
SCHEMA = StructType([
    StructField("seed", LongType(), False),
    StructField("case_id", StringType(), False),
    StructField("truth_correct", BooleanType(), False),  # the creator really committed some abuse
])
