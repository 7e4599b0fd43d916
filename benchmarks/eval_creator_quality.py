"""Creator-quality evaluation against the simulator's hidden ground truth: one command, printed numbers.

Reads what the pipeline wrote for ``--run-date`` and, for scoring only, the hidden truth:

* **abuse types** (low-effort selling, piracy, matrix farms) on the *hold-out* creators of the
  training run (``creator_quality_holdout``: never trained on): ROC AUC and recall at 1 % and
  5 % false-positive rate of the sequence model, of the gradient-boosting baseline, and of the
  single most telling signal as a rule (a transparent floor any model must clear) -- each against
  the truth (``truth_creators.truth_abuse``) and against the moderation labels the models were
  trained on (what production could measure);
* **piracy pairs**: recall of planted copies in ``video_copies`` (the pair copy -> its true
  original, with the right attribution) per copy kind and distance, and the false-match rate:
  returned pairs that are neither a copy and its original nor two copies of one original.

Run after the pipeline (``make demo`` or ``cgov pipeline``) or on any lakehouse where
video_copies, creator_signals and creator_quality_model ran:

    .venv/bin/python benchmarks/eval_creator_quality.py --root lakehouse --run-date 2026-11-01 --seed 7
"""
from __future__ import annotations

import argparse
import os

import numpy as np

TRUTH_ABUSE = {"low_effort": "low_effort", "piracy": "pirate", "matrix": "matrix_farm"}
# The single signal a moderator would sort by for each abuse type (28-day window). Farm accounts
# repost the operator's master content across the farm's accounts: cross-creator copies too.
RULE_SIGNAL = {"low_effort": "static_frame_share", "piracy": "copied_video_share", "matrix": "copied_video_share"}


def _fmt(v) -> str:
    return "   n/a" if v is None else f"{v:6.3f}"


def abuse_table(holdout, signals28, truth) -> list[tuple]:
    """Rows ``(abuse, scorer, against, n_pos, auc, recall@1%, recall@5%)`` on the hold-out creators."""
    from libs.ml.metrics import binary_metrics
    from libs.quality.sequences import LABELS

    df = holdout.merge(truth, on="creator_id", how="left").merge(signals28, on="creator_id", how="left")
    if df["truth_abuse"].isna().any():
        raise ValueError(f"{int(df['truth_abuse'].isna().sum())} hold-out creators have no truth row: wrong --seed?")
    out = []
    for k, name in enumerate(LABELS):
        y_truth = np.array([TRUTH_ABUSE[name] in list(a) for a in df["truth_abuse"]], dtype=float)
        y_mod = np.array([lab[k] for lab in df["labels"]], dtype=float)
        scorers = {"sequence model": np.array([p[k] for p in df["p_model"]]),
                   "GBT baseline": np.array([p[k] for p in df["p_baseline"]]),
                   f"rule: {RULE_SIGNAL[name]}": df[RULE_SIGNAL[name]].fillna(0.0).to_numpy(dtype=float)}
        for scorer, p in scorers.items():
            for against, y in (("truth", y_truth), ("moderation", y_mod)):
                m = binary_metrics(y, p)
                out.append((name, scorer, against, int(y.sum()), m["roc_auc"], m["recall_at_fpr1"], m["recall_at_fpr5"]))
    return out


def pair_table(copies, truth_videos, videos):
    """Recall per copy kind and distance bucket, and false matches, of the run's ``video_copies``."""
    from pyspark.sql import functions as F

    from libs.quality.evaluation import copy_recall, false_matches

    bits = F.col("truth_copy_bits")
    bucket = F.when(bits < 16, "00-15").when(bits <= 31, "16-31").when(bits <= 40, "32-40").otherwise(">40")
    return copy_recall(copies, truth_videos, videos, bucket), copies.count(), false_matches(copies, truth_videos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="lakehouse root")
    parser.add_argument("--run-date", required=True)
    parser.add_argument("--seed", type=int, required=True, help="simulator seed of the truth partition")
    args = parser.parse_args()
    os.environ["CGOV__LAKEHOUSE_ROOT"] = args.root

    from pyspark.sql import functions as F

    from libs.platform import delta_io
    from libs.platform.config import load_settings
    from libs.platform.session import get_spark
    from schemas.truth_creators import SCHEMA as TRUTH_CREATORS
    from schemas.truth_videos import SCHEMA as TRUTH_VIDEOS

    settings = load_settings("local")
    spark = get_spark(settings, "eval-creator-quality")
    day = args.run_date
    holdout = delta_io.read_dates(spark, settings.table("creator_quality_holdout"), day, day,
                                  "creator_quality_holdout").toPandas()
    if holdout.empty:
        raise SystemExit(f"no hold-out predictions for {day}: run creator_quality_model first")
    signals28 = (delta_io.read_snapshot(spark, settings.table("creator_signals"), day, "creator_signals")
                 .where("window_days = 28").select("creator_id", *sorted(set(RULE_SIGNAL.values()))).toPandas())
    truth = (spark.read.schema(TRUTH_CREATORS).parquet(settings.table("truth_creators"))
             .where(F.col("seed") == args.seed).select("creator_id", "truth_abuse").toPandas())
    rows = abuse_table(holdout, signals28, truth)
    version = holdout["model_version"].iloc[0]
    print(f"\n[eval_creator_quality] {day}: {len(holdout):,} hold-out creators, model version {version}")
    print(f"{'abuse':<11}{'scorer':<32}{'labels':<12}{'pos':>5}{'AUC':>8}{'R@1%FPR':>9}{'R@5%FPR':>9}")
    for name, scorer, against, pos, auc, r1, r5 in rows:
        print(f"{name:<11}{scorer:<32}{against:<12}{pos:>5}{_fmt(auc):>8}{_fmt(r1):>9}{_fmt(r5):>9}")

    copies = delta_io.read_dates(spark, settings.table("video_copies"), day, day, "video_copies")
    videos = delta_io.read_version(spark, settings.table("silver_videos"))
    truth_videos = (spark.read.schema(TRUTH_VIDEOS).parquet(settings.table("truth_videos"))
                    .where(F.col("seed") == args.seed))
    recall, n_pairs, false = pair_table(copies, truth_videos, videos)
    print(f"\npiracy / re-recording pairs in video_copies ({n_pairs:,} pairs)")
    print(f"{'copy kind':<16}{'bits':>8}{'copies':>9}{'found':>8}{'recall':>8}")
    for r in recall:
        print(f"{r['truth_copy_kind']:<16}{r['bits']:>8}{r['copies']:>9,}{r['found']:>8,}{r['found'] / r['copies']:>8.3f}")
    print(f"false matches (pairs not sharing an original): {false:,} of {n_pairs:,} "
          f"({(false / n_pairs if n_pairs else 0.0):.4f})")


if __name__ == "__main__":
    main()
