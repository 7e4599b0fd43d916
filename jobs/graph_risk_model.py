"""Job ``graph_risk_model``: train the relation-aware GNN for creator graph-abuse scores, evaluate it
against gradient boosting with and without neighbour aggregates, log all three to MLflow, register
the GNN and apply the champion/challenger rule. Writes only to MLflow and ``ml.work_dir``.

Steps:

1. **Samples** (:mod:`libs.graph.gnn`): the typed graph of the ``--lookback-days`` days ending on
   the run date, creator-to-creator relations (shared device / IP /24 / payout, co-audience,
   persona engagement), at most ``--k`` neighbours per relation in a deterministic order, node
   vectors from the run date's ``creator_signals``; labels = standing moderation decisions citing
   graph-abuse reasons (:data:`libs.graph.gnn.GRAPH_REASONS`); stable 1-in-5 hash hold-out.
   Written as Parquet (train / hold-out) under ``ml.work_dir/graph_risk/<run date>``.
2. **Train** through ``TorchDistributor`` (:func:`libs.ml.distributed.run_distributed`,
   ``ml.num_processes`` ranks reading Petastorm shards; every rank's result file is checked).
3. **Evaluate** on the hold-out against the moderation labels: ROC AUC, PR AUC, recall at 1/5 %
   FPR, ROC AUC per market -- for the GNN (``roc_auc``...), the boosting baseline on the same
   arrays plus neighbour aggregates (``baseline.*``) and boosting on the creator's own features
   only (``baseline_own.*``), so a reviewer sees what the graph and what the network add.
4. **Register** the GNN as a pyfunc (:class:`libs.graph.gnn.GraphRiskPyfunc`) under
   ``--model-name`` (default ``creator_graph_risk``) and move ``ml.champion_alias`` only if its
   hold-out ROC AUC beats the champion's and no market drops by more than ``ml.market_tolerance``
   (:func:`libs.ml.registry.promote_if_better`).
5. **Model card** (:mod:`libs.ml.model_card`), written after the decision: data window, metrics
   overall and per market beside both baselines, market AUC spread, per-market flag / false-positive
   rates at the top :data:`TOP_K_RATE` of scores, per-market ROC and AUC plots, the promotion
   decision and its reason -- ``model_card.md`` / ``.json`` in the run and the version's description.

    cgov run graph_risk_model --run-date 2026-11-01
    spark-submit ... jobs/graph_risk_model.py --run-date 2026-11-01 --env prod --epochs 12
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from libs.platform import delta_io, tracking
from libs.platform.config import load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark

JOB = "graph_risk_model"
EXPERIMENT = "graph-risk"
MODEL_NAME = "creator_graph_risk"
PRIMARY_METRIC = "roc_auc"
MARKET_PREFIX = "market_auc."
DEFAULT_LOOKBACK_DAYS = 7
DEFAULT_EPOCHS = 8          # ~10k creators: the loss flattens after a handful of epochs
SIGNAL_WINDOW_DAYS = 28     # creator_signals window of the node features (the longer one: more signal)
TOP_K_RATE = 0.01           # card's operating point: the GNN has no threshold, so flag the top 1 % (a review
                            # budget the size of creator quality's 1 % false-positive operating point)


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--lookback-days", type=int, default=DEFAULT_LOOKBACK_DAYS,
                        help=f"graph window in days ending on the run date (default {DEFAULT_LOOKBACK_DAYS})")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"training epochs (default {DEFAULT_EPOCHS})")
    parser.add_argument("--hidden", type=int, default=64, help="hidden size (default 64)")
    parser.add_argument("--k", type=int, default=None, help="neighbours sampled per relation (default gnn.DEFAULT_K)")
    parser.add_argument("--aggregator", choices=("mean", "attention"), default="mean", help="neighbour aggregator")
    parser.add_argument("--model-name", default=MODEL_NAME, help=f"registered model name (default {MODEL_NAME})")
    parser.add_argument("--num-processes", type=int, default=None,
                        help="TorchDistributor ranks (default: ml.num_processes)")
    return parser


def evaluate(y: np.ndarray, p: np.ndarray, markets: np.ndarray) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Hold-out metrics (``libs.ml.metrics.binary_metrics``) and ROC AUC per market."""
    from libs.ml import metrics as mx

    overall = mx.binary_metrics(y, p)
    per_market = {m: v["score"] for m, v in mx.group_auc(y[:, None], p[:, None], markets, ["score"]).items()}
    return overall, per_market


def flat_metrics(overall: dict[str, float | None], per_market: dict[str, float | None], prefix: str = "") -> dict[str, float]:
    """MLflow keys: ``<prefix><metric>`` and ``<prefix>market_auc.<market>``; undefined values left out."""
    out = {f"{prefix}{k}": float(v) for k, v in overall.items() if v is not None}
    out.update({f"{prefix}{MARKET_PREFIX}{m}": float(v) for m, v in per_market.items() if v is not None})
    return out


def build_card(model_name: str, version: str, run_id: str, run_date: dt.date, lookback: int, spec: Any,
               n_train: int, positives: int, y: np.ndarray, p: np.ndarray, markets: np.ndarray,
               results: dict[str, tuple[dict, dict]], hyperparameters: dict[str, Any], history: list[dict],
               plots: list[str], promotion: Any) -> Any:
    """The GNN version's :class:`libs.ml.model_card.ModelCard`, both boosting baselines beside it.

    The GNN has no decision threshold of its own (``entity_risk`` consumes the score), so the
    fairness rates are taken at a fixed review budget: the top :data:`TOP_K_RATE` of hold-out scores.
    """
    from libs.graph import gnn
    from libs.ml import model_card as mc

    label = gnn.LABEL
    first = run_date - dt.timedelta(days=lookback - 1)
    overall, per_market = results["gnn"]
    by_market = {m: {label: v} for m, v in per_market.items()}
    threshold = mc.top_k_threshold(p, TOP_K_RATE)
    return mc.ModelCard(
        title="creator graph-risk GNN", model_name=model_name, version=str(version), run_id=run_id,
        run_date=run_date.isoformat(),
        window=mc.DataWindow(first.isoformat(), run_date.isoformat(), lookback,
                             f"typed graph of the window; relations {', '.join(spec.relations)}; at most {spec.k} "
                             f"neighbours each (strongest first, hash tie-break); node vectors from the "
                             f"{SIGNAL_WINDOW_DAYS}-day creator_signals of the last day"),
        labels_note="standing moderation decisions citing graph abuse (" + ", ".join(gnn.GRAPH_REASONS)
                    + ") -- partial: unlabelled is not clean; creators under a standing ban are not scored; "
                      "stable 1-in-5 creator-id hash hold-out",
        train_rows=n_train, holdout_rows=int(len(y)), positives={label: mc.Positives(positives, int(y.sum()))},
        hyperparameters=hyperparameters, metric_columns=mc.BINARY_METRIC_COLUMNS, metrics={label: overall},
        by_market=by_market, model_label="gnn",
        baselines={name: {label: results[name][0]} for name in ("gbt_neighbours", "gbt_own")},
        baseline_notes={"gbt_neighbours": "HistGradientBoosting on the node vector + per-relation neighbour "
                                          "mean/max/count (what the network adds over the graph features)",
                        "gbt_own": "HistGradientBoosting on the creator's own creator_signals features "
                                   "(what the graph adds)"},
        primary_metric=PRIMARY_METRIC, primary={name: results[name][0].get(PRIMARY_METRIC) for name in results},
        market_scores={name: dict(pm) for name, (_, pm) in results.items()},
        spread=mc.market_spread(by_market, [label]),
        operating_points=[mc.operating_point(label, y, p, markets, threshold,
                                             f"top {TOP_K_RATE:.0%} of hold-out scores: the model has no decision "
                                             "threshold, so rates are compared at a fixed review budget")],
        plots=plots, promotion=promotion,
        notes=[f"training: {len(history)} epochs, last loss {history[-1]['loss']:.4f}, "
               f"{sum(h['seconds'] for h in history):.1f}s"])


def main(run_date: dt.date, env: str, lookback_days: int = DEFAULT_LOOKBACK_DAYS, epochs: int = DEFAULT_EPOCHS,
         hidden: int = 64, k: int | None = None, aggregator: str = "mean", model_name: str = MODEL_NAME,
         num_processes: int | None = None) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient

    from libs.graph import gnn
    from libs.graph.hetero import load_graph
    from libs.ml import model_card as mc
    from libs.ml.distributed import run_distributed
    from libs.ml.registry import promote_if_better

    if lookback_days < 1:
        raise ValueError(f"--lookback-days must be >= 1, got {lookback_days}")
    settings = load_settings(env)
    ml = settings.section("ml")
    ranks = int(num_processes or ml["num_processes"])
    spark = get_spark(settings, f"cgov-{JOB}")
    day = run_date.isoformat()
    first = (run_date - dt.timedelta(days=lookback_days - 1)).isoformat()
    started = time.time()
    spec = gnn.GraphSpec(k=int(k or gnn.DEFAULT_K))

    # 1. samples: one materialisation of the rows, written as the two Parquet datasets.
    graph = load_graph(spark, settings.table("graph_vertices"), settings.table("graph_edges"), first, day,
                       edge_types=gnn.EDGE_TYPES_USED)
    signals = delta_io.read_snapshot(spark, settings.table("creator_signals"), day, "creator_signals")
    moderation = delta_io.read_snapshot(spark, settings.table("silver_moderation"), day, "silver_moderation")
    work = Path(str(ml["work_dir"])) / "graph_risk" / day
    rows = gnn.graph_rows(graph.edges, signals, moderation, run_date, spec, window_days=SIGNAL_WINDOW_DAYS).persist()
    try:
        train_rows = rows.where("NOT holdout")
        counts = train_rows.agg({"label": "sum", "*": "count"}).first()
        n_train, positives = int(counts["count(1)"]), int(counts["sum(label)"] or 0)
        if positives == 0:
            raise ValueError(f"no standing graph-abuse decision among the {n_train} training creators: nothing to learn")
        mean, std = gnn.feature_stats(train_rows, spec)
        spec = spec.with_stats(mean, std)
        train_url = gnn.write_graph_parquet(train_rows, work / "train", spec, num_files=max(ranks, 1) * 4)
        holdout_url = gnn.write_graph_parquet(rows.where("holdout"), work / "holdout", spec, num_files=2)
    finally:
        rows.unpersist()
    sample_seconds = time.time() - started
    print(f"[{JOB}] {day}: graph {first}..{day}; {n_train} train creators ({positives} positive); samples in "
          f"{sample_seconds:.0f}s", flush=True)

    # 2. train through TorchDistributor; every rank's result is checked.
    hparams = {"hidden": hidden, "epochs": epochs, "aggregator": aggregator}
    use_gpu = spark.conf.get("spark.driver.resource.gpu.amount", None) is not None
    t0 = time.time()
    result = run_distributed(gnn.train_graph_model, train_url, spec.to_dict(), hparams, num_processes=ranks,
                             use_gpu=use_gpu, result_dir=str(work / "results"))
    train_seconds = time.time() - t0
    payload = result.rank0
    model = gnn.model_from_payload(payload)
    history = payload["history"]

    # 3. hold-out: the GNN and both boosting baselines on the same creators.
    train = gnn.read_graph_arrays(train_url, spec)
    hold = gnn.read_graph_arrays(holdout_url, spec)
    y = hold["label"]
    scores = {"gnn": gnn.predict(model, hold["x"], hold["nb"], hold["mask"])}
    for name, with_nb in (("gbt_neighbours", True), ("gbt_own", False)):
        clf = gnn.fit_gbt(gnn.gbt_matrix(train, spec, with_nb), train["label"])
        scores[name] = clf.predict_proba(gnn.gbt_matrix(hold, spec, with_nb).astype(np.float64))[:, 1]
    results = {name: evaluate(y, p, hold["market"]) for name, p in scores.items()}

    # 4. MLflow: params, metrics, card, model; then the champion/challenger rule.
    exp_id = tracking.experiment(settings, EXPERIMENT)
    metrics = flat_metrics(*results["gnn"])
    metrics.update(flat_metrics(*results["gbt_neighbours"], prefix="baseline."))
    metrics.update(flat_metrics(*results["gbt_own"], prefix="baseline_own."))
    with mlflow.start_run(experiment_id=exp_id, run_name=f"{JOB}-{day}") as run:
        mlflow.log_params({"run_date": day, "lookback_days": lookback_days, "graph_first_day": first,
                           "relations": ",".join(spec.relations), "k": spec.k, "node_dim": spec.node_dim,
                           "nb_dim": spec.nb_dim, "signal_window_days": SIGNAL_WINDOW_DAYS,
                           "labels": ",".join(gnn.GRAPH_REASONS), "train_rows": n_train, "train_positives": positives,
                           "holdout_rows": len(y), "holdout_positives": int(y.sum()), "num_processes": ranks,
                           "attempts_used": result.attempt, "pos_weight": payload["pos_weight"],
                           "baseline": "HistGradientBoosting on node vector + per-relation neighbour mean/max/count",
                           "baseline_own": "HistGradientBoosting on the creator's own creator_signals features",
                           **{f"hp.{key}": v for key, v in payload["hparams"].items()}})
        mlflow.log_metrics(metrics)
        mlflow.log_metrics({"train_seconds": train_seconds, "sample_seconds": sample_seconds})
        for h in history:
            mlflow.log_metrics({"train_loss": h["loss"], "train_rows_per_s": h["rows_per_s"]}, step=int(h["epoch"]))
        version = gnn.log_and_register(run, model, spec, payload["hparams"], gnn.example_frame(hold, spec), model_name)
        run_id = run.info.run_id
    client = MlflowClient()
    promoted, reason = promote_if_better(client, model_name, version, str(ml["champion_alias"]), PRIMARY_METRIC,
                                         MARKET_PREFIX, float(ml["market_tolerance"]))
    # The card is written after the rule: it describes the version and the decision about it.
    by_market = {m: {gnn.LABEL: v} for m, v in results["gnn"][1].items()}
    plots = mc.log_market_plots(client, run_id, y[:, None], scores["gnn"][:, None], hold["market"], [gnn.LABEL],
                                by_market)
    hyper = {"lookback_days": lookback_days, "k": spec.k, "relations": ",".join(spec.relations),
             "pos_weight": round(float(payload["pos_weight"]), 4), "num_processes": ranks,
             **{f"hp.{key}": v for key, v in payload["hparams"].items()}}
    card = build_card(model_name, version, run_id, run_date, lookback_days, spec, n_train, positives, y,
                      scores["gnn"], hold["market"], results, hyper, history, plots,
                      mc.Promotion.from_registry(client, model_name, version))
    mc.log_card(client, card, model_name, version)
    shutil.rmtree(work / "results", ignore_errors=True)       # the model lives in the registry now

    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    summary = {"run_date": day, "model": model_name, "version": version, "promoted": promoted, "reason": reason,
               **{f"{name}.{m}": results[name][0].get(m) for name in results for m in ("roc_auc", "pr_auc",
                                                                                      "recall_at_fpr1")},
               "train_seconds": round(train_seconds, 1), "seconds": round(time.time() - started, 1),
               "model_card": mc.card_uri(run_id)}
    for name, (overall, _) in results.items():
        print(f"[{JOB}]   {name:<15} ROC AUC {fmt(overall['roc_auc'])}  PR AUC {fmt(overall['pr_auc'])}  "
              f"recall@1%FPR {fmt(overall['recall_at_fpr1'])}", flush=True)
    print(f"[{JOB}] {model_name} v{version}: {'PROMOTED' if promoted else 'not promoted'}: {reason}", flush=True)
    print(f"[{JOB}] model card: {summary['model_card']} (also the description of {model_name} v{version} in the "
          "registry)", flush=True)
    print(f"[{JOB}] {json.dumps({k: summary[k] for k in ('train_seconds', 'seconds')})}", flush=True)
    return summary


if __name__ == "__main__":
    run_job(arg_parser, main)
