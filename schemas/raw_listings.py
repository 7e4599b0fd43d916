"""``raw_listings``: showcase listings snapshot (which creator sells which product) as JSON lines, per run date."""
from pyspark.sql.types import DoubleType, StringType, StructField, StructType, TimestampType

KEYS = ["dt", "listing_id"]
PARTITION_COLS = ["dt"]
LISTING_STATUSES = ("active", "removed")
FORMAT = "json"
SCHEMA = StructType([
    StructField("listing_id", StringType(), False),  # one (product, seller) pair
    StructField("product_id", StringType(), False),
    StructField("creator_id", StringType(), False),
    StructField("category", StringType(), False),
    StructField("price", DoubleType(), False),       # local currency
    StructField("currency", StringType(), False),
    StructField("listing_status", StringType(), False),  # "active" | "removed"
    StructField("listed_at", TimestampType(), False),
    StructField("dt", StringType(), False),          # snapshot date (the run date)
])
