"""``raw_logins``: login-service events as JSON lines, partitioned by event date."""
from pyspark.sql.types import StringType, StructField, StructType, TimestampType

KEYS = ["login_id"]
PARTITION_COLS = ["dt"]
FORMAT = "json"
SCHEMA = StructType([
    StructField("login_id", StringType(), False),
    StructField("creator_id", StringType(), False),
    StructField("device_id", StringType(), False),
    StructField("ip24", StringType(), False),
    StructField("geo", StringType(), False),         # market code of the login location
    StructField("ts", TimestampType(), False),
    StructField("dt", StringType(), False),
])
