"""Job ``delta_maintenance``: OPTIMIZE (Z-order where the schema declares it) and VACUUM every Delta table.

Runs after the day's loads (``conf/pipeline.yaml``). For each table of the settings' ``tables``
section (``--tables``, default all) that is a Delta table, it compacts the small files the loads
left -- Z-ordered by the table's ``schemas.<table>.ZORDER_COLS`` when it declares some -- then
deletes the files removed longer ago than ``--retain-hours`` (default
``maintenance.vacuum_retain_hours``; never below one week, see :mod:`libs.platform.maintenance`).
Tables that are not Delta (the Parquet/JSON landing zone) or not written yet are reported as
missing and skipped. A table that fails is reported and the others are still maintained; the job
then fails so that Airflow shows it.
``--parallelism`` tables (default ``maintenance.parallelism``) are maintained at once from driver
threads of one session; the report keeps the settings' table order.

``--run-date`` and ``--days`` bound OPTIMIZE to the partitions the day's loads wrote (tables
partitioned by ``dt``): Z-ordering rewrites every file in scope on each run, so re-clustering the
whole history daily would cost more than it saves. VACUUM always covers the whole table.

    cgov run delta_maintenance --run-date 2026-11-01 --parallelism 4
    spark-submit ... jobs/delta_maintenance.py --run-date 2026-11-01 --env prod --tables silver_videos,silver_users
"""
from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from libs.platform.config import Settings, load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.maintenance import check_parallelism, check_retention, maintain, schema_module, zorder_cols
from libs.platform.session import get_spark

TABLE = "delta_maintenance"


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--tables", default=None,
                        help="comma-separated table names of the settings' tables section (default: all)")
    parser.add_argument("--days", type=int, default=1,
                        help="optimize only the dt partitions of the --days dates ending at --run-date "
                             "(tables partitioned by dt; others are optimized whole)")
    parser.add_argument("--retain-hours", type=float, default=None,
                        help="VACUUM retention in hours, >= 168 (default: maintenance.vacuum_retain_hours)")
    parser.add_argument("--parallelism", type=int, default=None,
                        help="tables maintained at once (default: maintenance.parallelism)")
    return parser


def select_tables(settings: Settings, tables: str | None) -> dict[str, str]:
    """Name -> path of the tables to maintain: all declared ones, or the named ones (unknown names fail)."""
    names = [t.strip() for t in tables.split(",") if t.strip()] if tables else list(settings.data["tables"])
    return {name: settings.table(name) for name in names}


def date_window_filter(table_name: str, run_date: dt.date, days: int) -> str | None:
    """``dt`` predicate of the run's window for a table partitioned by ``dt``; ``None`` otherwise.

    Z-ordering rewrites every file in its scope on every run (Delta 4.4), so the daily run keeps
    to the partitions the day's loads wrote; older partitions were clustered when they were loaded.
    """
    module = schema_module(table_name)
    if module is None or "dt" not in (getattr(module, "PARTITION_COLS", None) or []):
        return None
    if days < 1:
        raise ValueError(f"--days must be >= 1, got {days}")
    first = run_date - dt.timedelta(days=days - 1)
    return f"dt >= '{first.isoformat()}' AND dt <= '{run_date.isoformat()}'"


def _line(row: dict[str, Any]) -> str:
    if row["status"] == "missing":
        return f"[{TABLE}] {row['table']}: no Delta table at {row['path']}, skipped"
    if row["status"] == "failed":
        return f"[{TABLE}] {row['table']}: FAILED after {row['seconds']:.1f}s: {row['error']}"
    how = f"z-order by {', '.join(row['zorder_by'])}" if row["zorder_by"] else "compaction"
    vacuumed = "?" if row["files_vacuumed"] is None else row["files_vacuumed"]  # None: VACUUM not logged
    return (f"[{TABLE}] {row['table']}: optimize ({how}) {row['files_removed']} -> {row['files_added']} files, "
            f"vacuum deleted {vacuumed} files -> {row['path']} ({row['seconds']:.1f}s)")


def main(run_date: dt.date, env: str, tables: str | None = None,
         retain_hours: float | None = None, days: int = 1, parallelism: int | None = None) -> list[dict[str, Any]]:
    settings = load_settings(env)
    section = settings.section("maintenance")
    if retain_hours is None:
        retain_hours = float(section["vacuum_retain_hours"])
    if parallelism is None:
        parallelism = int(section["parallelism"])
    # Checked before the session starts: a bad setting should fail in seconds, not after the JVM.
    check_retention(retain_hours, "the lakehouse")
    check_parallelism(parallelism)
    selected = select_tables(settings, tables)
    spark = get_spark(settings, f"cgov-{TABLE}")
    print(f"[{TABLE}] run {run_date.isoformat()}: {len(selected)} table(s), retain {retain_hours:g}h, "
          f"{parallelism} at once", flush=True)
    filters = {name: f for name in selected if (f := date_window_filter(name, run_date, days))}
    report = maintain(spark, selected, {name: zorder_cols(name) for name in selected}, retain_hours, filters,
                      parallelism)
    for row in report:
        print(_line(row), flush=True)
    failed = [r["table"] for r in report if r["status"] == "failed"]
    if failed:
        raise RuntimeError(f"maintenance failed for {', '.join(failed)} (the other tables were maintained)")
    return report


if __name__ == "__main__":
    run_job(arg_parser, main)
