"""``ingest_audit``: one row per (feed, date) load: counts that must reconcile, the gate, the outcome.

``raw_records = accepted + quarantined`` holds for every row with ``status = 'published'``; a
load whose counts do not reconcile, or whose contract gate fails, is recorded with that status
and publishes nothing. Timing columns are the only wall-clock values in the lakehouse, which is
why they live here and not in the data tables (re-running a date gives identical data tables).
"""
from pyspark.sql.types import (ArrayType, BooleanType, DateType, DoubleType, LongType, MapType, StringType,
                               StructField, StructType, TimestampType)

KEYS = ["feed", "dt"]
PARTITION_COLS: list[str] = []
ZORDER_COLS: list[str] = []
FORMAT = "delta"
STATUSES = ("bronze_loaded", "published", "gate_failed", "reconcile_failed")
SCHEMA = StructType([
    StructField("feed", StringType(), False),
    StructField("dt", StringType(), False),
    StructField("run_date", DateType(), False),
    StructField("raw_records", LongType(), False),      # records in the landing zone (lines / rows)
    StructField("bronze_records", LongType(), False),
    StructField("accepted", LongType(), False),
    StructField("quarantined", LongType(), False),
    StructField("quarantine_reasons", MapType(StringType(), LongType(), False), False),
    StructField("new_columns", ArrayType(StringType(), False), False),   # additive schema evolution
    StructField("gate_success", BooleanType(), True),   # null when the gate did not run
    StructField("gate_summary", StringType(), True),
    StructField("silver_version", LongType(), True),    # Delta version readers see after this load
    StructField("status", StringType(), False),
    StructField("finished_at", TimestampType(), False),
    StructField("seconds", DoubleType(), False),
])
