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
5. **Register** the model (pyfunc with signature and a model card) and set ``ml.champion_alias``
   only if it beats the current champion's ``macro_roc_auc`` and no market's AUC drops by more
   than ``ml.market_tolerance`` (:func:`libs.ml.registry.promote_if_better`); the decision and
   its reason are tagged on the version and written to ``model_evaluations``.

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


def model_card(day: str, version: str, spec: dict, n_train: int, n_holdout: int, per_label: dict,
               per_market: dict, base_label: dict, thresholds: dict, history: list[dict]) -> str:
    """The Markdown card reviewers read in the registry (artifact ``model_card.md``)."""
    lines = [f"# creator-quality sequence model, version {version}", "",
             f"- data: activity of the {datasets.LOOKBACK_DAYS} days ending {day}; labels = standing moderation "
             "decisions (partial: most bad actors were never caught, so unlabelled is not clean)",
             f"- rows: {n_train} train, {n_holdout} hold-out (stable 1-in-{sq.HOLDOUT_BUCKETS} creator-id hash)",
             f"- input: newest {spec['max_len']} tokens x {spec['n_features']} features "
             "(video / listing / engagement day / device change)",
             f"- training: {len(history)} epochs, last loss {history[-1]['loss']:.4f}, "
             f"{sum(h['seconds'] for h in history):.1f}s", "",
             "| abuse type | ROC AUC | PR AUC | recall@1% FPR | recall@5% FPR | baseline ROC AUC | threshold |",
             "|---|---|---|---|---|---|---|"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    for name, m in per_label.items():
        lines.append(f"| {name} | {fmt(m.get('roc_auc'))} | {fmt(m.get('pr_auc'))} | {fmt(m.get('recall_at_fpr1'))} | "
                     f"{fmt(m.get('recall_at_fpr5'))} | {fmt(base_label[name].get('roc_auc'))} | {thresholds[name]:.3f} |")
    lines += ["", "| market | " + " | ".join(per_label) + " |", "|---|" + "---|" * len(per_label)]
    for market, by in per_market.items():
        lines.append(f"| {market} | " + " | ".join(fmt(by.get(n)) for n in per_label) + " |")
    lines += ["", "Fairness note: AUC per market above; the promotion rule refuses a challenger that loses more "
              "than the configured tolerance in any market."]
    return "\n".join(lines) + "\n"


def main(run_date: dt.date, env: str, epochs: int | None = None, max_len: int | None = None, kind: str = "gru",
         num_processes: int | None = None) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient

    from libs.ml import metrics as mx
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
        card = model_card(day, version, spec.to_dict(), len(train_ids), len(y_hold), per_label, per_market,
                          base_label, thresholds, history)
        mlflow.log_text(card, "model_card.md")
        run_id = run.info.run_id
    client = MlflowClient()
    client.update_model_version(name, version, description=card)
    promoted, reason = promote_if_better(client, name, version, str(ml["champion_alias"]), PRIMARY_METRIC,
                                         MARKET_PREFIX, float(ml["market_tolerance"]))

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
               "epoch_seconds": [round(h["seconds"], 2) for h in history]}
    print(f"[{JOB}] {name} v{version}: hold-out macro AUC {_f(summary['macro_roc_auc'])} vs baseline "
          f"{_f(summary['baseline_macro_roc_auc'])}; {'PROMOTED' if promoted else 'not promoted'}: {reason}", flush=True)
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
