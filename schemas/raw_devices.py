"""``raw_devices``: (creator, device) observations from the login service, snapshot per day (public feed)."""
from pyspark.sql.types import StringType, StructField, StructType, TimestampType

KEYS = ["dt", "creator_id", "device_id"]
PARTITION_COLS = ["dt"]
FORMAT = "parquet"
SCHEMA = StructType([
    StructField("creator_id", StringType(), False),
    StructField("device_id", StringType(), False),
    StructField("ip24", StringType(), False),        # IPv4 /24 prefix "a.b.c" of the last login
    StructField("geo", StringType(), False),         # market code of the login location
    StructField("first_seen", TimestampType(), False),
    StructField("last_seen", TimestampType(), False),
    StructField("dt", StringType(), False),          # snapshot date (the run date)
])
