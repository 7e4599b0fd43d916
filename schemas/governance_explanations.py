"""``governance_explanations``: one cited, evidence-backed decision per flagged creator and run date (gold).

Written by ``jobs/governance_explanations.py`` (issue 9). A row is a *decision*: the violation
types the evidence supports, the policy clauses cited for each (every one retrieved for this
creator from the ``policy_index`` of the same run), the evidence items with the values the upstream
tables hold, the recommended enforcement step from the clause's ladder and the creator's standing
history, and the education text the creator reads. ``validation_errors`` is always empty in the
table -- a decision that fails :func:`libs.governance.agent.validate` is never written; when the
configured backend's answer fails, the deterministic composer's decision is written instead and
``backend_rejection`` says why. ``policy_version`` + ``corpus_hash`` prove which policy text was
cited; ``creator_text`` is what the creator wrote (video titles), kept as *data*: it is shown to
reviewers quoted and never changes a decision.
"""
from pyspark.sql.types import (ArrayType, DoubleType, IntegerType, StringType, StructField, StructType,
                               TimestampType)

KEYS = ["dt", "creator_id"]
PARTITION_COLS = ["dt"]
ZORDER_COLS = ["creator_id"]

# One fact an explanation may cite: produced by the platform's own jobs, never by the creator.
EVIDENCE = StructType([
    StructField("evidence_id", StringType(), True),   # "E1", "E2", ... stable within the row
    StructField("source", StringType(), True),        # quality_model | signal | copies | syndicate | migration | graph_risk
    StructField("name", StringType(), True),          # score / signal / detector name
    StructField("value", DoubleType(), True),
    StructField("reference", DoubleType(), True),     # threshold (models) / market median (signals) / null
    StructField("detail", StringType(), True),        # one readable sentence from the producing job
])

# One past enforcement action (silver_moderation, not overturned on appeal).
HISTORY = StructType([
    StructField("action", StringType(), True),        # warning | strike | ban
    StructField("reason", StringType(), True),        # the enforcement tool's reason code
    StructField("violation_type", StringType(), True),  # the reason mapped to the policy's types (null: none)
    StructField("decided_at", TimestampType(), True),
])

VIOLATION = StructType([
    StructField("violation_type", StringType(), True),
    StructField("clause_ids", ArrayType(StringType()), True),    # cited clauses (all retrieved)
    StructField("evidence_ids", ArrayType(StringType()), True),  # supporting evidence items
    StructField("severity", StringType(), True),                 # highest severity of the cited clauses
    StructField("prior_actions", IntegerType(), True),           # standing actions of this type before the run
    StructField("step", StringType(), True),                     # the ladder step for this violation
])

RETRIEVED = StructType([
    StructField("violation_type", StringType(), True),  # the violation whose evidence formed the query
    StructField("clause_id", StringType(), True),
    StructField("rank", IntegerType(), True),
    StructField("score", DoubleType(), True),
])

SCHEMA = StructType([
    StructField("dt", StringType(), False),
    StructField("creator_id", StringType(), False),
    StructField("market", StringType(), True),
    # "enforce": every violation cites a retrieved clause; "review": evidence supports a violation
    # but retrieval found no clause of its type to cite (a human decides); "no_violation": flagged
    # by a job, but no evidence item establishes a violation on its own (e.g. weak dense-block ties).
    StructField("status", StringType(), False),
    StructField("violation_types", ArrayType(StringType()), False),
    StructField("violations", ArrayType(VIOLATION), False),
    StructField("cited_clause_ids", ArrayType(StringType()), False),
    StructField("recommended_step", StringType(), True),  # the most severe step over the violations
    StructField("evidence", ArrayType(EVIDENCE), False),
    StructField("history", ArrayType(HISTORY), False),
    StructField("retrieved", ArrayType(RETRIEVED), False),
    StructField("education_text", StringType(), False),
    StructField("creator_text", ArrayType(StringType()), False),
    StructField("backend", StringType(), False),           # which backend's decision was written
    StructField("backend_rejection", StringType(), True),  # why the configured backend's answer was refused
    StructField("validation_errors", ArrayType(StringType()), False),
    StructField("policy_version", StringType(), False),
    StructField("corpus_hash", StringType(), False),
    StructField("index_model_id", StringType(), False),
    StructField("card_markdown", StringType(), False),
    StructField("latency_ms", DoubleType(), True),        # time to decide this creator (retrieval included)
])
