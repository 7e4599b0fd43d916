"""``graph_edges``: typed, directed edges of the heterogeneous graph, aggregated per observation day.

One row per ``(src, dst, edge_type, kind, scenario, dt)``: ``weight`` observations of that
relation on that day, first/last timestamp. Aggregating per day (not per event) keeps the table
a fraction of the event feed while keeping what the detectors need: who, to whom, through which
scenario, and when it started (lockstep detection reads ``first_ts``). Content-scenario and
shelf-scenario edges stay distinct rows (``scenario``), so risk propagation can weight them
differently. Written by ``jobs/graph_edges.py``; relations in ``EDGE_TYPES``.
"""
from pyspark.sql.types import DoubleType, StringType, StructField, StructType, TimestampType

KEYS = ["dt", "src", "dst", "edge_type", "kind", "scenario"]
PARTITION_COLS = ["dt"]
ZORDER_COLS = ["edge_type", "src"]   # detectors filter relations, then join on the source vertex
FORMAT = "delta"
# edge_type: (source vertex type, destination vertex type, what it means)
EDGE_TYPES = {
    "posts": ("creator", "video", "the creator published the video"),
    "features": ("video", "product", "the video sells the product"),
    "lists": ("creator", "product", "the creator lists the product on the shelf"),
    "engages": ("user", "video", "view/like/comment/share/purchase on a video (kind = event type)"),
    "follows": ("user", "creator", "follow, from a video or the profile page"),
    "buys": ("user", "product", "purchase, content or shelf scenario"),
    "uses_device": ("creator", "device", "the creator's account logged in from the device"),
    "logs_in_from": ("creator", "ip", "the creator logged in from the IPv4 /24"),
    "pays_to": ("creator", "payment", "payout account (profile or withdrawal)"),
    "persona_of": ("user", "creator", "the user account behind a creator account"),
}
SCHEMA = StructType([
    StructField("src", StringType(), False),
    StructField("dst", StringType(), False),
    StructField("edge_type", StringType(), False),   # key of EDGE_TYPES
    StructField("src_type", StringType(), False),
    StructField("dst_type", StringType(), False),
    StructField("kind", StringType(), False),        # event type for engages/buys/follows, else the edge_type
    StructField("scenario", StringType(), False),    # video | live | shelf | profile | account ("account": not a traffic edge)
    StructField("market", StringType(), True),       # market of the event / entity
    StructField("weight", DoubleType(), False),      # observations that day (events, logins, withdrawals)
    StructField("amount_usd", DoubleType(), True),   # GMV of buys / withdrawn amount of pays_to, else null
    StructField("first_ts", TimestampType(), True),
    StructField("last_ts", TimestampType(), True),
    StructField("dt", StringType(), False),          # observation day
])
