"""``external_graph_scores``: per-node scores of an *external* edge list (any graph, not only ours).

One row per node of the edge list given to ``jobs/external_graph_scores.py`` for a run
(``dt`` = the run date; a re-run replaces the partition). Scores that the input cannot support are
null, never a made-up default: ``fairness``/``goodness`` need signed weights, ``trust`` needs
known-good seeds, ``risk``/``risk_hops`` need known-bad seeds. One table holds one graph: point
``--output`` at a separate path per external graph (the partition key is the date only).
"""
from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, StructField, StructType

KEYS = ["dt", "node_id"]
PARTITION_COLS = ["dt"]
FORMAT = "delta"
SEED_LABELS = ("good", "bad")
SCHEMA = StructType([
    StructField("node_id", StringType(), False),          # as written in the edge list
    StructField("in_degree", LongType(), False),          # distinct in-edges after cleaning
    StructField("out_degree", LongType(), False),
    StructField("pagerank", DoubleType(), False),         # directed, unweighted; sums to 1 over the nodes
    StructField("fairness", DoubleType(), True),          # [0, 1]; nodes that rate (weights present)
    StructField("goodness", DoubleType(), True),          # [-1, 1]; nodes that are rated (weights present)
    StructField("trust", DoubleType(), True),             # SybilRank degree-normalised trust (good seeds)
    StructField("risk", DoubleType(), True),              # [0, 1] noisy-OR risk from bad seeds
    StructField("risk_hops", IntegerType(), True),        # steps from the nearest bad seed (null: unreached)
    StructField("seed_label", StringType(), True),        # 'good' | 'bad' | null: the seed file's label
    StructField("dt", StringType(), False),               # run date
])
