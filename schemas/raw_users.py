"""``raw_users``: daily snapshot of user accounts (organic users, ring members, creators' own accounts)."""
from pyspark.sql.types import DateType, StringType, StructField, StructType

KEYS = ["dt", "user_id"]
PARTITION_COLS = ["dt"]
FORMAT = "parquet"
SCHEMA = StructType([
    StructField("user_id", StringType(), False),     # raw platform id; silver pseudonymises it
    StructField("market", StringType(), False),
    StructField("signup_date", DateType(), False),
    StructField("creator_id", StringType(), True),   # set when the user account belongs to a creator
    StructField("dt", StringType(), False),          # snapshot date (the run date)
])
