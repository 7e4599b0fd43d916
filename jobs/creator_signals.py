"""Job ``creator_signals``: silver tables + this run's ``video_copies`` -> the gold per-creator features.

For the run date's ``silver_creators`` snapshot, one row per creator and rolling window
(``quality.signal_windows``, default 7 and 28 days ending at ``--run-date``): content signals,
posting rhythm, product spam, copies, engagement quality, complaints/refunds, logins (definitions:
:mod:`schemas.creator_signals`). Written with ``replaceWhere dt = run date`` -- a re-run replaces
the day's snapshot, never appends.

Only the partitions the longest window needs are read (``dt`` pruning). Videos of creators that
are not in the snapshot are counted and printed (the silver contract tolerates 0.1 %), not
dropped silently.

    cgov run creator_signals --run-date 2026-11-01
    spark-submit ... jobs/creator_signals.py --run-date 2026-11-01 --env prod
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

from libs.platform import delta_io
from libs.platform.config import load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark
from libs.quality import signals

TABLE = "creator_signals"


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--windows", default=None,
                        help="comma-separated window lengths in days (default: quality.signal_windows)")
    return parser


def main(run_date: dt.date, env: str, windows: str | None = None) -> dict[str, Any]:
    settings = load_settings(env)
    ws = ([int(w) for w in windows.split(",")] if windows
          else [int(w) for w in settings.section("quality")["signal_windows"]])
    ws = signals._check_windows(ws)
    spark = get_spark(settings, f"cgov-{TABLE}")
    started = time.time()
    day = run_date.isoformat()
    first = (run_date - dt.timedelta(days=max(ws) - 1)).isoformat()

    def window(name: str):
        return delta_io.read_dates(spark, settings.table(name), first, day, name)

    creators = delta_io.read_snapshot(spark, settings.table("silver_creators"), day, "silver_creators")
    videos = window("silver_videos")
    copies = delta_io.read_written_partition(spark, settings.table("video_copies"), day, "video_copies",
                                             "copy features would otherwise read as 'no copies'")
    out = signals.creator_signals(
        creators, videos, copies, window("silver_engagement_events"), window("silver_complaints"),
        window("silver_refunds"), window("silver_logins"), run_date, ws)
    delta_io.replace_partition(out, settings.table(TABLE), "dt", day)
    written = delta_io.read_snapshot(spark, settings.table(TABLE), day, TABLE)
    n_rows = written.count()
    n_creators = creators.select("creator_id").distinct().count()
    orphans = signals.orphan_activity(creators, videos).count()
    if n_rows != n_creators * len(ws):
        raise RuntimeError(f"{TABLE}: wrote {n_rows} rows, expected {n_creators} creators x {len(ws)} windows")
    summary = {"table": TABLE, "run_date": day, "windows": ws, "creators": n_creators, "rows": n_rows,
               "orphan_videos": orphans, "version": delta_io.latest_version(spark, settings.table(TABLE)),
               "seconds": round(time.time() - started, 1)}
    print(f"[{TABLE}] {day}: {n_creators} creators x windows {ws} -> {n_rows} rows "
          f"(videos of creators missing from the snapshot: {orphans}) v{summary['version']} "
          f"in {summary['seconds']}s -> {settings.table(TABLE)}", flush=True)
    return summary


if __name__ == "__main__":
    run_job(arg_parser, main)
