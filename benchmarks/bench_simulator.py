"""Simulator benchmark: wall time of generating and writing the raw landing zone, rows and bytes per feed.

Runs the real job (``jobs.raw_landing_zone.main``) against a scratch lakehouse, so what is timed is
exactly what Airflow runs. Not a test: numbers depend on the machine.

    .venv/bin/python benchmarks/bench_simulator.py [--creators 10000] [--days 14] [--seed 7] [--root DIR]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

FEEDS = ("raw_creators", "raw_devices", "raw_users", "raw_videos", "raw_moderation", "raw_engagement_events",
         "raw_logins", "raw_withdrawals", "raw_listings", "raw_complaints", "raw_refunds", "truth_creators",
         "truth_videos", "truth_users", "truth_events", "truth_moderation", "truth_defects")


def data_bytes(path: str) -> tuple[int, int]:
    """(bytes, files) of the data files under ``path`` (Parquet, or gzip JSON lines)."""
    files = [p for p in Path(path).rglob("part-*") if not p.name.endswith(".crc")]
    return sum(p.stat().st_size for p in files), len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--creators", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--run-date", default="2026-11-01")
    parser.add_argument("--root", default=None, help="scratch lakehouse root (default: a new temp dir)")
    args = parser.parse_args()
    root = args.root or tempfile.mkdtemp(prefix="bench_sim_")
    # Must be set before the job loads settings: every table path derives from it.
    os.environ["CGOV__LAKEHOUSE_ROOT"] = root

    from jobs.raw_landing_zone import main as job_main
    from libs.platform.config import load_settings

    started = time.monotonic()
    report = job_main(run_date=dt.date.fromisoformat(args.run_date), env="local", seed=args.seed,
                      creators=args.creators, days=args.days)
    elapsed = time.monotonic() - started
    settings = load_settings("local")
    print(f"\n[bench_simulator] {args.creators:,} creators x {args.days} days, seed {args.seed}: "
          f"generation + write + read-back counts {elapsed:.1f}s (session start included) -> {root}")
    print(f"{'feed':<24}{'rows':>12}{'MiB':>10}{'files':>7}{'B/row':>8}")
    total = 0
    for feed in FEEDS:
        size, files = data_bytes(settings.table(feed))
        total += size
        rows = report["rows"][feed]
        print(f"{feed:<24}{rows:>12,}{size / 2**20:>10.2f}{files:>7}{size / max(rows, 1):>8.1f}")
    print(f"{'total':<24}{'':>12}{total / 2**20:>10.2f}")


if __name__ == "__main__":
    main()
