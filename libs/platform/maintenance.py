"""Delta table maintenance: OPTIMIZE (compaction or Z-order) and VACUUM with a safe retention.

Every load of the pipeline adds small files (one per task and partition, per run); readers pay
for each one. OPTIMIZE rewrites them into few large files and, given Z-order columns, clusters
rows by the columns detectors filter and join on, so data skipping prunes files. OPTIMIZE only
marks the old files removed in the log; VACUUM then deletes the files removed longer ago than the
retention, which is also how long time travel, the publish step's rollback and slow readers keep
working -- hence the floor :data:`SAFE_MIN_RETAIN_HOURS`.

What VACUUM in Delta 4.4 really does with a retention (measured on this stack, see
:func:`vacuum`): ``RETAIN n HOURS`` is ignored; the table property
``delta.deletedFileRetentionDuration`` decides. :func:`vacuum` therefore sets that property to the
requested retention before vacuuming.
"""
from __future__ import annotations

import contextlib
import importlib
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any, Iterator, Mapping

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from libs.platform import delta_io

# One week: Delta's own default, and what time travel, the publish step's rollback and
# long-running readers of the platform need. Below it VACUUM can delete files a running query or
# a concurrent writer still uses, which corrupts results or the table itself.
SAFE_MIN_RETAIN_HOURS = 168

RETENTION_PROPERTY = "delta.deletedFileRetentionDuration"
LOG_RETENTION_PROPERTY = "delta.logRetentionDuration"
LISTING_PARALLELISM_CONF = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
# Delta's default delta.logRetentionDuration (interval 30 days), in hours.
DEFAULT_LOG_RETENTION_HOURS = 30 * 24

_UNIT_HOURS = {"week": 168.0, "day": 24.0, "hour": 1.0, "minute": 1 / 60, "second": 1 / 3600,
               "millisecond": 1 / 3_600_000}
_INTERVAL_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(week|day|hour|minute|second|millisecond)s?")


def schema_module(table_name: str) -> ModuleType | None:
    """``schemas.<table_name>``, or ``None`` for a table without a schema module of its own.

    ``bronze_<feed>`` tables share ``schemas.bronze_feed``, for instance. A schema module that
    exists but fails to import is an error, not ``None``.
    """
    module_name = f"schemas.{table_name}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # the module exists but imports something missing: a real bug, surface it
        return None


def zorder_cols(table_name: str) -> list[str]:
    """The Z-order columns declared by ``schemas.<table_name>.ZORDER_COLS``, minus its partition columns.

    A table without a schema module of its own or without ``ZORDER_COLS`` gets ``[]``: plain
    compaction. Partition columns are dropped because Delta refuses to Z-order by them (every file
    holds one value of them already).
    """
    module = schema_module(table_name)
    if module is None:
        return []
    partition_cols = set(getattr(module, "PARTITION_COLS", None) or [])
    return [c for c in (getattr(module, "ZORDER_COLS", None) or []) if c not in partition_cols]


def optimize(spark: SparkSession, path: str, zorder_cols: list[str] | None,
             partition_filter: str | None = None) -> dict[str, Any]:
    """OPTIMIZE the table at ``path``: Z-order by ``zorder_cols`` if any, else bin-packing compaction.

    ``partition_filter`` (a predicate on partition columns only, e.g. ``"dt = '2026-11-01'"``)
    restricts the rewrite to those partitions. Compaction is incremental: files already large
    enough are left alone, so a second run commits nothing. Z-ordering is not: in Delta 4.4 it
    rewrites every file in scope on each run (measured: a one-file partition is rewritten again),
    which is what ``partition_filter`` is for on large tables.

    Returns the counts of the command's metrics row (``numFilesRemoved`` etc., renamed).
    """
    builder = DeltaTable.forPath(spark, path).optimize()
    if partition_filter:
        builder = builder.where(partition_filter)
    cols = list(zorder_cols or [])
    result = builder.executeZOrderBy(*cols) if cols else builder.executeCompaction()
    m = result.select("metrics.*").first()
    return {
        "files_removed": int(m["numFilesRemoved"]),
        "files_added": int(m["numFilesAdded"]),
        "bytes_removed": int(m["filesRemoved"]["totalSize"]) if m["filesRemoved"] else 0,
        "bytes_added": int(m["filesAdded"]["totalSize"]) if m["filesAdded"] else 0,
        "partitions_optimized": int(m["partitionsOptimized"]),
        "zorder_by": cols,
    }


def interval_hours(text: str | None) -> float | None:
    """Hours of a Delta interval property (``"interval 30 days"``, ``"interval 1 week 2 hours"``).

    ``None`` when absent or not in that plain form (months, signs...): callers then leave the
    property alone rather than guess.
    """
    if not text:
        return None
    body = text.strip().lower()
    if body.startswith("interval"):
        body = body[len("interval"):]
    parts = _INTERVAL_PART.findall(body)
    if not parts or _INTERVAL_PART.sub("", body).strip():
        return None
    return sum(float(n) * _UNIT_HOURS[unit] for n, unit in parts)


def _table_sql(path: str) -> str:
    """``delta.`path``` with backticks in the path escaped."""
    return "delta.`" + path.replace("`", "``") + "`"


def set_retention(spark: SparkSession, path: str, hours: int) -> dict[str, str]:
    """Make the table's deleted-file retention exactly ``hours`` (and its log retention at least that).

    Only commits when a property differs: each ALTER is a metadata commit, which would make a
    writer running at the same moment fail with a concurrent-metadata-change conflict, so the
    daily run must not issue one when nothing changes. The log retention is never lowered; it is
    raised when shorter, because Delta requires deletedFileRetentionDuration <= logRetentionDuration.
    Returns the properties it changed (empty when the table already had them).
    """
    props = DeltaTable.forPath(spark, path).detail().select("properties").first()[0] or {}
    wanted = f"interval {hours} hours"
    changes: dict[str, str] = {}
    if interval_hours(props.get(RETENTION_PROPERTY)) != float(hours):
        changes[RETENTION_PROPERTY] = wanted
    log_hours = interval_hours(props.get(LOG_RETENTION_PROPERTY, f"interval {DEFAULT_LOG_RETENTION_HOURS} hours"))
    if log_hours is not None and log_hours < hours:
        changes[LOG_RETENTION_PROPERTY] = wanted
    if changes:
        assignments = ", ".join(f"'{k}' = '{v}'" for k, v in changes.items())
        spark.sql(f"ALTER TABLE {_table_sql(path)} SET TBLPROPERTIES ({assignments})")
    return changes


@contextlib.contextmanager
def _listing_parallelism(spark: SparkSession) -> Iterator[None]:
    """Scope VACUUM's directory listing to the cluster's cores unless the session chose a parallelism.

    VACUUM lists the table's directories in ``spark.sql.sources.parallelPartitionDiscovery.parallelism``
    tasks, 10000 by default: on a partitioned table that is thousands of near-empty tasks, which
    dominated a small cluster's run (measured locally on 2 cores: a VACUUM DRY RUN of a two-file
    table with one partition directory took 78 s, 4 s with a parallelism of 2).
    ``defaultParallelism`` (the executors' cores) keeps every core listing. A value set explicitly
    in the session (or by spark-submit) is left as it is; otherwise it is unset again afterwards.
    """
    if spark.conf.get(LISTING_PARALLELISM_CONF, None) is not None:
        yield
        return
    spark.conf.set(LISTING_PARALLELISM_CONF, str(max(1, spark.sparkContext.defaultParallelism)))
    try:
        yield
    finally:
        spark.conf.unset(LISTING_PARALLELISM_CONF)


def check_retention(retain_hours: float | None, what: str) -> None:
    """ValueError unless ``retain_hours`` is a finite number of hours >= :data:`SAFE_MIN_RETAIN_HOURS`."""
    if retain_hours is None or not (math.isfinite(retain_hours) and retain_hours >= SAFE_MIN_RETAIN_HOURS):
        raise ValueError(
            f"refusing to VACUUM {what} with retain_hours={retain_hours}: the retention must be at least the "
            f"safety floor of {SAFE_MIN_RETAIN_HOURS} hours (time travel, rollback and running readers need "
            "that history)")


def check_parallelism(parallelism: int) -> None:
    """ValueError unless ``parallelism`` (tables maintained at once) is at least 1."""
    if parallelism < 1:
        raise ValueError(f"parallelism must be >= 1, got {parallelism}")


def vacuum(spark: SparkSession, path: str, retain_hours: float) -> dict[str, Any]:
    """Delete the files the table at ``path`` removed more than ``retain_hours`` ago.

    Refuses ``retain_hours`` below :data:`SAFE_MIN_RETAIN_HOURS` (ValueError); Delta's own
    safety check (``spark.databricks.delta.retentionDurationCheck.enabled``) is never disabled.

    Why the table property is set first -- measured with Delta 4.4 on this stack, files removed
    by an overwrite whose remove actions (``deletionTimestamp``) and file times were back-dated:

    * ``spark.databricks.delta.vacuum.retentionWindowIgnore.enabled`` (default on) makes VACUUM
      ignore ``RETAIN n HOURS`` (unless n is 0) and use ``delta.deletedFileRetentionDuration``
      (default one week): with the property at 700 h, ``RETAIN 168 HOURS`` kept files removed 8
      days ago; with the default property, ``RETAIN 400 HOURS`` *deleted* files removed 10 days
      ago -- less history than asked for, the dangerous direction.
    * With that conf off, ``RETAIN`` was honoured (``RETAIN 400 HOURS`` kept the files removed
      10 days ago) but may not be below the property (Delta's safety check raises
      ``DELTA_VACUUM_RETENTION_PERIOD_TOO_SHORT``). Turning the conf off is not enough either:
      by Delta's design (not measured here) a snapshot drops tombstones older than the property,
      after which only a file's modification time protects it from a longer ``RETAIN``.
    * Setting the property to the requested retention made both cases behave as asked. The
      property must not exceed ``delta.logRetentionDuration`` (30 days by default; Delta refuses
      the ALTER otherwise), so that one is raised with it when needed.

    So the property is set to ``ceil(retain_hours)`` hours (rounded up: the safe side) and
    ``RETAIN`` is passed with the same value, which gives the same result with the conf on or off.
    A file is deleted only when its remove action *and* its modification time are older than the
    retention (measured: back-dating only one of them deleted nothing). The property is table
    state, not a VACUUM argument: it is the table's declared history for every later VACUUM,
    whoever runs it.

    Returns ``files_deleted`` -- read from the ``VACUUM END`` commit that Delta 4.4 logs with the
    operation's metrics (``None`` where VACUUM logging is off,
    ``spark.databricks.delta.vacuum.logging.enabled``; a ``DRY RUN`` would count them at the
    price of a second full listing) -- and the table properties it changed.
    """
    check_retention(retain_hours, path)
    hours = math.ceil(retain_hours)
    changed = set_retention(spark, path, hours)
    table = _table_sql(path)
    delta = DeltaTable.forPath(spark, path)
    before = int(delta.history(1).select("version").first()[0])
    with _listing_parallelism(spark):
        spark.sql(f"VACUUM {table} RETAIN {hours} HOURS")
    # VACUUM returns only the table path; its count is in the VACUUM END commit it logs (the last
    # few commits are enough: only a writer committing in the same second would come between).
    end = (delta.history(10).where(f"version > {before} AND operation = 'VACUUM END'")
           .orderBy("version").select("operationMetrics").first())
    deleted = int(end[0]["numDeletedFiles"]) if end and end[0] and "numDeletedFiles" in end[0] else None
    return {"files_deleted": deleted, "retain_hours": hours, "properties_changed": changed}


def _maintain_one(spark: SparkSession, name: str, path: str, zorder_by: list[str], retain_hours: float,
                  partition_filter: str | None) -> dict[str, Any]:
    """OPTIMIZE then VACUUM one table; its report row (a failure is caught into the row, see :func:`maintain`)."""
    started = time.monotonic()
    row: dict[str, Any] = {"table": name, "path": path, "status": "missing", "files_removed": None,
                           "files_added": None, "zorder_by": zorder_by, "files_vacuumed": None,
                           "error": None}
    if delta_io.table_exists(spark, path):
        try:
            opt = optimize(spark, path, row["zorder_by"], partition_filter)
            row.update(files_removed=opt["files_removed"], files_added=opt["files_added"])
            row["files_vacuumed"] = vacuum(spark, path, retain_hours)["files_deleted"]
            row["status"] = "ok"
        except Exception as exc:  # noqa: BLE001 -- one broken table must not stop the others' upkeep
            row["status"] = "failed"
            row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    row["seconds"] = time.monotonic() - started
    return row


def maintain(spark: SparkSession, tables: Mapping[str, str], zorder: Mapping[str, list[str]],
             retain_hours: float, partition_filters: Mapping[str, str] | None = None,
             parallelism: int = 1) -> list[dict[str, Any]]:
    """OPTIMIZE then VACUUM each table (name -> path); one report row per table, in ``tables``' order.

    ``partition_filters`` (name -> predicate on partition columns) limits OPTIMIZE to those
    partitions: Z-ordering rewrites every file in scope on each run, so a daily run should only
    touch the partitions that run loaded. VACUUM always covers the whole table.

    ``parallelism`` tables are maintained at once, from that many driver threads sharing the
    session (Spark schedules their jobs side by side). Why: a small or medium table's upkeep is a
    handful of short Spark jobs separated by driver-side work (log replay, planning, the metadata
    commits), so one table at a time leaves executor cores idle between them. Measured on the
    2-core development machine over the demo lakehouse (39 Delta tables): 166 s one at a time,
    144-155 s four at once -- a small gain there, because the JVM already keeps both cores busy
    most of the time; it is meant for drivers and clusters with more cores. Different tables never
    conflict: each OPTIMIZE/VACUUM commits to its own log. The session-wide listing parallelism
    VACUUM needs is set once around the whole batch (a per-table set/unset would race between
    threads).

    ``status`` is ``ok``, ``missing`` (no Delta table at the path: not written yet, or not
    Delta, like the Parquet/JSON landing zone -- skipped) or ``failed`` (the error is in the row
    and the remaining tables are still maintained; the caller decides whether to fail the run).
    The retention floor is checked before any table is touched, so a bad setting fails fast.
    """
    check_retention(retain_hours, f"{len(tables)} table(s)")
    check_parallelism(parallelism)
    filters = partition_filters or {}

    def one(item: tuple[str, str]) -> dict[str, Any]:
        name, path = item
        return _maintain_one(spark, name, path, list(zorder.get(name) or []), retain_hours, filters.get(name))

    with _listing_parallelism(spark):
        if parallelism == 1:
            return [one(item) for item in tables.items()]
        with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="delta-maintenance") as pool:
            return list(pool.map(one, tables.items()))  # map keeps the input order
