"""The champion/challenger rule and the pyfunc round trip, against a real MLflow sqlite store.

The store is the platform's own wiring (``libs.platform.tracking.experiment``) pointed at a
scratch lakehouse, so artifacts land in the explicit artifact location, not in ./mlruns.
"""
from __future__ import annotations

import mlflow
import numpy as np
import pytest
import torch

from libs.ml.registry import (TAG_COMPARED_TO, TAG_DECISION, TAG_REASON, example_frame, log_and_register,
                              promote_from_settings, promote_if_better)
from libs.ml.seqmodel import SequenceClassifier, predict

ALIAS = "champion"
METRIC = "macro_roc_auc"
PREFIX = "market_auc."


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(client, experiment_id, settings) of a fresh sqlite store; the global tracking URI is restored afterwards."""
    from libs.platform.config import load_settings
    from libs.platform.tracking import experiment

    root = tmp_path_factory.mktemp("mlflow_lakehouse")
    settings = load_settings("local", environ={"CGOV__LAKEHOUSE_ROOT": str(root)})
    previous = mlflow.get_tracking_uri()
    exp_id = experiment(settings, "ml-unit")
    try:
        yield mlflow.MlflowClient(), exp_id, settings
    finally:
        mlflow.set_tracking_uri(previous)


def _version(client, exp_id: str, name: str, metrics: dict[str, float], params: dict[str, str] | None = None) -> str:
    """A model version whose source run carries ``metrics`` (no model needed to test the rule)."""
    run = client.create_run(exp_id)
    for key, value in metrics.items():
        client.log_metric(run.info.run_id, key, value)
    for key, value in (params or {}).items():
        client.log_param(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    return str(client.create_model_version(name, source=f"runs:/{run.info.run_id}/model",
                                           run_id=run.info.run_id).version)


def _tags(client, name: str, version: str) -> dict[str, str]:
    return client.get_model_version(name, version).tags


def test_promotion_rule(store):
    client, exp_id, _ = store
    name = "rule_model"
    promote = dict(alias=ALIAS, metric_key=METRIC, per_market_key_prefix=PREFIX, tolerance=0.02)

    v1 = _version(client, exp_id, name, {METRIC: 0.80, f"{PREFIX}US": 0.80, f"{PREFIX}DE": 0.90})
    ok, reason = promote_if_better(client, name, v1, **promote)
    assert ok and "no 'champion' yet" in reason
    assert str(client.get_model_version_by_alias(name, ALIAS).version) == v1
    assert _tags(client, name, v1)[TAG_DECISION] == "promoted"

    # Better overall, but DE drops by 0.05 > 0.02: refused, alias unchanged, reason names the market.
    v2 = _version(client, exp_id, name, {METRIC: 0.85, f"{PREFIX}US": 0.90, f"{PREFIX}DE": 0.85})
    ok, reason = promote_if_better(client, name, v2, **promote)
    assert not ok and "DE" in reason and "US" not in reason and "0.02" in reason
    assert str(client.get_model_version_by_alias(name, ALIAS).version) == v1
    tags = _tags(client, name, v2)
    assert tags[TAG_DECISION] == "refused" and tags[TAG_REASON] == reason and tags[TAG_COMPARED_TO] == v1

    # Not strictly better (equal overall metric): refused even with every market better.
    v3 = _version(client, exp_id, name, {METRIC: 0.80, f"{PREFIX}US": 0.95, f"{PREFIX}DE": 0.95})
    ok, reason = promote_if_better(client, name, v3, **promote)
    assert not ok and "not better" in reason

    # Better overall; DE worse by exactly the tolerance (0.90 -> 0.88: float noise must not refuse it);
    # a new market (BR) the champion lacks does not block.
    v4 = _version(client, exp_id, name, {METRIC: 0.83, f"{PREFIX}US": 0.85, f"{PREFIX}DE": 0.88, f"{PREFIX}BR": 0.5})
    ok, reason = promote_if_better(client, name, v4, **promote)
    assert ok, reason
    assert str(client.get_model_version_by_alias(name, ALIAS).version) == v4
    assert _tags(client, name, v4)[TAG_DECISION] == "promoted"
    assert _tags(client, name, v1)["promotion.replaced_by"] == v4

    # A champion market missing from the challenger's metrics cannot be shown not to regress.
    v5 = _version(client, exp_id, name, {METRIC: 0.99, f"{PREFIX}US": 0.99})
    ok, reason = promote_if_better(client, name, v5, **promote)
    assert not ok and "['BR', 'DE']" in reason


def test_pyfunc_round_trip_through_the_registry(store, seq_spec, seq_data):
    client, exp_id, settings = store
    name = settings.section("ml")["creator_quality_model"]
    torch.manual_seed(3)
    model = SequenceClassifier(seq_spec.n_features, seq_spec.n_labels, hidden=8, kind="gru", max_len=seq_spec.max_len)
    hparams = {"kind": "gru", "hidden": 8, "lr": 0.01}
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_metric(METRIC, 0.7)
        version = log_and_register(run, model, seq_spec, hparams, example_frame(seq_data["seq"], seq_data["seq_len"]),
                                   name)
    mv = client.get_model_version(name, version)
    assert mv.run_id == run.info.run_id                       # the promotion rule reads metrics from here
    assert promote_from_settings(client, settings, version, METRIC, PREFIX)[0]    # alias from settings: champion

    loaded = mlflow.pyfunc.load_model(f"models:/{name}@{ALIAS}")
    assert [c.name for c in loaded.metadata.get_input_schema().inputs] == ["seq", "seq_len"]
    frame = example_frame(seq_data["seq"], seq_data["seq_len"], n=20)
    got = loaded.predict(frame)
    assert list(got.columns) == ["p_low_effort", "p_piracy", "p_matrix"] and len(got) == 20
    want = predict(model, seq_data["seq"][:20], seq_data["seq_len"][:20], torch.device("cpu"))
    np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-5, atol=1e-6)
    assert mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/sequence_spec.json") == seq_spec.to_dict()
    with pytest.raises(Exception, match="seq_len"):
        loaded.predict(frame.assign(seq_len=0))


def test_promotion_refuses_runs_scored_under_different_weights(store):
    client, exp_id, _ = store
    name = "weighted_model"
    promote = dict(alias=ALIAS, metric_key=METRIC, per_market_key_prefix=PREFIX, tolerance=0.02,
                   same_param_prefixes=("task_weight.",))
    v1 = _version(client, exp_id, name, {METRIC: 0.70, f"{PREFIX}US": 0.70},
                  {"task_weight.risk": "1.0", "task_weight.complaint": "1.0", "epochs": "5"})
    assert promote_if_better(client, name, v1, **promote)[0]
    # Far better, but its weighted mean AUC drops the complaint task (weight 0): not comparable.
    v2 = _version(client, exp_id, name, {METRIC: 0.90, f"{PREFIX}US": 0.90},
                  {"task_weight.risk": "1.0", "task_weight.complaint": "0.0", "epochs": "9"})
    ok, reason = promote_if_better(client, name, v2, **promote)
    assert not ok and "task_weight.complaint '0.0' vs '1.0'" in reason and "epochs" not in reason
    # Same weights (other params may differ): the ordinary rule applies and promotes.
    v3 = _version(client, exp_id, name, {METRIC: 0.90, f"{PREFIX}US": 0.90},
                  {"task_weight.risk": "1.0", "task_weight.complaint": "1.0", "epochs": "9"})
    assert promote_if_better(client, name, v3, **promote)[0]
