"""``migration_predictions``: where each enforced operator is most likely to reappear, one snapshot per run.

Per operator (banned accounts grouped by the infrastructure they shared; ``operator_id`` = the
smallest banned creator id of the group): the ``top_k`` candidate accounts, every candidate market
and both scenarios, each ranked by score (:func:`libs.graph.risk.migration_predictions`).
Written by ``jobs/migration_predictions.py``.
"""
from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, StructField, StructType

KEYS = ["dt", "operator_id", "prediction", "target"]
PARTITION_COLS = ["dt"]
FORMAT = "delta"
PREDICTIONS = ("account", "market", "scenario")
SCHEMA = StructType([
    StructField("operator_id", StringType(), False),
    StructField("banned_accounts", LongType(), False),
    StructField("prediction", StringType(), False),    # one of PREDICTIONS
    StructField("target", StringType(), False),        # creator_id | market code | shelf/content
    StructField("score", DoubleType(), False),
    StructField("rank", IntegerType(), False),         # 1 = most likely, within (operator, prediction)
    StructField("evidence", StringType(), False),
    StructField("dt", StringType(), False),            # run date (snapshot)
])
