"""``syndicates``: members of suspected coordinated-abuse groups, one row per (detector, syndicate, member).

Every detector of :mod:`libs.graph.detectors` returns rows of ``DETECTOR_COLUMNS`` (pure
``DataFrame -> DataFrame``); ``jobs/syndicates.py`` adds ``detector`` and ``dt`` and replaces the
run's partition (a snapshot over the run's lookback window). ``evidence`` is one readable line per
member for reviewers and for the explanation agent (issue 9): what was shared, with whom, when.
"""
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

KEYS = ["dt", "detector", "syndicate_id", "entity_type", "entity_id"]
PARTITION_COLS = ["dt"]
FORMAT = "delta"
DETECTORS = ("shared_infrastructure", "lockstep", "dense_subgraph", "account_trading", "sybil_rank")
SCHEMA = StructType([
    StructField("detector", StringType(), False),        # one of DETECTORS
    StructField("syndicate_id", StringType(), False),    # stable within a run: detector-specific, e.g. smallest member id
    StructField("entity_type", StringType(), False),     # creator | user
    StructField("entity_id", StringType(), False),       # creator_id or user_key
    StructField("role", StringType(), False),            # member | customer | account ...
    StructField("score", DoubleType(), False),           # member suspicion, higher = worse (detector scale)
    StructField("syndicate_size", LongType(), False),    # members of the syndicate (all roles)
    StructField("syndicate_score", DoubleType(), False), # group suspicion (detector scale)
    StructField("evidence", StringType(), False),
    StructField("dt", StringType(), False),              # run date (snapshot)
])
DETECTOR_COLUMNS = [f.name for f in SCHEMA.fields if f.name not in ("detector", "dt")]
