"""Job ``raw_landing_zone``: simulate the marketplace's raw feeds and their hidden ground truth.

Writes, for the window ``[run_date - days + 1, run_date]`` and a given ``--seed``:

* public feeds (Parquet, partitioned by ``dt``): ``raw_creators`` and ``raw_devices`` (snapshot
  as of the run date) and ``raw_videos`` (one partition per publish date);
* ground truth (Parquet, partitioned by ``seed``): ``truth_creators``, ``truth_videos``.

Deterministic: the same arguments write the same rows (see :mod:`libs.sim.rand`), so re-running a
date converges to the same tables.

    cgov run raw_landing_zone --run-date 2026-11-01 --creators 2000 --days 7
    spark-submit ... jobs/raw_landing_zone.py --run-date 2026-11-01 --env dev --creators 1000000
"""
from __future__ import annotations

import argparse
import datetime as dt

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from libs.platform.config import load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark
from libs.sim.config import SimConfig
from libs.sim.creators import creators as gen_creators
from libs.sim.creators import devices as gen_devices
from libs.sim.truth import split
from libs.sim.videos import videos as gen_videos
from schemas import conform
from schemas import raw_creators, raw_devices, raw_videos, truth_creators, truth_videos

TABLE = "raw_landing_zone"


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=7, help="simulation seed (same seed -> same data)")
    parser.add_argument("--creators", type=int, default=2000, help="number of simulated creators")
    parser.add_argument("--days", type=int, default=14, help="length of the simulated window ending at --run-date")
    parser.add_argument("--camouflage", type=float, default=None,
                        help="0..1, higher = bad actors look more honest (default: SimConfig's)")
    return parser


def write_partitions(df: DataFrame, schema: StructType, path: str, partition_col: str, sort_cols: list[str]) -> None:
    """Overwrite exactly the partitions present in ``df``; other partitions of the table survive.

    Dynamic partition overwrite (per write, not as a session setting) is what makes this idempotent:
    a re-run of a window replaces those dates (or that seed) only, while a plain ``overwrite`` would
    wipe every other date already landed, and ``append`` would duplicate rows on a retry.
    Rows are grouped one task per partition value and sorted by a unique key, so the files are few
    and their row order does not depend on how the shuffle happened to deliver them.
    """
    (
        conform(df, schema)
        .repartition(partition_col)
        .sortWithinPartitions(*sort_cols)
        .write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy(partition_col)
        .parquet(path)
    )


def _count(spark: SparkSession, path: str, schema: StructType, partition_col: str, values: list) -> int:
    """Rows now stored in the partitions this run wrote (read back with the declared schema: verifies the write)."""
    return spark.read.schema(schema).parquet(path).where(F.col(partition_col).isin(values)).count()


def main(run_date: dt.date, env: str, seed: int = 7, creators: int = 2000, days: int = 14,
         camouflage: float | None = None) -> dict:
    extra = {} if camouflage is None else {"camouflage": camouflage}
    cfg = SimConfig(seed=seed, n_creators=creators, days=days, **extra)   # validates before Spark starts
    settings = load_settings(env)
    spark = get_spark(settings, f"cgov-{TABLE}")
    day = run_date.isoformat()
    window = [(run_date - dt.timedelta(days=i)).isoformat() for i in range(cfg.days)]

    creators_df = gen_creators(spark, cfg, run_date)
    # Persisted: the videos feed and its truth are two writes of one generation (spills to disk
    # beyond memory; recomputing would be correct too -- generation is deterministic -- only slower).
    videos_df = gen_videos(spark, cfg, creators_df, run_date).persist(StorageLevel.MEMORY_AND_DISK)
    pub_creators, truth_cr = split(creators_df, ["creator_id"], cfg.seed)
    pub_videos, truth_vd = split(videos_df, ["video_id"], cfg.seed)

    outputs = [
        ("raw_creators", pub_creators, raw_creators.SCHEMA, "dt", ["creator_id"], [day]),
        ("raw_devices", gen_devices(spark, cfg, run_date), raw_devices.SCHEMA, "dt", ["creator_id", "device_id"], [day]),
        ("raw_videos", pub_videos, raw_videos.SCHEMA, "dt", ["video_id"], window),
        ("truth_creators", truth_cr, truth_creators.SCHEMA, "seed", ["creator_id"], [cfg.seed]),
        ("truth_videos", truth_vd, truth_videos.SCHEMA, "seed", ["video_id"], [cfg.seed]),
    ]
    report: dict = {"run_date": day, "seed": cfg.seed, "creators": cfg.n_creators, "days": cfg.days,
                    "camouflage": cfg.camouflage, "rows": {}}
    for name, df, schema, part, sort_cols, values in outputs:
        path = settings.table(name)
        write_partitions(df, schema, path, part, sort_cols)
        report["rows"][name] = _count(spark, path, schema, part, values)
        print(f"[{TABLE}] {name}: {report['rows'][name]:,} rows -> {path}", flush=True)
    videos_df.unpersist()
    return report


if __name__ == "__main__":
    run_job(arg_parser, main)
