"""Baseline difficulty of the simulated world: how well ONE obvious feature separates each abuse type.

If a single threshold on a single column caught an abuse type, every detector built later would
look brilliant and prove nothing. This module computes, per creator, the one feature an analyst
would reach for first for each abuse type, from the *public* feeds only, and scores it against
the hidden truth with :func:`libs.sim.truth.score_creators` (exact ROC AUC, precision/recall at
a stated threshold). The simulator is meant to keep these well short of perfect; the later
detectors are judged against these numbers as their simple baseline.

Features (higher = more suspicious):

=================  ============================================================================
abuse type         obvious feature
=================  ============================================================================
low_effort         mean static-frame ratio of the creator's videos
pirate             share of the creator's videos with reused audio
matrix_farm        number of other creators sharing any device with the creator
sybil              account freshness: minus the account age in days
account_trading    number of distinct login geos in the window
fake_engagement    interactions (like/comment/share/follow) per view on the creator's videos
migration          shares a device with a banned account (0/1)
=================  ============================================================================

Raw JSON feeds are read permissively (a malformed line becomes an all-null row and is dropped
here), since this is a quick baseline on the landing zone, not the ingestion layer.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from libs.sim.truth import score_creators
from schemas import raw_creators, raw_devices, raw_engagement_events, raw_logins, raw_videos, truth_creators

# Threshold per feature for the precision/recall columns: a natural "obvious rule" cut-off.
THRESHOLDS = {
    "low_effort": 0.4, "pirate": 0.6, "matrix_farm": 1.0, "sybil": -60.0, "account_trading": 2.0,
    "fake_engagement": 0.5, "migration": 1.0,
}


def load_public(spark: SparkSession, settings, run_date: str, days: list[str]) -> dict[str, DataFrame]:
    """The public feeds of one landing: snapshots of ``run_date``, events of ``days``."""
    def parquet(name: str, schema, dates: list[str]) -> DataFrame:
        return spark.read.schema(schema).parquet(settings.table(name)).where(F.col("dt").isin(dates))

    def json(name: str, schema, key: str) -> DataFrame:
        return (spark.read.schema(schema).option("mode", "PERMISSIVE").json(settings.table(name))
                .where(F.col("dt").isin(days) & F.col(key).isNotNull()))

    return {
        "creators": parquet("raw_creators", raw_creators.SCHEMA, [run_date]),
        "devices": parquet("raw_devices", raw_devices.SCHEMA, [run_date]),
        "videos": parquet("raw_videos", raw_videos.SCHEMA, days),
        "events": json("raw_engagement_events", raw_engagement_events.SCHEMA, "event_id"),
        "logins": json("raw_logins", raw_logins.SCHEMA, "login_id"),
    }


def features(feeds: dict[str, DataFrame], run_date: str) -> DataFrame:
    """One row per creator: ``creator_id`` and one column per abuse type (see module table)."""
    cr, dv, vd, ev, lg = (feeds[k] for k in ("creators", "devices", "videos", "events", "logins"))
    per_video = vd.groupBy("creator_id").agg(
        F.avg("static_frame_ratio").alias("low_effort"),
        F.avg(F.col("audio_reuse").cast("double")).alias("pirate"))
    pairs = (dv.select("device_id", "creator_id").distinct().alias("a")
             .join(dv.select("device_id", "creator_id").distinct().alias("b"), "device_id")
             .where(F.col("a.creator_id") != F.col("b.creator_id"))
             .select(F.col("a.creator_id").alias("creator_id"), F.col("b.creator_id").alias("other")))
    farm = pairs.groupBy("creator_id").agg(F.countDistinct("other").cast("double").alias("matrix_farm"))
    banned = cr.where(F.col("status") == "banned").select(F.col("creator_id").alias("other"))
    migration = (pairs.join(banned, "other").select("creator_id").distinct()
                 .withColumn("migration", F.lit(1.0)))
    geos = lg.groupBy("creator_id").agg(F.countDistinct("geo").cast("double").alias("account_trading"))
    counts = ev.where(F.col("video_id").isNotNull()).groupBy("creator_id").agg(
        F.sum((F.col("event_type") == "view").cast("int")).alias("views"),
        F.sum(F.col("event_type").isin("like", "comment", "share", "follow").cast("int")).alias("acts"))
    engagement = counts.select("creator_id", (F.col("acts") / F.greatest(F.col("views"), F.lit(1))).alias("fake_engagement"))
    base = cr.where(F.col("status") == "active").select(
        "creator_id", (-F.datediff(F.lit(run_date), F.col("signup_date"))).cast("double").alias("sybil"))
    out = base
    for df in (per_video, farm, migration, geos, engagement):
        out = out.join(df, "creator_id", "left")
    return out.fillna(0.0)


def difficulty_table(spark: SparkSession, settings, run_date: str, days: list[str], seed: int) -> list[dict]:
    """Score each obvious feature against the truth of ``seed``: one dict per abuse type."""
    feats = features(load_public(spark, settings, run_date, days), run_date).cache()
    truth = (spark.read.schema(truth_creators.SCHEMA).parquet(settings.table("truth_creators"))
             .where(F.col("seed") == seed)
             # Banned accounts are out of the window's game: they post nothing, and the migration
             # label belongs to the operator's new accounts.
             .join(feats.select("creator_id"), "creator_id"))
    rows = []
    for abuse, threshold in THRESHOLDS.items():
        r = score_creators(feats, truth, abuse, abuse, threshold=threshold)
        rows.append({"abuse": abuse, "threshold": threshold, **r})
    feats.unpersist()
    return rows
