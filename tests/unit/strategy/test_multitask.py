"""Multi-task value models (libs/strategy/multitask.py): shapes, gates, PLE vs MMoE wiring, the masked
weighted loss checked by hand, learning on a planted two-task problem, budgets, validation, and the
TorchDistributor rank function run as a single rank on a tiny Parquet dataset.

The spec used throughout: 3 numeric inputs, two categorical columns of cardinality 4 and 2
(valid indices 0..4 and 0..2, 0 = unknown), tasks ``conv`` (binary) and ``gmv`` (regression).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from libs.ml.distributed import load_rank_result, write_rank_result
from libs.strategy import multitask as mt

pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning:petastorm"), pytest.mark.usefixtures("one_torch_thread")]

LN2 = math.log(2.0)


def make_spec(w_conv: float = 1.0, w_gmv: float = 1.0) -> mt.MultiTaskSpec:
    return mt.MultiTaskSpec(3, [4, 2], [mt.TaskSpec("conv", "binary", w_conv), mt.TaskSpec("gmv", "regression", w_gmv)])


def batch(n: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x_num = torch.randn(n, 3, generator=g)
    x_cat = torch.stack([torch.randint(0, 5, (n,), generator=g), torch.randint(0, 3, (n,), generator=g)], 1)
    return x_num, x_cat


# ----------------------------------------------------------------------------------------------
# Shapes, gates, structure
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", mt.KINDS)
def test_every_architecture_returns_one_output_per_task(kind):
    spec = make_spec()
    model = mt.build_model(kind, spec, {"n_experts": 3}).eval()
    x_num, x_cat = batch(5)
    out = model(x_num, x_cat)
    assert out.shape == (5, 2) and torch.isfinite(out).all()
    raw = mt.predict_outputs(model, x_num.numpy(), x_cat.numpy())
    # Batches of 2 vs 5 may differ in the last float bit (BLAS blocking), nothing more.
    p = mt.predict(model, x_num.numpy(), x_cat.numpy(), batch_size=2)
    assert p.shape == (5, 2)
    # conv is binary: probability = sigmoid(logit); gmv is regression: the raw value, untouched.
    np.testing.assert_allclose(p[:, 0], 1 / (1 + np.exp(-raw[:, 0])), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p[:, 1], raw[:, 1], rtol=1e-5, atol=1e-6)
    assert ((p[:, 0] > 0) & (p[:, 0] < 1)).all()


def test_gate_distributions_are_softmax_of_the_documented_size():
    spec = make_spec()
    x_num, x_cat = batch(7)
    mmoe = mt.build_model("mmoe", spec, {"n_experts": 3}).eval()
    _, gates = mmoe.forward_with_gates(x_num, x_cat)
    assert set(gates) == {"task:conv", "task:gmv"}
    # 2 levels, 2 task experts per task, 1 shared: task gates see own 2 + shared 1 = 3 experts; the
    # intermediate shared gate sees all 2*2 + 1 = 5; the last level has no shared gate.
    ple = mt.build_model("ple", spec, {"ple_levels": 2, "ple_task_experts": 2, "ple_shared_experts": 1}).eval()
    _, ple_gates = ple.forward_with_gates(x_num, x_cat)
    expected = {"level0:task:conv": 3, "level0:task:gmv": 3, "level0:shared": 5, "level1:task:conv": 3,
                "level1:task:gmv": 3}
    assert {k: v.shape[1] for k, v in ple_gates.items()} == expected
    for g in [*gates.values(), *ple_gates.values()]:
        assert g.shape[0] == 7 and (g >= 0).all()
        torch.testing.assert_close(g.sum(1), torch.ones(7))
    assert mmoe.forward_with_gates(x_num, x_cat)[0].shape == (7, 2)
    for kind in ("single_task", "shared_bottom"):
        assert mt.build_model(kind, spec).forward_with_gates(x_num, x_cat)[1] == {}


def test_ple_with_one_level_and_no_task_experts_is_exactly_mmoe():
    """Documented: such a PLE is the paper's degenerate CGC = MMoE (same parameters, same function)."""
    spec = make_spec()
    mmoe = mt.build_model("mmoe", spec, {"n_experts": 3}).eval()
    ple = mt.build_model("ple", spec, {"ple_levels": 1, "ple_task_experts": 0, "ple_shared_experts": 3}).eval()
    shapes = [tuple(p.shape) for p in mmoe.parameters()]
    assert shapes == [tuple(p.shape) for p in ple.parameters()]
    with torch.no_grad():
        for src, dst in zip(mmoe.parameters(), ple.parameters()):
            dst.copy_(src)
    x_num, x_cat = batch(6)
    torch.testing.assert_close(ple(x_num, x_cat), mmoe(x_num, x_cat), rtol=0, atol=0)
    # ... and it has no shared gate (a single level is the last level).
    assert ple.levels[0].shared_gate is None


def test_ple_task_experts_are_private_within_a_level_but_reach_other_tasks_through_the_shared_gate():
    """The structural differences from MMoE: a task's gate cannot select another task's experts within a
    level; across levels, the intermediate shared gate selects over all experts (so information flows)."""
    spec = make_spec()
    x_num, x_cat = batch(6)

    def effect(model: mt.MultiTaskModel, expert: torch.nn.Module) -> torch.Tensor:
        before = model(x_num, x_cat).detach().clone()
        with torch.no_grad():
            for p in expert.parameters():
                p.add_(0.5)
        return (model(x_num, x_cat) - before).abs().max(0).values     # per task

    torch.manual_seed(0)
    one = mt.build_model("ple", spec, {"ple_levels": 1, "ple_task_experts": 1, "ple_shared_experts": 1}).eval()
    change = effect(one, one.levels[0].task_experts[1][0])            # gmv's private expert
    assert change[0] == 0.0 and change[1] > 0                         # conv untouched, gmv moved

    torch.manual_seed(0)
    two = mt.build_model("ple", spec, {"ple_levels": 2, "ple_task_experts": 1, "ple_shared_experts": 1}).eval()
    change = effect(two, two.levels[0].task_experts[1][0])
    assert change[0] > 0 and change[1] > 0                            # via level0:shared -> level 1

    torch.manual_seed(0)
    mmoe = mt.build_model("mmoe", spec, {"n_experts": 2}).eval()
    change = effect(mmoe, mmoe.experts[1])                            # MMoE: every gate sees every expert
    assert change[0] > 0 and change[1] > 0


def test_single_task_shares_nothing_between_tasks():
    spec = make_spec()
    model = mt.build_model("single_task", spec).eval()
    x_num, x_cat = batch(4)
    before = model(x_num, x_cat).detach().clone()
    with torch.no_grad():
        for p in [*model.inputs[1].parameters(), *model.bottoms[1].parameters()]:
            p.add_(0.5)
    after = model(x_num, x_cat)
    assert torch.equal(after[:, 0], before[:, 0]) and not torch.equal(after[:, 1], before[:, 1])


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------

def test_categorical_indices_outside_zero_to_cardinality_raise():
    model = mt.build_model("shared_bottom", make_spec()).eval()
    x_num = torch.zeros(2, 3)
    model(x_num, torch.tensor([[4, 2], [0, 0]]))                       # the largest valid index and "unknown"
    with pytest.raises(ValueError, match=r"column 0 has index 5 outside 0\.\.4"):
        model(x_num, torch.tensor([[5, 0], [0, 0]]))
    with pytest.raises(ValueError, match=r"column 1 has index -1 outside 0\.\.2"):
        model(x_num, torch.tensor([[1, 0], [1, -1]]))
    with pytest.raises(ValueError, match="x_cat must be"):
        model(x_num, torch.tensor([[1], [1]]))
    with pytest.raises(ValueError, match="x_num column 2 contains NaN"):
        model(torch.tensor([[0.0, 0.0, float("nan")], [0.0, 0.0, 0.0]]), torch.tensor([[1, 1], [1, 1]]))
    with pytest.raises(ValueError, match="integer indices"):
        mt.predict(model, np.zeros((2, 3)), np.array([[1.5, 0.0], [0.0, 0.0]]))


# ----------------------------------------------------------------------------------------------
# Loss: hand-computed values and gradients
# ----------------------------------------------------------------------------------------------

OUT = torch.tensor([[0.0, 1.0], [0.0, 3.0], [5.0, 0.0]])
LAB = torch.tensor([[1.0, 0.0], [0.0, float("nan")], [float("nan"), 2.0]])
# conv: rows 1-2 observed, logits 0 -> BCE ln 2 each, mean ln 2 (row 3's logit 5 is masked).
# gmv : rows 1 and 3 observed, residuals 1 and -2 -> MSE (1 + 4) / 2 = 2.5; Huber(1): (0.5 + 1.5) / 2 = 1.0.


def test_loss_is_the_task_weighted_sum_of_masked_means():
    total, sums, counts = mt.MultiTaskLoss(make_spec(2.0, 0.5))(OUT, LAB)
    assert total.item() == pytest.approx(2.0 * LN2 + 0.5 * 2.5, rel=1e-6)
    torch.testing.assert_close(sums, torch.tensor([2 * LN2, 5.0]))
    torch.testing.assert_close(counts, torch.tensor([2.0, 2.0]))
    # Weights are the policy knob: doubling one task's weight adds exactly that task's loss once more.
    assert mt.MultiTaskLoss(make_spec(4.0, 0.5))(OUT, LAB)[0].item() == pytest.approx(4 * LN2 + 1.25, rel=1e-6)
    assert mt.MultiTaskLoss(make_spec(2.0, 0.0))(OUT, LAB)[0].item() == pytest.approx(2 * LN2, rel=1e-6)


def test_huber_and_pos_weight_by_hand():
    huber = mt.MultiTaskLoss(make_spec(2.0, 0.5), regression_loss="huber", huber_delta=1.0)
    assert huber(OUT, LAB)[0].item() == pytest.approx(2 * LN2 + 0.5 * 1.0, rel=1e-6)
    # pos_weight 3 on conv: the positive row's BCE triples -> (3 ln 2 + ln 2) / 2 = 2 ln 2.
    weighted = mt.MultiTaskLoss(make_spec(2.0, 0.5), pos_weight={"conv": 3.0})
    assert weighted(OUT, LAB)[0].item() == pytest.approx(2 * 2 * LN2 + 1.25, rel=1e-6)
    with pytest.raises(ValueError, match="not binary tasks"):
        mt.MultiTaskLoss(make_spec(), pos_weight={"gmv": 2.0})


def test_a_nan_label_contributes_zero_gradient_by_hand():
    z = torch.tensor([[0.3, 1.0], [-0.7, 2.0], [1.2, -1.0]], requires_grad=True)
    y = torch.tensor([[1.0, float("nan")], [0.0, 0.5], [float("nan"), 1.5]])
    total, _, _ = mt.MultiTaskLoss(make_spec())(z, y)
    total.backward()
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    # d/dz mean_BCE over the 2 observed rows = (sigmoid(z) - y) / 2; d/dz mean_MSE = 2 (z - y) / 2.
    expected = torch.tensor([[(sig(0.3) - 1.0) / 2, 0.0],
                             [(sig(-0.7) - 0.0) / 2, 2 * (2.0 - 0.5) / 2],
                             [0.0, 2 * (-1.0 - 1.5) / 2]])
    torch.testing.assert_close(z.grad, expected)
    assert z.grad[0, 1].item() == 0.0 and z.grad[2, 0].item() == 0.0


def test_a_row_without_labels_leaves_the_parameter_gradient_unchanged():
    spec = make_spec()
    model = mt.build_model("mmoe", spec, {"dropout": 0.0}).eval()
    loss = mt.MultiTaskLoss(spec)
    x_num, x_cat = batch(2)

    def grads(rows: slice, labels: torch.Tensor) -> list[torch.Tensor]:
        model.zero_grad()
        loss(model(x_num[rows], x_cat[rows]), labels)[0].backward()
        return [p.grad.clone() for p in model.parameters()]

    alone = grads(slice(0, 1), torch.tensor([[1.0, 0.5]]))
    with_nan_row = grads(slice(0, 2), torch.tensor([[1.0, 0.5], [float("nan"), float("nan")]]))
    for a, b in zip(alone, with_nan_row):
        torch.testing.assert_close(a, b)


def test_invalid_labels_raise():
    loss = mt.MultiTaskLoss(make_spec())
    with pytest.raises(ValueError, match=r"'conv' \(binary\) has label 2.0"):
        loss(torch.zeros(1, 2), torch.tensor([[2.0, 0.0]]))
    with pytest.raises(ValueError, match=r"'gmv' \(regression\) has label inf"):
        loss(torch.zeros(1, 2), torch.tensor([[1.0, float("inf")]]))
    with pytest.raises(ValueError, match="must both be"):
        loss(torch.zeros(2, 2), torch.zeros(2, 3))
    # A batch where a task has no observed label: that task adds 0 (not NaN).
    total, _, counts = loss(torch.zeros(1, 2), torch.tensor([[float("nan"), 1.0]]))
    assert counts[0].item() == 0 and total.item() == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------
# Learning on a planted problem
# ----------------------------------------------------------------------------------------------

def planted(n: int, seed: int) -> dict[str, np.ndarray]:
    """conv = [x0 + 1.5 * (cat0 == 2) > 0.5] (30 % of its labels missing); gmv = 2 x1 + noise.

    The tasks are independent, so a model that swapped or mixed its outputs fails the cross checks.
    """
    rng = np.random.default_rng(seed)
    x_num = rng.normal(size=(n, 3)).astype(np.float32)
    x_cat = np.stack([rng.integers(0, 5, n), rng.integers(0, 3, n)], 1)
    conv = (x_num[:, 0] + 1.5 * (x_cat[:, 0] == 2) > 0.5).astype(np.float32)
    gmv = (2.0 * x_num[:, 1] + rng.normal(scale=0.1, size=n)).astype(np.float32)
    y = np.stack([conv, gmv], 1)
    y[rng.random(n) < 0.3, 0] = np.nan
    return {"x_num": x_num, "x_cat": x_cat, "y": y, "conv": conv, "gmv": gmv}


@pytest.mark.parametrize("kind", mt.KINDS)
def test_every_architecture_learns_both_planted_tasks(kind):
    train, test = planted(600, seed=1), planted(300, seed=2)
    model, history = mt.fit_arrays(train, kind, make_spec(),
                                   {"epochs": 30, "patience": 4, "lr": 3e-3, "batch_size": 64, "device": "cpu"})
    p = mt.predict(model, test["x_num"], test["x_cat"])
    # A working model ranks conv almost perfectly (the rule is deterministic; ignoring the
    # categorical input alone drops it to ~0.93) and explains > 90 % of gmv's variance (noise is 0.25 %).
    assert roc_auc_score(test["conv"], p[:, 0]) > 0.95
    r2 = 1 - np.mean((p[:, 1] - test["gmv"]) ** 2) / np.var(test["gmv"])
    assert r2 > 0.9
    # Outputs belong to their own task: conv's score carries no information about gmv and vice versa.
    assert abs(roc_auc_score(test["gmv"] > 0, p[:, 0]) - 0.5) < 0.15
    assert abs(np.corrcoef(p[:, 1], test["conv"])[0, 1]) < 0.25
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["val_loss"]) for r in history)


def test_fit_arrays_stops_early_and_restores_the_best_epoch():
    train, val = planted(400, seed=3), planted(200, seed=4)
    arrays = {**{k: train[k] for k in ("x_num", "x_cat", "y")},
              "x_num_val": val["x_num"], "x_cat_val": val["x_cat"], "y_val": val["y"]}
    spec = make_spec()
    # lr this high overfits/oscillates quickly, so patience ends training before the epoch limit.
    model, history = mt.fit_arrays(arrays, "shared_bottom", spec,
                                   {"epochs": 60, "patience": 2, "lr": 0.05, "batch_size": 32, "device": "cpu"})
    best = [r for r in history if r["best"]]
    assert len(best) == 1
    best_epoch = best[0]["epoch"]
    assert best[0]["val_loss"] == min(r["val_loss"] for r in history)
    assert len(history) < 60                                    # it did stop early ...
    assert len(history) == best_epoch + 2 + 1                   # ... exactly `patience` epochs after the best
    restored, _ = mt.evaluate_loss(model, val["x_num"], val["x_cat"], val["y"], mt.loss_for(spec))
    assert restored == pytest.approx(best[0]["val_loss"], rel=1e-5)


# ----------------------------------------------------------------------------------------------
# Hyper-parameters, specs, budgets
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, match", [
    ({"n_expert": 4}, "unknown hyper-parameters"),
    ({"dropout": 1.0}, "dropout"),
    ({"n_experts": 0}, "n_experts"),
    ({"ple_levels": 0}, "ple_levels"),
    ({"ple_task_experts": -1}, "ple_task_experts"),
    ({"expert_units": 2.5}, "expert_units"),
    ({"regression_loss": "l1"}, "regression_loss"),
    ({"device": "tpu"}, "device"),
    ({"lr": 0.0}, "lr"),
    ({"pos_weight": [2.0]}, "pos_weight"),
    ({"pos_weight": {"conv": -1.0}}, "pos_weight"),
    ({"val_fraction": 1.0}, "val_fraction"),
])
def test_hparam_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        mt.resolve_hparams(bad)


def test_spec_validation_and_round_trip():
    spec = make_spec(2.0, 0.5)
    assert mt.MultiTaskSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="kind must be one of"):
        mt.TaskSpec("a", "ranking")
    with pytest.raises(ValueError, match="identifier"):
        mt.TaskSpec("bad name", "binary")
    with pytest.raises(ValueError, match="collides"):
        mt.TaskSpec("x_num", "binary")
    with pytest.raises(ValueError, match="weight"):
        mt.TaskSpec("a", "binary", -1.0)
    with pytest.raises(ValueError, match="distinct"):
        mt.MultiTaskSpec(1, [], [mt.TaskSpec("a", "binary"), mt.TaskSpec("a", "regression")])
    with pytest.raises(ValueError, match="cardinalities"):
        mt.MultiTaskSpec(1, [0], [mt.TaskSpec("a", "binary")])
    with pytest.raises(ValueError, match="lacks"):
        mt.MultiTaskSpec.from_dict({"num_features": 1})
    with pytest.raises(ValueError, match="kind must be one of"):
        mt.build_model("moe", spec)


def test_parameter_counts_match_a_closed_form():
    """Embeddings (4+1)*4 + (2+1)*4 = 32; input width D = 3 + 2*4 = 11; u = 10 units; towers:
    (u+1)*16 + (16+1) = 193 each. shared_bottom: 32 + (11+1)*10 + 2*193 = 538.
    mmoe (3 experts): 32 + 3*120 + 2 gates*(11*3+3) + 2*193 = 850."""
    spec = make_spec()
    assert mt.count_parameters(mt.build_model("shared_bottom", spec, {"expert_units": 10})) == 538
    assert mt.count_parameters(mt.build_model("mmoe", spec, {"expert_units": 10, "n_experts": 3})) == 850


def test_budget_matching_gives_every_architecture_about_the_same_size():
    spec, budget = make_spec(), 20_000
    for kind, hp in mt.match_budget(spec, budget).items():
        units = hp["expert_units"]
        count = lambda u: mt.count_parameters(mt.build_model(kind, spec, {**hp, "expert_units": u}))  # noqa: E731
        assert abs(count(units) - budget) / budget < 0.03, kind
        # ... and no neighbouring width is closer (the search found the best width, not just a good one).
        assert abs(count(units) - budget) <= abs(count(units + 1) - budget)
        if units > 1:
            assert abs(count(units) - budget) <= abs(count(units - 1) - budget)
    with pytest.raises(ValueError, match="above the budget"):
        mt.units_for_budget("ple", spec, 50)


# ----------------------------------------------------------------------------------------------
# Payloads and the distributed rank function
# ----------------------------------------------------------------------------------------------

def test_model_from_payload_restores_identical_predictions(tmp_path):
    data = planted(200, seed=5)
    model, _ = mt.fit_arrays(data, "ple", make_spec(), {"epochs": 2, "device": "cpu"})
    write_rank_result(tmp_path, {"config": model.config(), "state_dict": mt.cpu_state_dict(model)}, rank=0)
    restored = mt.model_from_payload(load_rank_result(tmp_path, 0))
    np.testing.assert_array_equal(mt.predict(restored, data["x_num"], data["x_cat"]),
                                  mt.predict(model, data["x_num"], data["x_cat"]))
    with pytest.raises(ValueError, match="config/state_dict"):
        mt.model_from_payload({"state_dict": {}})


def write_parquet(folder, data: dict[str, np.ndarray], files: int = 2) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir()
    n = len(data["y"])
    for i, rows in enumerate(np.array_split(np.arange(n), files)):
        table = pa.table({
            "x_num": pa.array([r.tolist() for r in data["x_num"][rows]], type=pa.list_(pa.float32())),
            "x_cat": pa.array([r.tolist() for r in data["x_cat"][rows]], type=pa.list_(pa.int32())),
            "conv": pa.array(data["y"][rows, 0], type=pa.float32()),
            "gmv": pa.array(data["y"][rows, 1], type=pa.float32()),
        })
        pq.write_table(table, folder / f"part-{i}.parquet")
    return folder.resolve().as_uri()


def test_train_multitask_as_a_single_rank_writes_a_loadable_result(tmp_path, monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    data = planted(96, seed=6)
    url = write_parquet(tmp_path / "ds", data)
    spec = make_spec()
    arrays = mt.read_multitask_arrays(url, spec)             # the contract reads back as written
    np.testing.assert_array_equal(arrays["x_num"], data["x_num"])
    np.testing.assert_array_equal(arrays["x_cat"], data["x_cat"])
    np.testing.assert_array_equal(arrays["y"], data["y"])     # NaN == NaN for assert_array_equal

    hp = {"epochs": 3, "batch_size": 16, "lr": 0.01, "reader_workers": 1, "device": "cpu", "seed": 3}
    mt.train_multitask(url, spec.to_dict(), "mmoe", hp, str(tmp_path / "result"))
    payload = load_rank_result(tmp_path / "result", 0)
    assert (tmp_path / "result" / "rank-0.pt").is_file()
    assert payload["rank"] == 0 and payload["world_size"] == 1 and payload["kind"] == "mmoe"
    assert mt.MultiTaskSpec.from_dict(payload["spec"]) == spec
    history = payload["history"]
    assert [r["rows"] for r in history] == [96, 96, 96]         # one rank reads every row once per epoch
    # NaN labels went through Petastorm and were masked: every per-task loss is finite.
    assert all(math.isfinite(v) for r in history for v in r["task_loss"].values())
    model = mt.model_from_payload(payload)
    p = mt.predict(model, data["x_num"], data["x_cat"])
    assert p.shape == (96, 2) and np.isfinite(p).all()
    torch.manual_seed(hp["seed"])                               # the rank's seeded initialisation ...
    fresh = mt.build_model("mmoe", spec, hp)                    # ... which training must have moved
    assert any(not torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    with pytest.raises(ValueError, match="kind must be one of"):
        mt.train_multitask(url, spec.to_dict(), "moe", hp, str(tmp_path / "other"))
