"""``raw_videos``: one row per published video with upstream model signals (public feed), partitioned by publish date."""
from pyspark.sql.types import BooleanType, DoubleType, StringType, StructField, StructType, TimestampType

KEYS = ["video_id"]
PARTITION_COLS = ["dt"]
SCENARIOS = ("video", "live")
FORMAT = "parquet"
SCHEMA = StructType([
    StructField("video_id", StringType(), False),
    StructField("creator_id", StringType(), False),
    StructField("published_at", TimestampType(), False),
    StructField("dt", StringType(), False),          # publish date (UTC) of published_at
    StructField("scenario", StringType(), False),    # "video" | "live"
    StructField("product_id", StringType(), True),   # product the video features (null: none)
    StructField("static_frame_ratio", DoubleType(), False),
    StructField("motion_score", DoubleType(), False),
    StructField("aesthetic_score", DoubleType(), False),
    StructField("blur", DoubleType(), False),
    StructField("audio_reuse", BooleanType(), False),
    StructField("fingerprint", StringType(), False),  # PDQ-style 256-bit hash, 64 lowercase hex chars
    StructField("title", StringType(), False),
])
