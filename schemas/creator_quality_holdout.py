"""``creator_quality_holdout``: hold-out predictions of one training run, sequence model and
gradient-boosting baseline side by side, with the moderation labels they were scored against.

Evaluation against the simulator's hidden truth (``benchmarks/eval_creator_quality.py``) reads
this table: the hold-out creators were never trained on, so their scores are honest. Partitioned
by ``dt`` (the training run's date), replaced on a re-run.
"""
from pyspark.sql.types import ArrayType, DoubleType, StringType, StructField, StructType

KEYS = ["dt", "creator_id"]
PARTITION_COLS = ["dt"]
SCHEMA = StructType([
    StructField("dt", StringType(), False),
    StructField("creator_id", StringType(), False),
    StructField("market", StringType(), True),
    StructField("model_version", StringType(), False),
    StructField("labels", ArrayType(DoubleType()), False),        # moderation labels (low_effort, piracy, matrix)
    StructField("p_model", ArrayType(DoubleType()), False),       # sequence model probabilities, same order
    StructField("p_baseline", ArrayType(DoubleType()), False),    # gradient-boosting baseline, same order
])
