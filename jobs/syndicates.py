"""Job ``syndicates``: the typed graph of the run's window -> suspected abuse groups and their members.

Runs every detector of :mod:`libs.graph.detectors` over the graph of the ``graph.lookback_days``
days ending at ``--run-date`` (:func:`libs.graph.hetero.load_graph`) and replaces the run's
``syndicates`` partition -- a snapshot: re-running a date converges to the same rows.

* ``shared_infrastructure``: matrix farms -- components over weighted creator pairs sharing
  payout accounts, phones and /24s (families, offices and NATs excluded by weights and caps);
* ``lockstep``: fake-engagement rings -- users synchronised on several creators' videos;
* ``dense_subgraph``: FRAUDAR-style dense user x creator blocks (column-weighted, peeled);
* ``account_trading``: change points in an account's devices, networks, geo, category, rhythm;
* ``sybil_rank``: groups of low-trust accounts under SybilRank trust from long-standing creators.

``--detectors a,b`` runs a subset and replaces only those detectors' rows of the partition.
Every detector's row and member counts and its run time are printed and returned.

    cgov run syndicates --run-date 2026-11-01
    spark-submit ... jobs/syndicates.py --run-date 2026-11-01 --env prod --detectors lockstep
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any, Callable

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from libs.graph import hetero
from libs.graph.detectors import dense, infra, lockstep, sybil, trading
from libs.platform import delta_io
from libs.platform.config import Settings, load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark
from schemas import syndicates as schema

TABLE = "syndicates"


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--detectors", default=None,
                        help=f"comma-separated subset of {','.join(schema.DETECTORS)} (default: all)")
    return parser


def parse_detectors(value: str | None) -> list[str]:
    names = list(schema.DETECTORS) if not value else [d.strip() for d in value.split(",") if d.strip()]
    unknown = sorted(set(names) - set(schema.DETECTORS))
    if unknown or not names:
        raise ValueError(f"unknown detector(s) {unknown or value!r}; choose from {list(schema.DETECTORS)}")
    return names


def detector_runs(spark: SparkSession, settings: Settings, edges: DataFrame, run_date: dt.date,
                  first: str) -> dict[str, Callable[[], DataFrame]]:
    """Detector name -> a thunk producing its ``DETECTOR_COLUMNS`` rows (so a subset runs only what it needs)."""
    g = dict(settings.section("graph"))
    day = run_date.isoformat()

    def silver(name: str) -> DataFrame:
        return delta_io.read_dates(spark, settings.table(name), first, day, name)

    def snapshot(name: str) -> DataFrame:
        return delta_io.read_snapshot(spark, settings.table(name), day, name)

    def run_infra() -> DataFrame:
        weights = {k: float(v) for k, v in g["infra_weights"].items()}
        out, skipped = infra.shared_infrastructure(
            spark, infra.creator_resource_links(edges, weights), weights, float(g["infra_min_pair_weight"]),
            int(g["infra_max_sharers"]), int(g["infra_min_size"]))
        n = skipped.count()
        if n:
            top = skipped.orderBy(F.desc("sharers")).limit(5).collect()
            print(f"[{TABLE}] shared_infrastructure: {n} resource(s) shared by > {g['infra_max_sharers']} creators "
                  f"skipped, largest {[(r['resource_id'], r['sharers']) for r in top]}", flush=True)
        return out

    def run_lockstep() -> DataFrame:
        return lockstep.lockstep_rings(hetero.engagements(edges), window_s=int(g["lockstep_window_s"]),
                                       min_shared_creators=int(g["lockstep_min_shared_creators"]))

    def run_dense() -> DataFrame:
        return dense.dense_blocks(hetero.engagements(edges), n_blocks=int(g["dense_blocks"]),
                                  min_density_ratio=float(g["dense_min_density_ratio"]))

    def run_trading() -> DataFrame:
        events = silver("silver_engagement_events")
        follows = events.where(F.col("event_type") == "follow").select("creator_id", F.col("user_key").alias("user_id"), "ts")
        cps = trading.change_points(silver("silver_logins"), silver("silver_videos"), snapshot("silver_listings"),
                                    follows, snapshot("silver_creators"))
        return trading.traded_accounts(cps, threshold=float(g["trading_threshold"]))

    def run_sybil() -> DataFrame:
        moderation = delta_io.read_snapshot(spark, settings.table("silver_moderation"), day, "silver_moderation")
        seeds = sybil.trusted_creators(snapshot("silver_creators"), moderation, run_date,
                                       int(g["sybil_seed_min_age_days"]), int(g["sybil_max_seeds"]))
        if not seeds:
            raise ValueError("sybil_rank: no trusted seed creator (active, old enough, never moderated) in the snapshot")
        steps = None if g.get("sybil_steps") is None else int(g["sybil_steps"])
        out, _ = sybil.sybil_clusters(spark, edges, seeds, float(g["sybil_quantile"]), int(g["sybil_min_size"]),
                                      steps=steps)
        return out

    return {"shared_infrastructure": run_infra, "lockstep": run_lockstep, "dense_subgraph": run_dense,
            "account_trading": run_trading, "sybil_rank": run_sybil}


def main(run_date: dt.date, env: str, detectors: str | None = None) -> dict[str, Any]:
    names = parse_detectors(detectors)
    settings = load_settings(env)
    spark = get_spark(settings, f"cgov-{TABLE}")
    started = time.time()
    day = run_date.isoformat()
    first, _, graph = hetero.load_window(spark, settings, run_date)
    # Every detector reads the folded edges: fold once.
    edges = graph.edges.persist(StorageLevel.MEMORY_AND_DISK)
    runs = detector_runs(spark, settings, edges, run_date, first)
    per: dict[str, dict[str, Any]] = {}
    path = settings.table(TABLE)
    try:
        for name in names:
            t0 = time.time()
            rows = (runs[name]().select(F.lit(name).alias("detector"), *schema.DETECTOR_COLUMNS, F.lit(day).alias("dt")))
            # One commit per detector, replacing only its rows of the day: a failing detector leaves
            # the others' fresh rows in place and its own previous rows untouched.
            delta_io.replace_partitions(rows, path, {"dt": [day], "detector": [name]}, ["dt"])
            got = (delta_io.read_dates(spark, path, day, day, TABLE).where(F.col("detector") == name)
                   .agg(F.countDistinct("syndicate_id").alias("syndicates"), F.count("*").alias("members")).first())
            per[name] = {"syndicates": int(got["syndicates"]), "members": int(got["members"]),
                         "seconds": round(time.time() - t0, 1)}
            print(f"[{TABLE}] {day} {name}: {per[name]['syndicates']:,} syndicates, {per[name]['members']:,} members "
                  f"in {per[name]['seconds']}s", flush=True)
    finally:
        edges.unpersist()
    summary = {"table": TABLE, "run_date": day, "window": [first, day], "detectors": per,
               "seconds": round(time.time() - started, 1)}
    print(f"[{TABLE}] {day}: {sum(p['members'] for p in per.values()):,} member rows from {len(per)} detector(s) "
          f"-> {path} in {summary['seconds']}s", flush=True)
    return summary


if __name__ == "__main__":
    run_job(arg_parser, main)
