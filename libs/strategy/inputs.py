"""Per-creator inputs of the traffic-quota problem, built from the gold and silver tables (Spark).

The solver (:mod:`libs.strategy.quota`) needs, per creator of a market, what one more impression
is expected to be worth and what it is expected to cost, plus who is eligible for merit-based
fairness. This module derives them, distributed, from tables other jobs already write:

* ``creator_signals`` (28-day window): views, interactions, follows, purchases, GMV, complaints,
  copy shares, account age;
* ``creator_quality_scores``: the Creator Quality Score (merit), its abuse risk and flags;
* ``entity_risk``: graph-propagated risk of the creator vertex;
* ``silver_moderation``: standing (not overturned) bans and strikes, which zero a creator's quota;
* ``silver_creators``: the run date's roster (status, market).

**Why rates are shrunk.** A creator with 3 views and 1 purchase has an observed conversion of
33 %; giving it traffic on that basis is how noise gets rewarded. Every per-impression rate is an
empirical-Bayes estimate ``(count + k * market_rate) / (views + k)`` with ``k = prior_views``
pseudo-impressions at the market's rate: new and small creators start at the market average and
move away from it only as their own traffic accumulates.

**Why values are relative.** GMV (USD), engagement (interactions) and complaints are in different
units; each is divided by its market's rate, so ``gmv = 1.2`` means "20 % more GMV per impression
than the market's average creator" and the objective weights (``strategy.w_gmv``,
``w_prosperity``, ``lambda``, ``mu``) trade *relative* quantities a policy team can reason about.
``risk`` is a probability (``1 - (1 - quality risk)(1 - graph risk)``), already unitless:
``lambda = 1`` means a certain violator's impression loses one average impression's worth.
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from libs.platform.frames import require_columns

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from libs.platform.config import Settings

# Output columns, in order: the solver's input contract plus what the report and table need.
QUOTA_INPUT_COLUMNS = ["market", "creator_id", "gmv", "prosperity", "risk", "complaints", "merit", "eligible",
                       "is_new", "enforced", "popularity", "views", "cqs"]


def standing_enforcement(moderation: DataFrame, run_date: dt.date) -> DataFrame:
    """``creator_id`` of creators with a standing ban or strike decided by the end of ``run_date``.

    Warnings do not remove traffic (they are education, not enforcement); an overturned decision
    is not standing.
    """
    require_columns(moderation, ("creator_id", "action", "decided_at", "overturned"), "moderation")
    return (moderation
            .where(~F.coalesce(F.col("overturned"), F.lit(False))
                   & F.col("action").isin("ban", "strike")
                   & (F.to_date("decided_at") <= F.lit(run_date)))
            .select("creator_id").distinct())


def _shrunk(count: Column, views: Column, market_rate: Column, prior_views: float) -> Column:
    """Empirical-Bayes rate relative to the market: ``((count + k m) / (views + k)) / m`` (0 when m = 0)."""
    est = (F.coalesce(count, F.lit(0.0)) + F.lit(prior_views) * market_rate) / (F.coalesce(views, F.lit(0.0))
                                                                               + F.lit(prior_views))
    return F.when(market_rate > 0, est / market_rate).otherwise(F.lit(0.0))


def quota_inputs(creators: DataFrame, signals: DataFrame, scores: DataFrame, graph_risk: DataFrame,
                 moderation: DataFrame, run_date: dt.date, *, window_days: int = 28, prior_views: float = 50.0,
                 eligible_min_cqs: float = 80.0, max_copied_share: float = 0.0, new_account_days: int = 30,
                 min_merit: float = 0.01) -> DataFrame:
    """One row per creator of the run date's roster: :data:`QUOTA_INPUT_COLUMNS`.

    ``creators``: the ``silver_creators`` snapshot (``creator_id, market, status``);
    ``signals``: ``creator_signals`` of the run date (any windows; ``window_days`` is used);
    ``scores``: ``creator_quality_scores`` of the run date (``creator_id, cqs, risk, flagged``);
    ``graph_risk``: ``entity_risk`` of the run date (``id, vertex_type, risk``);
    ``moderation``: ``silver_moderation``.

    ``eligible`` (merit-based fairness applies) = CQS >= ``eligible_min_cqs``, copied-video share
    <= ``max_copied_share`` (original), no flagged abuse type, not enforced. ``is_new`` = account
    younger than ``new_account_days``. ``merit`` = CQS / 100 clipped to ``[min_merit, 1]`` (a
    creator without a score gets ``min_merit`` and is not eligible: no evidence of quality is not
    quality). ``enforced`` = a standing ban or strike, or a banned account status.
    ``popularity`` = views + follows in the window (the demand an unregulated feed would follow).
    """
    if prior_views <= 0 or not 0 < min_merit <= 1 or new_account_days < 0:
        raise ValueError(f"need prior_views > 0, 0 < min_merit <= 1, new_account_days >= 0; got "
                         f"{prior_views}, {min_merit}, {new_account_days}")
    require_columns(creators, ("creator_id", "market", "status"), "creators")
    require_columns(signals, ("creator_id", "window_days", "views", "interactions", "follows", "gmv_usd", "complaints",
                       "copied_video_share", "account_age_days"), "signals")
    require_columns(scores, ("creator_id", "cqs", "risk", "flagged"), "scores")
    require_columns(graph_risk, ("id", "vertex_type", "risk"), "graph_risk")

    sig = (signals.where(F.col("window_days") == window_days)
           .select("creator_id", F.col("views").cast("double").alias("views"),
                   (F.coalesce("interactions", F.lit(0)) + F.coalesce("follows", F.lit(0))).cast("double")
                   .alias("engaged"),
                   F.coalesce("follows", F.lit(0)).cast("double").alias("follows"),
                   F.coalesce("gmv_usd", F.lit(0.0)).alias("gmv_usd"),
                   F.coalesce("complaints", F.lit(0)).cast("double").alias("n_complaints"),
                   F.coalesce("copied_video_share", F.lit(0.0)).alias("copied_share"), "account_age_days"))
    sc = scores.select("creator_id", "cqs", F.col("risk").alias("quality_risk"),
                       (F.size("flagged") > 0).alias("any_flag"))
    gr = (graph_risk.where(F.col("vertex_type") == "creator")
          .select(F.regexp_replace("id", "^creator:", "").alias("creator_id"), F.col("risk").alias("graph_risk")))
    enforced = standing_enforcement(moderation, run_date).withColumn("standing", F.lit(True))

    base = (creators.select("creator_id", "market", "status")
            .join(sig, "creator_id", "left").join(sc, "creator_id", "left").join(gr, "creator_id", "left")
            .join(enforced, "creator_id", "left")
            .withColumn("views", F.coalesce("views", F.lit(0.0)))
            .withColumn("enforced", F.coalesce("standing", F.lit(False)) | (F.col("status") == "banned")))
    # Market rates over creators that may receive traffic: enforced accounts' history is not the market's norm.
    rates = (base.where(~F.col("enforced")).groupBy("market")
             .agg(*[F.try_divide(F.sum(c), F.sum("views")).alias(m)     # null when the market has no views
                   for c, m in (("gmv_usd", "m_gmv"), ("engaged", "m_eng"), ("n_complaints", "m_cmp"))]))
    rates = rates.select("market", *[F.coalesce(c, F.lit(0.0)).alias(c) for c in ("m_gmv", "m_eng", "m_cmp")])
    out = base.join(rates, "market", "left").na.fill(0.0, ["m_gmv", "m_eng", "m_cmp"])
    risk = F.lit(1.0) - (1 - F.coalesce("quality_risk", F.lit(0.0))) * (1 - F.coalesce("graph_risk", F.lit(0.0)))
    merit = F.when(F.col("cqs").isNull(), F.lit(min_merit)).otherwise(
        F.least(F.lit(1.0), F.greatest(F.lit(min_merit), F.col("cqs") / 100.0)))
    eligible = (F.coalesce(F.col("cqs") >= eligible_min_cqs, F.lit(False))
                & (F.col("copied_share") <= max_copied_share) & ~F.coalesce("any_flag", F.lit(False))
                & ~F.col("enforced"))
    return out.select(
        "market", "creator_id",
        _shrunk(F.col("gmv_usd"), F.col("views"), F.col("m_gmv"), prior_views).alias("gmv"),
        _shrunk(F.col("engaged"), F.col("views"), F.col("m_eng"), prior_views).alias("prosperity"),
        F.least(F.lit(1.0), F.greatest(F.lit(0.0), risk)).alias("risk"),
        _shrunk(F.col("n_complaints"), F.col("views"), F.col("m_cmp"), prior_views).alias("complaints"),
        merit.alias("merit"), eligible.alias("eligible"),
        F.coalesce(F.col("account_age_days") < new_account_days, F.lit(False)).alias("is_new"),
        F.col("enforced"),
        (F.col("views") + F.coalesce("follows", F.lit(0.0))).alias("popularity"),
        F.col("views").cast("long").alias("views"), F.col("cqs"))


def with_market_supply(inputs: DataFrame, window_days: int = 28) -> DataFrame:
    """``inputs`` plus ``total_impressions``: its market's daily impressions = window views / window days.

    The quota redistributes the traffic a market actually has; it does not invent demand. At least
    one impression per market with creators (a market with no views yet still gets a defined quota).
    A window sum over the market, not an aggregate joined back: the inputs' plan (several table
    joins) is evaluated once.
    """
    if window_days <= 0:
        raise ValueError(f"window_days must be positive, got {window_days}")
    market_views = F.sum("views").over(Window.partitionBy("market"))
    return inputs.withColumn("total_impressions",
                             F.greatest(F.lit(1), F.round(market_views / window_days).cast("long")))


def load_quota_rows(spark: "SparkSession", settings: "Settings", run_date: dt.date) -> DataFrame:
    """The run date's :func:`quota_inputs` rows joined with their market's ``total_impressions``.

    Reads the tables the quota depends on -- ``silver_creators``, ``creator_signals``,
    ``creator_quality_scores`` and ``silver_moderation`` snapshots of the run date, and the run
    date's ``entity_risk`` partition (which may legitimately be empty, but must have been written)
    -- with the ``strategy`` settings. Shared by ``jobs/traffic_quotas.py`` and the frontier
    benchmark so both see exactly the same problem.
    """
    from libs.platform import delta_io

    s = settings.section("strategy")
    day = run_date.isoformat()
    creators = delta_io.read_snapshot(spark, settings.table("silver_creators"), day, "silver_creators")
    signals = delta_io.read_snapshot(spark, settings.table("creator_signals"), day, "creator_signals")
    scores = delta_io.read_snapshot(spark, settings.table("creator_quality_scores"), day, "creator_quality_scores")
    graph_risk = delta_io.read_written_partition(spark, settings.table("entity_risk"), day, "entity_risk",
                                                 "graph risk enters the per-impression risk")
    moderation = delta_io.read_snapshot(spark, settings.table("silver_moderation"), day, "silver_moderation")
    window = int(s["window_days"])
    rows = quota_inputs(creators, signals, scores, graph_risk, moderation, run_date, window_days=window,
                        prior_views=float(s["prior_views"]), eligible_min_cqs=float(s["eligible_min_cqs"]),
                        max_copied_share=float(s["max_copied_share"]), new_account_days=int(s["new_account_days"]))
    return with_market_supply(rows, window)
