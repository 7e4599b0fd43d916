"""``traffic_quota_report``: per market and run date, the fairness and value metrics of the quotas (gold).

What policy and operations teams read: how concentrated exposure is (Gini, top-1 % share) with and
without regulation, how far eligible creators' exposure is from proportional to merit, what share
of traffic high-quality original creators get, and what the regulation costs in expected GMV
(``gmv_retained`` = regulated / unregulated). ``violations`` is empty on every written row: the job
fails instead of writing a quota that breaks a constraint; ``relaxations`` lists constraints the
solver had to relax because they could not hold together (documented priority order in
``docs/traffic_quotas.md``). Written by ``jobs/traffic_quotas.py``.
"""
from pyspark.sql.types import ArrayType, DoubleType, LongType, StringType, StructField, StructType

KEYS = ["dt", "market"]
PARTITION_COLS = ["dt"]
FORMAT = "delta"
SCHEMA = StructType([
    StructField("market", StringType(), False),
    StructField("creators", LongType(), False),
    StructField("eligible_creators", LongType(), False),
    StructField("enforced_creators", LongType(), False),
    StructField("total_impressions", LongType(), False),
    StructField("utility", DoubleType(), True),
    StructField("utility_unregulated", DoubleType(), True),
    StructField("gmv_retained", DoubleType(), True),        # expected GMV regulated / unregulated
    StructField("gini", DoubleType(), True),                # of exposure over non-enforced creators
    StructField("gini_unregulated", DoubleType(), True),
    StructField("top_share", DoubleType(), True),           # share of the top 1 % of creators
    StructField("top_share_unregulated", DoubleType(), True),
    StructField("merit_disparity", DoubleType(), True),     # max |exposure/merit ratio / mean ratio - 1| over eligible
    StructField("group_disparity", DoubleType(), True),     # Singh & Joachims, eligible head vs tail
    StructField("hq_original_share", DoubleType(), True),   # exposure share of eligible creators
    StructField("hq_original_share_unregulated", DoubleType(), True),
    StructField("relaxations", ArrayType(StringType()), False),
    StructField("violations", ArrayType(StringType()), False),
    StructField("policy", StringType(), False),             # JSON of the QuotaPolicy used
    StructField("dt", StringType(), False),
])
