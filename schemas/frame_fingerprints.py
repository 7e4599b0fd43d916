"""``frame_fingerprints``: one 256-bit perceptual hash per image frame, by run date.

Written by ``jobs/frame_fingerprints.py`` with :func:`libs.quality.phash.frame_fingerprints`.
``fingerprint`` has the format of ``silver_videos.fingerprint`` (64 lowercase hex digits, see
:mod:`libs.quality.phash` for the bit order), so :func:`libs.quality.fingerprints.near_duplicates`
matches frames and videos alike. Only frames at or above the run's ``--min-quality`` are here;
the others are in ``frame_fingerprint_quarantine``, and the two reconcile with the files read.
"""
from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

KEYS = ["dt", "path"]
PARTITION_COLS = ["dt"]
FORMAT = "delta"
SCHEMA = StructType([
    StructField("path", StringType(), False),          # the file's URI as Spark's binaryFile reports it
    StructField("fingerprint", StringType(), False),   # 64 lowercase hex digits (256 bits)
    StructField("quality", IntegerType(), False),      # PDQ quality 0..100 (gradient sum)
    StructField("bytes", LongType(), False),           # size of the file hashed
    StructField("dt", StringType(), False),            # run date (YYYY-MM-DD)
])
