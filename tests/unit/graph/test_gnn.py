"""The relation-aware GNN of libs/graph/gnn.py: sampler on a hand-made typed graph, model masking,
a planted rule only the graph can learn, the boosting features, the Parquet contract and the pyfunc.

The tiny graph (creators c1..c6):

* device d1 shared by c1, c2, c3 (c1 seen twice: login + device snapshot); d2 by c4 and c6,
  where c6 is *banned* -- the ban-evasion shape;
* IP /24 ``h`` used by c1..c4: a hub above ``max_resource_creators=3`` -- the honest look-alike
  (public NAT) that must link nobody; IP ``i1`` shared by c4 and c5;
* payout p1 shared by c1, c2; p2 by c1, c2, c3 (so c1-c2 share two, c1-c3 / c2-c3 one);
* audience: users u1, u2 engage c1's video and follow c2 (2 shared users: linked); u3 engages
  c1 and c3 (1 shared user: chance, not linked); u4 engages c1, c2 and c3 (a heavy browser above
  ``max_user_creators=2``: skipped);
* persona: c4's own user account engages c3's video twice.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from pyspark.testing import assertDataFrameEqual

from libs.graph import gnn
from schemas import creator_signals as signals_schema

pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning:petastorm"), pytest.mark.usefixtures("one_torch_thread")]

RUN = dt.date(2026, 11, 1)
EDGE_SCHEMA = "src string, dst string, edge_type string, weight double"
PAIR_SCHEMA = "relation string, src string, dst string, strength double"


@pytest.fixture(scope="module")
def edges(spark):
    c = lambda i: f"creator:c{i}"  # noqa: E731
    rows = [
        (c(1), "device:d1", "uses_device", 3.0), (c(1), "device:d1", "uses_device", 0.0),
        (c(2), "device:d1", "uses_device", 1.0), (c(3), "device:d1", "uses_device", 1.0),
        (c(4), "device:d2", "uses_device", 1.0), (c(6), "device:d2", "uses_device", 0.0),
        *[(c(i), "ip:h", "logs_in_from", 1.0) for i in (1, 2, 3, 4)],
        (c(4), "ip:i1", "logs_in_from", 1.0), (c(5), "ip:i1", "logs_in_from", 1.0),
        (c(1), "payment:p1", "pays_to", 1.0), (c(2), "payment:p1", "pays_to", 1.0),
        (c(1), "payment:p2", "pays_to", 1.0), (c(2), "payment:p2", "pays_to", 1.0), (c(3), "payment:p2", "pays_to", 1.0),
        (c(1), "video:v1", "posts", 1.0), (c(2), "video:v2", "posts", 1.0), (c(3), "video:v3", "posts", 1.0),
        ("user:u1", "video:v1", "engages", 3.0), ("user:u2", "video:v1", "engages", 1.0),
        ("user:u3", "video:v1", "engages", 1.0), ("user:u3", "video:v3", "engages", 1.0),
        ("user:u4", "video:v1", "engages", 1.0), ("user:u4", "video:v2", "engages", 1.0),
        ("user:u4", "video:v3", "engages", 1.0), ("user:pc4", "video:v3", "engages", 2.0),
        ("user:u1", c(2), "follows", 1.0), ("user:u2", c(2), "follows", 1.0),
        ("user:pc4", c(4), "persona_of", 1.0), ("user:pc1", c(1), "persona_of", 1.0),
    ]
    return spark.createDataFrame(rows, EDGE_SCHEMA)


PAIRS_EXPECTED = [
    *[("device", a, b, 1.0) for a, b in (("c1", "c2"), ("c1", "c3"), ("c2", "c1"), ("c2", "c3"), ("c3", "c1"),
                                         ("c3", "c2"), ("c4", "c6"), ("c6", "c4"))],
    ("ip", "c4", "c5", 1.0), ("ip", "c5", "c4", 1.0),
    ("payment", "c1", "c2", 2.0), ("payment", "c2", "c1", 2.0), ("payment", "c1", "c3", 1.0),
    ("payment", "c3", "c1", 1.0), ("payment", "c2", "c3", 1.0), ("payment", "c3", "c2", 1.0),
    ("audience", "c1", "c2", 2.0), ("audience", "c2", "c1", 2.0),
    ("persona", "c4", "c3", 2.0), ("persona", "c3", "c4", 2.0),
]


def _pairs(edges):
    return gnn.relation_pairs(edges, max_resource_creators=3, max_user_creators=2, min_shared_users=2)


def test_relation_pairs_link_exactly_the_shared_resources(spark, edges):
    # The hub IP h, the single shared viewer u3, the heavy browser u4 and the idle persona pc1 link nobody.
    assertDataFrameEqual(_pairs(edges), spark.createDataFrame(PAIRS_EXPECTED, PAIR_SCHEMA))
    with pytest.raises(ValueError, match="unknown relations"):
        gnn.relation_pairs(edges, relations=("device", "phone"))


def test_sampling_is_strongest_first_then_a_deterministic_hash(spark):
    # The expected pairs of the tiny graph, plus a creator z with ten equally strong neighbours.
    ties = [("device", "z", f"n{i:02d}", 1.0) for i in range(10)]
    pairs = spark.createDataFrame(PAIRS_EXPECTED + ties, PAIR_SCHEMA)
    k2 = gnn.sample_neighbours(pairs, k=2).where("relation = 'payment' AND src = 'c1'")
    assertDataFrameEqual(k2, spark.createDataFrame([("payment", "c1", "c2", 2.0, 0), ("payment", "c1", "c3", 1.0, 1)],
                                                   PAIR_SCHEMA + ", slot int"))
    k1 = gnn.sample_neighbours(pairs, k=1).collect()
    got = {(r["relation"], r["src"]): r["dst"] for r in k1}
    assert got[("payment", "c1")] == "c2" and got[("payment", "c2")] == "c1"       # strength decides
    assert got[("ip", "c4")] == "c5" and got[("persona", "c3")] == "c4"
    assert len(k1) == 15 and {r["slot"] for r in k1} == {0}                       # one per (relation, src)
    # Ties are broken by the seeded hash: the same pick on every call, not simply the smallest
    # ids, and another seed draws another sample.
    def tied(seed: int) -> list[str]:
        rows = gnn.sample_neighbours(pairs.where("src = 'z'"), k=3, seed=seed).orderBy("slot").collect()
        assert [r["slot"] for r in rows] == [0, 1, 2]
        return [r["dst"] for r in rows]

    first = tied(0)
    assert tied(0) == first and first != ["n00", "n01", "n02"]
    assert tied(1) != first
    with pytest.raises(ValueError, match="k must be"):
        gnn.sample_neighbours(pairs, k=0)


def _signals(spark):
    names = [f.name for f in signals_schema.SCHEMA.fields]
    rows = []
    for i in range(1, 7):
        for window, n_videos in ((7, 1), (28, 5)):
            row = dict.fromkeys(names)
            row.update(dt="2026-11-01", window_days=window, creator_id=f"c{i}", market="SG",
                       account_age_days=10 * i if window == 28 else 999, n_videos=n_videos, copy_min_distance=64)
            rows.append(tuple(row[n] for n in names))
    return spark.createDataFrame(rows, signals_schema.SCHEMA)


def _moderation(spark):
    ts = lambda d: dt.datetime(2026, 10, d, 12)  # noqa: E731
    rows = [("c1", "strike", "account_farm", ts(20), False),
            ("c2", "warning", "copyright", ts(21), False),              # enforced, but not graph abuse
            ("c3", "strike", "fake_accounts", ts(22), True),            # overturned: neither label nor enforced
            ("c5", "strike", "account_transfer", dt.datetime(2026, 11, 3), False),   # after the run date
            ("c6", "ban", "account_farm", ts(1), False)]                # banned: not a target
    return spark.createDataFrame(rows, "creator_id string, action string, reason string, decided_at timestamp, "
                                       "overturned boolean")


def test_graph_rows_exact_arrays(spark, edges):
    spec = gnn.GraphSpec(k=2)
    rows = gnn.graph_rows(edges, _signals(spark), _moderation(spark), RUN, spec, max_resource_creators=3,
                          max_user_creators=2, min_shared_users=2)
    got = {r["creator_id"]: r for r in rows.collect()}
    assert sorted(got) == ["c1", "c2", "c3", "c4", "c5"]                  # c6 is banned
    assert {c: got[c]["label"] for c in got} == {"c1": 1.0, "c2": 0.0, "c3": 0.0, "c4": 0.0, "c5": 0.0}
    d, dn = spec.node_dim, spec.nb_dim
    assert (d, dn) == (len(gnn.OWN_FEATURES) + 5, len(gnn.OWN_FEATURES) + 8)
    l1, l2 = math.log1p(1), math.log1p(2)
    n_videos = 1 + signals_schema.FEATURE_NAMES.index("n_videos")
    closeness = 1 + signals_schema.FEATURE_NAMES.index("copy_min_distance")

    def x_of(age: int, structure: list[float]) -> np.ndarray:
        x = np.zeros(d)
        x[0], x[n_videos], x[closeness] = math.log1p(age), math.log1p(5), 1 - 64 / 256
        x[-5:] = structure
        return x

    # 28-day window only (the 7-day row says age 999 and one video); structure = log1p(#neighbours).
    np.testing.assert_allclose(got["c1"]["x"], x_of(10, [l2, 0, l2, l1, 0]), rtol=1e-6)
    np.testing.assert_allclose(got["c4"]["x"], x_of(40, [l1, l1, 0, 0, l1]), rtol=1e-6)
    masks = {c: [got[c][f"mask_{r}"] for r in spec.relations] for c in got}
    assert masks["c1"] == [[1, 1], [0, 0], [1, 1], [1, 0], [0, 0]]
    assert masks["c4"] == [[1, 0], [1, 0], [0, 0], [0, 0], [1, 0]]
    assert masks["c5"] == [[0, 0], [1, 0], [0, 0], [0, 0], [0, 0]]
    c2_x, c3_x, c6_x = x_of(20, [l2, 0, l2, l1, 0]), x_of(30, [l2, 0, l2, 0, l1]), x_of(60, [l1, 0, 0, 0, 0])
    # c1's payment neighbours: c2 (2 shared, standing copyright decision), then c3 (overturned: not enforced).
    np.testing.assert_allclose(got["c1"]["nb_payment"], np.concatenate([c2_x, [l2, 1, 0], c3_x, [l1, 0, 0]]), rtol=1e-6)
    np.testing.assert_allclose(got["c1"]["nb_audience"], np.concatenate([c2_x, [l2, 1, 0], np.zeros(dn)]), rtol=1e-6)
    # c4 shares a phone with the banned c6: its enforced and banned channels are on.
    np.testing.assert_allclose(got["c4"]["nb_device"], np.concatenate([c6_x, [l1, 1, 1], np.zeros(dn)]), rtol=1e-6)
    np.testing.assert_allclose(got["c4"]["nb_persona"][dn - 3:dn], [l2, 0, 0], rtol=1e-6)
    assert got["c5"]["nb_device"] == [0.0] * (2 * dn)


def test_parquet_contract_roundtrip_and_violation(spark, tmp_path):
    spec = gnn.GraphSpec(k=2, relations=("device", "payment"), own_features=("a",))     # D = 3, Dn = 6
    nb = [float(v) for v in range(12)]
    rows = [("c1", "SG", [1.0, 2.0, 3.0], nb, [1.0, 1.0], [0.0] * 12, [0.0, 0.0], 1.0),
            ("c2", "MY", [4.0, 5.0, 6.0], [0.0] * 12, [0.0, 0.0], nb, [1.0, 0.0], 0.0)]
    schema = ("creator_id string, market string, x array<float>, nb_device array<float>, mask_device array<float>, "
              "nb_payment array<float>, mask_payment array<float>, label float")
    url = gnn.write_graph_parquet(spark.createDataFrame(rows, schema), tmp_path / "ok", spec, num_files=1)
    arrays = gnn.read_graph_arrays(url, spec)
    order = np.argsort(arrays["creator_id"])
    assert arrays["nb"].shape == (2, 2, 2, 6) and arrays["mask"].shape == (2, 2, 2)
    np.testing.assert_array_equal(arrays["nb"][order][0, 0], np.arange(12).reshape(2, 6))
    np.testing.assert_array_equal(arrays["mask"][order][1], [[0, 0], [1, 0]])
    np.testing.assert_array_equal(arrays["label"][order], [1.0, 0.0])
    batches = list(gnn.graph_batches(url, spec, batch_size=8))
    assert [tuple(t.shape) for t in batches[0]] == [(2, 3), (2, 2, 2, 6), (2, 2, 2), (2,)]
    bad = [rows[0][:3] + (nb[:-1],) + rows[0][4:]]
    with pytest.raises(ValueError, match="graph sample contract violated"):
        gnn.write_graph_parquet(spark.createDataFrame(bad, schema), tmp_path / "bad", spec, num_files=1)
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------- model -----------------------

REL = ("device", "payment")


def _model(aggregator: str, **kw) -> gnn.RelationalRiskModel:
    torch.manual_seed(0)
    return gnn.RelationalRiskModel(node_dim=4, nb_dim=6, relations=REL, k=3, hidden=8, aggregator=aggregator,
                                   dropout=0.0, **kw).eval()


@pytest.mark.parametrize("aggregator", gnn.AGGREGATORS)
def test_forward_shapes_and_masked_neighbours_do_not_count(aggregator):
    model = _model(aggregator)
    g = torch.Generator().manual_seed(1)
    x, nb = torch.randn(5, 4, generator=g), torch.randn(5, 2, 3, 6, generator=g)
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]], dtype=torch.float32).expand(5, 2, 3).clone()
    out = model(x, nb, mask)
    assert out.shape == (5,) and torch.isfinite(out).all()
    noisy = nb.clone()
    noisy[:, 0, 2] = torch.randn(5, 6, generator=g) * 100      # padded slot of 'device'
    noisy[:, 1] = float("nan")                                   # every slot of 'payment' is padding
    torch.testing.assert_close(model(x, noisy, mask), out)
    changed = nb.clone()
    changed[:, 0, 0] += 3.0                                      # a real neighbour does count
    assert not torch.allclose(model(x, changed, mask), out)
    with pytest.raises(ValueError, match="expected nb"):
        model(x, nb[:, :, :2], mask)


def test_self_only_model_ignores_neighbours():
    model = _model("mean", use_neighbours=False)
    x = torch.randn(3, 4)
    a = model(x, torch.zeros(3, 2, 3, 6), torch.ones(3, 2, 3))
    torch.testing.assert_close(model(x, torch.randn(3, 2, 3, 6), torch.ones(3, 2, 3)), a)
    assert model.config()["use_neighbours"] is False


def _planted(n: int, seed: int) -> dict[str, np.ndarray]:
    """Label = some real *payment* neighbour has node feature 0 above 1.0.

    Device neighbours are drawn from the same distribution (relation-awareness is needed), padded
    slots hold the same kind of noise (masking is needed), and the creator's own features are
    independent of the label (the graph is needed).
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    nb = rng.normal(size=(n, 2, 3, 6)).astype(np.float32)
    counts = rng.integers(0, 4, size=(n, 2))
    mask = (np.arange(3)[None, None, :] < counts[..., None]).astype(np.float32)
    label = ((nb[:, 1, :, 0] > 1.0) & (mask[:, 1] > 0)).any(-1).astype(np.float32)
    return {"x": x, "nb": nb, "mask": mask, "label": label}


def test_planted_neighbour_rule_is_learned_only_with_the_graph():
    from sklearn.metrics import roc_auc_score

    spec = gnn.GraphSpec(k=3, relations=REL, own_features=("a", "b"), edge_channels=("s", "t"))   # D 4, Dn 6
    train, test = _planted(1500, 0), _planted(600, 1)
    assert 0.15 < train["label"].mean() < 0.45
    hp = {"hidden": 32, "epochs": 25, "batch_size": 64, "lr": 0.01, "dropout": 0.0}
    aucs = {}
    for name, extra in (("graph", {}), ("self_only", {"use_neighbours": False})):
        model, history = gnn.fit_arrays(train, spec, {**hp, **extra})
        p = gnn.predict(model, test["x"], test["nb"], test["mask"])
        aucs[name] = roc_auc_score(test["label"], p)
        assert len(history) == 25 and history[-1]["rows"] == 1500
    assert aucs["graph"] > 0.9, aucs
    assert aucs["self_only"] < 0.65, aucs


def test_gbt_matrix_masked_mean_max_count():
    spec = gnn.GraphSpec(k=2, relations=("device",), own_features=("a",), edge_channels=("s",))   # D 2, Dn 3
    arrays = {"x": np.array([[1.0, 2.0]], np.float32),
              "nb": np.array([[[[1.0, 5.0, -1.0], [99.0, 99.0, 99.0]]]], np.float32),
              "mask": np.array([[[1.0, 0.0]]], np.float32)}
    np.testing.assert_array_equal(gnn.gbt_matrix(arrays, spec), [[1, 2, 1, 5, -1, 1, 5, -1, 1]])
    np.testing.assert_array_equal(gnn.gbt_matrix(arrays, spec, with_neighbours=False), [[1]])
    arrays["mask"][:] = 0.0                                      # no neighbours: zeros and count 0
    np.testing.assert_array_equal(gnn.gbt_matrix(arrays, spec), [[1, 2, 0, 0, 0, 0, 0, 0, 0]])
    assert len(gnn.gbt_feature_names(spec)) == 9


def test_pyfunc_scores_contract_rows_like_the_model(tmp_path):
    spec = gnn.GraphSpec(k=3, relations=REL, own_features=("a", "b"), edge_channels=("s", "t"))
    model = _model("attention")
    data = _planted(4, 2)
    torch.save(model.state_dict(), tmp_path / "state.pt")
    (tmp_path / "spec.json").write_text(json.dumps(spec.to_dict()))
    (tmp_path / "config.json").write_text(json.dumps(model.config()))
    py = gnn.GraphRiskPyfunc()
    py.load_context(SimpleNamespace(artifacts={"state_dict": str(tmp_path / "state.pt"),
                                               "spec": str(tmp_path / "spec.json"),
                                               "config": str(tmp_path / "config.json")}))
    frame = gnn.example_frame(data, spec, n=4)
    out = py.predict(None, frame)
    np.testing.assert_allclose(out["p_graph_abuse"].to_numpy(), gnn.predict(model, data["x"], data["nb"], data["mask"]),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="lacks columns"):
        py.predict(None, frame.drop(columns=["mask_payment"]))
