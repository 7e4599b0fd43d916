"""``frame_fingerprint_quarantine``: every frame file that got no fingerprint, with the reason.

One row per refused file per run: ``undecodable_image`` (Pillow could not decode it: corrupt,
truncated, not an image) or ``low_quality_frame`` (decoded, but its PDQ quality is under the run's
``--min-quality``: a near-flat frame whose hash is noise and must not be matched). Together with
``frame_fingerprints`` it accounts for every file the run read.
"""
from pyspark.sql.types import StringType, StructField, StructType

KEYS = ["dt", "path"]
PARTITION_COLS = ["dt"]
FORMAT = "delta"
REASON_KINDS = ("undecodable_image", "low_quality_frame")
SCHEMA = StructType([
    StructField("path", StringType(), False),
    StructField("reason", StringType(), False),        # one of REASON_KINDS
    StructField("dt", StringType(), False),
])
