"""``truth_defects``: every bad record injected into the raw JSON feeds (what ingestion must catch). By seed."""
from pyspark.sql.types import LongType, StringType, StructField, StructType

KEYS = ["seed", "feed", "key", "defect"]
PARTITION_COLS = ["seed"]
SCHEMA = StructType([
    StructField("seed", LongType(), False),
    StructField("feed", StringType(), False),      # raw feed name, e.g. "raw_engagement_events"
    StructField("key", StringType(), False),       # the record's business key
    StructField("defect", StringType(), False),    # one of libs.sim.defects.DEFECT_KINDS
    StructField("field", StringType(), True),      # the column the defect touched (null: whole line)
    StructField("dt", StringType(), True),         # landing partition of the defective line
    # xxhash64 of the defective line (for a duplicate: of the second copy) -- the only link from a
    # truncated line, whose key may be cut off, back to its record.
    StructField("line_hash", StringType(), False),
])
