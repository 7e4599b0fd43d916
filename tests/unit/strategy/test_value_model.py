"""The ecosystem value model's job logic (libs/strategy/value_model.py) and the job's arguments
(jobs/ecosystem_value_model.py): weighted hold-out metrics computed by hand, task skipping when a
label has one class (and the honest look-alike: one positive is enough), standardisation and the
Parquet contract in Spark, the comparison table's wording when multi-task loses, and the MLflow
pyfunc round trip through a real sqlite registry.
"""
from __future__ import annotations

import argparse
import datetime as dt
import math

import numpy as np
import pytest
import torch
from pyspark.sql import types as T

from jobs import ecosystem_value_model as job
from libs.strategy import multitask as mt
from libs.strategy import value_model as vm

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def spec3(w_conv: float = 1.0, w_gmv: float = 1.0, w_eng: float = 1.0) -> mt.MultiTaskSpec:
    return mt.MultiTaskSpec(2, [2], [mt.TaskSpec("conversion", "binary", w_conv), mt.TaskSpec("gmv", "regression", w_gmv),
                                     mt.TaskSpec("engagement", "binary", w_eng)])


# --------------------------------------------------------------------------------------------
# Weighted metrics, by hand
# --------------------------------------------------------------------------------------------

def test_weighted_auc_counts_pairs_by_weight_and_ignores_unlabelled_rows():
    y = np.array([1, 0, 1, 0, np.nan])
    p = np.array([0.9, 0.8, 0.3, 0.1, 0.0])
    w = np.array([1, 2, 1, 1, 5])
    # Pairs (pos, neg) weighted w_i * w_j: 0.9 beats 0.8 (1*2) and 0.1 (1*1); 0.3 beats only 0.1 (1*1)
    # -> 4 of W_pos * W_neg = 2 * 3 = 6. Unweighted it would be 3/4; the NaN row must not count.
    assert vm.weighted_roc_auc(y, p, w) == pytest.approx(4 / 6)
    assert vm.weighted_roc_auc(y[:4], p[:4], np.ones(4)) == pytest.approx(0.75)
    # One class among the labelled rows (or a class with zero total weight): undefined, not 0.5.
    assert vm.weighted_roc_auc(np.array([0.0, 0.0, np.nan]), np.array([0.1, 0.2, 0.3]), np.ones(3)) is None
    assert vm.weighted_roc_auc(np.array([1.0, 0.0]), np.array([0.1, 0.2]), np.array([0.0, 1.0])) is None
    with pytest.raises(ValueError, match="0/1"):
        vm.weighted_roc_auc(np.array([2.0, 0.0]), np.array([0.1, 0.2]), np.ones(2))


def test_weighted_rmse_r2_and_log_loss_by_hand():
    y, p, w = np.array([0.0, 1.0, 2.0]), np.array([0.0, 0.0, 2.0]), np.array([1.0, 3.0, 1.0])
    rmse, r2 = vm.weighted_rmse_r2(y, p, w)
    # squared errors 0, 1, 0 weighted 1, 3, 1 -> MSE 3/5; weighted mean of y = (0 + 3 + 2)/5 = 1,
    # SS_tot = 1*1 + 3*0 + 1*1 = 2, SS_res = 3 -> R^2 = 1 - 3/2.
    assert rmse == pytest.approx(math.sqrt(0.6))
    assert r2 == pytest.approx(-0.5)
    assert vm.weighted_rmse_r2(np.array([1.0, 1.0]), np.array([1.0, 2.0]), np.ones(2))[1] is None   # SS_tot = 0
    ll = vm.weighted_log_loss(np.array([1.0, 0.0]), np.array([0.5, 0.25]), np.array([1.0, 3.0]))
    assert ll == pytest.approx((math.log(2) + 3 * -math.log(0.75)) / 4)


def test_evaluate_per_task_and_market_and_the_weighted_mean():
    spec = spec3(w_conv=2.0, w_gmv=1.0, w_eng=1.0)
    #              conv  gmv  eng
    y = np.array([[1.0, 2.0, 1.0],    # US
                  [0.0, 0.0, 0.0],    # US
                  [1.0, 1.0, np.nan],  # GB
                  [1.0, 0.0, 0.0]])   # GB
    pred = np.array([[0.9, 2.0, 0.2],
                     [0.2, 0.0, 0.6],
                     [0.1, 1.0, 0.5],
                     [0.7, 0.0, 0.4]])
    w = np.array([1.0, 1.0, 1.0, 1.0])
    ev = vm.evaluate(y, pred, w, np.array(["US", "US", "GB", "GB"]), spec)
    # conversion: positives 0.9, 0.1, 0.7 vs the negative 0.2 -> 2 of 3 pairs.
    assert ev.per_task["conversion"]["roc_auc"] == pytest.approx(2 / 3)
    assert ev.per_task["conversion"]["n"] == 4 and ev.per_task["conversion"]["positives"] == 3
    # engagement: the NaN row is left out; positive 0.2 vs negatives 0.6, 0.4 -> 0.
    assert ev.per_task["engagement"]["roc_auc"] == pytest.approx(0.0)
    assert ev.per_task["engagement"]["n"] == 3
    assert ev.per_task["gmv"]["rmse"] == pytest.approx(0.0) and ev.per_task["gmv"]["r2"] == pytest.approx(1.0)
    assert "roc_auc" not in ev.per_task["gmv"]
    # Per market: US conversion 0.9 vs 0.2 -> 1; GB conversion only positives -> None; GB engagement one row.
    assert ev.per_market == {"GB": {"conversion": None, "engagement": None},
                             "US": {"conversion": 1.0, "engagement": 0.0}}
    # Weighted mean over binary tasks: (2 * 2/3 + 1 * 0) / 3; US (2 * 1 + 0) / 3; GB: none defined.
    overall, markets = vm.summary_scores(ev, spec)
    assert overall == pytest.approx(4 / 9)
    assert markets == {"US": pytest.approx(2 / 3), "GB": None}
    flat = vm.flat_metrics(ev, spec, prefix="m.")
    assert flat["m.weighted_mean_auc"] == pytest.approx(4 / 9)
    assert flat["m.market_auc.US"] == pytest.approx(2 / 3) and "m.market_auc.GB" not in flat
    assert flat["m.conversion.market_auc.US"] == 1.0 and "m.conversion.market_auc.GB" not in flat


# --------------------------------------------------------------------------------------------
# Task skipping
# --------------------------------------------------------------------------------------------

def test_one_class_tasks_are_skipped_with_weight_zero_and_the_loss_stays_finite():
    spec = mt.MultiTaskSpec(2, [2], [mt.TaskSpec("conversion", "binary"), mt.TaskSpec("gmv", "regression"),
                                     mt.TaskSpec("engagement", "binary", 2.0), mt.TaskSpec("complaint", "binary"),
                                     mt.TaskSpec("risk", "binary")])
    nan = np.nan
    #              conv  gmv  eng  compl risk
    y = np.array([[0.0, 0.0, 1.0, nan, 0.0],
                  [0.0, 0.0, 0.0, nan, 0.0],
                  [0.0, 0.0, 0.0, nan, 1.0],     # risk: one positive among three is a signal (look-alike)
                  ], dtype=np.float32)
    statuses = vm.task_status(vm.label_stats(y, spec.task_names), spec)
    by = {s.name: s for s in statuses}
    assert [s.usable for s in statuses] == [False, False, True, False, True]
    assert by["conversion"].reason == "no positives among 3 training labels"
    assert by["gmv"].reason == "all 3 training labels equal 0"
    assert by["complaint"].reason == "no observed label"
    assert by["risk"].positives == 1 and by["risk"].reason == ""
    stricter = {s.name: s for s in vm.task_status(vm.label_stats(y, spec.task_names), spec, min_positives=2)}
    assert not stricter["risk"].usable
    assert stricter["risk"].reason == "only 1 positives among 3 training labels (fewer than 2)"
    assert stricter["engagement"].usable is False and stricter["gmv"].usable is False
    all_pos = vm.task_status({"conversion": {"observed": 4, "positives": 4, "min": 1.0, "max": 1.0},
                              "gmv": {"observed": 1, "positives": 0, "min": 3.0, "max": 3.0},
                              "engagement": {"observed": 2, "positives": 1, "min": 0.0, "max": 1.0},
                              "complaint": {"observed": 2, "positives": 1, "min": 0.0, "max": 1.0},
                              "risk": {"observed": 2, "positives": 1, "min": 0.0, "max": 1.0}}, spec)
    assert all_pos[0].reason == "all 4 training labels are positive"
    assert all_pos[1].reason == "1 observed label(s): nothing to fit"

    eff = vm.effective_spec(spec, statuses)
    assert [t.weight for t in eff.tasks] == [0.0, 0.0, 2.0, 0.0, 1.0]
    # The masked loss with these weights: only engagement and risk count, finite, no NaN from complaint.
    outputs = torch.zeros(3, 5)
    total, sums, counts = mt.MultiTaskLoss(eff)(outputs, torch.as_tensor(y))
    assert torch.isfinite(total)
    assert float(total) == pytest.approx(2.0 * math.log(2) + 1.0 * math.log(2), rel=1e-5)   # BCE at logit 0 = ln 2
    assert counts.tolist() == [3, 3, 3, 0, 3]
    with pytest.raises(ValueError, match="do not match"):
        vm.effective_spec(spec, statuses[:2])


def test_task_weights_override_policy_and_reject_unknown_tasks():
    spec = vm.with_task_weights(spec3(), {"engagement": 0.5})
    assert [t.weight for t in spec.tasks] == [1.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="unknown tasks"):
        vm.with_task_weights(spec3(), {"clicks": 1.0})


# --------------------------------------------------------------------------------------------
# Spark parts: creators as of a date, standardisation and the Parquet contract, label statistics
# --------------------------------------------------------------------------------------------

def test_spark_inputs_standardisation_and_label_stats(spark, tmp_path):
    D = dt.date
    creators = spark.createDataFrame(
        [("c1", "US", "beauty", D(2024, 1, 1), "2024-03-09"), ("c1", "GB", "food", D(2024, 1, 1), "2024-03-11"),
         ("c1", "DE", "toys", D(2024, 1, 1), "2024-03-12"),        # c1: the snapshot on/before as-of wins
         ("c2", "US", "tech", D(2024, 3, 5), "2024-03-13"),        # c2: only a later snapshot -> used
         ("c3", "US", "tech", D(2024, 3, 11), "2024-03-12")],      # c3: signed up after as-of -> absent
        "creator_id string, market string, category string, signup_date date, dt string")
    got = {r["creator_id"]: (r["market"], r["category"]) for r in vm.creators_as_of(creators, D(2024, 3, 10)).collect()}
    assert got == {"c1": ("US", "beauty"), "c2": ("US", "tech")}

    schema = T.StructType([T.StructField("event_id", T.StringType()), T.StructField("creator_id", T.StringType()),
                           T.StructField("market", T.StringType()),
                           T.StructField("x_num", T.ArrayType(T.FloatType())),
                           T.StructField("x_cat", T.ArrayType(T.IntegerType())),
                           T.StructField("conversion", T.FloatType()), T.StructField("complaint", T.FloatType()),
                           T.StructField("weight", T.FloatType())])
    nan = float("nan")
    rows = spark.createDataFrame([("e1", "c1", "US", [1.0, 5.0], [1], 0.0, nan, 10.0),
                                  ("e2", "c1", "US", [3.0, 5.0], [0], 1.0, 0.0, 1.0)], schema)
    mean, std = vm.feature_stats(rows, width=2)
    assert mean == [2.0, 5.0]
    assert std == [1.0, 1.0]            # column 0: population std of (1, 3) = 1; column 1 constant -> 1, not 0
    out = vm.standardized_rows(rows, [2.0, 5.0], [0.5, 1.0], n_cat=1, tasks=("conversion", "complaint"))
    got_rows = {r["event_id"]: (r["x_num"], r["x_cat"]) for r in out.collect()}
    assert got_rows == {"e1": ([-2.0, 0.0], [1]), "e2": ([2.0, 0.0], [0])}
    stats = vm.label_stats_frame(out, ("conversion", "complaint"))
    assert stats == {"conversion": {"observed": 2.0, "positives": 1.0, "min": 0.0, "max": 1.0},
                     "complaint": {"observed": 1.0, "positives": 0.0, "min": 0.0, "max": 0.0}}

    short = spark.createDataFrame([("e3", "c1", "US", [1.0], [1], 0.0, 0.0, 1.0)], schema)
    bad = vm.standardized_rows(short, [2.0, 5.0], [1.0, 1.0], n_cat=1, tasks=("conversion", "complaint"))
    with pytest.raises(ValueError, match="value-model contract violated.*e3"):
        vm.write_rows(bad, tmp_path / "bad", num_files=1)
    assert not (tmp_path / "bad").exists()


# --------------------------------------------------------------------------------------------
# Table and verdict wording
# --------------------------------------------------------------------------------------------

def _ev(conv_auc: float | None) -> vm.Evaluation:
    return vm.Evaluation({"conversion": {"roc_auc": conv_auc, "log_loss": 0.5},
                          "gmv": {"rmse": 1.0, "r2": 0.1}, "engagement": {"roc_auc": None, "log_loss": None}},
                         {"US": {"conversion": conv_auc, "engagement": None}})


def test_verdict_says_plainly_when_multi_task_loses():
    spec = spec3(w_eng=0.0)
    statuses = vm.task_status(vm.label_stats(np.array([[0, 0, 0], [1, 1, 0]], dtype=float), spec.task_names), spec)
    results = {"constant": _ev(0.5), "logistic": _ev(0.60), "single_task": _ev(0.70), "mmoe": _ev(0.65),
               "ple": _ev(0.66)}
    lines = vm.verdict(results, spec, ["mmoe", "ple"])
    assert lines[0] == "Best multi-task architecture: ple (weighted mean AUC 0.6600)."
    assert lines[1].startswith("It does NOT beat the single-task control (single_task, 0.7000): -0.0400 -- sharing")
    assert lines[2] == "It beats the logistic baseline (logistic, 0.6000) by +0.0600."
    worse = vm.verdict({**results, "logistic": _ev(0.9)}, spec, ["mmoe", "ple"])
    assert worse[2].startswith("It does NOT beat the logistic baseline (logistic, 0.9000): -0.2400 -- a linear model")
    table = vm.comparison_table(results, spec, statuses)
    assert "engagement *" in table and "* engagement skipped in training (loss weight 0): no positives" in table
    assert "0.6600" in table and "n/a" in table
    assert vm.verdict({"mmoe": _ev(None)}, spec, ["mmoe"])[0].startswith("No multi-task model has a defined")
    assert "hold-out positives" not in table                  # _ev carries no counts: no warning invented
    few = {"mmoe": vm.Evaluation({**_ev(0.7).per_task, "conversion": {"roc_auc": 0.7, "positives": 29.0}}, {})}
    assert "! conversion: only 29 hold-out positives" in vm.comparison_table(few, spec, statuses)
    enough = {"mmoe": vm.Evaluation({**_ev(0.7).per_task, "conversion": {"roc_auc": 0.7, "positives": 30.0}}, {})}
    assert "hold-out positives" not in vm.comparison_table(enough, spec, statuses)


# --------------------------------------------------------------------------------------------
# The pyfunc round trip
# --------------------------------------------------------------------------------------------

def test_pyfunc_round_trip_matches_predict(tmp_path):
    import mlflow

    from libs.platform.config import load_settings
    from libs.platform.tracking import experiment

    torch.set_num_threads(1)
    spec = spec3()
    rng = np.random.default_rng(0)
    raw = rng.normal(loc=[10.0, -3.0], scale=[4.0, 0.5], size=(64, 2))
    x_cat = rng.integers(0, 3, size=(64, 1))
    mean, std = raw.mean(0).tolist(), raw.std(0).tolist()
    z = vm.standardize(raw, mean, std)
    y = np.stack([(z[:, 0] > 0).astype(np.float32), z[:, 1].astype(np.float32),
                  np.zeros(64, np.float32)], axis=1)           # engagement: one class -> untrained
    model, _ = mt.fit_arrays({"x_num": z, "x_cat": x_cat, "y": y}, "mmoe", spec,
                             {"epochs": 2, "expert_units": 4, "n_experts": 2, "tower_units": 4, "batch_size": 32})
    expected = mt.predict(model, z, x_cat)

    settings = load_settings("local", environ={"CGOV__LAKEHOUSE_ROOT": str(tmp_path)})
    previous = mlflow.get_tracking_uri()
    try:
        exp_id = experiment(settings, "value-model-test")
        frame = vm.pyfunc_input(raw[:5], x_cat[:5])
        with mlflow.start_run(experiment_id=exp_id) as run:
            version = vm.log_and_register(run, model, mean, std, {"market": ["US"]}, ["engagement"],
                                          vm.pyfunc_input(raw[:3], x_cat[:3]), "value_test")
        loaded = mlflow.pyfunc.load_model(f"models:/value_test/{version}")
        out = loaded.predict(frame)
    finally:
        mlflow.set_tracking_uri(previous)
    assert list(out.columns) == ["conversion", "gmv", "engagement"]
    np.testing.assert_allclose(out[["conversion", "gmv"]].to_numpy(), expected[:5, :2], rtol=1e-5, atol=1e-6)
    assert out["engagement"].isna().all()
    assert not np.allclose(expected[:5, 0], mt.predict(model, raw[:5].astype(np.float32), x_cat[:5])[:, 0])
    with pytest.raises(Exception, match="x_num"):
        loaded.predict(frame.drop(columns=["x_num"]))


# --------------------------------------------------------------------------------------------
# The job's arguments
# --------------------------------------------------------------------------------------------

def test_arg_parser_defaults_and_validation():
    a = job.arg_parser().parse_args(["--run-date", "2026-11-01"])
    # Unset knobs stay None: main() takes them from strategy.value_model of the environment's settings.
    assert (a.run_date, a.env, a.label_days, a.kinds, a.epochs, a.budget, a.sample_rate, a.num_processes) == (
        dt.date(2026, 11, 1), "local", None, ("single_task", "shared_bottom", "mmoe", "ple"), None, None, None, None)
    assert (a.signal_window, a.complaint_horizon_days, a.task_weights, a.min_positives, a.model_name, a.seed) == (
        28, None, None, None, None, 0)
    a = job.arg_parser().parse_args(["--run-date", "2026-11-01", "--label-days", "3", "--kinds", "mmoe, ple",
                                     "--epochs", "2", "--budget", "5000", "--sample-rate", "0.5",
                                     "--num-processes", "2", "--task-weights", "conversion=2,risk=0.5"])
    assert (a.label_days, a.kinds, a.epochs, a.budget, a.sample_rate, a.num_processes, a.task_weights) == (
        3, ("mmoe", "ple"), 2, 5000, 0.5, 2, {"conversion": 2.0, "risk": 0.5})
    for bad in (["--kinds", "mmoe,gbdt"], ["--kinds", "mmoe,mmoe"], ["--sample-rate", "0"], ["--epochs", "0"],
                ["--task-weights", "clicks=1"], ["--task-weights", "risk=-1"], ["--label-days", "x"]):
        with pytest.raises(SystemExit):
            job.arg_parser().parse_args(["--run-date", "2026-11-01", *bad])
    with pytest.raises(argparse.ArgumentTypeError):
        job.parse_kinds("")
