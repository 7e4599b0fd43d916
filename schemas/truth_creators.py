"""``truth_creators``: hidden ground truth per simulated creator; only evaluation reads it. Partitioned by seed."""
from pyspark.sql.types import ArrayType, DateType, LongType, StringType, StructField, StructType

KEYS = ["seed", "creator_id"]
PARTITION_COLS = ["seed"]
SCHEMA = StructType([
    StructField("seed", LongType(), False),
    StructField("creator_id", StringType(), False),
    StructField("truth_role", StringType(), False),                    # the one primary role (incl. "honest")
    StructField("truth_abuse", ArrayType(StringType(), True), False),  # every abuse type, primary first; [] if honest
    StructField("truth_operator_id", StringType(), True),              # farm operator, null otherwise
    StructField("truth_look_alike", StringType(), True),               # family_shared_device | licensed_repost | agency_managed
    StructField("truth_family_id", StringType(), True),                # accounts sharing one family device
    StructField("truth_agency_id", StringType(), True),                # honest creators run from one agency office
    StructField("truth_sybil_cluster_id", StringType(), True),
    StructField("truth_ring_id", StringType(), True),                  # ring the creator buys engagement from
    StructField("truth_trade_date", DateType(), True),                 # black-market sale of the account
    StructField("truth_previous_category", StringType(), True),        # seller's category of a traded account
    StructField("truth_migration_kind", StringType(), True),           # "market" | "scenario" (new accounts of a migrated operator)
    StructField("truth_previous_market", StringType(), True),          # market the operator was banned in
    StructField("truth_banned_date", DateType(), True),                # banned accounts of a migrated operator
])
