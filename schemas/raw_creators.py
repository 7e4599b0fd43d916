"""``raw_creators``: daily snapshot of creator accounts as the account service lands it (public feed)."""
from pyspark.sql.types import DateType, StringType, StructField, StructType

KEYS = ["dt", "creator_id"]
PARTITION_COLS = ["dt"]
STATUSES = ("active", "banned")
FORMAT = "parquet"
SCHEMA = StructType([
    StructField("creator_id", StringType(), False),
    StructField("user_id", StringType(), False),     # the creator's own user account
    StructField("market", StringType(), False),
    StructField("signup_date", DateType(), False),
    StructField("category", StringType(), False),
    StructField("payment_account_id", StringType(), False),  # current payout account
    StructField("status", StringType(), False),      # "active" | "banned"
    StructField("dt", StringType(), False),          # snapshot date (the run date)
])
