"""``policy_index``: the policy retrieval index of a run (gold), one row per indexed chunk.

Built by ``jobs/policy_index.py`` from the versioned corpus in
``libs/governance/policies/marketplace_policy.yaml``: the chunk text (for BM25, rebuilt from it on
load), its dense embedding from the packaged sentence encoder (``model_id``), and the corpus
version + hash. Stored per run date so the explanations of a run can always be re-derived from
exactly the index they were retrieved from; an index embedded with another model is refused on
load (:meth:`libs.governance.retrieval.PolicyIndex.from_rows`).
"""
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

KEYS = ["dt", "chunk_id"]
PARTITION_COLS = ["dt"]
SCHEMA = StructType([
    StructField("dt", StringType(), False),
    StructField("chunk_id", StringType(), False),
    StructField("clause_id", StringType(), False),
    StructField("violation_type", StringType(), False),
    StructField("severity", StringType(), False),
    StructField("title", StringType(), False),
    StructField("text", StringType(), False),
    StructField("embedding", ArrayType(FloatType(), False), False),
    StructField("corpus_version", StringType(), False),
    StructField("corpus_hash", StringType(), False),
    StructField("model_id", StringType(), False),
])
