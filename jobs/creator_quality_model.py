"""Job ``creator_quality_model``: train the creator-quality sequence model, evaluate it against a
gradient-boosting baseline on a fixed hold-out, log both to MLflow, register the model and apply
the champion/challenger rule. Writes ``model_evaluations`` and ``creator_quality_holdout``.

Steps:

1. **Data** (:mod:`libs.quality.datasets`): each creator's newest ``ml.sequence_max_len`` activity
   tokens over 28 days, labels from standing moderation decisions, a stable 1-in-5 hold-out by
   creator-id hash. Written as Parquet (train / hold-out) under ``ml.work_dir`` for Petastorm.
2. **Train** through ``TorchDistributor`` (:func:`libs.ml.distributed.run_distributed`:
   ``ml.num_processes`` ranks, each reading its Petastorm shard; every rank's result file is
   checked, a missing rank retries the run, then fails loudly). The ranks pick CUDA when they see
   a GPU, the CPU otherwise: same code.
3. **Evaluate** on the hold-out, against the moderation labels (the only labels production
   has): per abuse type ROC AUC, PR AUC, recall at 80/90 % precision and at 1/5 % FPR, AUC per
   market; ROC/PR plots. The baseline (:mod:`libs.quality.baseline`, gradient boosting on the
   7/28-day ``creator_signals``) is trained on the same creators and evaluated on the same
   hold-out; its metrics are logged beside the model's (``baseline.*``) so a reviewer sees both.
4. **Decision thresholds**: per abuse type, the score at 1 % false-positive rate among the
   hold-out's unlabelled creators -- the operating point enforcement uses (logged as
   ``threshold.<label>``; the scoring job reads them from the champion's run).
5. **Register** the model (pyfunc with signature) and set ``ml.champion_alias`` only if it beats
   the current champion's ``macro_roc_auc`` and no market's AUC drops by more than
   ``ml.market_tolerance`` (:func:`libs.ml.registry.promote_if_better`); the decision and its
   reason are tagged on the version and written to ``model_evaluations``.
6. **Model card** (:mod:`libs.ml.model_card`), written after the decision: data window, metrics
   per abuse type and market, the baseline beside them, market AUC spread and per-market flag /
   false-positive rates at each threshold, per-market ROC and AUC plots, the promotion decision
   and its reason -- ``model_card.md`` / ``.json`` in the run and the version's description.

    cgov run creator_quality_model --run-date 2026-11-01
    spark-submit ... jobs/creator_quality_model.py --run-date 2026-11-01 --env prod --epochs 10
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from libs.platform import delta_io, tracking
from libs.platform.config import load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark
from libs.quality import baseline, datasets
from libs.quality import sequences as sq
from schemas import creator_quality_holdout, model_evaluations

TABLE = "model_evaluations"
JOB = "creator_quality_model"   # produces the registered model; its table is model_evaluations
EXPERIMENT = "creator-quality"
THRESHOLD_FPR = 0.01
PRIMARY_METRIC = "macro_roc_auc"
MARKET_PREFIX = "market_auc."


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: ml.epochs)")
    parser.add_argument("--max-len", type=int, default=None, help="tokens per sequence (default: ml.sequence_max_len)")
    parser.add_argument("--kind", choices=("gru", "transformer"), default="gru", help="sequence encoder")
    parser.add_argument("--num-processes", type=int, default=None, help="TorchDistributor ranks (default: ml.num_processes)")
    return parser


def decision_thresholds(y: np.ndarray, p: np.ndarray, labels: list[str], fpr: float = THRESHOLD_FPR) -> dict[str, float]:
    """Per label, the score above which only ``fpr`` of the negatives fall (the 1 - fpr quantile)."""
    out = {}
    for k, name in enumerate(labels):
        neg = p[y[:, k] < 0.5, k]
        out[name] = float(np.quantile(neg, 1.0 - fpr)) if neg.size else 0.5
    return out


def build_card(name: str, version: str, run_id: str, run_date: dt.date, n_train: int, y_hold: np.ndarray,
               p_model: np.ndarray, markets: np.ndarray, train_positives: dict[str, int], hyperparameters: dict[str, Any],
               per_label: dict, per_market: dict, base_label: dict, metrics: dict[str, float],
               thresholds: dict[str, float], history: list[dict], plots: list[str], promotion: Any) -> Any:
    """The version's :class:`libs.ml.model_card.ModelCard`: hold-out metrics per abuse type and market,
    the baseline beside them, and per-market rates at each abuse type's decision threshold."""
    from libs.ml import model_card as mc

    labels = list(per_label)
    first = run_date - dt.timedelta(days=datasets.LOOKBACK_DAYS - 1)
    market_names = sorted(per_market)
    return mc.ModelCard(
        title="creator-quality sequence model", model_name=name, version=str(version), run_id=run_id,
        run_date=run_date.isoformat(),
        window=mc.DataWindow(first.isoformat(), run_date.isoformat(), datasets.LOOKBACK_DAYS,
                             "each creator's newest activity tokens (videos, listings, engagement days, device "
                             "changes) of the window; labels as of the last day"),
        labels_note="standing moderation decisions per abuse type (partial: most bad actors were never caught, so "
                    f"unlabelled is not clean); stable 1-in-{sq.HOLDOUT_BUCKETS} creator-id hash hold-out",
        train_rows=n_train, holdout_rows=int(len(y_hold)),
        positives={k: mc.Positives(int(train_positives[k]), int(y_hold[:, i].sum())) for i, k in enumerate(labels)},
        hyperparameters=hyperparameters, metric_columns=mc.BINARY_METRIC_COLUMNS, metrics=per_label,
        by_market=per_market, model_label="model", baselines={"baseline": base_label},
        baseline_notes={"baseline": "HistGradientBoosting per abuse type on the 7/28-day creator_signals, "
                                    "same training creators"},
        primary_metric=PRIMARY_METRIC,
        primary={"model": metrics.get(PRIMARY_METRIC), "baseline": metrics.get(f"baseline.{PRIMARY_METRIC}")},
        market_scores={who: {m: metrics.get(f"{prefix}{MARKET_PREFIX}{m}") for m in market_names}
                       for who, prefix in (("model", ""), ("baseline", "baseline."))},
        spread=mc.market_spread(per_market, labels),
        operating_points=[mc.operating_point(k, y_hold[:, i], p_model[:, i], markets, thresholds[k],
                                             f"score at {THRESHOLD_FPR:.0%} FPR among the hold-out's creators "
                                             "without a standing decision for it; the scoring job flags with it")
                          for i, k in enumerate(labels)],
        plots=plots, promotion=promotion,
        notes=[f"training: {len(history)} epochs, last loss {history[-1]['loss']:.4f}, "
               f"{sum(h['seconds'] for h in history):.1f}s"])


def main(run_date: dt.date, env: str, epochs: int | None = None, max_len: int | None = None, kind: str = "gru",
         num_processes: int | None = None) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient

    from libs.ml import metrics as mx
    from libs.ml import model_card as mc
    from libs.ml.distributed import run_distributed, train_sequence_model
    from libs.ml.petastorm_io import read_arrays, write_training_parquet
    from libs.ml.registry import example_frame, log_and_register, promote_if_better
    from libs.ml.seqmodel import SequenceClassifier, predict
    from libs.ml.sequences import SequenceSpec

    settings = load_settings(env)
    ml = settings.section("ml")
    max_len = int(max_len or ml["sequence_max_len"])
    epochs = int(epochs or ml["epochs"])
    ranks = int(num_processes or ml["num_processes"])
    spark = get_spark(settings, f"cgov-{JOB}")
    day = run_date.isoformat()
    started = time.time()
    spec = SequenceSpec.from_dict(datasets.sequence_spec_dict(max_len))
    labels = list(spec.label_names)

    # 1. data: one materialisation of the rows, split into the two Parquet datasets.
    work = Path(str(ml["work_dir"])) / "creator_quality" / day
    rows = datasets.creator_rows(spark, settings, run_date, max_len).persist()
    train_url = write_training_parquet(rows.where("NOT holdout"), work / "train", spec, num_files=max(ranks, 1) * 4)
    holdout_url = write_training_parquet(rows.where("holdout"), work / "holdout", spec, num_files=2)
    split = rows.select("creator_id", "holdout", "labels").toPandas()
    rows.unpersist()
    ytrain = np.stack(split.loc[~split.holdout, "labels"].to_numpy()).astype(np.float32)
    positives = {name: int(ytrain[:, k].sum()) for k, name in enumerate(labels)}
    print(f"[{JOB}] {day}: {int((~split.holdout).sum())} train / {int(split.holdout.sum())} hold-out creators; "
          f"train positives {positives}", flush=True)
    for name, count in positives.items():
        if count == 0:
            raise ValueError(f"no standing moderation decision for {name!r} among training creators: nothing to learn")

    # 2. train through TorchDistributor; every rank's result is checked.
    hparams = {"kind": kind, "epochs": epochs}
    use_gpu = spark.conf.get("spark.driver.resource.gpu.amount", None) is not None
    t0 = time.time()
    result = run_distributed(train_sequence_model, train_url, spec.to_dict(), hparams, num_processes=ranks,
                             use_gpu=use_gpu, result_dir=str(work / "results"))
    train_seconds = time.time() - t0
    payload = result.rank0
    model = SequenceClassifier(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    model.set_prior_correction(payload["pos_weight"])   # calibrated probabilities for the CQS (ranking unchanged)
    history = payload["history"]

    # 3. hold-out evaluation, model and baseline on the same creators.
    hold = read_arrays(holdout_url, spec)
    import torch

    p_model = predict(model, hold["seq"], hold["seq_len"], torch.device("cpu"))
    y_hold = hold["labels"]
    per_label = mx.label_metrics(y_hold, p_model, labels)
    per_market = mx.group_auc(y_hold, p_model, hold["market"], labels)
    windows = [int(w) for w in settings.section("quality")["signal_windows"]]
    signals = delta_io.read_snapshot(spark, settings.table("creator_signals"), day, "creator_signals")
    wide = baseline.wide_features(signals, windows).toPandas().set_index("creator_id")
    cols = baseline.feature_columns(windows)
    train_ids = split.loc[~split.holdout, "creator_id"].to_numpy()
    gbt = baseline.fit(wide.reindex(train_ids)[cols], ytrain, labels)
    p_base = baseline.predict(gbt, wide.reindex(hold["creator_id"])[cols], labels)
    base_label = mx.label_metrics(y_hold, p_base, labels)
    base_market = mx.group_auc(y_hold, p_base, hold["market"], labels)
    thresholds = decision_thresholds(y_hold, p_model, labels)

    # 4. MLflow: params, metrics, plots, card, model; then the champion/challenger rule.
    exp_id = tracking.experiment(settings, EXPERIMENT)
    name = str(ml["creator_quality_model"])
    metrics = mx.mlflow_metrics(per_label, per_market, group_prefix=MARKET_PREFIX)
    metrics.update({f"baseline.{k}": v for k, v in mx.mlflow_metrics(base_label, base_market,
                                                                     group_prefix=MARKET_PREFIX).items()})
    metrics.update({f"threshold.{k}": v for k, v in thresholds.items()})
    with mlflow.start_run(experiment_id=exp_id, run_name=f"{JOB}-{day}") as run:
        mlflow.log_params({"run_date": day, "max_len": max_len, "n_features": spec.n_features, "kind": kind,
                           "epochs": epochs, "num_processes": ranks, "train_rows": len(train_ids),
                           "holdout_rows": len(y_hold), "baseline": "HistGradientBoosting per label",
                           "threshold_fpr": THRESHOLD_FPR, "attempts_used": result.attempt,
                           **{f"pos_weight.{k}": w for k, w in zip(labels, payload["pos_weight"])},
                           **{f"train_positives.{k}": v for k, v in positives.items()}})
        mlflow.log_metrics(metrics)
        for h in history:
            mlflow.log_metrics({"train_loss": h["loss"], "train_rows_per_s": h["rows_per_s"]}, step=int(h["epoch"]))
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_artifacts(str(Path(mx.plot_curves(y_hold, p_model, labels, Path(tmp) / "model")[0]).parent),
                                 "plots/model")
            mlflow.log_artifacts(str(Path(mx.plot_curves(y_hold, p_base, labels, Path(tmp) / "baseline")[0]).parent),
                                 "plots/baseline")
        version = log_and_register(run, model, spec, hparams, example_frame(hold["seq"], hold["seq_len"]), name)
        run_id = run.info.run_id
    client = MlflowClient()
    promoted, reason = promote_if_better(client, name, version, str(ml["champion_alias"]), PRIMARY_METRIC,
                                         MARKET_PREFIX, float(ml["market_tolerance"]))
    # The card is written after the rule: it describes the version and the decision about it.
    plots = ["plots/model/roc.png", "plots/model/pr.png", "plots/baseline/roc.png", "plots/baseline/pr.png"]
    plots += mc.log_market_plots(client, run_id, y_hold, p_model, hold["market"], labels, per_market)
    hyper = {"kind": kind, "epochs": epochs, "max_len": max_len, "n_features": spec.n_features,
             "num_processes": ranks, "threshold_fpr": THRESHOLD_FPR,
             **{f"pos_weight.{k}": round(float(w), 4) for k, w in zip(labels, payload["pos_weight"])}}
    card = build_card(name, version, run_id, run_date, len(train_ids), y_hold, p_model, hold["market"], positives,
                      hyper, per_label, per_market, base_label, metrics, thresholds, history, plots,
                      mc.Promotion.from_registry(client, name, version))
    mc.log_card(client, card, name, version)

    # 5. tables: the evaluation row and the hold-out predictions.
    evaluation = spark.createDataFrame([{
        "dt": day, "model_name": name, "model_version": str(version), "mlflow_run_id": run_id,
        "train_rows": int(len(train_ids)), "holdout_rows": int(len(y_hold)),
        "macro_roc_auc": metrics.get("macro_roc_auc"), "baseline_macro_roc_auc": metrics.get("baseline.macro_roc_auc"),
        "metrics": {k: float(v) for k, v in metrics.items()}, "thresholds": thresholds,
        "promoted": bool(promoted), "promotion_reason": reason, "train_seconds": float(train_seconds)}],
        model_evaluations.SCHEMA)
    delta_io.merge_upsert(spark, evaluation, settings.table(TABLE), model_evaluations.KEYS)
    preds = spark.createDataFrame(
        [(day, str(c), str(m), str(version), [float(v) for v in y], [float(v) for v in pm], [float(v) for v in pb])
         for c, m, y, pm, pb in zip(hold["creator_id"], hold["market"], y_hold, p_model, p_base)],
        creator_quality_holdout.SCHEMA)
    delta_io.replace_partition(preds, settings.table("creator_quality_holdout"), "dt", day)
    shutil.rmtree(work / "results", ignore_errors=True)   # the model lives in the registry now

    summary = {"table": TABLE, "run_date": day, "model": name, "version": str(version), "promoted": promoted,
               "reason": reason, "macro_roc_auc": metrics.get("macro_roc_auc"),
               "baseline_macro_roc_auc": metrics.get("baseline.macro_roc_auc"), "thresholds": thresholds,
               "train_seconds": round(train_seconds, 1), "seconds": round(time.time() - started, 1),
               "epoch_seconds": [round(h["seconds"], 2) for h in history], "model_card": mc.card_uri(run_id)}
    print(f"[{JOB}] {name} v{version}: hold-out macro AUC {_f(summary['macro_roc_auc'])} vs baseline "
          f"{_f(summary['baseline_macro_roc_auc'])}; {'PROMOTED' if promoted else 'not promoted'}: {reason}", flush=True)
    print(f"[{JOB}] model card: {summary['model_card']} (also the description of {name} v{version} in the registry)",
          flush=True)
    for k in labels:
        print(f"[{JOB}]   {k:<10} AUC model {_f(per_label[k]['roc_auc'])} baseline {_f(base_label[k]['roc_auc'])}"
              f"  recall@1%FPR model {_f(per_label[k]['recall_at_fpr1'])} baseline {_f(base_label[k]['recall_at_fpr1'])}",
              flush=True)
    print(f"[{JOB}] {json.dumps({k: summary[k] for k in ('train_seconds', 'seconds', 'epoch_seconds')})}", flush=True)
    return summary


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


if __name__ == "__main__":
    run_job(arg_parser, main)
