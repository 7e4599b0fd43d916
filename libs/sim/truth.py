"""Split generated frames into the public feed and the hidden ground truth; score detectors.

The generators emit one frame per entity with ``truth_*`` columns beside the observable ones, so
truth and observation can never drift apart. Before anything lands in the raw zone the truth is
cut off here: the public feed is exactly what a detector is allowed to see, and the ground truth
goes to a separate location (``_ground_truth``) that only evaluation reads.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

TRUTH_PREFIX = "truth_"


def truth_columns(df: DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith(TRUTH_PREFIX)]


def public_view(df: DataFrame) -> DataFrame:
    """The frame without any ``truth_*`` column (what lands in the raw zone)."""
    return df.drop(*truth_columns(df))


def truth_view(df: DataFrame, keys: list[str], seed: int) -> DataFrame:
    """Keys + ``truth_*`` columns, tagged with the generating ``seed`` (the truth table's partition)."""
    return df.select(F.lit(int(seed)).cast("long").alias("seed"), *keys, *truth_columns(df))


def split(df: DataFrame, keys: list[str], seed: int) -> tuple[DataFrame, DataFrame]:
    """``(public feed, ground truth)`` of one generated frame."""
    return public_view(df), truth_view(df, keys, seed)


def score_creators(pred_df: DataFrame, truth_df: DataFrame, abuse_type: str, score_col: str,
                   threshold: float = 0.5) -> dict:
    """Precision/recall at ``threshold`` and exact ROC AUC of a creator-level detector.

    ``pred_df``: ``creator_id`` and ``score_col`` (higher = more likely abusive). ``truth_df``: the
    ``truth_creators`` table (``creator_id``, ``truth_abuse``). Every creator of the truth counts:
    a creator the detector did not score gets score 0 -- silently dropping unscored creators would
    inflate precision and recall.

    AUC is computed exactly from ranks (Mann-Whitney U, ties count one half), not with
    ``BinaryClassificationEvaluator``'s binned curve: detectors with many tied scores (rule-based
    ones) would otherwise get a resolution-dependent number. Work is one pass over the distinct
    scores, so it stays cheap for millions of creators.
    """
    labelled = (
        truth_df.select("creator_id", F.array_contains("truth_abuse", abuse_type).cast("int").alias("label"))
        .join(pred_df.select("creator_id", F.col(score_col).cast("double").alias("score")), "creator_id", "left")
        .withColumn("score", F.coalesce("score", F.lit(0.0)))
    )
    pred = F.col("score") >= F.lit(threshold)
    counts = labelled.agg(
        F.sum("label").alias("pos"),
        F.sum(1 - F.col("label")).alias("neg"),
        F.sum((pred & (F.col("label") == 1)).cast("int")).alias("tp"),
        F.sum((pred & (F.col("label") == 0)).cast("int")).alias("fp"),
    ).first()
    pos, neg, tp, fp = (int(counts[c] or 0) for c in ("pos", "neg", "tp", "fp"))
    auc = None
    if pos and neg:
        by_score = labelled.groupBy("score").agg(F.sum("label").alias("p"), F.sum(1 - F.col("label")).alias("n"))
        # A single-partition window over *distinct scores* only (tiny compared with the creators).
        below = F.coalesce(F.sum("n").over(Window.orderBy("score").rowsBetween(Window.unboundedPreceding, -1)), F.lit(0))
        u = by_score.select((F.col("p") * (below + F.col("n") / 2.0)).alias("u")).agg(F.sum("u")).first()[0]
        auc = float(u) / (pos * neg)
    return {
        "abuse_type": abuse_type,
        "threshold": threshold,
        "positives": pos,
        "negatives": neg,
        "true_positives": tp,
        "false_positives": fp,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / pos if pos else None,
        "roc_auc": auc,
    }


def syndicate_recall(pred_df: DataFrame, truth_df: DataFrame, group_col: str, score_col: str,
                     threshold: float = 0.5, min_share: float = 0.5) -> dict:
    """Share of syndicates a creator-level detector uncovers.

    Takedowns act on whole syndicates (a farm operator, a sybil cluster, a ring's customers), so
    a detector that flags one account in every farm can be worth more than one that flags every
    account of a few farms. A syndicate (``group_col`` of ``truth_creators``, e.g.
    ``truth_operator_id``) counts as *found* when at least one member scores ``>= threshold``
    and as *covered* when at least ``min_share`` of its members do. Unscored members count as 0.
    """
    members = (
        truth_df.where(F.col(group_col).isNotNull()).select("creator_id", F.col(group_col).alias("g"))
        .join(pred_df.select("creator_id", F.col(score_col).cast("double").alias("score")), "creator_id", "left")
        .withColumn("hit", (F.coalesce("score", F.lit(0.0)) >= F.lit(threshold)).cast("int"))
    )
    per = members.groupBy("g").agg(F.sum("hit").alias("hits"), F.count("*").alias("size"))
    r = per.agg(F.count("*").alias("n"), F.sum((F.col("hits") > 0).cast("int")).alias("found"),
                F.sum((F.col("hits") >= F.col("size") * F.lit(min_share)).cast("int")).alias("covered")).first()
    n = int(r["n"] or 0)
    return {"group_col": group_col, "syndicates": n,
            "found_recall": (int(r["found"]) / n) if n else None,
            "covered_recall": (int(r["covered"]) / n) if n else None,
            "min_share": min_share, "threshold": threshold}
