"""``model_evaluations``: one row per training run of a model -- data window, hold-out metrics of the
model and of its baseline side by side, and the promotion decision with its reason.

The registry holds the same facts as run metrics and version tags; this table is what a report
or an auditor queries across runs without the MLflow API. MERGE on ``(dt, model_name)``: a
re-run of a date replaces that date's row (the registry keeps every version it registered).
"""
from pyspark.sql.types import (BooleanType, DoubleType, LongType, MapType, StringType, StructField, StructType)

KEYS = ["dt", "model_name"]
PARTITION_COLS: list[str] = []
SCHEMA = StructType([
    StructField("dt", StringType(), False),
    StructField("model_name", StringType(), False),
    StructField("model_version", StringType(), False),
    StructField("mlflow_run_id", StringType(), False),
    StructField("train_rows", LongType(), False),
    StructField("holdout_rows", LongType(), False),
    StructField("macro_roc_auc", DoubleType(), True),
    StructField("baseline_macro_roc_auc", DoubleType(), True),
    StructField("metrics", MapType(StringType(), DoubleType()), False),   # every hold-out metric logged
    StructField("thresholds", MapType(StringType(), DoubleType()), False),  # per-label decision thresholds
    StructField("promoted", BooleanType(), False),
    StructField("promotion_reason", StringType(), False),
    StructField("train_seconds", DoubleType(), False),
])
