"""Raw landing zone -> bronze: every record as received, with where it came from.

Bronze does not judge records; it makes them replayable. JSON-lines feeds are read as text (a
malformed line is still a line); Parquet feeds are read with the *file's* schema, never the
declared one: reading a drifted file with the declared schema would either fail the whole load
or silently null the column, and both lose the evidence. Instead each row is serialized as it is
(:data:`schemas.JSON_OPTIONS`) and a drift of a declared column's type is recorded in
``_schema_issue``, which silver turns into quarantine rows (the schema-change policy: additive
columns evolve, type changes quarantine).
"""
from __future__ import annotations

import datetime as dt

from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from libs.ingest.feeds import Feed
from libs.platform.hashing import line_hash
from schemas import JSON_OPTIONS, bronze_feed, conform


def path_exists(spark: SparkSession, path: str) -> bool:
    """Whether ``path`` exists on its file system (local, HDFS, object store) -- asked through Hadoop."""
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return bool(hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(hpath))


def schema_issues(declared: StructType, found: StructType) -> list[str]:
    """Declared columns whose type differs in the landed file (``"price: declared double, found string"``).

    Missing columns are not issues here: the record then lacks the field, which silver reports
    per record (``missing_field``); extra columns are additive evolution, also not an issue.
    """
    have = {f.name: f.dataType for f in found.fields}
    return [f"{f.name}: declared {f.dataType.simpleString()}, found {have[f.name].simpleString()}"
            for f in declared.fields if f.name in have and have[f.name] != f.dataType]


def read_raw(spark: SparkSession, feed: Feed, raw_path: str, day: str) -> DataFrame | None:
    """The landed records of one date partition as (``_record``, ``_source_file``, ``_schema_issue``).

    ``None`` when the partition does not exist (the caller decides whether that is an outage).
    """
    part = f"{raw_path}/dt={day}"
    if not path_exists(spark, part):
        return None
    if feed.raw.FORMAT == "json":
        # Text, not the JSON reader: one row per line whatever the line contains. Gzip is inflated
        # transparently (one task per .gz file: gzip is not splittable).
        df = spark.read.text(part)
        return df.select(F.col("value").alias("_record"), F.col("_metadata.file_path").alias("_source_file"),
                         F.lit(None).cast("string").alias("_schema_issue"))
    if feed.raw.FORMAT != "parquet":
        raise ValueError(f"feed {feed.name}: unsupported raw format {feed.raw.FORMAT!r}")
    declared = StructType(feed.data_fields)
    try:
        # mergeSchema: files of one partition written by different producer versions still all
        # load, with the union of their columns (an older file lacks the new column: null there).
        return _serialize(spark.read.option("mergeSchema", "true").parquet(part), declared)
    except Exception as exc:   # noqa: BLE001 - a SparkException surfaces as a raw Py4JJavaError
        # Files disagree on a column's type (a producer changed it mid-day): no merged schema
        # exists. Read each file with its own schema, so only the drifted files' rows quarantine.
        if "CANNOT_MERGE" not in str(exc):
            raise
    files = parquet_files(spark, part)
    return reduce(DataFrame.unionByName, [_serialize(spark.read.parquet(f), declared) for f in files])


def _serialize(df: DataFrame, declared: StructType) -> DataFrame:
    """Rows of one Parquet read as JSON text, with that read's type drift from ``declared``."""
    issues = schema_issues(declared, df.schema)
    cols = [c for c in df.columns if c != "dt"]
    return df.select(F.to_json(F.struct(*[F.col(f"`{c}`") for c in cols]), JSON_OPTIONS).alias("_record"),
                     F.col("_metadata.file_path").alias("_source_file"),
                     F.lit("; ".join(issues) if issues else None).cast("string").alias("_schema_issue"))


def parquet_files(spark: SparkSession, directory: str) -> list[str]:
    """The data files (``*.parquet``, not ``_SUCCESS``/hidden files) directly under ``directory``."""
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(directory)
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    names = [s.getPath().toString() for s in fs.listStatus(hpath)]
    return sorted(n for n in names if n.endswith(".parquet") and not n.rsplit("/", 1)[-1].startswith(("_", ".")))


def to_bronze(records: DataFrame, day: str, run_date: dt.date) -> DataFrame:
    """Add lineage (hash, load date, partition) to :func:`read_raw`'s records, in bronze's schema."""
    out = records.select(
        "_record", "_source_file", line_hash("_record").alias("_line_hash"), "_schema_issue",
        F.lit(run_date).alias("_ingest_run_date"), F.lit(day).alias("dt"))
    return conform(out, bronze_feed.SCHEMA)
