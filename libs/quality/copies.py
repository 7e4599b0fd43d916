"""Video copies of one run: near-duplicate pairs among the videos of the lookback window.

Why a snapshot of the whole window per run (``dt`` = run date), rather than only the copies
published on the run date against older originals:

* **attribution can change**: the original is the earliest publication *in the window*; a
  silver partition reloaded or arriving late inside the window can bring an earlier original,
  and the next run attributes the copy to it;
* **idempotence**: a run is a pure function of the window's silver rows, so re-running a date
  recomputes the same partition (``replaceWhere dt = run date``), whatever ran before;
* **one read for consumers**: ``creator_signals`` reads one partition and sees every pair its
  28-day features need, including copies published on earlier days of the window.

The cost is recomputing the window's search every day (a self-join of ~lookback_days of
videos); ``benchmarks/bench_fingerprints.py`` measures it. An incremental variant (today's
videos against the window) would need a two-set search; it is not needed at current volumes.

Consequences readers must know: a copy whose true original was published before the window is
paired with the earliest copy *inside* it (copies of one original are near each other too), and
consecutive snapshots overlap.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from libs.quality.fingerprints import near_duplicates
from schemas import conform
from schemas import video_copies as schema

SAME_CREATOR, CROSS_CREATOR = schema.KINDS


def window_bounds(run_date: dt.date, lookback_days: int) -> tuple[str, str]:
    """First and last publish date (``dt``, inclusive) of the window: ``lookback_days`` days ending at ``run_date``."""
    if lookback_days < 1:
        raise ValueError(f"lookback_days must be >= 1, got {lookback_days}")
    return (run_date - dt.timedelta(days=lookback_days - 1)).isoformat(), run_date.isoformat()


def in_window(run_date: dt.date, lookback_days: int) -> Column:
    """Predicate on ``dt`` (publish date partition): pushed down to the Delta scan, so only the window is read."""
    first, last = window_bounds(run_date, lookback_days)
    return (F.col("dt") >= first) & (F.col("dt") <= last)


def _evidence(n_bands: int) -> Column:
    """``fingerprint 12/256 bits from vid_x by cr_y published 3.2 days earlier, 15/16 bands identical``.

    What a reviewer needs to check the claim without a query: how close, to what, by whom, how
    much earlier (hours under a day: a same-hour re-upload is itself a signal).
    """
    hours = F.col("lag_hours")
    lag = F.when(hours < 24, F.format_string("%.1f hours", hours)).otherwise(F.format_string("%.1f days", hours / 24))
    by = F.when(F.col("same_creator"), F.format_string("the same creator %s", F.col("original_creator_id"))) \
        .otherwise(F.col("original_creator_id"))
    return F.format_string(f"fingerprint %d/256 bits from %s by %s published %s earlier, %d/{n_bands} bands identical",
                           F.col("distance"), F.col("original_video_id"), by, lag, F.col("shared_bands"))


def video_copies(videos: DataFrame, run_date: dt.date, max_distance: int, n_bands: int, multi_probe: bool,
                 max_bucket: int | None, lookback_days: int) -> tuple[DataFrame, DataFrame]:
    """``(copies, skipped_buckets)`` of the run: pairs within ``max_distance`` bits among the window's videos.

    ``videos``: silver_videos rows (``video_id``, ``creator_id``, ``published_at``,
    ``fingerprint``, ``dt``); only those with ``dt`` in the window (:func:`window_bounds`) count,
    and those without a valid fingerprint are ignored (see
    :func:`libs.quality.fingerprints.near_duplicates`). ``copies`` has :data:`schemas.video_copies.SCHEMA`
    with ``dt`` = the run date. ``skipped_buckets`` (``band``, ``value``, ``size``) are the band
    values too common to compare (``max_bucket``): the caller must report them, since pairs
    matching only through them are missing from ``copies``.
    """
    window = videos.where(in_window(run_date, lookback_days)).select("video_id", "creator_id", "published_at",
                                                                     "fingerprint")
    pairs, skipped = near_duplicates(window, max_distance, n_bands, max_bucket, multi_probe=multi_probe)
    published = window.select("video_id", "published_at")
    copies = (pairs
              .join(published.select(F.col("video_id").alias("copy_video_id"),
                                     F.col("published_at").alias("copy_published_at")), "copy_video_id")
              .join(published.select(F.col("video_id").alias("original_video_id"),
                                     F.col("published_at").alias("original_published_at")), "original_video_id")
              .withColumn("lag_hours", (F.unix_micros("copy_published_at") - F.unix_micros("original_published_at"))
                          / F.lit(3_600_000_000.0))
              .withColumn("copy_kind_hint", F.when(F.col("same_creator"), F.lit(SAME_CREATOR))
                          .otherwise(F.lit(CROSS_CREATOR)))
              .withColumn("evidence", _evidence(n_bands))
              .withColumn("dt", F.lit(run_date.isoformat())))
    return conform(copies, schema.SCHEMA), skipped
