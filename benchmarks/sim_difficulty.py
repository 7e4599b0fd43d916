"""Simulator difficulty table: how well one obvious feature per abuse type separates it (see libs.sim.difficulty).

Generates a landing zone with the real job (``jobs.raw_landing_zone.main``) into a scratch
lakehouse -- or reuses one with ``--root DIR --reuse`` -- then prints, per abuse type, positives,
ROC AUC and precision/recall at the feature's obvious threshold, plus syndicate-level recall for
the grouped abuse types. Judge on seeds you did not tune on: ``--seed`` and sizes are arguments.

    .venv/bin/python benchmarks/sim_difficulty.py [--seed 101] [--creators 10000] [--days 14] [--camouflage 0.5]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time

SYNDICATES = (("matrix_farm", "truth_operator_id"), ("sybil", "truth_sybil_cluster_id"),
              ("fake_engagement", "truth_ring_id"))


def _fmt(x) -> str:
    return "   n/a" if x is None else f"{x:6.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=101)
    parser.add_argument("--creators", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--camouflage", type=float, default=None)
    parser.add_argument("--run-date", default="2026-11-01")
    parser.add_argument("--root", default=None, help="lakehouse root (default: a new temp dir)")
    parser.add_argument("--reuse", action="store_true", help="do not generate; score the landing already under --root")
    args = parser.parse_args()
    if args.reuse and not args.root:
        parser.error("--reuse needs --root")
    root = args.root or tempfile.mkdtemp(prefix="sim_difficulty_")
    os.environ["CGOV__LAKEHOUSE_ROOT"] = root   # before settings load: every table path derives from it

    from jobs.raw_landing_zone import main as land
    from libs.platform.config import load_settings
    from libs.platform.session import get_spark
    from libs.sim.difficulty import difficulty_table, features, load_public
    from libs.sim.truth import syndicate_recall
    from pyspark.sql import functions as F
    from schemas import truth_creators

    run_date = dt.date.fromisoformat(args.run_date)
    days = [(run_date - dt.timedelta(days=i)).isoformat() for i in range(args.days)]
    if not args.reuse:
        started = time.monotonic()
        land(run_date=run_date, env="local", seed=args.seed, creators=args.creators, days=args.days,
             camouflage=args.camouflage)
        print(f"[sim_difficulty] generated in {time.monotonic() - started:.1f}s -> {root}")
    settings = load_settings("local")
    spark = get_spark(settings, "cgov-sim-difficulty")
    rows = difficulty_table(spark, settings, args.run_date, days, args.seed)
    print(f"\nseed {args.seed}, {args.creators:,} creators x {args.days} days, camouflage "
          f"{args.camouflage if args.camouflage is not None else 'default'}")
    print(f"{'abuse type':<17}{'pos':>7}{'AUC':>8}{'thr':>8}{'prec':>8}{'recall':>8}")
    for r in rows:
        print(f"{r['abuse']:<17}{r['positives']:>7}{_fmt(r['roc_auc']):>8}{r['threshold']:>8g}"
              f"{_fmt(r['precision']):>8}{_fmt(r['recall']):>8}")
    feats = features(load_public(spark, settings, args.run_date, days), args.run_date)
    truth = spark.read.schema(truth_creators.SCHEMA).parquet(settings.table("truth_creators")).where(F.col("seed") == args.seed)
    print(f"\n{'syndicate recall':<17}{'groups':>7}{'found':>8}{'covered':>9}")
    thresholds = {r["abuse"]: r["threshold"] for r in rows}
    for abuse, group in SYNDICATES:
        s = syndicate_recall(feats, truth, group, abuse, threshold=thresholds[abuse])
        print(f"{abuse:<17}{s['syndicates']:>7}{_fmt(s['found_recall']):>8}{_fmt(s['covered_recall']):>9}")


if __name__ == "__main__":
    main()
