"""Per-creator signal aggregation over rolling windows: the gold ``creator_signals`` features.

Every source is aggregated in **one pass for all windows**: a row dated ``d`` belongs to every
window ``w`` with ``0 <= run_date - d < w``, so it is exploded into those windows and one
``groupBy(creator_id, window_days)`` serves 7 and 28 days alike -- instead of one scan per window.
Rows dated after the run date (late-arriving partitions of a re-run) never count.

The transforms are pure ``DataFrame -> DataFrame`` functions of silver tables (and this run's
``video_copies``), so they are unit-tested on small inline frames and the job stays a thin
read -> transform -> write. Definitions of every feature live once, in
:mod:`schemas.creator_signals` (``DESCRIPTIONS``).

Null policy: a rate whose denominator is 0 is null, never 0 -- "no views" is not "no fake
engagement". Counts are 0 for an inactive creator (the creator still gets a row).
"""
from __future__ import annotations

import datetime as dt
from typing import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from schemas import creator_signals as schema

STATIC_FRAME_THRESHOLD = 0.6    # a video at least this static is a slideshow / still-image reel
LOW_AESTHETIC_THRESHOLD = 0.4   # below this an upstream aesthetic model calls the video low quality
INTERACTIONS = ("like", "comment", "share")


def _check_windows(windows: Sequence[int]) -> list[int]:
    out = sorted({int(w) for w in windows})
    if not out or out[0] < 1:
        raise ValueError(f"windows must be positive day counts, got {list(windows)}")
    return out


def in_windows(day: Column, run_date: dt.date, windows: Sequence[int]) -> Column:
    """Array of the window lengths (days, ending at ``run_date``) that contain ``day``."""
    ago = F.datediff(F.lit(run_date), day.cast("date"))
    return F.filter(F.array(*[F.lit(w) for w in _check_windows(windows)]),
                    lambda w: (ago >= 0) & (ago < w))


def _explode_windows(df: DataFrame, day: Column, run_date: dt.date, windows: Sequence[int]) -> DataFrame:
    return df.withColumn("window_days", F.explode(in_windows(day, run_date, windows)))


def _ratio(num: Column, den: Column) -> Column:
    """``num / den`` as double, null when ``den`` is 0 or null."""
    return F.when(den > 0, num.cast("double") / den.cast("double"))


def video_signals(videos: DataFrame, run_date: dt.date, windows: Sequence[int]) -> DataFrame:
    """Content, rhythm and product features from ``silver_videos`` per ``(creator_id, window_days)``."""
    letters = F.regexp_replace(F.coalesce(F.col("title"), F.lit("")), "[^A-Za-z]", "")
    caps = F.length(F.regexp_replace(letters, "[^A-Z]", ""))
    v = _explode_windows(videos, F.to_date("published_at"), run_date, windows).select(
        "creator_id", "window_days", "video_id", "published_at", "product_id", "title",
        "static_frame_ratio", "motion_score", "aesthetic_score", "blur", "audio_reuse",
        _ratio(caps, F.length(letters)).alias("caps_share"),
    )
    # Gaps between consecutive videos of a creator, per window (a window's first video has none).
    by_time = Window.partitionBy("creator_id", "window_days").orderBy("published_at", "video_id")
    v = v.withColumn("gap_min", (F.col("published_at").cast("long")
                                 - F.lag(F.col("published_at").cast("long")).over(by_time)) / 60.0)
    n = F.count(F.lit(1))
    with_product = F.count("product_id")
    agg = v.groupBy("creator_id", "window_days").agg(
        n.alias("n_videos"),
        F.countDistinct(F.to_date("published_at")).alias("active_days"),
        F.avg("static_frame_ratio").alias("static_frame_mean"),
        F.avg((F.col("static_frame_ratio") >= STATIC_FRAME_THRESHOLD).cast("double")).alias("static_frame_share"),
        F.avg("motion_score").alias("motion_mean"),
        F.avg("aesthetic_score").alias("aesthetic_mean"),
        F.percentile("aesthetic_score", 0.1).alias("aesthetic_p10"),
        F.percentile("aesthetic_score", 0.5).alias("aesthetic_p50"),
        F.avg((F.col("aesthetic_score") < LOW_AESTHETIC_THRESHOLD).cast("double")).alias("low_aesthetic_share"),
        F.avg("blur").alias("blur_mean"),
        F.avg(F.col("audio_reuse").cast("double")).alias("audio_reuse_share"),
        (F.lit(1.0) - F.countDistinct("title") / n).alias("title_dup_share"),
        F.avg("caps_share").alias("title_caps_share"),
        (with_product / n).alias("product_video_share"),
        F.when(with_product > 0, F.lit(1.0) - F.countDistinct("product_id") / with_product).alias("product_repeat_ratio"),
        F.when(F.count("gap_min") >= 2, F.stddev_pop("gap_min") / F.avg("gap_min")).alias("gap_cv"),
        F.min("gap_min").alias("min_gap_minutes"),
    )
    return agg.withColumn("videos_per_active_day", _ratio(F.col("n_videos"), F.col("active_days")))


def copy_signals(copies: DataFrame, videos: DataFrame, run_date: dt.date, windows: Sequence[int]) -> DataFrame:
    """Copy features from this run's ``video_copies`` per ``(creator_id, window_days)``.

    The copy side: share of the creator's window videos that copy another creator's earlier video
    (``copied_video_share``) or repost its own (``self_repost_share``), distinct sources, the
    closest match. The victim side (``times_copied``) is kept apart: being copied is not abuse, but
    it tells the explanation which creator was harmed. A video matching several originals counts
    once. ``videos`` gives the per-window video counts the shares divide by.
    """
    c = _explode_windows(copies, F.to_date("copy_published_at"), run_date, windows)
    cross = ~F.col("same_creator")
    copier = c.groupBy(F.col("copy_creator_id").alias("creator_id"), "window_days").agg(
        F.countDistinct(F.when(cross, F.col("copy_video_id"))).alias("cross_copies"),
        F.countDistinct(F.when(~cross, F.col("copy_video_id"))).alias("self_reposts"),
        F.countDistinct(F.when(cross, F.col("original_creator_id"))).alias("copy_sources"),
        F.min(F.when(cross, F.col("distance"))).cast("int").alias("copy_min_distance"),
    )
    victim = (c.where(cross).groupBy(F.col("original_creator_id").alias("creator_id"), "window_days")
              .agg(F.countDistinct("original_video_id").alias("times_copied")))
    counts = (_explode_windows(videos, F.to_date("published_at"), run_date, windows)
              .groupBy("creator_id", "window_days").agg(F.count(F.lit(1)).alias("n")))
    return (counts.join(copier, ["creator_id", "window_days"], "full")
            .join(victim, ["creator_id", "window_days"], "full")
            .select("creator_id", "window_days",
                    _ratio(F.coalesce("cross_copies", F.lit(0)), F.col("n")).alias("copied_video_share"),
                    _ratio(F.coalesce("self_reposts", F.lit(0)), F.col("n")).alias("self_repost_share"),
                    F.coalesce("copy_sources", F.lit(0)).cast("long").alias("copy_sources"),
                    "copy_min_distance",
                    F.coalesce("times_copied", F.lit(0)).cast("long").alias("times_copied")))


def engagement_signals(events: DataFrame, run_date: dt.date, windows: Sequence[int]) -> DataFrame:
    """Engagement volume and quality from ``silver_engagement_events`` per ``(creator_id, window_days)``.

    ``top_user_share`` and ``events_per_user`` need per-user counts first (two-level
    aggregation): bought engagement is few accounts acting many times.
    """
    e = _explode_windows(events, F.to_date("ts"), run_date, windows)
    per_user = e.groupBy("creator_id", "window_days", "user_key").agg(
        F.count(F.lit(1)).alias("n"),
        F.sum((F.col("event_type") == "view").cast("long")).alias("views"),
        F.sum(F.col("event_type").isin(*INTERACTIONS).cast("long")).alias("interactions"),
        F.sum((F.col("event_type") == "follow").cast("long")).alias("follows"),
        F.sum((F.col("event_type") == "purchase").cast("long")).alias("purchases"),
        F.sum(F.when(F.col("event_type") == "purchase", F.col("gmv_usd"))).alias("gmv_usd"),
    )
    agg = per_user.groupBy("creator_id", "window_days").agg(
        *[F.sum(c).alias(c) for c in ("views", "interactions", "follows", "purchases")],
        F.coalesce(F.sum("gmv_usd"), F.lit(0.0)).alias("gmv_usd"),
        F.count(F.lit(1)).alias("distinct_users"),
        F.sum("n").alias("events"),
        F.max("n").alias("top_user_events"),
    )
    return agg.select(
        "creator_id", "window_days", "views", "interactions", "follows", "purchases", "gmv_usd", "distinct_users",
        _ratio(F.col("interactions"), F.col("views")).alias("interaction_rate"),
        _ratio(F.col("purchases"), F.col("views")).alias("conversion_rate"),
        _ratio(F.col("top_user_events"), F.col("events")).alias("top_user_share"),
        _ratio(F.col("events"), F.col("distinct_users")).alias("events_per_user"),
    )


def after_sale_signals(complaints: DataFrame, refunds: DataFrame, run_date: dt.date,
                       windows: Sequence[int]) -> DataFrame:
    """Complaint and refund counts per ``(creator_id, window_days)`` (rates need purchases: see
    :func:`creator_signals`)."""
    c = (_explode_windows(complaints, F.to_date("ts"), run_date, windows)
         .groupBy("creator_id", "window_days")
         .agg(F.count(F.lit(1)).alias("complaints"),
              F.sum((F.col("reason") == "copyright").cast("long")).alias("copyright_complaints")))
    r = (_explode_windows(refunds, F.to_date("ts"), run_date, windows)
         .groupBy("creator_id", "window_days")
         .agg(F.count(F.lit(1)).alias("refunds"), F.sum("amount_usd").alias("refund_usd")))
    return c.join(r, ["creator_id", "window_days"], "full")


def login_signals(logins: DataFrame, run_date: dt.date, windows: Sequence[int]) -> DataFrame:
    """Login volume and distinct devices/geos per ``(creator_id, window_days)``."""
    return (_explode_windows(logins, F.to_date("ts"), run_date, windows)
            .groupBy("creator_id", "window_days")
            .agg(F.count(F.lit(1)).alias("logins"), F.countDistinct("device_id").alias("login_devices"),
                 F.countDistinct("geo").alias("login_geos")))


_ZERO_COUNTS = ("n_videos", "active_days", "copy_sources", "times_copied", "views", "interactions", "follows",
                "purchases", "distinct_users", "complaints", "copyright_complaints", "refunds", "logins",
                "login_devices", "login_geos")
_ZERO_AMOUNTS = ("gmv_usd", "refund_usd")


def creator_signals(creators: DataFrame, videos: DataFrame, copies: DataFrame, events: DataFrame,
                    complaints: DataFrame, refunds: DataFrame, logins: DataFrame, run_date: dt.date,
                    windows: Sequence[int]) -> DataFrame:
    """The ``creator_signals`` rows of ``run_date``: every creator of ``creators`` x every window.

    ``creators`` is the run date's ``silver_creators`` snapshot (creator_id, market, category,
    signup_date); the other frames are the silver tables (already limited to the longest window
    by the caller, or not -- rows outside the windows are dropped here) and this run's copies.
    Output columns and types are exactly :data:`schemas.creator_signals.SCHEMA`.
    """
    ws = _check_windows(windows)
    base = creators.select(
        "creator_id", "market", "category",
        F.datediff(F.lit(run_date), F.col("signup_date")).cast("int").alias("account_age_days"),
    ).crossJoin(F.broadcast(creators.sparkSession.createDataFrame([(w,) for w in ws], "window_days int")))
    keys = ["creator_id", "window_days"]
    parts = [video_signals(videos, run_date, ws), copy_signals(copies, videos, run_date, ws),
             engagement_signals(events, run_date, ws), after_sale_signals(complaints, refunds, run_date, ws),
             login_signals(logins, run_date, ws)]
    out = base
    for part in parts:
        out = out.join(part, keys, "left")   # left: activity of creators missing from the snapshot is not kept
    out = out.fillna(0, subset=list(_ZERO_COUNTS)).fillna(0.0, subset=list(_ZERO_AMOUNTS))
    out = (out.withColumn("complaint_rate", _ratio(F.col("complaints"), F.col("purchases")))
              .withColumn("refund_rate", _ratio(F.col("refunds"), F.col("purchases")))
              .withColumn("dt", F.lit(run_date.isoformat())))
    return out.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.SCHEMA.fields])


def orphan_activity(creators: DataFrame, videos: DataFrame) -> DataFrame:
    """Videos whose creator is not in the snapshot (the contract allows 0.1 %): reported by the job
    so that activity dropped by the left join is counted, not silently lost."""
    return videos.join(creators.select("creator_id"), "creator_id", "left_anti")
