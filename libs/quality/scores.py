"""Creator Quality Score: model abuse probabilities + content signals -> one 0..100 number, with evidence.

Formula (what policy teams quote; change it here and in the README together)::

    risk            = 1 - (1 - p_low_effort) * (1 - p_piracy) * (1 - p_matrix)
    content_quality = mean of the available terms over the 28-day window:
                      1 - static_frame_share, aesthetic_mean, 1 - blur_mean,
                      1 - copied_video_share, 1 - title_dup_share
                      (null when the creator published no video in 28 days)
    CQS             = 100 * (1 - risk) * (0.5 + 0.5 * coalesce(content_quality, 0.5))

Why this shape: ``risk`` is the probability of at least one abuse if the three scores were
independent, so one confident abuse score alone drives the CQS to ~0 however polished the content,
and three middling ones add up instead of the maximum hiding two of them. Content quality only
moves a clean creator between 50 and 100 -- mediocre production is not a violation -- and a
creator with no recent video sits at the neutral 75 rather than being punished for silence.
Every term is in [0, 1], so the CQS is in [0, 100] by construction (checked by the job).

The ``p_*`` are the model's probabilities of a *standing moderation decision* (what it was trained
on); with most bad actors never caught they are a lower bound of the abuse probability, which is
why decisions use per-abuse thresholds picked on the hold-out (``thresholds``) rather than 0.5.

Evidence: for each creator, the signals where it ranks in the top decile of its market
(``percent_rank`` within market, 28-day window) and exceeds the market median, strongest first,
plus what the copy search found and the model scores that passed their thresholds -- facts with
values and references, never adjectives, so an explanation (issue 9) can cite them verbatim.
"""
from __future__ import annotations

from functools import reduce
from typing import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from schemas import creator_quality_scores as schema

ABUSES: tuple[str, ...] = ("low_effort", "piracy", "matrix")
EVIDENCE_WINDOW = 28
MAX_SIGNAL_EVIDENCE = 5
TOP_PERCENTILE = 0.9
# Signals that, when unusually high for the market, are evidence of a problem: name -> phrase.
EVIDENCE_SIGNALS: dict[str, str] = {
    "static_frame_share": "share of slideshow-like (static) videos",
    "low_aesthetic_share": "share of low-aesthetic videos",
    "blur_mean": "mean blur",
    "title_dup_share": "share of repeated titles",
    "product_repeat_ratio": "same product pushed across videos",
    "audio_reuse_share": "share of videos with reused audio",
    "copied_video_share": "share of videos copying other creators",
    "self_repost_share": "share of videos reposting its own content",
    "copyright_complaints": "copyright complaints",
    "top_user_share": "share of engagement from a single user",
    "events_per_user": "engagement events per user",
    "complaint_rate": "complaints per purchase",
    "refund_rate": "refunds per purchase",
    "login_devices": "distinct login devices",
}
_QUALITY_TERMS = (("static_frame_share", True), ("aesthetic_mean", False), ("blur_mean", True),
                  ("copied_video_share", True), ("title_dup_share", True))


def risk(cols: Mapping[str, Column]) -> Column:
    """``1 - prod(1 - p_k)`` over the abuse scores (null scores count as 0)."""
    return F.lit(1.0) - reduce(lambda a, b: a * b, [F.lit(1.0) - F.coalesce(c, F.lit(0.0)) for c in cols.values()])


def content_quality() -> Column:
    """Mean of the available quality terms of a 28-day ``creator_signals`` row; null with no videos."""
    terms = [F.lit(1.0) - F.col(c) if invert else F.col(c) for c, invert in _QUALITY_TERMS]
    present = reduce(lambda a, b: a + b, [t.isNotNull().cast("double") for t in terms])
    total = reduce(lambda a, b: a + b, [F.coalesce(t, F.lit(0.0)) for t in terms])
    return F.when((F.col("n_videos") > 0) & (present > 0), total / present)


def cqs(risk_col: Column, quality_col: Column) -> Column:
    return F.round(F.lit(100.0) * (F.lit(1.0) - risk_col) * (F.lit(0.5) + F.lit(0.5) * F.coalesce(quality_col, F.lit(0.5))), 2)


def _fmt(c: Column) -> Column:
    return F.format_number(c.cast("double"), 2)


def signal_evidence(signals28: DataFrame) -> DataFrame:
    """``creator_id``, ``signal_evidence``: array of evidence structs (top decile of the market, above its median)."""
    rows = []
    for name, phrase in EVIDENCE_SIGNALS.items():
        v = F.col(name).cast("double")
        w = Window.partitionBy("market").orderBy(v)
        med = F.percentile(v, 0.5).over(Window.partitionBy("market"))
        rows.append(signals28.where(v.isNotNull()).select(
            "creator_id", F.lit(name).alias("name"), v.alias("value"), med.alias("reference"),
            F.percent_rank().over(w).alias("percentile"), F.lit(phrase).alias("phrase")))
    ranked = reduce(DataFrame.unionByName, rows)
    hits = ranked.where((F.col("percentile") >= TOP_PERCENTILE) & (F.col("value") > F.col("reference")))
    item = F.struct(
        F.lit("signal").alias("kind"), F.col("name"), F.col("value"), F.col("reference"), F.col("percentile"),
        F.concat(F.col("phrase"), F.lit(" "), _fmt(F.col("value")), F.lit(" over 28 days (market median "),
                 _fmt(F.col("reference")), F.lit(", top "),
                 F.greatest(F.lit(1), F.ceil((F.lit(1.0) - F.col("percentile")) * 100)).cast("string"),
                 F.lit("%)")).alias("detail"))
    top = F.slice(F.array_sort(F.collect_list(item), lambda a, b: F.when(a["percentile"] > b["percentile"], -1)
                               .when(a["percentile"] < b["percentile"], 1)
                               .otherwise(F.when(a["name"] < b["name"], -1).otherwise(1))), 1, MAX_SIGNAL_EVIDENCE)
    return hits.groupBy("creator_id").agg(top.alias("signal_evidence"))


def copy_evidence() -> Column:
    """Evidence item from the 28-day copy features, or null when nothing was copied."""
    return F.when(F.col("copy_sources") > 0, F.struct(
        F.lit("copies").alias("kind"), F.lit("copied_video_share").alias("name"),
        F.col("copied_video_share").cast("double").alias("value"), F.lit(None).cast("double").alias("reference"),
        F.lit(None).cast("double").alias("percentile"),
        F.concat(F.lit("fingerprint matches: "), _fmt(F.col("copied_video_share") * 100), F.lit("% of videos copy "),
                 F.col("copy_sources").cast("string"), F.lit(" other creator(s); closest match "),
                 F.col("copy_min_distance").cast("string"), F.lit("/256 bits")).alias("detail")))


def model_evidence(thresholds: Mapping[str, float], model_label: str) -> Column:
    """Evidence items for the abuse scores at or above their thresholds."""
    items = [F.when(F.col(f"p_{a}") >= thresholds[a], F.struct(
        F.lit("model").alias("kind"), F.lit(f"p_{a}").alias("name"), F.col(f"p_{a}").alias("value"),
        F.lit(float(thresholds[a])).alias("reference"), F.lit(None).cast("double").alias("percentile"),
        F.concat(F.lit(f"{model_label} scores {a} "), _fmt(F.col(f"p_{a}")),
                 F.lit(f" (threshold {thresholds[a]:.2f})")).alias("detail"))) for a in ABUSES]
    return F.filter(F.array(*items), lambda x: x.isNotNull())


def creator_quality_scores(preds: DataFrame, signals: DataFrame, run_date: str, thresholds: Mapping[str, float],
                           model_name: str, model_version: str) -> DataFrame:
    """Rows of ``creator_quality_scores`` for ``run_date``.

    ``preds``: ``creator_id``, ``p_low_effort``, ``p_piracy``, ``p_matrix`` (every creator of the
    snapshot); ``signals``: the run's ``creator_signals`` rows (both windows; the 28-day one is used).
    """
    missing = [a for a in ABUSES if a not in thresholds]
    if missing:
        raise ValueError(f"no decision threshold for {missing}")
    s28 = signals.where(F.col("window_days") == EVIDENCE_WINDOW)
    ev = signal_evidence(s28)
    label = f"model {model_name} v{model_version}"
    p = {a: F.col(f"p_{a}") for a in ABUSES}
    out = (preds.select("creator_id", *[f"p_{a}" for a in ABUSES]).join(s28, "creator_id", "left").join(ev, "creator_id", "left")
           .withColumn("risk", risk(p))
           .withColumn("content_quality", content_quality())
           .withColumn("cqs", cqs(F.col("risk"), F.col("content_quality")))
           .withColumn("flagged", F.filter(F.array(*[F.when(F.col(f"p_{a}") >= thresholds[a], F.lit(a))
                                                    for a in ABUSES]), lambda x: x.isNotNull()))
           .withColumn("evidence", F.concat(
               model_evidence(thresholds, label),
               F.filter(F.array(copy_evidence()), lambda x: x.isNotNull()),
               F.coalesce(F.col("signal_evidence"), F.array().cast(schema.SCHEMA["evidence"].dataType))))
           .withColumn("dt", F.lit(run_date))
           .withColumn("model_name", F.lit(model_name)).withColumn("model_version", F.lit(str(model_version))))
    return out.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.SCHEMA.fields])
