"""``truth_videos``: hidden ground truth per simulated video (copies and their originals). Partitioned by seed."""
from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

KEYS = ["seed", "video_id"]
PARTITION_COLS = ["seed"]
SCHEMA = StructType([
    StructField("seed", LongType(), False),
    StructField("video_id", StringType(), False),
    StructField("truth_original_video_id", StringType(), True),  # null unless a copy
    StructField("truth_copy_kind", StringType(), True),          # "piracy" | "farm_duplicate" | "licensed" | null
    StructField("truth_copy_bits", IntegerType(), True),         # fingerprint bits flipped vs the original
])
