"""``bronze_<feed>``: every record of a raw feed exactly as received, one row per raw record.

One shape for all eleven bronze tables (``bronze_creators`` ... ``bronze_refunds``): the record
as text, where it came from and when it was loaded. JSON-lines feeds keep the line byte for
byte; Parquet feeds keep the row serialized with the landing zone's JSON options
(:data:`schemas.JSON_OPTIONS`) *with the file's own column types*, so a type that drifted
upstream is still visible in bronze and silver can quarantine it (``_schema_issue``).
Nothing is parsed, typed or dropped here: bronze is what lets any silver day be rebuilt.
"""
from pyspark.sql.types import DateType, StringType, StructField, StructType

KEYS = ["dt", "_source_file", "_line_hash"]   # not unique: a replayed line is a second identical row
PARTITION_COLS = ["dt"]
ZORDER_COLS: list[str] = []
FORMAT = "delta"
SCHEMA = StructType([
    StructField("_record", StringType(), False),        # the raw record (JSON text)
    StructField("_source_file", StringType(), False),   # landing-zone file it was read from
    StructField("_line_hash", StringType(), False),     # xxhash64 of _record (16 hex), ties quarantine to truth
    StructField("_schema_issue", StringType(), True),   # Parquet feeds: declared-vs-file type drift, else null
    StructField("_ingest_run_date", DateType(), False),  # --run-date of the load
    StructField("dt", StringType(), False),             # the raw partition (date) it was read from
])
