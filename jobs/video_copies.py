"""Job ``video_copies``: silver_videos of the lookback window -> near-duplicate pairs (copies), one snapshot per run.

Reads the ``silver_videos`` partitions of the ``quality.copy_lookback_days`` days ending at
``--run-date``, finds every pair of videos whose fingerprints differ in at most
``quality.copy_max_distance`` bits (:func:`libs.quality.copies.video_copies`: multi-index hashing
with ``quality.copy_bands`` bands, 1-bit multi-probe when ``quality.copy_multi_probe``), and
replaces the ``video_copies`` partition ``dt = run date`` with them -- a snapshot of the window,
so a re-run of a date converges to the same partition (why a snapshot: :mod:`libs.quality.copies`).

Band values shared by more than ``quality.copy_max_bucket`` videos are not compared through that
band (a quadratic join otherwise); they are printed and returned in the summary, never dropped
silently. The settings can be overridden per run (``--max-distance``, ``--bands``,
``--[no-]multi-probe``, ``--max-bucket``, ``--lookback-days``), e.g. to replay a date with more
recall.

    cgov run video_copies --run-date 2026-11-01
    spark-submit ... jobs/video_copies.py --run-date 2026-11-01 --env prod --no-multi-probe
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import functions as F

from libs.platform import delta_io
from libs.platform.config import load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark
from libs.quality.copies import video_copies, window_bounds
from libs.quality.fingerprints import HEX_DIGITS, candidate_count

TABLE = "video_copies"
SOURCE = "silver_videos"
MAX_LISTED_BUCKETS = 20      # printed lines; the summary keeps them all


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--max-distance", type=int, default=None,
                        help="bits of 256 within which two videos are copies (default: quality.copy_max_distance)")
    parser.add_argument("--bands", type=int, default=None,
                        help="multi-index bands, a divisor of 64 (default: quality.copy_bands)")
    parser.add_argument("--multi-probe", action=argparse.BooleanOptionalAction, default=None,
                        help="also match bands one bit apart (default: quality.copy_multi_probe)")
    parser.add_argument("--max-bucket", type=int, default=None,
                        help="skip band values shared by more videos (default: quality.copy_max_bucket)")
    parser.add_argument("--lookback-days", type=int, default=None,
                        help="days of videos ending at --run-date searched (default: quality.copy_lookback_days)")
    return parser


def resolve(cfg: dict[str, Any], max_distance: int | None, bands: int | None, multi_probe: bool | None,
            max_bucket: int | None, lookback_days: int | None) -> dict[str, Any]:
    """Run parameters: the overrides given, else the ``quality`` settings; checked before Spark starts."""
    params = {
        "max_distance": int(cfg["copy_max_distance"] if max_distance is None else max_distance),
        "n_bands": int(cfg["copy_bands"] if bands is None else bands),
        "multi_probe": bool(cfg["copy_multi_probe"] if multi_probe is None else multi_probe),
        "max_bucket": int(cfg["copy_max_bucket"] if max_bucket is None else max_bucket),
        "lookback_days": int(cfg["copy_lookback_days"] if lookback_days is None else lookback_days),
    }
    if not 0 <= params["max_distance"] <= 4 * HEX_DIGITS:
        raise ValueError(f"max distance must be in 0..{4 * HEX_DIGITS} bits, got {params['max_distance']}")
    if params["n_bands"] < 1 or HEX_DIGITS % params["n_bands"]:
        raise ValueError(f"bands must divide {HEX_DIGITS}, got {params['n_bands']}")
    if params["multi_probe"] and params["n_bands"] < 4:
        raise ValueError(f"multi-probe needs at least 4 bands (bands of <= 64 bits), got {params['n_bands']}")
    if params["max_bucket"] < 1:
        raise ValueError(f"max bucket must be >= 1, got {params['max_bucket']}")
    if params["lookback_days"] < 1:
        raise ValueError(f"lookback days must be >= 1, got {params['lookback_days']}")
    return params


def main(run_date: dt.date, env: str, max_distance: int | None = None, bands: int | None = None,
         multi_probe: bool | None = None, max_bucket: int | None = None,
         lookback_days: int | None = None) -> dict[str, Any]:
    settings = load_settings(env)
    params = resolve(dict(settings.section("quality")), max_distance, bands, multi_probe, max_bucket, lookback_days)
    day = run_date.isoformat()
    first, last = window_bounds(run_date, params["lookback_days"])
    spark = get_spark(settings, f"cgov-{TABLE}")
    started = time.time()
    path = settings.table(TABLE)
    # Only the four columns the search needs, read once: the count, the candidate count and the
    # search itself all scan it.
    videos = (delta_io.read_dates(spark, settings.table(SOURCE), first, last, SOURCE)
              .select("video_id", "creator_id", "published_at", "fingerprint", "dt")
              .persist(StorageLevel.MEMORY_AND_DISK))
    try:
        scanned = videos.agg(F.count(F.lit(1)).alias("n"), F.countDistinct("dt").alias("days"),
                             F.count(F.when(F.col("fingerprint").rlike(f"^[0-9a-f]{{{HEX_DIGITS}}}$"), 1))
                             .alias("valid")).first()
        candidates = candidate_count(videos, params["n_bands"], params["max_bucket"],
                                     params["multi_probe"]).first()["candidates"]
        copies, skipped = video_copies(videos, run_date, **params)
        delta_io.replace_partition(copies, path, "dt", day)
        buckets = [r.asDict() for r in skipped.orderBy(F.desc("size"), "band", "value").collect()]
    finally:
        videos.unpersist()
    kinds = {r["copy_kind_hint"]: r["count"]
             for r in delta_io.read_dates(spark, path, day, day, TABLE).groupBy("copy_kind_hint").count().collect()}
    summary = {"table": TABLE, "run_date": day, "window": [first, last], **params,
               "videos": scanned["n"], "days_with_videos": scanned["days"],
               "invalid_fingerprints": scanned["n"] - scanned["valid"],
               "candidates": candidates, "pairs": sum(kinds.values()), "pairs_by_kind": kinds,
               "skipped_buckets": buckets, "seconds": round(time.time() - started, 1)}
    # Days of the window without any video usually mean a silver load that has not run yet.
    print(f"[{TABLE}] {day}: {summary['videos']:,} videos published {first}..{last} scanned "
          f"({scanned['days']} of {params['lookback_days']} days present, "
          f"{summary['invalid_fingerprints']:,} without a valid fingerprint, ignored); "
          f"{candidates:,} candidates ({params['n_bands']} bands"
          f"{', multi-probe' if params['multi_probe'] else ''}) -> {summary['pairs']:,} pairs within "
          f"{params['max_distance']} bits {kinds} -> {path} in {summary['seconds']}s", flush=True)
    print(f"[{TABLE}] {len(buckets)} skipped bucket(s) (> {params['max_bucket']} videos; pairs matching only "
          "through them are missing)", flush=True)
    for b in buckets[:MAX_LISTED_BUCKETS]:
        print(f"[{TABLE}]   band {b['band']} value {b['value']}: {b['size']:,} videos", flush=True)
    if len(buckets) > MAX_LISTED_BUCKETS:
        print(f"[{TABLE}]   ... and {len(buckets) - MAX_LISTED_BUCKETS} more (see the returned summary)", flush=True)
    return summary


if __name__ == "__main__":
    run_job(arg_parser, main)
