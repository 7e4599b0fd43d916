"""``traffic_quotas``: each creator's impression quota for the run date, per market (gold).

One row per creator of the run date's roster. ``impressions`` are integers that sum exactly to the
market's ``total_impressions`` of :mod:`schemas.traffic_quota_report`; ``share`` is the solver's
continuous share before rounding. ``lower`` / ``upper`` are the bounds the fairness constraints put
on the share (enforced creators: 0 / 0; eligible new creators: a floor; eligible creators: the
merit band), so a reviewer can see *why* a creator got what it got. ``unregulated_impressions``
is what the same objective without fairness constraints would have given (the rich-get-richer
counterfactual). The inputs are kept beside the quota so that the constraint check -- and a
reviewer -- can recompute everything from the table alone. Written by ``jobs/traffic_quotas.py``; the inputs come from
:func:`libs.strategy.inputs.quota_inputs`.
"""
from pyspark.sql.types import BooleanType, DoubleType, LongType, StringType, StructField, StructType

KEYS = ["dt", "market", "creator_id"]
PARTITION_COLS = ["dt"]
FORMAT = "delta"
SCHEMA = StructType([
    StructField("market", StringType(), False),
    StructField("creator_id", StringType(), False),
    StructField("impressions", LongType(), False),          # the quota for the day
    StructField("share", DoubleType(), False),              # of the market's impressions, before rounding
    StructField("unregulated_impressions", LongType(), False),
    StructField("unregulated_share", DoubleType(), False),
    StructField("value", DoubleType(), False),              # per-impression value in the objective (relative units)
    StructField("capacity", DoubleType(), False),           # saturation scale of the creator's audience
    # The solver's inputs (libs.strategy.inputs): relative value terms per impression, risk, demand.
    StructField("gmv", DoubleType(), False),
    StructField("prosperity", DoubleType(), False),
    StructField("risk", DoubleType(), False),
    StructField("complaints", DoubleType(), False),
    StructField("popularity", DoubleType(), False),
    StructField("merit", DoubleType(), False),              # CQS / 100
    StructField("eligible", BooleanType(), False),          # high-quality and original: merit fairness applies
    StructField("is_new", BooleanType(), False),
    StructField("enforced", BooleanType(), False),          # standing ban/strike: quota 0
    StructField("lower", DoubleType(), False),              # share bounds from the constraints
    StructField("upper", DoubleType(), False),
    StructField("relaxation", StringType(), False),         # "" or "name=old->new;..." (same for the whole market)
    StructField("dt", StringType(), False),                 # run date
])
