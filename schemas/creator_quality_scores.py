"""``creator_quality_scores``: per-creator abuse scores, the Creator Quality Score and its evidence (gold).

One row per creator of the run date's snapshot (``dt``). ``p_<abuse>`` come from the registered
sequence model (alias ``ml.champion_alias``); ``model_version`` says which version scored the row,
so a reviewer can trace every score to a model card. ``cqs`` is documented in
:mod:`libs.quality.scores`. ``evidence`` lists the facts an explanation may cite (issue 9): each
item has a kind, the measured value and the market reference it was compared with.
"""
from pyspark.sql.types import ArrayType, DoubleType, StringType, StructField, StructType

KEYS = ["dt", "creator_id"]
PARTITION_COLS = ["dt"]
ZORDER_COLS = ["creator_id"]

# Fields nullable: Spark cannot cast a struct with a nullable field into a non-nullable one, and the
# items are assembled from expressions whose nullability Spark cannot prove.
EVIDENCE = StructType([
    StructField("kind", StringType(), True),         # "signal" | "copies" | "model"
    StructField("name", StringType(), True),         # feature or score name
    StructField("value", DoubleType(), True),        # the creator's value
    StructField("reference", DoubleType(), True),    # the market median (signals) / decision threshold (model)
    StructField("percentile", DoubleType(), True),   # the creator's rank in its market, 0..1
    StructField("detail", StringType(), True),       # one readable sentence
])

SCHEMA = StructType([
    StructField("dt", StringType(), False),
    StructField("creator_id", StringType(), False),
    StructField("market", StringType(), True),
    StructField("p_low_effort", DoubleType(), True),
    StructField("p_piracy", DoubleType(), True),
    StructField("p_matrix", DoubleType(), True),
    StructField("risk", DoubleType(), True),             # 1 - prod(1 - p_k)
    StructField("content_quality", DoubleType(), True),  # 0..1 from the 28-day signals (null: no videos)
    StructField("cqs", DoubleType(), True),              # Creator Quality Score, 0..100
    StructField("flagged", ArrayType(StringType()), False),  # abuse types whose score passed its threshold
    StructField("evidence", ArrayType(EVIDENCE), False),
    StructField("model_name", StringType(), False),
    StructField("model_version", StringType(), False),
])
