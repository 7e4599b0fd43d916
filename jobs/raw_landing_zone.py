"""Job ``raw_landing_zone``: simulate the marketplace's raw feeds and their hidden ground truth.

Writes, for the window ``[run_date - days + 1, run_date]`` and a given ``--seed``, what upstream
systems would drop into the landing zone:

* Parquet, partitioned by ``dt``: ``raw_creators``, ``raw_devices``, ``raw_users`` and
  ``raw_moderation`` (snapshots as of the run date), ``raw_videos`` (by publish date);
* JSON lines (gzip), partitioned by ``dt``, with bad records injected at ``--defect-rate``:
  ``raw_engagement_events``, ``raw_logins``, ``raw_withdrawals``, ``raw_complaints``,
  ``raw_refunds`` (by event date) and ``raw_listings`` (snapshot);
* ground truth (Parquet, partitioned by ``seed``, under ``_ground_truth``): ``truth_creators``,
  ``truth_videos``, ``truth_users``, ``truth_events``, ``truth_moderation``, ``truth_defects``.

Deterministic: the same arguments write the same rows (see :mod:`libs.sim.rand`), so re-running a
date converges to the same tables. A run lands one self-consistent world for its window: the
simulator is a backfill generator, so the windows of two different run dates are two different
worlds, not one world continued day by day.

    cgov run raw_landing_zone --run-date 2026-11-01 --creators 2000 --days 7
    spark-submit ... jobs/raw_landing_zone.py --run-date 2026-11-01 --env dev --creators 1000000
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from dataclasses import dataclass
from functools import reduce
from types import ModuleType

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from libs.platform.config import load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark
from libs.sim import activity, commerce, defects, engagement, moderation
from libs.sim.config import SimConfig
from libs.sim.creators import accounts, creators as gen_creators, devices as gen_devices
from libs.sim.truth import split
from libs.sim.videos import videos as gen_videos
from schemas import conform
from schemas import (raw_complaints, raw_creators, raw_devices, raw_engagement_events, raw_listings, raw_logins,
                     raw_moderation, raw_refunds, raw_users, raw_videos, raw_withdrawals, truth_creators,
                     truth_defects, truth_events, truth_moderation, truth_users, truth_videos)

TABLE = "raw_landing_zone"
# What each JSON feed's producer guarantees (and the defects that can break it).
FEED_SPECS = {
    "raw_engagement_events": defects.FeedSpec(
        name="raw_engagement_events", key="event_id", required=("event_type", "user_id", "creator_id", "scenario", "ts"),
        ts="ts", money="gmv", market="market", numeric=("gmv", "quantity")),
    "raw_logins": defects.FeedSpec(name="raw_logins", key="login_id", required=("creator_id", "device_id", "ip24", "ts"),
                                   ts="ts", market="geo"),
    "raw_withdrawals": defects.FeedSpec(
        name="raw_withdrawals", key="withdrawal_id", required=("creator_id", "payment_account_id", "amount", "currency"),
        ts="requested_at", money="amount", numeric=("amount",)),
    "raw_listings": defects.FeedSpec(name="raw_listings", key="listing_id",
                                     required=("product_id", "creator_id", "category", "price", "currency"),
                                     ts="listed_at", money="price", numeric=("price",)),
    "raw_complaints": defects.FeedSpec(name="raw_complaints", key="complaint_id",
                                       required=("user_id", "creator_id", "reason", "ts"), ts="ts"),
    "raw_refunds": defects.FeedSpec(name="raw_refunds", key="refund_id",
                                    required=("order_id", "creator_id", "amount", "currency"), ts="ts",
                                    money="amount", numeric=("amount",)),
}


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=7, help="simulation seed (same seed -> same data)")
    parser.add_argument("--creators", type=int, default=2000, help="number of simulated creators")
    parser.add_argument("--days", type=int, default=14, help="length of the simulated window ending at --run-date")
    parser.add_argument("--camouflage", type=float, default=None,
                        help="0..1, higher = bad actors look more honest (default: SimConfig's)")
    parser.add_argument("--defect-rate", type=float, default=None,
                        help="share of JSON records injected with a defect (default: SimConfig's, 0.005)")
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


@dataclass(frozen=True)
class Output:
    """One table this job writes: where its rows come from and how they land."""
    name: str
    df: DataFrame
    schema: ModuleType            # schemas.<table> module: SCHEMA, PARTITION_COLS, FORMAT
    sort_cols: list[str]          # Parquet tables: sort order within a file (JSON lines sort by text)
    partition_values: list        # the partitions this run writes (and counts back)


def main(run_date: dt.date, env: str, seed: int = 7, creators: int = 2000, days: int = 14,
         camouflage: float | None = None, defect_rate: float | None = None) -> dict:
    extra = {k: v for k, v in (("camouflage", camouflage), ("defect_rate", defect_rate)) if v is not None}
    cfg = SimConfig(seed=seed, n_creators=creators, days=days, **extra)   # validates before Spark starts
    settings = load_settings(env)
    spark = get_spark(settings, f"cgov-{TABLE}")
    day = run_date.isoformat()
    window = [(run_date - dt.timedelta(days=i)).isoformat() for i in range(cfg.days)]
    keep = StorageLevel.MEMORY_AND_DISK   # reused frames: spill beyond memory rather than recompute

    acc = accounts(spark, cfg, run_date)                       # checkpointed (see its docstring)
    creators_df = gen_creators(acc, run_date)
    devices_df = gen_devices(acc, cfg, run_date).persist(keep)
    videos_df = gen_videos(acc, cfg, run_date).persist(keep)
    listings_df = commerce.listings(acc, cfg, run_date).persist(keep)
    users_df = engagement.users(acc, cfg, run_date)
    events_df = engagement.engagement_events(acc, cfg, videos_df, listings_df, run_date).persist(keep)
    moderation_df = moderation.history(acc, creators_df, cfg, run_date)

    pub_creators, truth_cr = split(creators_df, ["creator_id"], cfg.seed)
    pub_videos, truth_vd = split(videos_df, ["video_id"], cfg.seed)
    pub_users, truth_us = split(users_df, ["user_id"], cfg.seed)
    pub_events, truth_ev = split(events_df, ["event_id"], cfg.seed)
    pub_moderation, truth_md = split(moderation_df, ["case_id"], cfg.seed)
    # The JSON-lines feeds, landed with injected defects. Some are persisted: each is read twice
    # (lines, then defect truth) and recomputing them would repeat joins; withdrawals are a cheap
    # projection of the accounts.
    json_feeds = [
        Output("raw_engagement_events", pub_events, raw_engagement_events, [], window),
        Output("raw_logins", activity.logins(devices_df, cfg, run_date).persist(keep), raw_logins, [], window),
        Output("raw_withdrawals", activity.withdrawals(acc, cfg, run_date), raw_withdrawals, [], window),
        Output("raw_listings", listings_df, raw_listings, [], [day]),
        Output("raw_complaints", commerce.complaints(events_df, videos_df, acc, cfg, run_date).persist(keep),
               raw_complaints, [], window),
        Output("raw_refunds", commerce.refunds(events_df, acc, cfg, run_date).persist(keep), raw_refunds, [], window),
    ]
    report: dict = {"run_date": day, "seed": cfg.seed, "creators": cfg.n_creators, "days": cfg.days,
                    "camouflage": cfg.camouflage, "defect_rate": cfg.defect_rate, "rows": {}, "defects": {}}

    outputs = [
        Output("raw_creators", pub_creators, raw_creators, ["creator_id"], [day]),
        Output("raw_devices", devices_df, raw_devices, ["creator_id", "device_id"], [day]),
        Output("raw_users", pub_users, raw_users, ["user_id"], [day]),
        Output("raw_videos", pub_videos, raw_videos, ["video_id"], window),
        Output("raw_moderation", pub_moderation, raw_moderation, ["case_id"], [day]),
        Output("truth_creators", truth_cr, truth_creators, ["creator_id"], [cfg.seed]),
        Output("truth_videos", truth_vd, truth_videos, ["video_id"], [cfg.seed]),
        Output("truth_users", truth_us, truth_users, ["user_id"], [cfg.seed]),
        Output("truth_events", truth_ev.where(F.col("truth_kind") != "organic"), truth_events, ["event_id"], [cfg.seed]),
        Output("truth_moderation", truth_md, truth_moderation, ["case_id"], [cfg.seed]),
    ]
    for out in outputs:
        report["rows"][out.name] = _land(spark, settings.table(out.name), out)

    defect_truth = []
    for feed in json_feeds:
        started = time.monotonic()
        clean = conform(feed.df, feed.schema.SCHEMA)   # the producer's contract, checked before corrupting it
        spec = FEED_SPECS[feed.name]
        # Two passes over the (persisted or cheap) clean feed instead of caching the serialized
        # lines: the lines pass serializes every row once; the truth pass filters on the hashed
        # defect draw first -- Spark pushes that predicate below the serialization -- so it only
        # serializes the ~0.5 % defective rows. Caching the annotated frame instead meant
        # spilling every line to disk and reading it all back (minutes at 100k creators).
        lines = defects.lines_of(defects.annotate(clean, spec, cfg.seed, cfg.defect_rate, run_date))
        truth = defects.truth_of(defects.annotate(clean, spec, cfg.seed, cfg.defect_rate, run_date), spec, cfg.seed)
        path = settings.table(feed.name)
        write_json_lines(lines, path)
        report["rows"][feed.name] = _count_lines(spark, path, feed.partition_values)
        defect_truth.append(truth)
        print(f"[{TABLE}] {feed.name}: {report['rows'][feed.name]:,} lines -> {path} "
              f"({time.monotonic() - started:.1f}s)", flush=True)
    all_defects = conform(reduce(DataFrame.unionByName, defect_truth), truth_defects.SCHEMA)
    report["rows"]["truth_defects"] = _land(
        spark, settings.table("truth_defects"),
        Output("truth_defects", all_defects, truth_defects, ["feed", "key", "defect"], [cfg.seed]))
    report["defects"] = {(r["feed"], r["defect"]): r["count"] for r in spark.read.schema(truth_defects.SCHEMA)
                         .parquet(settings.table("truth_defects")).where(F.col("seed") == cfg.seed)
                         .groupBy("feed", "defect").count().collect()}
    for df in (devices_df, videos_df, listings_df, events_df, *(f.df for f in json_feeds)):
        df.unpersist()   # a no-op for the frames that were never persisted
    return report


def _land(spark: SparkSession, path: str, out: Output) -> int:
    """Write one Parquet table's partitions and return the rows now stored in them (read back)."""
    started = time.monotonic()
    part = out.schema.PARTITION_COLS[0]
    write_partitions(out.df, out.schema.SCHEMA, path, part, out.sort_cols)
    rows = _count(spark, path, out.schema.SCHEMA, part, out.partition_values)
    print(f"[{TABLE}] {out.name}: {rows:,} rows -> {path} ({time.monotonic() - started:.1f}s)", flush=True)
    return rows


def _count_lines(spark: SparkSession, path: str, values: list[str]) -> int:
    """Lines now stored in the dates this run wrote. A feed with no line at all in the window (a
    tiny world may have no refund yet) has no ``dt=`` directory, hence no ``dt`` column: 0."""
    text = spark.read.text(path)
    return text.where(F.col("dt").isin(values)).count() if "dt" in text.columns else 0


def write_json_lines(lines: DataFrame, path: str) -> None:
    """Land JSON lines (``value``) as gzip text files per ``dt``, replacing only those dates.

    Same idempotence argument as :func:`write_partitions`; lines are sorted within each date so
    a file's content does not depend on shuffle order.
    """
    (
        lines.select("value", "dt")
        .repartition("dt")
        .sortWithinPartitions("value")
        .write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .option("compression", "gzip")   # ~10x smaller landing; Spark and every JSON reader inflate .gz transparently
        .partitionBy("dt")
        .text(path)
    )


if __name__ == "__main__":
    run_job(arg_parser, main)
