"""``video_copies``: near-duplicate video pairs (re-uploads, re-recordings, piracy) found by fingerprint.

One partition per run (``dt`` = the run date): a *snapshot* of every pair among the videos
published in the run's lookback window (``quality.copy_lookback_days`` days ending at the run
date), the later video as the copy and the earlier as the original. Readers take one ``dt`` (the
run they belong to), never a union of partitions: consecutive snapshots overlap by design (a pair
stays in every snapshot whose window holds both videos). Written by ``jobs/video_copies.py``
through :func:`libs.quality.copies.video_copies`.
"""
from pyspark.sql.types import (BooleanType, DoubleType, IntegerType, LongType, StringType, StructField, StructType,
                               TimestampType)

KEYS = ["dt", "copy_video_id", "original_video_id"]
PARTITION_COLS = ["dt"]
ZORDER_COLS = ["copy_creator_id"]     # detectors and creator_signals group and join on the copier
FORMAT = "delta"
KINDS = ("same_creator_repost", "cross_creator")
SCHEMA = StructType([
    StructField("copy_video_id", StringType(), False),        # the later publication
    StructField("copy_creator_id", StringType(), False),
    StructField("original_video_id", StringType(), False),    # the earlier one (ties: smaller video id)
    StructField("original_creator_id", StringType(), False),
    StructField("distance", IntegerType(), False),            # Hamming distance, bits of 256
    StructField("shared_bands", LongType(), False),           # bands identical in both fingerprints
    StructField("same_creator", BooleanType(), False),
    StructField("copy_published_at", TimestampType(), False),
    StructField("original_published_at", TimestampType(), False),
    StructField("lag_hours", DoubleType(), False),            # copy_published_at - original_published_at
    StructField("copy_kind_hint", StringType(), False),       # one of KINDS: a hint, not a verdict
    StructField("evidence", StringType(), False),             # one readable line for reviewers
    StructField("dt", StringType(), False),                   # run date (snapshot), not a publish date
])
