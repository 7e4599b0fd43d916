"""Job ``bronze_feeds``: land every raw feed's records, as received, in the ``bronze_<feed>`` Delta tables.

For each feed (``--feeds``, default all) and each date of the load -- the run date for snapshot
feeds (creators, users, devices, listings, moderation), the ``--days`` dates ending at the run date
for event feeds -- it reads the landing-zone partition ``dt=<date>``, keeps each record verbatim
with its source file and line hash (:mod:`libs.ingest.bronze`), and replaces those date partitions
of the bronze table in one Delta commit. It then counts the landing zone independently and
checks ``raw = bronze`` per date, recording both counts in ``ingest_audit`` for the silver load
to reconcile against.

A snapshot feed missing for the run date is an upstream outage: the job fails (Airflow retries)
rather than load nothing. An event feed without a partition for a date had no records that day.

    cgov run bronze_feeds --run-date 2026-11-01 --days 7
    spark-submit ... jobs/bronze_feeds.py --run-date 2026-11-01 --env prod --feeds engagement_events
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from libs.ingest import audit
from libs.ingest.bronze import read_raw, to_bronze
from libs.ingest.feeds import Feed, load_dates, select
from libs.platform import delta_io
from libs.platform.config import Settings, load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark
from schemas import bronze_feed

TABLE = "bronze_feeds"


class MissingFeed(RuntimeError):
    """A snapshot feed has not been delivered for the run date."""


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--feeds", default=None, help="comma-separated feed names (default: all)")
    parser.add_argument("--days", type=int, default=1,
                        help="event feeds: load this many dates ending at --run-date (backfill); snapshots: run date only")
    return parser


def _raw_counts(spark: SparkSession, feed: Feed, raw_path: str, dates: list[str]) -> dict[str, int]:
    """Records per date in the landing zone, counted by a reader independent of the bronze transform
    (one job for all dates: partition discovery prunes to the load's dates)."""
    if not dates:
        return {}
    reader = spark.read.text(raw_path) if feed.raw.FORMAT == "json" else spark.read.parquet(raw_path)
    return {r["dt"]: r["count"] for r in reader.where(F.col("dt").cast("string").isin(dates))
            .groupBy(F.col("dt").cast("string").alias("dt")).count().collect()}


def main(run_date: dt.date, env: str, feeds: str | None = None, days: int = 1) -> list[dict]:
    settings = load_settings(env)
    spark = get_spark(settings, f"cgov-{TABLE}")
    report: list[dict] = []
    audit_rows: list[dict] = []
    try:
        for feed in select(feeds):
            report.append(_load(spark, settings, feed, run_date, days, audit_rows))
    finally:
        # One audit commit per run (not per feed), written even when a feed failed half-way.
        audit.record(spark, settings.table("ingest_audit"), audit_rows)
    return report


def _load(spark: SparkSession, settings: Settings, feed: Feed, run_date: dt.date, days: int,
          audit_rows: list[dict]) -> dict:
    """Load one feed's dates into bronze; appends its audit rows (also when its counts differ)."""
    started = time.monotonic()
    dates = load_dates(feed, run_date, days)
    raw_path = settings.table(feed.raw_table)
    frames: list[DataFrame] = []
    present: list[str] = []
    for day in dates:
        records = read_raw(spark, feed, raw_path, day)
        if records is None:
            if feed.snapshot:
                raise MissingFeed(f"{feed.raw_table}: no partition dt={day} under {raw_path} "
                                  "(snapshot not delivered; nothing was loaded)")
            continue
        frames.append(to_bronze(records, day, run_date))
        present.append(day)
    path = settings.table(feed.bronze_table)
    if frames:
        batch = reduce(DataFrame.unionByName, frames)
    else:
        batch = spark.createDataFrame([], bronze_feed.SCHEMA)
    delta_io.replace_partitions(batch, path, {"dt": dates}, bronze_feed.PARTITION_COLS)
    stored = {r["dt"]: r["count"] for r in delta_io.read_version(spark, path)
              .where(F.col("dt").isin(dates)).groupBy("dt").count().collect()}
    raw_counts = _raw_counts(spark, feed, raw_path, present)
    rows = [audit.bronze_row(feed.name, day, run_date, raw_counts.get(day, 0), stored.get(day, 0))
            for day in dates]
    audit_rows.extend(rows)
    bad = [r for r in rows if r["raw_records"] != r["bronze_records"]]
    if bad:
        raise RuntimeError(f"{feed.bronze_table}: raw and bronze counts differ: "
                           + ", ".join(f"dt={r['dt']} raw={r['raw_records']} bronze={r['bronze_records']}" for r in bad))
    total = sum(stored.values())
    seconds = time.monotonic() - started
    print(f"[{TABLE}] {feed.bronze_table}: {total:,} records over {len(dates)} date(s) -> {path} "
          f"({seconds:.1f}s)", flush=True)
    return {"feed": feed.name, "dates": dates, "records": total, "seconds": seconds}


if __name__ == "__main__":
    run_job(arg_parser, main)
