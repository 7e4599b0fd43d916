"""``raw_engagement_events``: client/tracking events as JSON lines, partitioned by event date.

One record per view, like, comment, share, follow or purchase. ``scenario`` is ``content`` for an
event on a video or live session, ``shelf`` for a purchase on a product page and ``profile`` for a
follow from the creator's profile page (``video_id`` null for both). Purchase fields
(``product_id``, ``quantity``, ``gmv``, ``currency``) are null on every other event type.
"""
from pyspark.sql.types import (DoubleType, IntegerType, StringType, StructField, StructType,
                               TimestampType)

KEYS = ["event_id"]
PARTITION_COLS = ["dt"]
SCENARIOS = ("content", "shelf", "profile")
FORMAT = "json"
EVENT_TYPES = ("view", "like", "comment", "share", "follow", "purchase")
SCHEMA = StructType([
    StructField("event_id", StringType(), False),
    StructField("event_type", StringType(), False),
    StructField("user_id", StringType(), False),
    StructField("creator_id", StringType(), False),
    StructField("video_id", StringType(), True),
    StructField("product_id", StringType(), True),
    StructField("scenario", StringType(), False),    # "content" | "shelf" | "profile"
    StructField("market", StringType(), False),      # the user's market
    StructField("ts", TimestampType(), False),
    StructField("quantity", IntegerType(), True),    # purchases only
    StructField("gmv", DoubleType(), True),          # purchases only, local currency
    StructField("currency", StringType(), True),     # purchases only
    StructField("dt", StringType(), False),          # event date (UTC)
])
