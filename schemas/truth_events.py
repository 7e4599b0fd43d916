"""``truth_events``: hidden provenance of every *non-organic* engagement event (organic is the default). By seed."""
from pyspark.sql.types import LongType, StringType, StructField, StructType

KEYS = ["seed", "event_id"]
PARTITION_COLS = ["seed"]
SCHEMA = StructType([
    StructField("seed", LongType(), False),
    StructField("event_id", StringType(), False),
    StructField("truth_kind", StringType(), False),      # ring | ring_camouflage | sybil | burst | bought_followers
    StructField("truth_ring_id", StringType(), True),
])
