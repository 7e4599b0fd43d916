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
    stray = df.filter(F.col(partition_col) != F.lit(value)).limit(1).count()
    if stray:
        # Delta would reject it too, but with a less readable message.
        raise ValueError(f"rows outside {partition_col}={value!r} cannot be written by this run")
    (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"{partition_col} = '{value}'")
        .partitionBy(partition_col)
        .save(path)
    )


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
