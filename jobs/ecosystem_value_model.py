"""Job ``ecosystem_value_model``: train the multi-task value model (what one more impression of a
creator's video is worth: conversion, GMV, engagement, complaint, enforcement risk) in four
architectures at the same parameter budget, compare them with the single-task control and two
baselines on a stable hold-out, log everything to MLflow, register the best multi-task model and
apply the champion/challenger rule. Writes a ``model_evaluations`` row when a model is registered.

Steps:

1. **Samples** (:func:`libs.strategy.impressions.impression_samples`): the ``view`` impressions of
   ``(D - label_days, D]`` with their five labels, down-sampled (``--sample-rate``, every rare
   positive kept, ``weight`` = inverse sampling rate); creator features are one
   ``creator_signals`` window (``--signal-window`` days) ending on ``D - label_days``, computed
   from silver (:func:`libs.strategy.value_model.creator_features`) -- strictly before the first
   labelled day. ``complaint`` is labelled only where its ``--complaint-horizon-days`` fit inside
   the window. Stable 1-in-5 creator hash hold-out. ``x_num`` standardised with the training
   rows' mean/std; train / hold-out Parquet under ``ml.work_dir/ecosystem_value/<D>``.
2. **Task check**: a task whose training labels have one class (or fewer than
   ``--min-positives`` positives, or are constant, or absent) is reported with the reason and
   trained with loss weight 0 -- never a crash or a NaN loss.
3. **Train** each ``--kinds`` architecture through ``TorchDistributor``
   (:func:`libs.ml.distributed.run_distributed` over :func:`libs.strategy.multitask.train_multitask`),
   each at ``--budget`` trainable parameters (:func:`libs.strategy.multitask.match_budget`).
4. **Evaluate** on the hold-out, weighted by the sampling ``weight``: ROC AUC and log loss per
   binary task, RMSE and R^2 for ``gmv``, AUC per market; plus a constant (base-rate) and a
   logistic/ridge baseline per task on the same inputs. The summary score is the mean task AUC
   weighted by the tasks' (effective) loss weights.
5. **MLflow** (experiment ``ecosystem-value``): one run per architecture (params, the task
   weights, per-task and per-market metrics, the baselines, the comparison table). The best
   *multi-task* architecture (shared_bottom / mmoe / ple) by weighted mean AUC is registered as
   the pyfunc ``--model-name`` (default ``ecosystem_value``; raw ``x_num``/``x_cat`` in, one column
   per task out) and ``ml.champion_alias`` moves only if it beats the champion overall and in
   every market within ``ml.market_tolerance`` (:func:`libs.ml.registry.promote_if_better`).
   Then its model card (:mod:`libs.ml.model_card`): data window, per-task and per-market metrics
   beside every other model of the comparison, market AUC spread, per-market ROC and AUC plots,
   the promotion decision and its reason -- ``model_card.md`` / ``.json`` in the run and the
   version's description.
6. Prints the comparison table, which tasks were skipped and why, and a verdict that says so
   plainly when multi-task does not beat the single-task control.

    cgov run ecosystem_value_model --run-date 2026-11-01
    cgov run ecosystem_value_model --run-date 2026-11-01 --kinds mmoe,ple --epochs 3 --budget 20000
    spark-submit ... jobs/ecosystem_value_model.py --run-date 2026-11-01 --env prod
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from libs.platform import delta_io, tracking
from libs.platform.config import load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark

JOB = "ecosystem_value_model"
TABLE = "model_evaluations"
EXPERIMENT = "ecosystem-value"
MODEL_NAME = "ecosystem_value"
KINDS: tuple[str, ...] = ("single_task", "shared_bottom", "mmoe", "ple")   # libs.strategy.multitask.KINDS
MULTI_TASK_KINDS: tuple[str, ...] = ("shared_bottom", "mmoe", "ple")       # candidates for registration
CONTROL = "single_task"
DEFAULT_SIGNAL_WINDOW = 28      # creator_signals window of the creator features (the longer of quality.signal_windows)
DEFAULT_SEED = 0
RARE_RATE = 0.01                # same-viewer outcome rates below this get the simulator note in the output
BASELINE_MAX_ROWS = 200_000     # rows the logistic baseline is fitted on at most (a yardstick, not the product)
_ALL_TIME = "0001-01-01"        # first dt of silver_videos read: a viewed video may be of any age
SIMULATOR_NOTE = ("expected on the simulator, where organic viewers are drawn at random per event so a viewer "
                  "rarely buys from / complains about the creator they just watched; on production data a skipped "
                  "conversion or complaint task points at a labelling or join problem -- check before trusting")


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------

def parse_kinds(text: str) -> tuple[str, ...]:
    """argparse type: comma-separated architectures of :data:`KINDS`, distinct, in the given order."""
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown or len(set(kinds)) != len(kinds):
        raise argparse.ArgumentTypeError(f"--kinds must list distinct values of {','.join(KINDS)}, got {text!r}")
    return kinds


def parse_task_weights(text: str) -> dict[str, float]:
    """argparse type: ``task=weight,...`` (finite, >= 0), e.g. ``conversion=2,risk=0.5``; unnamed tasks keep 1."""
    from libs.strategy.impressions import TASKS

    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or name.strip() not in TASKS or not weight >= 0 or weight == float("inf") \
                or name.strip() in out:
            raise argparse.ArgumentTypeError(f"--task-weights must be task=weight pairs over {list(TASKS)} with "
                                             f"finite weights >= 0, got {text!r}")
        out[name.strip()] = weight
    return out


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers >= ``low`` (anything else: a usage error naming the bound)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"--sample-rate must be in (0, 1], got {text!r}")
    return value


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--label-days", type=_positive_int, default=None,
                        help="labelled days ending on the run date; features as of the day before "
                             "(default: strategy.value_model.label_days)")
    parser.add_argument("--kinds", type=parse_kinds, default=KINDS,
                        help=f"architectures to train, comma-separated (default {','.join(KINDS)})")
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help="training epochs per architecture (default: strategy.value_model.epochs)")
    parser.add_argument("--budget", type=_positive_int, default=None,
                        help="trainable parameters per architecture (default: strategy.value_model.budget)")
    parser.add_argument("--sample-rate", type=_rate, default=None,
                        help="share of impressions kept (rare positives always kept; default: strategy.value_model.sample_rate)")
    parser.add_argument("--num-processes", type=_positive_int, default=None,
                        help="TorchDistributor ranks (default: ml.num_processes)")
    parser.add_argument("--signal-window", type=_positive_int, default=DEFAULT_SIGNAL_WINDOW,
                        help=f"creator_signals window (days) of the creator features (default {DEFAULT_SIGNAL_WINDOW})")
    parser.add_argument("--complaint-horizon-days", type=_non_negative_int, default=None,
                        help="days after a view in which a complaint counts (default: strategy.value_model.complaint_horizon_days)")
    parser.add_argument("--task-weights", type=parse_task_weights, default=None,
                        help="policy loss weights, e.g. conversion=2,risk=0.5 (default: strategy.value_model.task_weights)")
    parser.add_argument("--min-positives", type=_positive_int, default=None,
                        help="training positives a binary task needs to be trained (default: strategy.value_model.min_positives)")
    parser.add_argument("--model-name", default=None, help="registered model name (default: strategy.value_model.model_name)")
    parser.add_argument("--seed", type=_non_negative_int, default=DEFAULT_SEED,
                        help=f"sampling and training seed (default {DEFAULT_SEED})")
    return parser


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def _copies(spark: Any, settings: Any, feature_date: dt.date, run_date: dt.date) -> tuple[Any, str]:
    """``video_copies`` rows usable for features as of ``feature_date`` and where they came from.

    Prefers that day's snapshot; else the run date's (limited later to pairs published by the
    feature date, see :func:`libs.strategy.value_model.copies_known_at`); else no copies (the
    copy features then read 0 / missing, and the job says so).
    """
    from schemas import video_copies

    path = settings.table("video_copies")
    for day in (feature_date.isoformat(), run_date.isoformat()):
        if delta_io.partition_written(spark, path, day):
            return delta_io.read_dates(spark, path, day, day, "video_copies"), f"video_copies dt={day}"
    return spark.createDataFrame([], video_copies.SCHEMA), "none (no video_copies snapshot): copy features empty"


def _parquet_column(url: str, name: str) -> Any:
    import numpy as np
    import pyarrow.parquet as pq

    from libs.ml.petastorm_io import local_path

    return np.asarray(pq.read_table(local_path(url), columns=[name]).column(name).to_numpy(zero_copy_only=False))


# --------------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------------

BASELINE_NOTES = {
    "constant": "weighted mean training label per task (AUC 0.5 by construction): the floor",
    "logistic": "weighted logistic regression (binary) / ridge (gmv) on x_num + one-hot x_cat",
    "single_task": "control: one network per task at the same parameter budget",
}


def build_card(model_name: str, version: str, run_id: str, run_date: dt.date, best: str, results: Mapping[str, Any],
               scores: Mapping[str, float | None], eff: Any, statuses: Sequence[Any],
               train_stats: Mapping[str, Mapping[str, float | None]],
               hold_stats: Mapping[str, Mapping[str, float | None]], days: tuple[dt.date, dt.date, dt.date, dt.date],
               signal_window: int, n_train: int, n_hold: int, hyperparameters: Mapping[str, Any],
               verdict: Sequence[str], plots: Sequence[str], promotion: Any) -> Any:
    """The registered architecture's :class:`libs.ml.model_card.ModelCard`; every other model of the
    comparison (baselines, the single-task control, the other architectures) sits beside it.

    ``days`` = ``(feature_first, feature_date, label_start, label_end)``. The value model flags
    nobody (its outputs are expected values for traffic allocation), so the card has no operating
    point; fairness is the per-market spread of each task's weighted AUC.
    """
    from libs.ml import model_card as mc
    from libs.strategy import value_model as vm

    feature_first, feature_date, label_start, label_end = days
    names = [best, *(n for n in results if n != best)]
    binary = {t.name for t in eff.tasks if t.kind == "binary"}

    def positives(stats: Mapping[str, Mapping[str, float | None]], task: str) -> int | None:
        return int(stats[task]["positives"] or 0) if task in binary else None

    skipped = [f"task {s.name} trained with loss weight 0 ({s.reason}): its metrics above are those of an "
               "untrained head and are left out of the weighted mean AUC" for s in statuses if not s.usable]
    return mc.ModelCard(
        title=f"ecosystem value model ({best})", model_name=model_name, version=version, run_id=run_id,
        run_date=run_date.isoformat(),
        window=mc.DataWindow(feature_first.isoformat(), label_end.isoformat(),
                             (label_end - feature_first).days + 1,
                             f"creator features from the {signal_window}-day creator_signals window "
                             f"{feature_first}..{feature_date}; view impressions and their labels "
                             f"{label_start}..{label_end}"),
        labels_note="five outcomes of each sampled view impression (conversion, gmv, engagement, complaint, "
                    "enforcement risk); metrics weighted by the inverse sampling rate; stable 1-in-5 creator hash "
                    "hold-out",
        train_rows=n_train, holdout_rows=n_hold,
        positives={t.name: mc.Positives(positives(train_stats, t.name), positives(hold_stats, t.name))
                   for t in eff.tasks},
        hyperparameters=dict(hyperparameters),
        metric_columns=(("roc_auc", "ROC AUC"), ("log_loss", "log loss"), ("rmse", "RMSE"), ("r2", "R^2")),
        metrics=results[best].per_task, by_market=results[best].per_market, model_label=best,
        baselines={n: results[n].per_task for n in names[1:]},
        baseline_notes={n: BASELINE_NOTES.get(n, "another multi-task architecture at the same parameter budget")
                        for n in names[1:]},
        primary_metric=vm.PRIMARY_METRIC, primary={n: scores.get(n) for n in names},
        market_scores={n: vm.summary_scores(results[n], eff)[1] for n in names},
        spread=mc.market_spread(results[best].per_market),
        operating_point_note="No decision threshold: the value model's outputs are expected values that feed "
                             "traffic allocation; it flags nobody, so there is no flag rate or false-positive "
                             "rate to compare across markets.",
        plots=plots, promotion=promotion,
        notes=[*verdict, *skipped, "full comparison table (every model, every task and market): artifact "
                                   "`comparison.txt` of this run"])


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def main(run_date: dt.date, env: str, label_days: int | None = None, kinds: Sequence[str] = KINDS,
         epochs: int | None = None, budget: int | None = None, sample_rate: float | None = None,
         num_processes: int | None = None, signal_window: int = DEFAULT_SIGNAL_WINDOW,
         complaint_horizon_days: int | None = None, task_weights: Mapping[str, float] | None = None,
         min_positives: int | None = None, model_name: str | None = None,
         seed: int = DEFAULT_SEED) -> dict[str, Any]:
    import mlflow
    import numpy as np
    from mlflow import MlflowClient
    from pyspark.sql import functions as F

    from libs.ml import model_card as mc
    from libs.ml.distributed import run_distributed
    from libs.ml.registry import promote_if_better
    from libs.strategy import multitask as mt
    from libs.strategy import value_model as vm
    from libs.strategy.impressions import impression_samples, model_spec
    from schemas import model_evaluations

    # Every knob left unset comes from strategy.value_model of the environment's settings: the task
    # weights are policy (a policy team edits conf/<env>.yaml), the sizes are per environment.
    settings = load_settings(env)
    vmc = dict(settings.section("strategy")["value_model"])
    label_days = int(vmc["label_days"]) if label_days is None else label_days
    epochs = int(vmc["epochs"]) if epochs is None else epochs
    budget = int(vmc["budget"]) if budget is None else budget
    sample_rate = float(vmc["sample_rate"]) if sample_rate is None else sample_rate
    complaint_horizon_days = (int(vmc["complaint_horizon_days"]) if complaint_horizon_days is None
                              else complaint_horizon_days)
    min_positives = int(vmc["min_positives"]) if min_positives is None else min_positives
    model_name = str(vmc["model_name"]) if model_name is None else model_name
    if task_weights is None:
        task_weights = {str(k): float(v) for k, v in dict(vmc["task_weights"]).items()}
    try:
        kinds = parse_kinds(kinds if isinstance(kinds, str) else ",".join(kinds))
    except argparse.ArgumentTypeError as exc:          # called as a function, not through argparse
        raise ValueError(str(exc)) from None
    if label_days < 1 or epochs < 1 or budget < 1 or signal_window < 1 or complaint_horizon_days < 0:
        raise ValueError("label_days, epochs, budget and signal_window must be >= 1, complaint_horizon_days >= 0")
    if not 0.0 < sample_rate <= 1.0 or min_positives < 1:
        raise ValueError(f"sample_rate must be in (0, 1] and min_positives >= 1, got {sample_rate}, {min_positives}")
    ml = settings.section("ml")
    ranks = int(num_processes or ml["num_processes"])
    spark = get_spark(settings, f"cgov-{JOB}")
    started = time.time()
    day = run_date.isoformat()
    label_start, label_end = run_date - dt.timedelta(days=label_days - 1), run_date
    feature_date = run_date - dt.timedelta(days=label_days)
    feature_first = feature_date - dt.timedelta(days=signal_window - 1)
    tag = f"[{JOB}]"

    def dates(name: str, first: str, last: dt.date) -> Any:
        return delta_io.read_dates(spark, settings.table(name), first, last.isoformat(), name)

    # 1. samples ---------------------------------------------------------------------------
    events = dates("silver_engagement_events", feature_first.isoformat(), label_end)
    videos = dates("silver_videos", _ALL_TIME, label_end)
    listings = dates("silver_listings", feature_first.isoformat(), label_end)
    creators = dates("silver_creators", feature_first.isoformat(), label_end)
    complaints = dates("silver_complaints", feature_first.isoformat(), label_end)
    refunds = dates("silver_refunds", feature_first.isoformat(), feature_date)
    logins = dates("silver_logins", feature_first.isoformat(), feature_date)
    moderation = delta_io.read_snapshot(spark, settings.table("silver_moderation"), day, "silver_moderation")
    if creators.limit(1).count() == 0:
        raise ValueError(f"silver_creators has no snapshot between {feature_first} and {label_end}")
    copies, copies_from = _copies(spark, settings, feature_date, run_date)
    notes: list[str] = []
    if events.where(F.col("dt") <= feature_date.isoformat()).limit(1).count() == 0:
        notes.append(f"no engagement events in the feature window {feature_first}..{feature_date}: the creator "
                     f"features are empty (only account age and the missing flags vary); use a smaller --label-days "
                     f"or a lakehouse with more history for meaningful creator features")
    if complaint_horizon_days >= label_days:
        notes.append(f"--complaint-horizon-days {complaint_horizon_days} >= --label-days {label_days}: no view has its "
                     f"whole complaint horizon inside the window, so every complaint label is undefined")
    features = vm.creator_features(creators, videos, copies, events, complaints, refunds, logins, feature_date,
                                   signal_window)
    samples, vocab = impression_samples(events, videos, listings, creators, complaints, moderation, features,
                                        label_start, label_end, sample_rate=float(sample_rate), seed=int(seed),
                                        complaint_horizon_days=int(complaint_horizon_days))
    work = Path(str(ml["work_dir"])) / "ecosystem_value" / day
    samples = samples.persist()
    try:
        train_s = samples.where(~F.col("holdout"))
        if train_s.limit(1).count() == 0 or samples.where(F.col("holdout")).limit(1).count() == 0:
            raise ValueError(f"no impressions on one side of the hold-out split in {label_start}..{label_end} "
                             f"(sample rate {sample_rate}): nothing to train or evaluate on")
        mean, std = vm.feature_stats(train_s)
        train_url = vm.write_rows(vm.standardized_rows(train_s, mean, std), work / "train", num_files=max(ranks, 1) * 4)
        holdout_url = vm.write_rows(vm.standardized_rows(samples.where(F.col("holdout")), mean, std),
                                    work / "holdout", num_files=2)
    finally:
        samples.unpersist()
    train_stats = vm.label_stats_frame(spark.read.parquet(train_url))
    hold_stats = vm.label_stats_frame(spark.read.parquet(holdout_url))
    n_train, n_hold = int(train_stats["conversion"]["observed"]), int(hold_stats["conversion"]["observed"])
    sample_seconds = time.time() - started

    # 2. task check ------------------------------------------------------------------------
    spec = vm.with_task_weights(mt.MultiTaskSpec.from_dict(model_spec(vocab)), dict(task_weights or {}))
    statuses = vm.task_status(train_stats, spec, min_positives=int(min_positives))
    eff = vm.effective_spec(spec, statuses)
    skipped = [s for s in statuses if not s.usable]
    print(f"{tag} {day}: labels {label_start}..{label_end}, features as of {feature_date} "
          f"({signal_window}-day creator_signals; copies: {copies_from}); {n_train} train / {n_hold} hold-out "
          f"impressions (sample rate {sample_rate}) in {sample_seconds:.0f}s", flush=True)
    for s in statuses:
        counts = (f"{s.positives}/{s.observed} positive" if s.kind == "binary" else f"{s.observed} labelled")
        hold = hold_stats[s.name]
        hold_counts = (f"{int(hold['positives'])}/{int(hold['observed'])}" if s.kind == "binary"
                       else f"{int(hold['observed'])}")
        print(f"{tag}   task {s.name:<11} train {counts:<24} hold-out {hold_counts:<14} "
              f"{'ok' if s.usable else 'SKIPPED (loss weight 0): ' + s.reason}", flush=True)
    rates = {t: train_stats[t]["positives"] / train_stats[t]["observed"]
             for t in ("conversion", "complaint") if train_stats[t]["observed"]}
    rare = {t: r for t, r in rates.items() if r < RARE_RATE}
    if rare or any(s.name in ("conversion", "gmv", "complaint") for s in skipped):
        shown = ", ".join(f"{t} {100 * r:.3f} %" for t, r in rare.items())
        print(f"{tag}   note: same-viewer outcomes are (nearly) all zero{' (' + shown + ' positive)' if shown else ''}"
              f" -- {SIMULATOR_NOTE}", flush=True)
    for note in notes:
        print(f"{tag}   note: {note}", flush=True)
    if not any(s.usable for s in statuses):
        print(f"{tag} no task has a training signal: nothing trained, nothing registered", flush=True)
        return {"run_date": day, "trained": False, "skipped": {s.name: s.reason for s in skipped},
                "train_rows": n_train, "holdout_rows": n_hold, "seconds": round(time.time() - started, 1)}

    # 3. train every architecture at the same budget through TorchDistributor ----------------
    hparams = mt.match_budget(eff, int(budget), {"epochs": int(epochs), "seed": int(seed)}, kinds)
    use_gpu = spark.conf.get("spark.driver.resource.gpu.amount", None) is not None
    models: dict[str, Any] = {}
    trained: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        t0 = time.time()
        result = run_distributed(mt.train_multitask, train_url, eff.to_dict(), kind, hparams[kind],
                                 num_processes=ranks, use_gpu=use_gpu, result_dir=str(work / "results" / kind))
        models[kind] = mt.model_from_payload(result.rank0)
        trained[kind] = {"seconds": time.time() - t0, "history": result.rank0["history"], "attempt": result.attempt,
                         "n_parameters": mt.count_parameters(models[kind]),
                         "expert_units": int(hparams[kind]["expert_units"])}
        print(f"{tag}   trained {kind:<13} {trained[kind]['n_parameters']} parameters "
              f"(expert_units {trained[kind]['expert_units']}), last loss {trained[kind]['history'][-1]['loss']:.4f}, "
              f"{trained[kind]['seconds']:.0f}s", flush=True)

    # 4. hold-out evaluation: baselines and architectures on the same rows --------------------
    train = mt.read_multitask_arrays(train_url, eff)
    w_train = _parquet_column(train_url, "weight")
    hold = mt.read_multitask_arrays(holdout_url, eff)
    # Arrow hands out read-only buffers; torch warns on them, so make the feature arrays writable once.
    for arrays in (train, hold):
        arrays["x_num"], arrays["x_cat"] = (np.require(arrays[k], requirements="W") for k in ("x_num", "x_cat"))
    w_hold, markets = _parquet_column(holdout_url, "weight"), _parquet_column(holdout_url, "market")
    y_hold = hold["y"]
    constants = vm.constant_baseline(train["y"], w_train, eff)
    linear = vm.fit_linear_baseline(train["x_num"], train["x_cat"], train["y"], w_train, eff, statuses,
                                    max_rows=BASELINE_MAX_ROWS, seed=int(seed))
    preds = {"constant": np.tile(constants, (len(y_hold), 1)),
             "logistic": vm.predict_linear_baseline(linear, constants, hold["x_num"], hold["x_cat"], eff)}
    for kind in kinds:
        preds[kind] = mt.predict(models[kind], hold["x_num"], hold["x_cat"])
    results = {name: vm.evaluate(y_hold, p, w_hold, markets, eff) for name, p in preds.items()}
    table = vm.comparison_table(results, eff, statuses)
    candidates = [k for k in kinds if k in MULTI_TASK_KINDS]
    verdict = vm.verdict(results, eff, candidates, control=CONTROL if CONTROL in kinds else "", baseline="logistic")
    scores = {name: vm.summary_scores(ev, eff)[0] for name, ev in results.items()}

    # 5. MLflow: one run per architecture; register the best multi-task one ------------------
    exp_id = tracking.experiment(settings, EXPERIMENT)
    baseline_metrics = {**vm.flat_metrics(results["logistic"], eff, prefix="baseline."),
                        **vm.flat_metrics(results["constant"], eff, prefix="constant.")}
    run_ids: dict[str, str] = {}
    common = {"run_date": day, "label_start": label_start.isoformat(), "label_end": label_end.isoformat(),
              "feature_date": feature_date.isoformat(), "label_days": label_days, "signal_window": signal_window,
              "complaint_horizon_days": complaint_horizon_days, "sample_rate": sample_rate, "seed": seed,
              "budget": budget, "epochs": epochs, "num_processes": ranks, "train_rows": n_train,
              "holdout_rows": n_hold, "copies": copies_from, "min_positives": min_positives, "kinds": ",".join(kinds),
              "baseline": "weighted logistic (binary) / ridge (gmv) on x_num + one-hot x_cat",
              **{f"task_weight.{t.name}": t.weight for t in eff.tasks},
              **{f"policy_weight.{t.name}": t.weight for t in spec.tasks},
              **{f"task_skipped.{s.name}": s.reason or "no" for s in statuses},
              **{f"vocab_size.{k}": len(v) for k, v in vocab.to_dict().items()}}
    for kind in kinds:
        info = trained[kind]
        with mlflow.start_run(experiment_id=exp_id, run_name=f"{JOB}-{day}-{kind}") as run:
            mlflow.set_tags({"architecture": kind, "role": "candidate" if kind in MULTI_TASK_KINDS else "control"})
            mlflow.log_params({**common, "kind": kind, "n_parameters": info["n_parameters"],
                               "expert_units": info["expert_units"], "attempts_used": info["attempt"],
                               **{f"hp.{k}": v for k, v in hparams[kind].items() if k not in ("epochs", "seed")}})
            mlflow.log_metrics({**vm.flat_metrics(results[kind], eff), **baseline_metrics,
                                "train_seconds": info["seconds"], "sample_seconds": sample_seconds})
            for h in info["history"]:
                mlflow.log_metrics({"train_loss": h["loss"], **{f"train_loss.{t}": v for t, v in h["task_loss"].items()
                                                                if v == v}}, step=int(h["epoch"]))
            mlflow.log_text(table + "\n\n" + "\n".join(verdict) + "\n", "comparison.txt")
            run_ids[kind] = run.info.run_id
    ranked = [k for k in candidates if scores.get(k) is not None]
    best = max(ranked, key=lambda k: scores[k]) if ranked else None
    version, promoted, reason, card_location = None, False, "nothing registered", None
    if best is None:
        reason = ("nothing registered: no multi-task architecture has a defined weighted mean AUC on the hold-out"
                  if candidates else "nothing registered: --kinds names no multi-task architecture")
    else:
        untrained = [s.name for s in skipped]
        example = vm.pyfunc_input(vm.unstandardize(hold["x_num"][:3], mean, std), hold["x_cat"][:3])
        with mlflow.start_run(run_id=run_ids[best]) as run:
            version = vm.log_and_register(run, models[best], mean, std, vocab.to_dict(), untrained, example,
                                          model_name)
        client = MlflowClient()
        promoted, reason = promote_if_better(client, model_name, version, str(ml["champion_alias"]),
                                             vm.PRIMARY_METRIC, vm.MARKET_PREFIX, float(ml["market_tolerance"]),
                                             # the weighted mean AUC is only comparable under the same task weights
                                             same_param_prefixes=("task_weight.",))
        # The card is written after the rule: it describes the version and the decision about it.
        binary = [k for k, t in enumerate(eff.tasks) if t.kind == "binary"]
        plots = mc.log_market_plots(client, run_ids[best], y_hold[:, binary], preds[best][:, binary], markets,
                                    [eff.tasks[k].name for k in binary], results[best].per_market, weight=w_hold)
        card = build_card(
            model_name, str(version), run_ids[best], run_date, best, results, scores, eff, statuses, train_stats,
            hold_stats, (feature_first, feature_date, label_start, label_end), signal_window, n_train, n_hold,
            {"kind": best, "n_parameters": trained[best]["n_parameters"], "budget": budget, "epochs": epochs,
             "seed": seed, "sample_rate": sample_rate, "min_positives": min_positives,
             **{f"task_weight.{t.name}": t.weight for t in eff.tasks},
             **{f"hp.{k}": v for k, v in hparams[best].items() if k not in ("epochs", "seed")}},
            verdict, plots, mc.Promotion.from_registry(client, model_name, version))
        mc.log_card(client, card, model_name, version)
        card_location = mc.card_uri(run_ids[best])
        all_metrics = {f"{name}.{k}": float(v) for name, ev in results.items()
                       for k, v in vm.flat_metrics(ev, eff).items()}
        evaluation = spark.createDataFrame([{
            "dt": day, "model_name": model_name, "model_version": str(version), "mlflow_run_id": run_ids[best],
            "train_rows": n_train, "holdout_rows": n_hold, "macro_roc_auc": scores[best],
            "baseline_macro_roc_auc": scores["logistic"], "metrics": all_metrics, "thresholds": {},
            "promoted": bool(promoted), "promotion_reason": reason,
            "train_seconds": float(sum(t["seconds"] for t in trained.values()))}], model_evaluations.SCHEMA)
        delta_io.merge_upsert(spark, evaluation, settings.table(TABLE), model_evaluations.KEYS)
    shutil.rmtree(work / "results", ignore_errors=True)        # the registered model lives in the registry now

    # 6. report ----------------------------------------------------------------------------
    print(f"{tag} hold-out comparison ({n_hold} impressions, weighted to the full population):", flush=True)
    for line in table.splitlines():
        print(f"{tag}   {line}", flush=True)
    for line in verdict:
        print(f"{tag} {line}", flush=True)
    if best is not None:
        print(f"{tag} {model_name} v{version} ({best}): {'PROMOTED' if promoted else 'not promoted'}: {reason}",
              flush=True)
        print(f"{tag} model card: {card_location} (also the description of {model_name} v{version} in the registry)",
              flush=True)
    else:
        print(f"{tag} {reason}", flush=True)
    summary = {"run_date": day, "trained": True, "kinds": list(kinds), "best": best, "version": version,
               "promoted": promoted, "reason": reason, "model_card": card_location, "scores": scores,
               "skipped": {s.name: s.reason for s in skipped}, "train_rows": n_train, "holdout_rows": n_hold,
               "train_seconds": {k: round(t["seconds"], 1) for k, t in trained.items()},
               "seconds": round(time.time() - started, 1)}
    print(f"{tag} {json.dumps({k: summary[k] for k in ('train_seconds', 'seconds')})}", flush=True)
    return summary


if __name__ == "__main__":
    run_job(arg_parser, main)
