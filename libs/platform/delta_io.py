"""Delta Lake read/write helpers that make every task a transaction.

Writes are idempotent by construction: a job either replaces exactly its run's partition
(``replaceWhere``) or MERGEs on business keys, so an Airflow retry or a manual re-run of the same
``--run-date`` converges to the same table instead of appending duplicates.
"""
from __future__ import annotations

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


def table_exists(spark: SparkSession, path: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path)


def replace_partition(df: DataFrame, path: str, partition_col: str, value: str) -> None:
    """Overwrite only ``partition_col == value`` (atomic; other dates untouched)."""
    replace_partitions(df, path, {partition_col: [value]}, [partition_col])


def sql_in(column: str, values: list[str]) -> str:
    """``column IN ('a', 'b')`` with quotes escaped: the predicate of a replaceWhere."""
    if not values:
        raise ValueError(f"an IN predicate on {column!r} needs at least one value")
    quoted = ", ".join("'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)
    return f"`{column}` IN ({quoted})"


def replace_partitions(df: DataFrame, path: str, partitions: dict[str, list[str]], partition_cols: list[str],
                       merge_schema: bool = False) -> None:
    """Atomically replace the partitions ``partitions`` (column -> values) of the table with ``df``.

    One Delta commit: readers see either the old partitions or the new ones, never a mix, and a
    job killed before the commit leaves the table at its previous version. An empty ``df`` clears
    those partitions (a re-run with no data converges too). ``merge_schema`` lets additive columns
    evolve the table (never a type change: Delta refuses those).
    """
    predicate = " AND ".join(sql_in(c, v) for c, v in partitions.items())
    # Delta checks every written row against replaceWhere while writing (the write fails, nothing
    # commits), so no separate pass over ``df`` is needed -- that pass would recompute it.
    writer = (df.write.format("delta").mode("overwrite").option("replaceWhere", predicate)
              .partitionBy(*partition_cols))
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    try:
        writer.save(path)
    except Exception as exc:   # noqa: BLE001 - re-raised as is unless it is the constraint check
        if "DELTA_REPLACE_WHERE_MISMATCH" in str(exc) or "does not conform to partial table overwrite" in str(exc):
            raise ValueError(f"rows outside {predicate} cannot be written by this run") from exc
        raise


def merge_upsert(spark: SparkSession, df: DataFrame, path: str, keys: list[str],
                 partition_cols: list[str] | None = None) -> None:
    """MERGE ``df`` into the Delta table at ``path`` on ``keys``: update matches, insert the rest.

    The first run creates the table. Duplicate keys in ``df`` are an error: MERGE would otherwise
    fail with a cryptic multiple-match message or, worse, pick an arbitrary row.
    """
    dup = df.groupBy(*keys).count().filter("count > 1").limit(1).collect()
    if dup:
        raise ValueError(f"merge source has duplicate keys {keys}: e.g. {dup[0].asDict()}")
    if not table_exists(spark, path):
        writer = df.write.format("delta").mode("errorifexists")
        if partition_cols:
            writer = writer.partitionBy(*partition_cols)
        writer.save(path)
        return
    cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    (
        DeltaTable.forPath(spark, path).alias("t")
        .merge(df.alias("s"), cond)
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


def read_version(spark: SparkSession, path: str, version: int | None = None) -> DataFrame:
    """Read the current table, or an earlier ``version`` (Delta time travel)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path)


def latest_version(spark: SparkSession, path: str) -> int:
    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()[0])


def read_dates(spark: SparkSession, path: str, first: str, last: str, table: str | None = None) -> DataFrame:
    """The ``dt`` partitions ``first..last`` (ISO dates, inclusive) of the Delta table at ``path``.

    A missing table is an error naming it (the upstream task has not run), not an empty frame:
    features computed from nothing would look like a quiet day.
    """
    if not table_exists(spark, path):
        raise FileNotFoundError(f"{table or 'table'}: no Delta table at {path} (has its upstream job run?)")
    return spark.read.format("delta").load(path).where((F.col("dt") >= first) & (F.col("dt") <= last))


def read_snapshot(spark: SparkSession, path: str, run_date: str, table: str | None = None) -> DataFrame:
    """The ``dt == run_date`` snapshot of a daily-snapshot table; an error when that partition is empty."""
    df = read_dates(spark, path, run_date, run_date, table)
    if df.limit(1).count() == 0:
        raise ValueError(f"{table or path}: no snapshot for dt={run_date} (has its upstream job run for this date?)")
    return df


def partition_written(spark: SparkSession, path: str, day: str) -> bool:
    """Whether some commit wrote the ``dt == day`` partition of the table at ``path``.

    A snapshot job that found nothing still commits its (empty) ``replaceWhere``; "no rows" and
    "never ran" differ only in the log, and a downstream job must not read the second as the first.
    """
    if not table_exists(spark, path):
        return False
    from delta.tables import DeltaTable

    if spark.read.format("delta").load(path).where(F.col("dt") == day).limit(1).count() > 0:
        return True
    history = DeltaTable.forPath(spark, path).history().select("operationParameters").collect()
    return any(f"'{day}'" in str((h["operationParameters"] or {}).get("predicate", "")) for h in history)


def read_written_partition(spark: SparkSession, path: str, day: str, table: str, why: str) -> DataFrame:
    """The ``dt == day`` partition of a per-run snapshot table, which may hold no rows -- but must
    have been written (:func:`partition_written`); otherwise an error naming ``table`` and ``why``
    the caller cannot read an unwritten day as an empty one."""
    if not partition_written(spark, path, day):
        raise ValueError(f"{table} has no snapshot for dt={day}: run the {table} job for this date first ({why})")
    return read_dates(spark, path, day, day, table)
