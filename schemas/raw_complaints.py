"""``raw_complaints``: user complaints (order complaints and copyright claims) as JSON lines, by filing date."""
from pyspark.sql.types import StringType, StructField, StructType, TimestampType

KEYS = ["complaint_id"]
PARTITION_COLS = ["dt"]
FORMAT = "json"
SCHEMA = StructType([
    StructField("complaint_id", StringType(), False),
    StructField("user_id", StringType(), False),     # who complained
    StructField("creator_id", StringType(), False),  # who is complained about
    StructField("video_id", StringType(), True),
    StructField("order_id", StringType(), True),     # event_id of the purchase, for order complaints
    StructField("reason", StringType(), False),
    StructField("ts", TimestampType(), False),
    StructField("dt", StringType(), False),
])
