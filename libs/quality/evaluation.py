"""Scoring copy search against the simulator's hidden truth (``truth_videos``), shared by the
evaluation commands (``benchmarks/eval_fingerprints.py``, ``benchmarks/eval_creator_quality.py``)
and the end-to-end tests, so "found" and "false match" mean one thing everywhere.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def planted_copies(truth_videos: DataFrame, videos: DataFrame) -> DataFrame:
    """Planted copies whose copy *and* original were ingested (``video_id``, ``truth_original_video_id``,
    ``truth_copy_kind``, ``truth_copy_bits``): a copy of a refused record cannot be found and is not counted."""
    present = videos.select("video_id")
    return (truth_videos.where(F.col("truth_original_video_id").isNotNull())
            .join(present, "video_id")
            .join(present.withColumnRenamed("video_id", "truth_original_video_id"), "truth_original_video_id"))


def copy_recall(pairs: DataFrame, truth_videos: DataFrame, videos: DataFrame, bucket: Column) -> list:
    """Rows ``(truth_copy_kind, bits, copies, found)``: a copy is found when ``pairs`` holds it with its
    true original *as the original* (attribution counts). ``bucket`` labels ``truth_copy_bits``."""
    found = planted_copies(truth_videos, videos).join(
        pairs.select(F.col("copy_video_id").alias("video_id"), F.col("original_video_id").alias("truth_original_video_id"),
                     F.lit(True).alias("found")),
        ["video_id", "truth_original_video_id"], "left")
    return (found.groupBy("truth_copy_kind", bucket.alias("bits"))
            .agg(F.count(F.lit(1)).alias("copies"), F.count("found").alias("found"))
            .orderBy("truth_copy_kind", "bits").collect())


def false_matches(pairs: DataFrame, truth_videos: DataFrame) -> int:
    """Returned pairs that are neither a copy and its original nor two copies of one original
    (copies of one original are legitimately near each other)."""
    root = truth_videos.select("video_id", F.coalesce("truth_original_video_id", "video_id").alias("root"))
    scored = (pairs.join(root.select(F.col("video_id").alias("copy_video_id"), F.col("root").alias("r1")),
                         "copy_video_id", "left")
              .join(root.select(F.col("video_id").alias("original_video_id"), F.col("root").alias("r2")),
                    "original_video_id", "left"))
    return scored.where(F.col("r1").isNull() | F.col("r2").isNull() | (F.col("r1") != F.col("r2"))).count()
