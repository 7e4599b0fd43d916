"""Job ``frame_fingerprints``: a directory of image frames -> one PDQ-style 256-bit fingerprint per frame.

Reads every ``*.jpg``/``*.jpeg``/``*.png`` under ``--frames-dir`` (recursively, through Spark's
``binaryFile`` source, so the directory may be local or on the lake's object store), hashes each
frame with :func:`libs.quality.phash.hash_files` and writes:

* ``frame_fingerprints``: ``path, fingerprint, quality, bytes`` of the frames whose quality is at
  least ``--min-quality`` (default 20);
* ``frame_fingerprint_quarantine``: ``path, reason`` of the others -- ``undecodable_image`` or
  ``low_quality_frame`` (near-flat frames: their hash is noise and must never be matched).

Both with ``replaceWhere dt = run date`` (a re-run replaces the day, never appends). The hashed
frame is persisted before the two writes so that each image is decoded once, and the job fails
if the rows written to the two tables do not add up to the files read.

    cgov run frame_fingerprints --run-date 2026-11-01 --frames-dir /data/frames
    spark-submit ... jobs/frame_fingerprints.py --run-date 2026-11-01 --env prod --frames-dir s3a://.../frames
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import functions as F

from libs.platform import delta_io
from libs.platform.config import load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark
from libs.quality import phash
from schemas import conform
from schemas import frame_fingerprint_quarantine as quarantine_schema
from schemas import frame_fingerprints as fingerprints_schema

TABLE = "frame_fingerprints"
QUARANTINE = "frame_fingerprint_quarantine"
# Hadoop globs are case-sensitive: both spellings of each extension (mixed case is not matched).
FRAME_GLOB = "*.{jpg,jpeg,png,JPG,JPEG,PNG}"


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--frames-dir", required=True,
                        help="directory of frames, read recursively (*.jpg, *.jpeg, *.png)")
    parser.add_argument("--min-quality", type=int, default=20,
                        help="PDQ quality (0..100) below which a frame is quarantined as low_quality_frame")
    return parser


def main(run_date: dt.date, env: str, frames_dir: str, min_quality: int = 20) -> dict[str, Any]:
    settings = load_settings(env)
    # Checked before the session starts: a bad argument should fail in seconds, not after the JVM.
    if not 0 <= min_quality <= 100:
        raise ValueError(f"--min-quality must be in 0..100, got {min_quality}")
    if "://" not in frames_dir and not os.path.isdir(frames_dir):
        raise FileNotFoundError(f"--frames-dir {frames_dir!r} is not a directory")
    spark = get_spark(settings, f"cgov-{TABLE}")
    started = time.time()
    day = run_date.isoformat()
    files = (spark.read.format("binaryFile")
             .option("recursiveFileLookup", "true")
             .option("pathGlobFilter", FRAME_GLOB)
             .load(frames_dir))
    hashed = phash.hash_files(files).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        n_files = hashed.count()              # materialises the cache: every frame is decoded once
        accepted, quarantined = phash.split_frames(hashed, min_quality)
        paths = {TABLE: settings.table(TABLE), QUARANTINE: settings.table(QUARANTINE)}
        delta_io.replace_partition(
            conform(accepted.withColumn("dt", F.lit(day)), fingerprints_schema.SCHEMA), paths[TABLE], "dt", day)
        delta_io.replace_partition(
            conform(quarantined.withColumn("dt", F.lit(day)), quarantine_schema.SCHEMA), paths[QUARANTINE], "dt", day)
    finally:
        hashed.unpersist()
    n_accepted = delta_io.read_dates(spark, paths[TABLE], day, day, TABLE).count()
    reasons = {r["reason"]: r["count"] for r in delta_io.read_dates(spark, paths[QUARANTINE], day, day, QUARANTINE)
               .groupBy("reason").count().collect()}
    n_quarantined = sum(reasons.values())
    if n_accepted + n_quarantined != n_files:
        raise RuntimeError(f"{TABLE}: {n_files} files read but {n_accepted} accepted + {n_quarantined} "
                           f"quarantined written for dt={day}")
    summary = {"table": TABLE, "run_date": day, "files": n_files, "accepted": n_accepted,
               "quarantined": n_quarantined, "reasons": reasons, "min_quality": min_quality,
               "seconds": round(time.time() - started, 1)}
    print(f"[{TABLE}] {day}: {n_files} frame files under {frames_dir} -> {n_accepted} fingerprints "
          f"({paths[TABLE]}), {n_quarantined} quarantined {reasons} ({paths[QUARANTINE]}) "
          f"in {summary['seconds']}s", flush=True)
    return summary


if __name__ == "__main__":
    run_job(arg_parser, main)
