"""Hold-out quality of the graph-risk GNN vs gradient boosting, against the simulator's truth and the moderation labels.

Three scorers on the same hold-out creators (stable 1-in-5 hash, creators under a standing ban
excluded), all trained on the moderation labels of the other four fifths:

* ``gnn``            -- :class:`libs.graph.gnn.RelationalRiskModel` (Petastorm loader, in-process);
* ``gbt_neighbours`` -- HistGradientBoosting on the node vector + per-relation neighbour mean/max/count
  (the same arrays the GNN reads);
* ``gbt_own``        -- HistGradientBoosting on the creator's own ``creator_signals`` features only.

Two targets: the *truth* (a graph abuser has any of ``matrix_farm, sybil, account_trading,
fake_engagement, migration`` in ``truth_abuse``; evaluation only, never an input) and the
moderation labels the models were trained on (partial: most abusers were never caught). Also
recall at 1 % FPR per truth abuse type (positives of that type vs every non-graph-abuser).

Training runs in this process through the same rank function the job hands to TorchDistributor
(:func:`libs.graph.gnn.train_graph_model`, world size 1), so the benchmark measures the model, not
the launcher. Nothing is written under ``--root``: samples go to ``--work``.

    .venv/bin/python benchmarks/eval_graph_gnn.py --root /tmp/q10k --run-date 2026-11-01
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np


def build(root: str, run_date: dt.date, lookback: int, k: int, work: Path) -> dict:
    """Samples (train / hold-out Parquet) and the hold-out's truth, under ``work``; returns the spec dict."""
    os.environ["CGOV__LAKEHOUSE_ROOT"] = root
    # The session's checkpoint dir defaults to <root>/_checkpoints: keep even that out of the read-only lakehouse.
    os.environ["CGOV__CHECKPOINT_DIR"] = str(work / "_checkpoints")
    from pyspark.sql import functions as F

    from libs.graph import gnn
    from libs.graph.hetero import load_graph
    from libs.platform import delta_io
    from libs.platform.config import load_settings
    from libs.platform.session import get_spark

    settings = load_settings("local")
    spark = get_spark(settings, "cgov-eval-graph-gnn")
    spark.sparkContext.setLogLevel("ERROR")
    day, first = run_date.isoformat(), (run_date - dt.timedelta(days=lookback - 1)).isoformat()
    spec = gnn.GraphSpec(k=k)
    graph = load_graph(spark, settings.table("graph_vertices"), settings.table("graph_edges"), first, day,
                       edge_types=gnn.EDGE_TYPES_USED)
    signals = delta_io.read_snapshot(spark, settings.table("creator_signals"), day, "creator_signals")
    moderation = delta_io.read_snapshot(spark, settings.table("silver_moderation"), day, "silver_moderation")
    rows = gnn.graph_rows(graph.edges, signals, moderation, run_date, spec, window_days=28).persist()
    train = rows.where("NOT holdout")
    spec = spec.with_stats(*gnn.feature_stats(train, spec))
    gnn.write_graph_parquet(train, work / "train", spec, num_files=4)
    gnn.write_graph_parquet(rows.where("holdout"), work / "holdout", spec, num_files=2)
    truth = spark.read.parquet(settings.table("truth_creators"))
    types = list(gnn.GRAPH_ABUSE_TYPES)
    (rows.where("holdout").select("creator_id").join(truth.select("creator_id", "truth_abuse"), "creator_id", "left")
     .select("creator_id", *[F.coalesce(F.array_contains("truth_abuse", t), F.lit(False)).alias(t) for t in types],
             F.coalesce(F.arrays_overlap("truth_abuse", F.array(*[F.lit(t) for t in types])), F.lit(False))
             .alias("graph_abuser"))
     .coalesce(1).write.mode("overwrite").parquet(str(work / "holdout_truth")))
    rows.unpersist()
    (work / "spec.json").write_text(json.dumps(spec.to_dict()))
    return spec.to_dict()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default="/tmp/q10k", help="lakehouse root (read only)")
    ap.add_argument("--run-date", default="2026-11-01")
    ap.add_argument("--lookback-days", type=int, default=7)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--aggregator", choices=("mean", "attention"), default="mean")
    ap.add_argument("--seeds", default="0", help="comma-separated GNN seeds (mean and spread reported)")
    ap.add_argument("--work", default="/tmp/eval_graph_gnn", help="scratch folder for samples and results")
    ap.add_argument("--reuse", action="store_true", help="reuse samples already in --work")
    args = ap.parse_args()
    work = Path(args.work)
    started = time.time()
    if args.reuse and (work / "spec.json").is_file():
        spec_dict = json.loads((work / "spec.json").read_text())
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        spec_dict = build(args.root, dt.date.fromisoformat(args.run_date), args.lookback_days, args.k, work)
    build_seconds = time.time() - started

    import pyarrow.parquet as pq
    import torch

    from libs.graph import gnn
    from libs.ml import metrics as mx
    from libs.ml.distributed import load_rank_result

    torch.set_num_threads(2)
    spec = gnn.GraphSpec.from_dict(spec_dict)
    train = gnn.read_graph_arrays(work / "train", spec)
    hold = gnn.read_graph_arrays(work / "holdout", spec)
    truth = pq.read_table(work / "holdout_truth").to_pandas().set_index("creator_id").reindex(hold["creator_id"])
    if truth["graph_abuser"].isna().any():
        raise ValueError("hold-out creators without a truth row")
    y_truth = truth["graph_abuser"].to_numpy(dtype=np.float64)
    y_mod = hold["label"].astype(np.float64)

    t0 = time.time()
    scores: dict[str, np.ndarray] = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        out = work / f"results-{seed}"
        shutil.rmtree(out, ignore_errors=True)
        gnn.train_graph_model(str(work / "train"), spec.to_dict(),
                              {"epochs": args.epochs, "hidden": args.hidden, "aggregator": args.aggregator,
                               "seed": seed}, str(out))
        model = gnn.model_from_payload(load_rank_result(out, 0))
        scores[f"gnn[seed {seed}]"] = gnn.predict(model, hold["x"], hold["nb"], hold["mask"])
    gnn_seconds = time.time() - t0
    t0 = time.time()
    for name, with_nb in (("gbt_neighbours", True), ("gbt_own", False)):
        clf = gnn.fit_gbt(gnn.gbt_matrix(train, spec, with_nb), train["label"])
        scores[name] = clf.predict_proba(gnn.gbt_matrix(hold, spec, with_nb).astype(np.float64))[:, 1]
    gbt_seconds = time.time() - t0

    print(f"\ntrain {len(train['label'])} creators ({int(train['label'].sum())} moderation positives); hold-out "
          f"{len(y_mod)} ({int(y_mod.sum())} moderation positives, {int(y_truth.sum())} truth graph abusers)")
    print(f"relations {spec.relations}, k={spec.k}, node_dim={spec.node_dim}, nb_dim={spec.nb_dim}; "
          f"epochs={args.epochs}, hidden={args.hidden}, aggregator={args.aggregator}")
    header = f"{'model':<16} {'target':<11} {'ROC AUC':>8} {'PR AUC':>8} {'R@1%FPR':>8} {'R@5%FPR':>8}"
    print("\n" + header + "\n" + "-" * len(header))
    fmt = lambda v: "   n/a" if v is None else f"{v:8.3f}"  # noqa: E731
    for target, y in (("truth", y_truth), ("moderation", y_mod)):
        for name, p in scores.items():
            m = mx.binary_metrics(y, p)
            print(f"{name:<16} {target:<11} {fmt(m['roc_auc'])} {fmt(m['pr_auc'])} {fmt(m['recall_at_fpr1'])} "
                  f"{fmt(m['recall_at_fpr5'])}")
    print("\nrecall at 1% FPR per truth abuse type (positives of the type vs non-graph-abusers):")
    clean = y_truth < 0.5
    print(f"{'type':<17}{'n':>5} " + " ".join(f"{n[:16]:>16}" for n in scores))
    for t in gnn.GRAPH_ABUSE_TYPES:
        pos = truth[t].to_numpy(dtype=bool)
        keep = pos | clean
        if not pos.any():
            continue
        vals = [mx.recall_at_fpr(pos[keep].astype(float), p[keep], 0.01) for p in scores.values()]
        print(f"{t:<17}{int(pos.sum()):>5} " + " ".join(f"{v:16.3f}" for v in vals))
    print(f"\nseconds: samples {build_seconds:.0f} (Spark), gnn training {gnn_seconds:.0f} "
          f"({len(args.seeds.split(','))} seed(s)), boosting {gbt_seconds:.0f}, total {time.time() - started:.0f}")


if __name__ == "__main__":
    main()
