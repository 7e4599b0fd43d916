"""``smoke_graph_metrics``: per-vertex graph metrics of the platform smoke pipeline, one partition per run date."""
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

KEYS = ["run_date", "id"]
PARTITION_COLS = ["run_date"]
SCHEMA = StructType([
    StructField("run_date", StringType(), False),
    StructField("id", StringType(), False),
    StructField("kind", StringType(), False),
    StructField("component", StringType(), False),
    StructField("pagerank", DoubleType(), False),
])
