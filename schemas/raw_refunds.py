"""``raw_refunds``: refunds from the order service as JSON lines, by refund date."""
from pyspark.sql.types import DoubleType, StringType, StructField, StructType, TimestampType

KEYS = ["refund_id"]
PARTITION_COLS = ["dt"]
FORMAT = "json"
SCHEMA = StructType([
    StructField("refund_id", StringType(), False),
    StructField("order_id", StringType(), False),    # event_id of the purchase
    StructField("user_id", StringType(), False),
    StructField("creator_id", StringType(), False),
    StructField("amount", DoubleType(), False),      # local currency
    StructField("currency", StringType(), False),
    StructField("reason", StringType(), False),
    StructField("ts", TimestampType(), False),
    StructField("dt", StringType(), False),
])
