"""The run-audit table: one row per (feed, date) load, written by bronze and completed by silver.

Bronze records what the landing zone held and what bronze stored; silver adds accepted,
quarantined (per reason), the contract gate and the outcome, and checks the identity
``raw = accepted + quarantined`` against the counts bronze recorded -- two jobs, two
independent counts, one row to read when asking "did yesterday's events all arrive?".
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from libs.platform import delta_io
from schemas import conform, ingest_audit


def _now() -> dt.datetime:
    # Observational only (when the load finished): no data table depends on it.
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def bronze_row(feed: str, day: str, run_date: dt.date, raw: int, bronze: int) -> dict:
    return {"feed": feed, "dt": day, "run_date": run_date, "raw_records": int(raw), "bronze_records": int(bronze),
            "accepted": 0, "quarantined": 0, "quarantine_reasons": {}, "new_columns": [], "gate_success": None,
            "gate_summary": None, "silver_version": None, "status": "bronze_loaded", "finished_at": _now(),
            "seconds": 0.0}


def record(spark: SparkSession, path: str, rows: list[dict]) -> None:
    """Upsert audit rows on (feed, dt): a re-run of a load replaces its row, never adds one."""
    if not rows:
        return
    df = spark.createDataFrame([{**r, "finished_at": r.get("finished_at") or _now()} for r in rows],
                               ingest_audit.SCHEMA)
    delta_io.merge_upsert(spark, conform(df, ingest_audit.SCHEMA), path, ingest_audit.KEYS)


def bronze_counts(spark: SparkSession, path: str, feed: str, dates: list[str]) -> dict[str, tuple[int, int]]:
    """(raw, bronze) record counts bronze recorded per date; dates bronze has not loaded are absent."""
    if not delta_io.table_exists(spark, path):
        return {}
    rows = (delta_io.read_version(spark, path)
            .where((F.col("feed") == feed) & F.col("dt").isin(dates))
            .select("dt", "raw_records", "bronze_records").collect())
    return {r["dt"]: (r["raw_records"], r["bronze_records"]) for r in rows}
