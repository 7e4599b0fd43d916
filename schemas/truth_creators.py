"""``truth_creators``: hidden ground truth per simulated creator; only evaluation reads it. Partitioned by seed."""
from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType

KEYS = ["seed", "creator_id"]
PARTITION_COLS = ["seed"]
SCHEMA = StructType([
    StructField("seed", LongType(), False),
    StructField("creator_id", StringType(), False),
    StructField("truth_abuse", ArrayType(StringType(), True), False),  # e.g. ["pirate"]; [] if honest
    StructField("truth_operator_id", StringType(), True),              # farm operator, null otherwise
    StructField("truth_look_alike", StringType(), True),               # "family_shared_device" | "licensed_repost"
    StructField("truth_family_id", StringType(), True),                # accounts sharing one family device
])
