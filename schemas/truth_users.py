"""``truth_users``: hidden ground truth per simulated user (ring membership, sybil personas). Partitioned by seed."""
from pyspark.sql.types import LongType, StringType, StructField, StructType

KEYS = ["seed", "user_id"]
PARTITION_COLS = ["seed"]
SCHEMA = StructType([
    StructField("seed", LongType(), False),
    StructField("user_id", StringType(), False),
    StructField("truth_ring_id", StringType(), True),           # fake-engagement ring the user works for
    StructField("truth_sybil_cluster_id", StringType(), True),  # the account of a sybil creator
])
