"""``entity_risk``: risk of every graph entity reached from enforced accounts, one snapshot per run.

Computed by :func:`libs.graph.risk.entity_risk` over the run's graph window: ``risk`` over every
weighted relation, ``risk_content`` / ``risk_shelf`` over account relations plus only the content
(resp. shelf) scenario's relations -- where the association comes from. ``hops``: the step at
which risk first arrived (0 = an enforced account itself). Only entities with ``risk > 0`` are
written (everything else is 0 by definition, and at platform scale that is almost every vertex).
Written by ``jobs/entity_risk.py``.
"""
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

KEYS = ["dt", "id"]
PARTITION_COLS = ["dt"]
FORMAT = "delta"
SCHEMA = StructType([
    StructField("id", StringType(), False),            # graph vertex id "<type>:<key>"
    StructField("vertex_type", StringType(), False),
    StructField("market", StringType(), True),
    StructField("risk", DoubleType(), False),          # in [0, 1]
    StructField("risk_content", DoubleType(), False),
    StructField("risk_shelf", DoubleType(), False),
    StructField("hops", IntegerType(), True),
    StructField("dt", StringType(), False),            # run date (snapshot)
])
