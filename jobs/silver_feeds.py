"""Job ``silver_feeds``: bronze -> the typed, deduplicated, conformed ``silver_<feed>`` Delta tables.

Per feed (``--feeds``, default all, parents first) and for the dates ``bronze_feeds`` loaded:

1. **validate** every bronze record against its feed's rules (:mod:`libs.ingest.validate`) and
   conform the accepted ones (ISO markets, USD amounts, local dates, salted user pseudonyms);
2. **stage** the result once as Parquet (every later step reads it instead of re-parsing);
3. **reconcile**: per date, ``raw = accepted + quarantined`` against the counts bronze recorded;
4. **quarantine** the refused records with their reasons (``ingest_quarantine``, one commit);
5. **gate**: the table's Great Expectations suite (``expectations/silver_<feed>.py``) on the
   candidate rows, with referential columns and row-count bounds from the previous period;
6. **publish** only when the gate passes: one Delta commit replacing the load's date partitions
   (additive new columns evolve the table). A failed gate or count publishes nothing, so readers
   keep seeing the previous version; the task fails with the readable summary.

Every outcome is written to ``ingest_audit``. Re-running a date converges to the same tables.

    cgov run silver_feeds --run-date 2026-11-01 --days 7
    spark-submit ... jobs/silver_feeds.py --run-date 2026-11-01 --env prod --feeds videos
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from expectations._silver import ref_column
from libs.ingest import audit, contracts, validate
from libs.ingest.feeds import Feed, load_dates, select
from libs.platform import delta_io
from libs.platform.config import Settings, load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark
from schemas import conform, ingest_quarantine

TABLE = "silver_feeds"


class LoadFailed(RuntimeError):
    """At least one feed's load did not publish (counts did not reconcile or its gate failed)."""


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--feeds", default=None, help="comma-separated feed names (default: all)")
    parser.add_argument("--days", type=int, default=1,
                        help="event feeds: load this many dates ending at --run-date (as bronze_feeds did)")
    return parser


def row_bounds(spark: SparkSession, settings: Settings, feed: Feed, dates: list[str]) -> dict[str, float]:
    """Contract parameters ``min_rows``/``max_rows``: ratios of the previous period's silver rows.

    The previous period has as many dates as this load, just before it (for a snapshot: the
    latest earlier snapshot). Too small a previous period (or none: the first load) gives no
    bound, since ratios of a handful of rows are noise.
    """
    cfg = settings.section("ingest")
    path = settings.table(feed.silver_table)
    previous = 0
    if delta_io.table_exists(spark, path):
        silver = delta_io.read_version(spark, path).where(F.col("dt") < dates[0])
        if feed.snapshot:
            last = silver.agg(F.max("dt")).first()[0]
            previous = silver.where(F.col("dt") == last).count() if last else 0
        else:
            first = dt.date.fromisoformat(dates[0])
            before = [(first - dt.timedelta(days=i)).isoformat() for i in range(1, len(dates) + 1)]
            previous = silver.where(F.col("dt").isin(before)).count()
    if previous < int(cfg["min_rows_for_bounds"]):
        return {"min_rows": 0, "max_rows": 10**15}
    return {"min_rows": int(previous * float(cfg["row_count_min_ratio"])),
            "max_rows": int(previous * float(cfg["row_count_max_ratio"])) + 1}


def with_references(spark: SparkSession, settings: Settings, candidate: DataFrame, feed: Feed,
                    run_date: dt.date) -> DataFrame:
    """``candidate`` plus ``_ref_<column>`` = the parent's key when it exists (latest snapshot), else null."""
    out = candidate
    for column, parent_table in feed.references.items():
        path = settings.table(parent_table)
        if not delta_io.table_exists(spark, path):
            raise RuntimeError(f"{feed.silver_table} references {parent_table}, which has not been loaded yet "
                               "(load parents first: --feeds order follows libs.ingest.feeds.FEEDS)")
        parent = delta_io.read_version(spark, path).where(F.col("dt") <= run_date.isoformat())
        last = parent.agg(F.max("dt")).first()[0]
        keys = parent.where(F.col("dt") == last).select(F.col(column).alias(ref_column(column))).distinct()
        out = out.join(keys, out[column] == keys[ref_column(column)], "left")
    return out


def load_feed(spark: SparkSession, settings: Settings, feed: Feed, run_date: dt.date, days: int,
              salt: DataFrame, audit_rows: list[dict]) -> dict[str, Any]:
    """Validate, reconcile, quarantine, gate and publish one feed; appends its audit rows."""
    started = time.monotonic()
    laps: dict[str, float] = {}

    def lap(step: str) -> None:
        # Seconds per step, printed with the result: where a slow load spends its time.
        laps[step] = round(time.monotonic() - started - sum(laps.values()), 1)

    cfg = settings.section("ingest")
    dates = load_dates(feed, run_date, days)
    recorded = audit.bronze_counts(spark, settings.table("ingest_audit"), feed.name, dates)
    missing = [d for d in dates if d not in recorded]
    if missing:
        raise RuntimeError(f"{feed.bronze_table} has no load recorded for {missing}: run bronze_feeds first")

    bronze = delta_io.read_version(spark, settings.table(feed.bronze_table)).where(F.col("dt").isin(dates))
    staged_df = validate.conform(validate.flag(bronze, feed, int(cfg["clock_skew_minutes"])), feed, salt)
    staging = f"{cfg['staging_dir']}/{feed.name}/run_date={run_date.isoformat()}"
    staged_df.write.mode("overwrite").parquet(staging)
    staged = spark.read.parquet(staging)
    lap("stage")

    counts = {r["dt"]: r for r in validate.count_by(staged).collect()}
    new_columns = sorted(r[0] for r in staged.where(F.col(validate.REASON).isNull())
                         .select(F.explode("_extra_keys")).distinct().collect())
    rows = []
    for day in dates:
        c = counts.get(day)
        raw, bronze_n = recorded[day]
        accepted, quarantined = (c["accepted"], c["quarantined"]) if c else (0, 0)
        rows.append({"feed": feed.name, "dt": day, "run_date": run_date, "raw_records": raw,
                     "bronze_records": bronze_n, "accepted": accepted, "quarantined": quarantined,
                     "quarantine_reasons": dict((c["reasons"] or {}) if c else {}), "new_columns": new_columns,
                     "gate_success": None, "gate_summary": None, "silver_version": None, "status": "reconcile_failed"})

    def finish(status: str, **extra: Any) -> None:
        seconds = time.monotonic() - started
        audit_rows.extend({**r, **extra, "status": status, "seconds": seconds} for r in rows)

    lap("count")
    unreconciled = [r for r in rows if r["raw_records"] != r["accepted"] + r["quarantined"]
                    or r["bronze_records"] != r["raw_records"]]
    if unreconciled:
        finish("reconcile_failed")
        raise LoadFailed(f"{feed.silver_table}: counts do not reconcile: " + "; ".join(
            f"dt={r['dt']} raw={r['raw_records']} bronze={r['bronze_records']} accepted={r['accepted']} "
            f"quarantined={r['quarantined']}" for r in unreconciled))

    quarantine = conform(validate.quarantine_rows(staged, feed), ingest_quarantine.SCHEMA)
    delta_io.replace_partitions(quarantine, settings.table("ingest_quarantine"),
                                {"feed": [feed.name], "dt": dates}, ingest_quarantine.PARTITION_COLS)
    lap("quarantine")

    candidate = validate.silver_rows(staged, feed, new_columns).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        checked = with_references(spark, settings, candidate, feed, run_date)
        try:
            result = contracts.gate(checked, feed.silver_table, row_bounds(spark, settings, feed, dates),
                                    docs_dir=cfg["data_docs_dir"])
        except contracts.ContractFailed as failed:
            finish("gate_failed", gate_success=False, gate_summary=failed.result.summary())
            raise LoadFailed(failed.result.summary()) from None
        lap("gate")
        path = settings.table(feed.silver_table)
        delta_io.replace_partitions(candidate, path, {"dt": dates}, feed.silver.PARTITION_COLS,
                                    merge_schema=bool(new_columns))
    finally:
        candidate.unpersist()
    version = delta_io.latest_version(spark, path)
    lap("publish")
    finish("published", gate_success=True, gate_summary=result.summary(), silver_version=version)
    accepted = sum(r["accepted"] for r in rows)
    quarantined = sum(r["quarantined"] for r in rows)
    seconds = time.monotonic() - started
    print(f"[{TABLE}] {feed.silver_table}: {accepted:,} accepted, {quarantined:,} quarantined over "
          f"{len(dates)} date(s), gate passed, version {version}"
          + (f", new columns {new_columns}" if new_columns else "") + f" ({seconds:.1f}s: {laps})", flush=True)
    return {"feed": feed.name, "dates": dates, "accepted": accepted, "quarantined": quarantined,
            "new_columns": new_columns, "silver_version": version, "seconds": seconds}


def main(run_date: dt.date, env: str, feeds: str | None = None, days: int = 1) -> list[dict]:
    settings = load_settings(env)
    salt_value = settings.pseudonymisation_salt          # fails before Spark starts when unset
    spark = get_spark(settings, f"cgov-{TABLE}")
    salt = validate.salt_frame(spark, salt_value)
    report, failures, audit_rows = [], [], []
    try:
        for feed in select(feeds):
            try:
                report.append(load_feed(spark, settings, feed, run_date, days, salt, audit_rows))
            except LoadFailed as exc:
                # Other feeds still load (independent transactions); the task fails at the end.
                print(f"[{TABLE}] {feed.silver_table}: NOT published\n{exc}", flush=True)
                failures.append(str(exc))
    finally:
        # One audit MERGE per run, not per feed (a Delta MERGE costs seconds even for a few rows),
        # written also when a feed raised something unexpected half-way.
        audit.record(spark, settings.table("ingest_audit"), audit_rows)
    if failures:
        raise LoadFailed(f"{len(failures)} feed(s) not published:\n" + "\n".join(failures))
    return report


if __name__ == "__main__":
    run_job(arg_parser, main)
