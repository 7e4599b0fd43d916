"""Graph intelligence against the simulator's hidden truth: detectors, risk, migration, timings.

One command per lakehouse (a simulated + ingested run, e.g. from ``benchmarks/bench_ingest.py``):

    .venv/bin/python benchmarks/eval_graph_intelligence.py --root /tmp/q10k --run-date 2026-11-01 --seed 7 --run-jobs

``--run-jobs`` first runs ``graph_edges`` (over ``--days``), ``syndicates``, ``entity_risk`` and
``migration_predictions`` on that lakehouse and prints their timings (the graph build and each
detector separately); without it the tables already there are scored. Then it prints:

* per detector: precision / recall / F1 of syndicate *membership* against the truth role the
  detector targets (creators; for ring detectors also the ring's users), and syndicate-level
  recall (a truth group is *found* when one member is reported, *covered* when half are);
* risk propagation: exact ROC AUC of ``entity_risk`` at ranking creators that are truly part of
  a graph abuse (farms, sybils, traded, migrated, ring customers), enforced seeds excluded,
  beside a simple baseline (the number of accounts sharing a device/IP/payout account);
* migration: per truly migrated operator the predictions made from its banned accounts --
  account hit-rate@k (a true new account among the top k), market hit@1/@3 for market
  migrations, scenario hit@1 for scenario (shelf) migrations.

The truth is read only here (``_ground_truth``), never by a job.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from libs.ml.metrics import precision_recall_f1
from libs.platform.config import load_settings
from libs.platform.session import get_spark
from libs.sim.truth import score_creators

# Detector -> the truth roles it targets (creators), and the truth group column of its syndicates.
TARGETS: dict[str, tuple[tuple[str, ...], str]] = {
    "shared_infrastructure": (("matrix_farm",), "truth_operator_id"),
    "lockstep": (("fake_engagement",), "truth_ring_id"),
    "dense_subgraph": (("fake_engagement",), "truth_ring_id"),
    "account_trading": (("account_trading",), "creator_id"),
    "sybil_rank": (("sybil",), "truth_sybil_cluster_id"),
}
RING_DETECTORS = ("lockstep", "dense_subgraph")
GRAPH_ABUSE = ("matrix_farm", "sybil", "account_trading", "fake_engagement", "migration")
JOBS = ("graph_edges", "syndicates", "entity_risk", "migration_predictions")


def run_jobs(run_date: dt.date, days: int) -> dict[str, Any]:
    """Run the graph jobs in-process (same session) and keep their summaries (timings)."""
    from jobs import entity_risk, graph_edges, migration_predictions, syndicates

    out: dict[str, Any] = {}
    t = time.time()
    out["graph_edges"] = graph_edges.main(run_date, "local", days=days)
    out["graph_edges"]["wall"] = round(time.time() - t, 1)
    for name, mod in (("syndicates", syndicates), ("entity_risk", entity_risk),
                      ("migration_predictions", migration_predictions)):
        t = time.time()
        out[name] = mod.main(run_date, "local")
        out[name]["wall"] = round(time.time() - t, 1)
    return out


def membership(pred: DataFrame, truth: DataFrame, key: str) -> dict[str, Any]:
    """P/R/F1 of a reported id set (``pred[key]``) against the truth's positive ids (``truth[key, label]``)."""
    j = truth.join(pred.select(key).distinct().withColumn("hit", F.lit(1)), key, "full_outer")
    r = j.agg(F.sum(F.when((F.col("hit") == 1) & (F.col("label") == 1), 1).otherwise(0)).alias("tp"),
              F.sum(F.when((F.col("hit") == 1) & ~(F.coalesce(F.col("label"), F.lit(0)) == 1), 1).otherwise(0)).alias("fp"),
              F.sum(F.when(F.col("hit").isNull() & (F.col("label") == 1), 1).otherwise(0)).alias("fn")).first()
    tp, fp, fn = int(r["tp"] or 0), int(r["fp"] or 0), int(r["fn"] or 0)
    p, rc, f = precision_recall_f1(tp, fp, fn)
    return {"reported": tp + fp, "positives": tp + fn, "tp": tp, "precision": p, "recall": rc, "f1": f}


def groups_found(pred: DataFrame, truth: DataFrame, key: str, group: str) -> dict[str, Any]:
    """Found / covered recall of truth groups (``truth[key, group]``) by reported ids."""
    members = truth.where(F.col(group).isNotNull()).select(key, F.col(group).alias("g")) \
        .join(pred.select(key).distinct().withColumn("hit", F.lit(1)), key, "left")
    per = members.groupBy("g").agg(F.sum(F.coalesce("hit", F.lit(0))).alias("hits"), F.count("*").alias("size"))
    r = per.agg(F.count("*").alias("n"), F.sum((F.col("hits") > 0).cast("int")).alias("found"),
                F.sum((F.col("hits") >= F.col("size") * 0.5).cast("int")).alias("covered")).first()
    n = int(r["n"] or 0)
    return {"groups": n, "found": (int(r["found"]) / n) if n else None,
            "covered": (int(r["covered"]) / n) if n else None}


def fmt(x: Any) -> str:
    return "-" if x is None else (f"{x:.3f}" if isinstance(x, float) else f"{x:,}" if isinstance(x, int) else str(x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True, help="lakehouse root of a simulated + ingested run")
    ap.add_argument("--run-date", type=dt.date.fromisoformat, required=True)
    ap.add_argument("--seed", type=int, default=7, help="simulator seed (the truth partition)")
    ap.add_argument("--days", type=int, default=7, help="graph days to build with --run-jobs")
    ap.add_argument("--run-jobs", action="store_true", help="run the graph jobs first and print their timings")
    ap.add_argument("--ks", default="1,5,20", help="k values of the migration hit-rate")
    args = ap.parse_args()
    os.environ["CGOV__LAKEHOUSE_ROOT"] = args.root
    settings = load_settings("local")
    spark = get_spark(settings, "eval-graph-intelligence")
    spark.sparkContext.setLogLevel("ERROR")
    day = args.run_date.isoformat()
    if args.run_jobs:
        summaries = run_jobs(args.run_date, args.days)
        print("\n## Timings (this machine, seconds)")
        print(f"graph_edges ({args.days} days): {summaries['graph_edges']['wall']}  "
              f"({summaries['graph_edges']['edges']:,} day-edges)")
        for name, d in summaries["syndicates"]["detectors"].items():
            print(f"  detector {name}: {d['seconds']}  ({d['syndicates']:,} syndicates, {d['members']:,} members)")
        for name in ("syndicates", "entity_risk", "migration_predictions"):
            print(f"{name} (job total): {summaries[name]['wall']}")

    def table(name: str) -> DataFrame:
        return spark.read.format("delta").load(settings.table(name)).where(F.col("dt") == day)

    def present(name: str) -> bool:
        from libs.platform.delta_io import table_exists

        ok = table_exists(spark, settings.table(name))
        if not ok:
            print(f"\n({name}: no table at {settings.table(name)}; its section is skipped -- run with --run-jobs)")
        return ok

    from schemas.truth_creators import SCHEMA as TRUTH_CREATORS
    from schemas.truth_users import SCHEMA as TRUTH_USERS

    # The truth is plain Parquet partitioned by seed (the simulator writes it beside the raw zone).
    truth = spark.read.schema(TRUTH_CREATORS).parquet(settings.table("truth_creators")).where(F.col("seed") == args.seed)
    truth_users = spark.read.schema(TRUTH_USERS).parquet(settings.table("truth_users")).where(F.col("seed") == args.seed)
    salt = str(settings.section("pseudonymisation")["salt"])
    from libs.ingest.validate import pseudonymise

    users = truth_users.select(pseudonymise(F.col("user_id"), F.lit(salt)).alias("entity_id"), "truth_ring_id")
    if not present("syndicates"):
        return
    syn = table("syndicates").cache()
    print("\n## Detectors vs the hidden truth (membership P/R/F1; truth groups found / half covered)")
    print("| detector | entity | reported | positives | precision | recall | F1 | groups | found | covered |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for det, (roles, group) in TARGETS.items():
        rows = syn.where(F.col("detector") == det)
        cre = rows.where(F.col("entity_type") == "creator").select(F.col("entity_id").alias("creator_id"))
        label = F.exists("truth_abuse", lambda a: a.isin(*roles)).cast("int")
        t = truth.select("creator_id", label.alias("label"), *([group] if group != "creator_id" else []))
        if group == "creator_id":
            t = t.withColumn("grp", F.when(F.col("label") == 1, F.col("creator_id")))
            g = groups_found(cre, t, "creator_id", "grp")
        else:
            g = groups_found(cre, t, "creator_id", group)
        m = membership(cre, t.select("creator_id", "label"), "creator_id")
        print(f"| {det} | creators | {fmt(m['reported'])} | {fmt(m['positives'])} | {fmt(m['precision'])} | "
              f"{fmt(m['recall'])} | {fmt(m['f1'])} | {fmt(g['groups'])} | {fmt(g['found'])} | {fmt(g['covered'])} |")
        if det in RING_DETECTORS:
            us = rows.where(F.col("entity_type") == "user").select("entity_id")
            tu = users.select("entity_id", F.col("truth_ring_id").isNotNull().cast("int").alias("label"), "truth_ring_id")
            mu = membership(us, tu.select("entity_id", "label"), "entity_id")
            gu = groups_found(us, tu, "entity_id", "truth_ring_id")
            print(f"| {det} | ring users | {fmt(mu['reported'])} | {fmt(mu['positives'])} | {fmt(mu['precision'])} | "
                  f"{fmt(mu['recall'])} | {fmt(mu['f1'])} | {fmt(gu['groups'])} | {fmt(gu['found'])} | "
                  f"{fmt(gu['covered'])} |")

    if present("entity_risk"):
        eval_risk(spark, settings, table("entity_risk"), truth, day)
    if present("migration_predictions"):
        eval_migration(spark, settings, table("migration_predictions"), truth, day, [int(k) for k in args.ks.split(",")])
    spark.stop()


def eval_risk(spark, settings, entity_risk: DataFrame, truth: DataFrame, day: str) -> None:
    """ROC AUC of propagated risk vs truth per graph abuse, beside the infrastructure-sharing baseline."""
    risk = entity_risk.where(F.col("vertex_type") == "creator") \
        .select(F.regexp_extract("id", r"^creator:(.*)$", 1).alias("creator_id"), "risk", "risk_content", "risk_shelf", "hops")
    non_seed = truth.join(risk.where(F.col("hops") == 0).select("creator_id"), "creator_id", "left_anti")
    edges = spark.read.format("delta").load(settings.table("graph_edges")).where(F.col("dt") <= day)
    infra = (edges.where(F.col("dst_type").isin("device", "ip", "payment") & (F.col("src_type") == "creator"))
             .select("src", "dst").distinct())
    sharing = (infra.alias("a").join(infra.alias("b"), (F.col("a.dst") == F.col("b.dst")) & (F.col("a.src") != F.col("b.src")))
               .groupBy(F.col("a.src").alias("id")).agg(F.countDistinct("b.src").alias("sharing"))
               .select(F.regexp_extract("id", r"^creator:(.*)$", 1).alias("creator_id"), "sharing"))
    print("\n## Risk propagation: ROC AUC vs truth (creators, enforced seeds excluded)")
    print("| abuse | risk (all relations) | risk_content | risk_shelf | baseline: accounts sharing infrastructure |")
    print("|---|---:|---:|---:|---:|")
    for abuse in GRAPH_ABUSE + ("any_graph_abuse",):
        t = non_seed
        if abuse == "any_graph_abuse":
            t = t.withColumn("truth_abuse", F.when(F.exists("truth_abuse", lambda a: a.isin(*GRAPH_ABUSE)),
                                                   F.array(F.lit(abuse))).otherwise(F.array().cast("array<string>")))
        aucs = [score_creators(risk, t, abuse, c)["roc_auc"] for c in ("risk", "risk_content", "risk_shelf")]
        base = score_creators(sharing, t, abuse, "sharing")["roc_auc"]
        print(f"| {abuse} | {' | '.join(fmt(a) for a in aucs)} | {fmt(base)} |")



def eval_migration(spark, settings, mig: DataFrame, truth: DataFrame, day: str, ks: list[int]) -> None:
    """Hit-rates of the migration predictions against the operators that truly migrated."""
    banned_truth = truth.where(F.col("truth_banned_date").isNotNull() & F.col("truth_operator_id").isNotNull()) \
        .select(F.col("creator_id").alias("operator_id"), F.col("truth_operator_id").alias("op"))
    new_accounts = truth.where(F.col("truth_migration_kind").isNotNull()) \
        .select(F.col("creator_id").alias("target"), F.col("truth_operator_id").alias("op"), "truth_migration_kind")
    migrated_ops = new_accounts.groupBy("op").agg(F.first("truth_migration_kind").alias("kind"))
    # Our operator groups are named by their smallest banned account; a truth operator may be split in several.
    ours = mig.join(banned_truth, "operator_id")
    total = migrated_ops.count()
    acc = ours.where(F.col("prediction") == "account").join(new_accounts.select("target", "op"), ["target", "op"], "left_semi")
    print(f"\n## Migration: {total} truly migrated operators; predictions from {ours.select('op').distinct().count()} "
          f"of them (operators whose banned accounts left linked infrastructure)")
    for k in ks:
        hit = acc.where(F.col("rank") <= k).select("op").distinct().count()
        print(f"account hit-rate@{k}: {hit}/{total} = {hit / total if total else float('nan'):.3f}")
    truth_market = truth.join(new_accounts.select(F.col("target").alias("creator_id"), "op"), "creator_id") \
        .select("op", F.col("market").alias("target")).distinct() if "market" in truth.columns else None
    if truth_market is None:
        snap = spark.read.format("delta").load(settings.table("silver_creators")).where(F.col("dt") == day)
        truth_market = new_accounts.join(snap.select(F.col("creator_id").alias("target"), "market"), "target") \
            .select("op", F.col("market").alias("target")).distinct()
    mk = migrated_ops.where(F.col("kind") == "market")
    mhits = ours.where(F.col("prediction") == "market").join(truth_market, ["op", "target"], "left_semi") \
        .join(mk, "op", "left_semi")
    n_mk = mk.count()
    for k in (1, 3):
        h = mhits.where(F.col("rank") <= k).select("op").distinct().count()
        print(f"market hit@{k} (market migrations): {h}/{n_mk} = {h / n_mk if n_mk else float('nan'):.3f}")
    sc = migrated_ops.where(F.col("kind") == "scenario")
    n_sc = sc.count()
    sh = ours.where((F.col("prediction") == "scenario") & (F.col("rank") == 1) & (F.col("target") == "shelf")) \
        .join(sc, "op", "left_semi").select("op").distinct().count()
    print(f"scenario hit@1 = shelf (scenario migrations): {sh}/{n_sc} = {sh / n_sc if n_sc else float('nan'):.3f}")


if __name__ == "__main__":
    main()
