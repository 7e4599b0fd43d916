"""The ecosystem value model's training-job logic: inputs as of a date, task checks, weighted
hold-out evaluation, baselines, the comparison table and the MLflow pyfunc.

The job (:mod:`jobs.ecosystem_value_model`) stays a thin read -> transform -> train -> evaluate
-> register script; everything here is a pure function (Spark ``DataFrame -> DataFrame`` or
numpy) so that it is unit-tested on hand-made inputs.

**Why features "as of" a date.** :func:`libs.strategy.impressions.impression_samples` requires
its creator features to be computed strictly before the labelled window. :func:`creator_features`
builds them with :func:`libs.quality.signals.creator_signals` for run date ``as_of`` (one window)
from silver frames: the creator roster of the latest snapshot dated ``<= as_of`` (the earliest
later one only for creators that first appear after it), limited to creators signed up by
``as_of``; copies limited to pairs of videos both published by ``as_of``
(:func:`copies_known_at`) -- a copy relation between two published videos is a fact of that day,
whichever later run of the fingerprint job happened to detect it.

**Why standardisation lives here.** :mod:`libs.strategy.multitask` expects ``x_num`` already
standardised by the caller. The job computes per-column mean/std over the *training* rows in
one Spark aggregate (:func:`feature_stats`), writes standardised Parquet
(:func:`standardized_rows`), and the registered pyfunc stores the same statistics, so a scorer
feeds it the raw ``x_num`` of ``impression_samples`` and never has to know about them.

**Why tasks can be skipped.** A binary task whose training labels are all one class (or a
regression task whose labels are constant, or a task without any observed label) carries no
training signal: its loss would only teach the head to predict a constant, and its AUC is
undefined. On the project's simulator, organic users are drawn at random per event, so "this
viewer later bought from / complained about this creator" is nearly always 0. Such a task gets
loss weight 0 (:func:`effective_spec`; its head is kept so every architecture has the same
shape), is reported with the reason (:func:`task_status`), is left out of the weighted mean AUC,
and the pyfunc returns NaN for it -- an untrained head's output is not a prediction.

**Why weighted metrics.** Impressions are down-sampled: every rare positive is kept with
``weight`` 1, other rows with ``1 / sample_rate``. Hold-out metrics use ``weight`` as sample
weight (:func:`evaluate`), so they describe the full impression population, not the sample.
The networks themselves are trained on the unweighted sample (positives over-represented): this
shifts their probabilities, not their ranking, so AUC is comparable; log loss is reported for
the weighted baselines' calibration only.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from libs.platform.frames import require_columns
from libs.strategy.impressions import CATEGORICAL_FEATURES, CREATOR_FEATURES, NUMERIC_FEATURES, TASKS

PRIMARY_METRIC = "weighted_mean_auc"      # what picks the registered architecture and what promotion compares
MARKET_PREFIX = "market_auc."             # per market: the weighted mean task AUC (promotion rule's key prefix)
MIN_STD = 1e-6                            # a column at least this constant is centred, not scaled (no 1/0)
OUTPUT_KINDS = ("probability", "value")   # pyfunc output per binary / regression task
_VIOLATION = "value-model contract violated"


# --------------------------------------------------------------------------------------------
# Inputs as of a date (Spark)
# --------------------------------------------------------------------------------------------

def creators_as_of(creators: DataFrame, as_of: dt.date) -> DataFrame:
    """One row per creator signed up by ``as_of``: ``creator_id, market, category, signup_date``.

    From the latest snapshot dated ``<= as_of``; a creator absent from every such snapshot takes
    its earliest later one (market, category and sign-up date are declared at sign-up, so they
    were known on ``as_of``). Creators with ``signup_date > as_of`` did not exist yet.
    """
    require_columns(creators, ("creator_id", "market", "category", "signup_date", "dt"), "creators")
    d = F.to_date(F.col("dt"))
    # False < True: snapshots on/before as_of first, then the closest one on either side.
    order = F.struct((d > F.lit(as_of)).alias("after"), F.abs(F.datediff(d, F.lit(as_of))).alias("distance"))
    cols = ["market", "category", "signup_date"]
    return (creators.groupBy("creator_id").agg(F.min_by(F.struct(*cols), order).alias("v"))
            .select("creator_id", *[F.col(f"v.{c}").alias(c) for c in cols])
            .where(F.col("signup_date").isNull() | (F.col("signup_date") <= F.lit(as_of))))


def copies_known_at(copies: DataFrame, as_of: dt.date) -> DataFrame:
    """Copy pairs whose two videos were both published by the end of ``as_of`` (UTC day)."""
    require_columns(copies, ("copy_published_at", "original_published_at"), "copies")
    return copies.where((F.to_date(F.col("copy_published_at")) <= F.lit(as_of))
                        & (F.to_date(F.col("original_published_at")) <= F.lit(as_of)))


def creator_features(creators: DataFrame, videos: DataFrame, copies: DataFrame, events: DataFrame,
                     complaints: DataFrame, refunds: DataFrame, logins: DataFrame, as_of: dt.date,
                     window_days: int = 28) -> DataFrame:
    """``creator_id, <CREATOR_FEATURES>, dt``: one ``creator_signals`` window ending on ``as_of``.

    The frame :func:`libs.strategy.impressions.impression_samples` wants for labels starting on
    ``as_of + 1``: one row per creator, ``dt = as_of``. ``window_days`` defaults to 28, the longer
    of the project's windows (more evidence per creator). Silver frames may extend past
    ``as_of``: ``creator_signals`` drops every row dated after its run date, and copies are
    limited by :func:`copies_known_at` here.
    """
    from libs.quality.signals import creator_signals

    if isinstance(window_days, bool) or not isinstance(window_days, int) or window_days < 1:
        raise ValueError(f"window_days must be an integer >= 1, got {window_days!r}")
    out = creator_signals(creators_as_of(creators, as_of), videos, copies_known_at(copies, as_of), events,
                          complaints, refunds, logins, as_of, [window_days])
    return out.select("creator_id", *CREATOR_FEATURES, "dt")


def feature_stats(rows: DataFrame, width: int = len(NUMERIC_FEATURES)) -> tuple[list[float], list[float]]:
    """Per-column mean and (population) std of ``x_num`` over ``rows``: one aggregate, 2 x ``width`` scalars.

    A column with std below :data:`MIN_STD` (a feature that never varies -- e.g. every creator
    feature when the lakehouse has no activity before the feature date) gets std 1: it is centred
    to 0, not divided by ~0. Empty ``rows`` raise ValueError.
    """
    require_columns(rows, ("x_num",), "rows")
    x = F.col("x_num")
    aggs = ([F.avg(x[i].cast("double")).alias(f"m{i}") for i in range(width)]
            + [F.stddev_pop(x[i].cast("double")).alias(f"s{i}") for i in range(width)]
            + [F.count(F.lit(1)).alias("n")])
    r = rows.agg(*aggs).first()
    if r is None or not r["n"]:
        raise ValueError("feature_stats: no rows")
    mean = [float(r[f"m{i}"]) for i in range(width)]
    std = [float(r[f"s{i}"]) if r[f"s{i}"] is not None and float(r[f"s{i}"]) >= MIN_STD else 1.0
           for i in range(width)]
    if not all(math.isfinite(v) for v in mean + std):
        raise ValueError("feature_stats: x_num holds NaN or infinite values")
    return mean, std


def _standardized(x: Column, mean: Sequence[float], std: Sequence[float]) -> Column:
    m = F.array(*[F.lit(float(v)) for v in mean])
    s = F.array(*[F.lit(float(v)) for v in std])
    return F.transform(x, lambda v, i: ((v.cast("double") - F.element_at(m, i + 1))
                                        / F.element_at(s, i + 1)).cast("float"))


def standardized_rows(samples: DataFrame, mean: Sequence[float], std: Sequence[float],
                      n_cat: int = len(CATEGORICAL_FEATURES), tasks: Sequence[str] = tuple(TASKS)) -> DataFrame:
    """The Parquet rows the trainers read: ``event_id, creator_id, market, x_num`` (standardised),
    ``x_cat`` (int), the task columns (float, NaN = unlabelled) and ``weight``.

    The contract is checked on the way out (``raise_error`` on the first row whose ``x_num`` /
    ``x_cat`` length is wrong or whose ``x_num`` holds a NaN): a wrong length would otherwise
    surface as Petastorm's "lists of different lengths" inside a training rank.
    """
    require_columns(samples, ("event_id", "creator_id", "market", "x_num", "x_cat", "weight", *tasks), "samples")
    if len(mean) != len(std) or not mean:
        raise ValueError(f"mean ({len(mean)}) and std ({len(std)}) must be equally long and non-empty")
    if any(not (float(s) > 0) for s in std):
        raise ValueError("std must be > 0 everywhere (see feature_stats)")
    width = len(mean)
    bad = ((F.size("x_num") != width) | (F.size("x_cat") != n_cat)
           | F.exists(F.col("x_num"), lambda v: F.isnan(v) | v.isNull()))
    detail = F.concat_ws(" ", F.lit(f"{_VIOLATION} (x_num size {width} without NaN, x_cat size {n_cat}); "
                                    "first bad event_id"), F.col("event_id").cast("string"))
    x_num = F.when(bad, F.raise_error(detail)).otherwise(_standardized(F.col("x_num"), mean, std))
    return samples.select("event_id", "creator_id", "market", x_num.alias("x_num"),
                          F.col("x_cat").cast("array<int>").alias("x_cat"),
                          *[F.col(t).cast("float").alias(t) for t in tasks], F.col("weight").cast("float").alias("weight"))


def write_rows(rows: DataFrame, path: str | Path, num_files: int) -> str:
    """Write :func:`standardized_rows` output as Parquet (``num_files`` row groups, the shard unit); returns its URL."""
    from libs.ml.petastorm_io import write_checked

    return write_checked(rows, path, num_files, "overwrite", _VIOLATION, max_chars=300)


def label_stats_frame(rows: DataFrame, tasks: Sequence[str] = tuple(TASKS)) -> dict[str, dict[str, float]]:
    """Per task ``{observed, positives, min, max}`` over ``rows`` (NaN = unlabelled): one aggregate.

    The Spark twin of :func:`label_stats`, so the job checks the training labels without
    collecting them.
    """
    require_columns(rows, tasks, "rows")
    aggs = []
    for t in tasks:
        v = F.when(~F.isnan(F.col(t)), F.col(t).cast("double"))
        aggs += [F.count(v).alias(f"{t}__n"), F.sum(F.when(v == 1.0, 1).otherwise(0)).alias(f"{t}__p"),
                 F.min(v).alias(f"{t}__min"), F.max(v).alias(f"{t}__max")]
    r = rows.agg(*aggs).first()
    return {t: {"observed": float(r[f"{t}__n"] or 0), "positives": float(r[f"{t}__p"] or 0),
                "min": None if r[f"{t}__min"] is None else float(r[f"{t}__min"]),
                "max": None if r[f"{t}__max"] is None else float(r[f"{t}__max"])} for t in tasks}


# --------------------------------------------------------------------------------------------
# Task checks
# --------------------------------------------------------------------------------------------

def label_stats(y: np.ndarray, task_names: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """Numpy version of :func:`label_stats_frame` for ``(N, T)`` labels with NaN = unlabelled."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != len(task_names):
        raise ValueError(f"labels must be (N, {len(task_names)}), got {y.shape}")
    out: dict[str, dict[str, float | None]] = {}
    for k, t in enumerate(task_names):
        v = y[~np.isnan(y[:, k]), k]
        out[t] = {"observed": float(v.size), "positives": float((v == 1.0).sum()),
                  "min": float(v.min()) if v.size else None, "max": float(v.max()) if v.size else None}
    return out


@dataclass(frozen=True)
class TaskStatus:
    """Whether a task has a training signal: ``usable`` and, when not, the ``reason`` (printed and logged)."""

    name: str
    kind: str
    observed: int
    positives: int | None      # binary tasks only
    usable: bool
    reason: str


def task_status(stats: Mapping[str, Mapping[str, float | None]], spec: Any,
                min_positives: int = 1) -> list[TaskStatus]:
    """One :class:`TaskStatus` per task of ``spec`` (a :class:`libs.strategy.multitask.MultiTaskSpec`).

    Binary: usable iff it has observed labels of both classes and at least ``min_positives``
    positives (default 1: "one class" is the only hard stop; a caller may demand more, since a
    handful of positives teaches a head little and gives a hold-out AUC that is noise).
    Regression: usable iff at least two observed labels that are not all equal. ``stats`` from
    :func:`label_stats` / :func:`label_stats_frame`; a task missing from it raises ValueError.
    """
    if isinstance(min_positives, bool) or not isinstance(min_positives, int) or min_positives < 1:
        raise ValueError(f"min_positives must be an integer >= 1, got {min_positives!r}")
    out = []
    for task in spec.tasks:
        if task.name not in stats:
            raise ValueError(f"no label statistics for task {task.name!r}")
        s = stats[task.name]
        n = int(s["observed"] or 0)
        if task.kind == "binary":
            pos = int(s["positives"] or 0)
            if n == 0:
                reason = "no observed label"
            elif pos == 0:
                reason = f"no positives among {n} training labels"
            elif pos == n:
                reason = f"all {n} training labels are positive"
            elif pos < min_positives:
                reason = f"only {pos} positives among {n} training labels (fewer than {min_positives})"
            else:
                reason = ""
            out.append(TaskStatus(task.name, task.kind, n, pos, not reason, reason))
        else:
            if n < 2:
                reason = f"{n} observed label(s): nothing to fit"
            elif s["min"] == s["max"]:
                reason = f"all {n} training labels equal {s['min']:g}"
            else:
                reason = ""
            out.append(TaskStatus(task.name, task.kind, n, None, not reason, reason))
    return out


def effective_spec(spec: Any, statuses: Sequence[TaskStatus]) -> Any:
    """``spec`` with loss weight 0 for every task that is not usable (its head and output stay)."""
    from libs.strategy.multitask import MultiTaskSpec, TaskSpec

    usable = {s.name: s.usable for s in statuses}
    if set(usable) != set(spec.task_names):
        raise ValueError(f"statuses for {sorted(usable)} do not match the spec's tasks {list(spec.task_names)}")
    return MultiTaskSpec(spec.num_features, spec.categorical_cardinalities,
                         tuple(TaskSpec(t.name, t.kind, t.weight if usable[t.name] else 0.0) for t in spec.tasks))


def with_task_weights(spec: Any, weights: Mapping[str, float]) -> Any:
    """``spec`` with the policy weights of ``weights`` (unknown task names raise ValueError)."""
    from libs.strategy.multitask import MultiTaskSpec, TaskSpec

    unknown = sorted(set(weights) - set(spec.task_names))
    if unknown:
        raise ValueError(f"task weights name unknown tasks {unknown}; tasks: {list(spec.task_names)}")
    return MultiTaskSpec(spec.num_features, spec.categorical_cardinalities,
                         tuple(TaskSpec(t.name, t.kind, float(weights.get(t.name, t.weight))) for t in spec.tasks))


# --------------------------------------------------------------------------------------------
# Weighted evaluation (numpy)
# --------------------------------------------------------------------------------------------

def _observed(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, p, w = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (y, p, w))
    if not (y.shape == p.shape == w.shape):
        raise ValueError(f"labels {y.shape}, predictions {p.shape} and weights {w.shape} differ in length")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and >= 0")
    keep = ~np.isnan(y) & (w > 0)
    if not np.isfinite(p[keep]).all():
        raise ValueError("predictions contain NaN or infinity on labelled rows")
    return y[keep], p[keep], w[keep]


def weighted_roc_auc(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float | None:
    """ROC AUC with sample weights over the labelled rows; None when they hold a single class.

    Equals ``sum_{i pos, j neg} w_i w_j ([p_i > p_j] + [p_i = p_j] / 2) / (W_pos W_neg)``.
    """
    from sklearn.metrics import roc_auc_score

    y, p, w = _observed(y, p, w)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("binary labels must be 0/1 (NaN = unlabelled)")
    if w[y == 1].sum() <= 0 or w[y == 0].sum() <= 0:
        return None
    return float(roc_auc_score(y, p, sample_weight=w))


def weighted_log_loss(y: np.ndarray, p: np.ndarray, w: np.ndarray, eps: float = 1e-7) -> float | None:
    """Weighted mean binary cross-entropy (probabilities clipped to ``[eps, 1 - eps]``); None without labels."""
    y, p, w = _observed(y, p, w)
    if w.sum() <= 0:
        return None
    q = np.clip(p, eps, 1 - eps)
    return float(-(w * (y * np.log(q) + (1 - y) * np.log(1 - q))).sum() / w.sum())


def weighted_rmse_r2(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> tuple[float | None, float | None]:
    """Weighted RMSE and R^2 (``1 - SS_res / SS_tot`` around the weighted mean); R^2 None when SS_tot is 0."""
    y, p, w = _observed(y, p, w)
    if w.sum() <= 0:
        return None, None
    ss_res = float((w * (y - p) ** 2).sum())
    mean = float((w * y).sum() / w.sum())
    ss_tot = float((w * (y - mean) ** 2).sum())
    return math.sqrt(ss_res / float(w.sum())), (1.0 - ss_res / ss_tot) if ss_tot > 0 else None


@dataclass(frozen=True)
class Evaluation:
    """Hold-out metrics of one model: ``per_task`` ({task: {metric: value or None}}) and
    ``per_market`` ({market: {binary task: weighted AUC or None}})."""

    per_task: dict[str, dict[str, float | None]]
    per_market: dict[str, dict[str, float | None]]


def evaluate(y: np.ndarray, pred: np.ndarray, weight: np.ndarray, markets: Sequence[str] | np.ndarray,
             spec: Any) -> Evaluation:
    """Weighted hold-out metrics per task and per market.

    ``y`` and ``pred`` are ``(N, T)`` in ``spec`` task order (``pred``: probabilities for binary
    tasks, values for regression; NaN labels are left out). Binary: ``n``, ``positives``
    (unweighted counts), ``roc_auc`` and ``log_loss`` (weighted). Regression: ``n``, ``rmse``,
    ``r2`` (weighted). Per market: weighted ROC AUC of every binary task (None for one class).
    """
    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64).reshape(-1)
    g = np.asarray(markets).astype(str)
    if y.shape != pred.shape or y.ndim != 2 or y.shape[1] != spec.n_tasks:
        raise ValueError(f"labels {y.shape} and predictions {pred.shape} must both be (N, {spec.n_tasks})")
    if w.shape[0] != y.shape[0] or g.shape[0] != y.shape[0]:
        raise ValueError(f"{w.shape[0]} weights and {g.shape[0]} markets for {y.shape[0]} rows")
    per_task: dict[str, dict[str, float | None]] = {}
    for k, task in enumerate(spec.tasks):
        yk = y[:, k]
        n = float((~np.isnan(yk)).sum())
        if task.kind == "binary":
            per_task[task.name] = {"n": n, "positives": float((yk == 1.0).sum()),
                                   "roc_auc": weighted_roc_auc(yk, pred[:, k], w),
                                   "log_loss": weighted_log_loss(yk, pred[:, k], w)}
        else:
            rmse, r2 = weighted_rmse_r2(yk, pred[:, k], w)
            per_task[task.name] = {"n": n, "rmse": rmse, "r2": r2}
    per_market: dict[str, dict[str, float | None]] = {}
    for market in sorted(set(g.tolist())):
        rows = g == market
        per_market[market] = {t.name: weighted_roc_auc(y[rows, k], pred[rows, k], w[rows])
                              for k, t in enumerate(spec.tasks) if t.kind == "binary"}
    return Evaluation(per_task, per_market)


def weighted_mean_auc(aucs: Mapping[str, float | None], spec: Any) -> float | None:
    """``sum_t weight_t AUC_t / sum_t weight_t`` over binary tasks with weight > 0 and a defined AUC.

    ``spec`` carries the effective weights (0 for a skipped task), so a task without a training
    signal never counts; None when no task qualifies.
    """
    num = den = 0.0
    for task in spec.tasks:
        auc = aucs.get(task.name)
        if task.kind == "binary" and task.weight > 0 and auc is not None:
            num += task.weight * float(auc)
            den += task.weight
    return num / den if den > 0 else None


def summary_scores(ev: Evaluation, spec: Any) -> tuple[float | None, dict[str, float | None]]:
    """The overall weighted mean AUC and the same per market (what the promotion rule compares)."""
    overall = weighted_mean_auc({t: m.get("roc_auc") for t, m in ev.per_task.items()}, spec)
    return overall, {m: weighted_mean_auc(aucs, spec) for m, aucs in ev.per_market.items()}


def flat_metrics(ev: Evaluation, spec: Any, prefix: str = "") -> dict[str, float]:
    """MLflow keys: ``<prefix><task>.<metric>``, ``<prefix>weighted_mean_auc``,
    ``<prefix>market_auc.<market>`` (weighted mean) and ``<prefix><task>.market_auc.<market>``.
    Undefined (None) values are left out, never logged as 0 or 0.5."""
    out: dict[str, float] = {}
    for task, metrics in ev.per_task.items():
        out.update({f"{prefix}{task}.{k}": float(v) for k, v in metrics.items() if v is not None})
    overall, markets = summary_scores(ev, spec)
    if overall is not None:
        out[f"{prefix}{PRIMARY_METRIC}"] = overall
    for market, value in markets.items():
        if value is not None:
            out[f"{prefix}{MARKET_PREFIX}{market}"] = value
        for task, auc in ev.per_market[market].items():
            if auc is not None:
                out[f"{prefix}{task}.{MARKET_PREFIX}{market}"] = float(auc)
    return out


# --------------------------------------------------------------------------------------------
# Baselines (numpy / scikit-learn)
# --------------------------------------------------------------------------------------------

def constant_baseline(y: np.ndarray, weight: np.ndarray, spec: Any) -> np.ndarray:
    """Per task the weighted mean training label (a base rate / mean GMV); 0 for a task without labels.

    As a predictor it has AUC 0.5 by construction and R^2 about 0: the floor every model must clear.
    """
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64).reshape(-1)
    out = np.zeros(spec.n_tasks)
    for k in range(spec.n_tasks):
        keep = ~np.isnan(y[:, k]) & (w > 0)
        if keep.any():
            out[k] = float((w[keep] * y[keep, k]).sum() / w[keep].sum())
    return out


def design_matrix(x_num: np.ndarray, x_cat: np.ndarray, cardinalities: Sequence[int]) -> np.ndarray:
    """``[x_num, one-hot(x_cat)]``: column ``j`` of ``x_cat`` becomes ``cardinalities[j] + 1`` indicators
    (index 0 = unknown has its own), so the linear baseline sees the same inputs as the networks."""
    xn = np.asarray(x_num, dtype=np.float64)
    xc = np.asarray(x_cat, dtype=np.int64)
    parts = [xn]
    for j, c in enumerate(cardinalities):
        col = xc[:, j]
        if (col < 0).any() or (col > c).any():
            raise ValueError(f"categorical column {j} has an index outside 0..{c}")
        parts.append(np.eye(int(c) + 1)[col])
    return np.concatenate(parts, axis=1)


def fit_linear_baseline(x_num: np.ndarray, x_cat: np.ndarray, y: np.ndarray, weight: np.ndarray, spec: Any,
                        statuses: Sequence[TaskStatus], max_rows: int = 200_000, seed: int = 0) -> dict[str, Any]:
    """Per usable task a weighted logistic regression (binary) or ridge regression (gmv) on
    :func:`design_matrix`; skipped tasks get no model.

    At most ``max_rows`` training rows (a seeded uniform subset; default 200k: lbfgs on ~100
    columns converges in seconds there, and the baseline is a yardstick, not the product).
    """
    from sklearn.linear_model import LogisticRegression, Ridge

    X = design_matrix(x_num, x_cat, spec.categorical_cardinalities)
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64).reshape(-1)
    if len(X) > max_rows:
        idx = np.sort(np.random.default_rng(seed).choice(len(X), size=max_rows, replace=False))
        X, y, w = X[idx], y[idx], w[idx]
    usable = {s.name: s.usable for s in statuses}
    models: dict[str, Any] = {}
    for k, task in enumerate(spec.tasks):
        keep = ~np.isnan(y[:, k]) & (w > 0)
        if not usable.get(task.name) or not keep.any():
            continue
        if task.kind == "binary":
            if len(np.unique(y[keep, k])) < 2:        # usable overall, but not in this subset
                continue
            # C=1.0 (sklearn's default L2): ~100 standardised columns, tens of thousands of rows.
            model = LogisticRegression(max_iter=500)
        else:
            model = Ridge(alpha=1.0)
        model.fit(X[keep], y[keep, k], sample_weight=w[keep])
        models[task.name] = model
    return models


def predict_linear_baseline(models: Mapping[str, Any], constants: np.ndarray, x_num: np.ndarray, x_cat: np.ndarray,
                            spec: Any) -> np.ndarray:
    """``(N, T)`` baseline predictions; a task without a model predicts its constant."""
    X = design_matrix(x_num, x_cat, spec.categorical_cardinalities)
    out = np.tile(np.asarray(constants, dtype=np.float64), (len(X), 1))
    for k, task in enumerate(spec.tasks):
        model = models.get(task.name)
        if model is not None:
            out[:, k] = model.predict_proba(X)[:, 1] if task.kind == "binary" else model.predict(X)
    return out


# --------------------------------------------------------------------------------------------
# The comparison table
# --------------------------------------------------------------------------------------------

def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def comparison_table(results: Mapping[str, Evaluation], spec: Any, statuses: Sequence[TaskStatus],
                     min_reliable_positives: int = 30) -> str:
    """Plain-text table: one line per (task, metric), one column per model (baselines and architectures).

    Skipped tasks are marked and their reason printed below; the last lines are the weighted
    mean task AUC overall and per market (``spec`` holds the effective weights). A trained binary
    task with fewer than ``min_reliable_positives`` hold-out positives (default 30: the AUC's
    standard error is then several points) gets a warning line rather than silent trust.
    """
    names = list(results)
    width = max(11, *(len(n) + 2 for n in names))
    head = f"{'task':<12}{'metric':<10}" + "".join(f"{n:>{width}}" for n in names)
    lines = [head, "-" * len(head)]
    skipped = {s.name: s for s in statuses if not s.usable}
    for task in spec.tasks:
        keys = ("roc_auc", "log_loss") if task.kind == "binary" else ("rmse", "r2")
        for i, key in enumerate(keys):
            label = (task.name + (" *" if task.name in skipped else "")) if i == 0 else ""
            lines.append(f"{label:<12}{key:<10}"
                         + "".join(f"{_fmt(results[n].per_task[task.name].get(key)):>{width}}" for n in names))
    overall = {n: summary_scores(results[n], spec) for n in names}
    lines.append("-" * len(head))
    lines.append(f"{'weighted':<12}{'mean AUC':<10}" + "".join(f"{_fmt(overall[n][0]):>{width}}" for n in names))
    markets = sorted({m for n in names for m in overall[n][1]})
    for m in markets:
        lines.append(f"{'  ' + m:<12}{'mean AUC':<10}" + "".join(f"{_fmt(overall[n][1].get(m)):>{width}}" for n in names))
    weights = ", ".join(f"{t.name}={t.weight:g}" for t in spec.tasks)
    lines.append(f"(task weights after skipping: {weights}; AUC and losses weighted by the sampling weight)")
    for s in skipped.values():
        lines.append(f"* {s.name} skipped in training (loss weight 0): {s.reason}")
    first = next(iter(results.values()), None)
    for task in spec.tasks:
        pos = None if first is None else first.per_task[task.name].get("positives")
        if task.kind == "binary" and task.name not in skipped and pos is not None and pos < min_reliable_positives:
            lines.append(f"! {task.name}: only {int(pos)} hold-out positives -- its AUC is too noisy to rank models on")
    return "\n".join(lines)


def verdict(results: Mapping[str, Evaluation], spec: Any, multi_task: Sequence[str],
            control: str = "single_task", baseline: str = "logistic") -> list[str]:
    """Plain sentences comparing the best multi-task model with the single-task control and the
    linear baseline -- including when multi-task loses, and when nothing can be compared."""
    scores = {n: summary_scores(ev, spec)[0] for n, ev in results.items()}
    ranked = [n for n in multi_task if scores.get(n) is not None]
    if not ranked:
        return ["No multi-task model has a defined weighted mean AUC on the hold-out (no binary task with a "
                "training signal and both classes in the hold-out): nothing can be compared or registered."]
    best = max(ranked, key=lambda n: scores[n])
    out = [f"Best multi-task architecture: {best} (weighted mean AUC {scores[best]:.4f})."]
    meaning = {control: "sharing parameters across tasks did not help on this data",
               baseline: "a linear model on the same inputs ranks better; the network adds nothing here"}
    for other, what in ((control, "the single-task control"), (baseline, "the logistic baseline")):
        ref = scores.get(other)
        if ref is None:
            continue
        diff = scores[best] - ref
        if diff > 0:
            out.append(f"It beats {what} ({other}, {ref:.4f}) by {diff:+.4f}.")
        else:
            out.append(f"It does NOT beat {what} ({other}, {ref:.4f}): {diff:+.4f} -- {meaning[other]}; "
                       f"do not read the multi-task model as an improvement over it.")
    return out


# --------------------------------------------------------------------------------------------
# MLflow pyfunc
# --------------------------------------------------------------------------------------------

def standardize(x_num: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``(x - mean) / std`` per column, float32 (the trainers' input)."""
    x = np.asarray(x_num, dtype=np.float64)
    return ((x - np.asarray(mean, dtype=np.float64)) / np.asarray(std, dtype=np.float64)).astype(np.float32)


def unstandardize(z: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Inverse of :func:`standardize` (the pyfunc input example is raw ``x_num``)."""
    return (np.asarray(z, dtype=np.float64) * np.asarray(std, dtype=np.float64)
            + np.asarray(mean, dtype=np.float64))


def _stack(values: Sequence[Any], width: int, name: str, dtype: Any) -> np.ndarray:
    rows = [np.asarray(v, dtype=np.float64).reshape(-1) for v in values]
    bad = [i for i, r in enumerate(rows) if r.shape[0] != width]
    if bad:
        raise ValueError(f"column {name}: every row must hold {width} values; row {bad[0]} has {rows[bad[0]].shape[0]}")
    return np.stack(rows).astype(dtype) if rows else np.zeros((0, width), dtype=dtype)


class ValueModelPyfunc(mlflow.pyfunc.PythonModel):
    """``predict(DataFrame[x_num: list[float], x_cat: list[int]]) -> DataFrame[<task>...]``.

    ``x_num`` is the *raw* vector of :func:`libs.strategy.impressions.impression_samples`
    (:data:`NUMERIC_FEATURES` order), ``x_cat`` its indices under the vocabulary saved with the
    model (artifact ``preprocessing``: ``mean``, ``std``, ``vocab``, ``untrained_tasks``).
    Output: probability per binary task, ``log1p`` USD for ``gmv``; NaN for a task that had no
    training signal (an untrained head's output is not a prediction). Artifacts: ``state_dict``
    (torch), ``config`` (JSON: kind, spec, arch), ``preprocessing`` (JSON). The class is imported
    from this package at load time: scoring images install the platform wheel, as every job does.
    """

    def load_context(self, context: Any) -> None:
        import torch

        from libs.strategy.multitask import MultiTaskSpec, build_model

        config = json.loads(Path(context.artifacts["config"]).read_text())
        prep = json.loads(Path(context.artifacts["preprocessing"]).read_text())
        self.model = build_model(str(config["kind"]), MultiTaskSpec.from_dict(config["spec"]), dict(config["arch"]))
        self.model.load_state_dict(torch.load(context.artifacts["state_dict"], map_location="cpu", weights_only=True))
        self.model.eval()
        self.mean, self.std = list(prep["mean"]), list(prep["std"])
        self.untrained = set(prep.get("untrained_tasks", []))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from libs.strategy.multitask import predict as mt_predict

        missing = [c for c in ("x_num", "x_cat") if c not in model_input.columns]
        if missing:
            raise ValueError(f"input lacks columns {missing}")
        spec = self.model.spec
        xn = _stack(list(model_input["x_num"]), spec.num_features, "x_num", np.float64)
        xc = _stack(list(model_input["x_cat"]), len(spec.categorical_cardinalities), "x_cat", np.int64)
        out = mt_predict(self.model, standardize(xn, self.mean, self.std), xc,
                         batch_size=int((params or {}).get("batch_size", 1024)))
        return pd.DataFrame({t: (np.full(len(out), np.nan) if t in self.untrained else out[:, k])
                             for k, t in enumerate(spec.task_names)}, index=model_input.index)


def pyfunc_input(x_num: np.ndarray, x_cat: np.ndarray) -> pd.DataFrame:
    """The pyfunc's input frame from raw ``(N, F)`` / ``(N, C)`` arrays (input example, tests, scorers)."""
    return pd.DataFrame({"x_num": [np.asarray(r, dtype=np.float64).tolist() for r in np.asarray(x_num)],
                         "x_cat": [np.asarray(r, dtype=np.int64).tolist() for r in np.asarray(x_cat)]})


def save_artifacts(folder: str | Path, model: Any, mean: Sequence[float], std: Sequence[float],
                   vocab: Mapping[str, Sequence[str]], untrained_tasks: Sequence[str] = ()) -> dict[str, str]:
    """Write the pyfunc's artifacts into ``folder``; returns ``{artifact name: path}`` for ``log_model``."""
    import torch

    module = getattr(model, "module", model)                # unwrap DistributedDataParallel
    if len(mean) != module.spec.num_features or len(std) != module.spec.num_features:
        raise ValueError(f"mean/std must have {module.spec.num_features} values")
    unknown = sorted(set(untrained_tasks) - set(module.spec.task_names))
    if unknown:
        raise ValueError(f"untrained_tasks names unknown tasks {unknown}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, folder / "state_dict.pt")
    (folder / "config.json").write_text(json.dumps(module.config(), indent=2))
    (folder / "preprocessing.json").write_text(json.dumps(
        {"numeric_features": list(NUMERIC_FEATURES) if len(mean) == len(NUMERIC_FEATURES) else None,
         "categorical_features": list(CATEGORICAL_FEATURES), "mean": [float(v) for v in mean],
         "std": [float(v) for v in std], "vocab": {k: list(v) for k, v in vocab.items()},
         "untrained_tasks": list(untrained_tasks)}, indent=2))
    return {"state_dict": str(folder / "state_dict.pt"), "config": str(folder / "config.json"),
            "preprocessing": str(folder / "preprocessing.json")}


def _pip_requirements() -> list[str]:
    # Pinned explicitly: MLflow's inference loads the model in a subprocess (slow) and cannot see
    # that the platform package provides the pyfunc class.
    import torch

    return [f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}",
            f"numpy=={np.__version__}", f"pandas=={pd.__version__}"]


def log_and_register(run: Any, model: Any, mean: Sequence[float], std: Sequence[float],
                     vocab: Mapping[str, Sequence[str]], untrained_tasks: Sequence[str], input_example: pd.DataFrame,
                     name: str) -> str:
    """Log ``model`` as the value-model pyfunc into ``run`` and register it as ``name``; returns the version.

    The analogue of :func:`libs.ml.registry.log_and_register` for the multi-task model: the
    signature is inferred from ``input_example`` (raw ``x_num``/``x_cat`` lists) and the pyfunc's
    own output on it. ``run`` must be the run whose metrics the promotion rule reads.
    """
    from mlflow.models import infer_signature

    run_id = run.info.run_id
    with tempfile.TemporaryDirectory(prefix="value-model-") as tmp:
        artifacts = save_artifacts(tmp, model, mean, std, vocab, untrained_tasks)
        probe = ValueModelPyfunc()            # a loaded instance only to infer the output schema (not logged)
        probe.load_context(SimpleNamespace(artifacts=artifacts))
        output = probe.predict(None, input_example)
        signature = infer_signature(input_example, output)
        active = mlflow.active_run()
        ctx = (mlflow.start_run(run_id=run_id, nested=active is not None)
               if active is None or active.info.run_id != run_id else None)
        try:
            info = mlflow.pyfunc.log_model(name="model", python_model=ValueModelPyfunc(), artifacts=artifacts, signature=signature,
                                           input_example=input_example, registered_model_name=name,
                                           pip_requirements=_pip_requirements())
        finally:
            if ctx is not None:
                mlflow.end_run()
    return str(info.registered_model_version)
