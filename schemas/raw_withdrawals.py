"""``raw_withdrawals``: payout requests from the payments service as JSON lines, partitioned by request date."""
from pyspark.sql.types import DoubleType, StringType, StructField, StructType, TimestampType

KEYS = ["withdrawal_id"]
PARTITION_COLS = ["dt"]
FORMAT = "json"
SCHEMA = StructType([
    StructField("withdrawal_id", StringType(), False),
    StructField("creator_id", StringType(), False),
    StructField("payment_account_id", StringType(), False),
    StructField("amount", DoubleType(), False),      # local currency
    StructField("currency", StringType(), False),
    StructField("requested_at", TimestampType(), False),
    StructField("dt", StringType(), False),
])
