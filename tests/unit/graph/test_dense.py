"""Dense-block detector (libs.graph.detectors.dense) on a hand-made user x creator graph.

Graph (edge weight 1 / ln(in-degree + 5)):

* **Ring 1**: r1..r4 x customers cA, cB, cC (complete; several videos and kinds per edge, which
  must count once). Each customer also has 2 organic fans -> in-degree 6, w = 1/ln 11.
  Camouflage: r_i also engages popular cP_i (20 fans of its own + r_i: w = 1/ln 26).
* **Ring 2**: s1..s3 x cD, cE (complete), one organic fan each -> in-degree 4, w = 1/ln 9.
* **Viral burst**: 30 users on one video of cV. **Loyal fans**: f1..f5 on every video of cF
  (many rows, one edge each). **Co-audience**: h1, h2 engage both cV and cF.

Peeling by hand (epsilon 0.1, threshold 2.2 x density):

* Block 1, round 0: 149 edges over 143 nodes (132 users, 11 creators), density 0.340 -> threshold 0.748: every
  single-edge user goes (max weight 1/ln 10 = 0.434), and so do h_i (1/ln 37 + 1/ln 12 =
  0.679); r_i (3/ln 11 + 1/ln 26 = 1.558) and s_i (2/ln 9 = 0.910) stay.
  Round 1: ring 1 + cP_i edges + ring 2: 22 edges, density 0.560 -> threshold 1.232: s_i and
  cP_i go. Round 2: ring 1 alone, 12 / ln 11 / 7 = 0.7149 -> threshold 1.573 > 3 / ln 11: empty.
  Best: round 2 = {r1..r4, cA, cB, cC}.
* Block 2 (ring-1 edges removed), round 0 density 0.305 -> threshold 0.671: s_i (0.910) and
  h_i (0.679) stay. Round 1: ring 2 + {h1, h2} x {cV, cF}: density 0.454 -> threshold 1.0:
  empty. Best: round 1, two components: ring 2 (6 / ln 9 / 5 = 0.5461, reported) and the
  co-audience (2 users: below min_users; density 0.340 below 0.5 anyway).
* Block 3: only stars remain (one creator each): nothing reported.
"""
from __future__ import annotations

import datetime as dt
import math

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType, TimestampType
from pyspark.testing import assertDataFrameEqual

from libs.graph.detectors.dense import dense_blocks, weighted_edges
from schemas.syndicates import DETECTOR_COLUMNS

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
ENG = StructType([StructField("user_id", StringType()), StructField("creator_id", StringType()),
                  StructField("video_id", StringType()), StructField("kind", StringType()),
                  StructField("ts", TimestampType())])
OUT = StructType([StructField("syndicate_id", StringType()), StructField("entity_type", StringType()),
                  StructField("entity_id", StringType()), StructField("role", StringType()),
                  StructField("score", DoubleType()), StructField("syndicate_size", LongType()),
                  StructField("syndicate_score", DoubleType()), StructField("evidence", StringType())])

RING1 = ["u_r1", "u_r2", "u_r3", "u_r4"]
RING2 = ["u_s1", "u_s2", "u_s3"]
DENSITY1 = 12 / math.log(11) / 7   # 0.7149
DENSITY2 = 6 / math.log(9) / 5     # 0.5461


def edge_rows(user: str, creator: str, videos: int = 1, kinds: tuple[str, ...] = ("view",)) -> list[tuple]:
    """``videos`` x ``kinds`` engagement rows of one (user, creator) edge."""
    return [(user, creator, f"{creator}_v{k}", kind, T0 + dt.timedelta(minutes=10 * k))
            for k in range(videos) for kind in kinds]


def engagement_rows() -> list[tuple]:
    rows: list[tuple] = []
    for i, r in enumerate(RING1):
        for c in ("cA", "cB", "cC"):
            rows += edge_rows(r, c, videos=3, kinds=("like", "comment"))
        rows += edge_rows(r, f"cP{i + 1}")
        rows.append((r, "cA", None, "follow", T0))           # a follow without a video: same edge
    for c in ("cA", "cB", "cC"):
        rows += edge_rows(f"u_{c[1].lower()}1", c) + edge_rows(f"u_{c[1].lower()}2", c)
    for k in range(1, 5):
        for j in range(1, 21):
            rows += edge_rows(f"u_p{k}_{j}", f"cP{k}")
    for s in RING2:
        rows += edge_rows(s, "cD", videos=2, kinds=("like",)) + edge_rows(s, "cE", videos=2, kinds=("like",))
    rows += edge_rows("u_d1", "cD") + edge_rows("u_e1", "cE")
    rows += [(f"u_v{j}", "cV", "cV_v0", "view", T0 + dt.timedelta(seconds=j)) for j in range(1, 31)]
    for j in range(1, 6):
        rows += edge_rows(f"u_f{j}", "cF", videos=8, kinds=("view", "like", "comment"))
    for h in ("u_h1", "u_h2"):
        rows += edge_rows(h, "cV") + edge_rows(h, "cF")
    return rows


@pytest.fixture(scope="module")
def engagements(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(engagement_rows(), ENG)


@pytest.fixture(scope="module")
def result(engagements: DataFrame) -> DataFrame:
    # Ratio 1: the absolute bar binds (this small graph's own density is ~0.34, below 0.5).
    return dense_blocks(engagements, n_blocks=3, min_users=3, min_creators=2, epsilon=0.1, min_density=0.5,
                        min_density_ratio=1.0)


def expected_rows(sid: str, users: list[str], creators: list[str], density: float) -> list[tuple]:
    size = len(users) + len(creators)
    evidence = f"dense block of {len(users)} users x {len(creators)} creators: weighted density {density:.2f} (reported from 0.50)"
    return ([(sid, "user", u, "member", density, size, density, evidence) for u in users]
            + [(sid, "creator", c, "customer", density, size, density, evidence) for c in creators])


def test_both_rings_found_exactly(spark, result):
    expected = spark.createDataFrame(
        expected_rows("dense:1", RING1, ["cA", "cB", "cC"], DENSITY1)
        + expected_rows("dense:2", RING2, ["cD", "cE"], DENSITY2), OUT)
    assertDataFrameEqual(result, expected, rtol=1e-9)


def test_output_schema(result):
    assert result.columns == DETECTOR_COLUMNS
    assert [f.dataType for f in result.schema.fields] == [f.dataType for f in OUT.fields]


def test_look_alikes_are_not_flagged(result):
    flagged = {r.entity_id for r in result.collect()}
    viral = {f"u_v{j}" for j in range(1, 31)} | {"cV"}
    fans = {f"u_f{j}" for j in range(1, 6)} | {"cF"}
    camouflage = {f"cP{k}" for k in range(1, 5)} | {f"u_p{k}_{j}" for k in range(1, 5) for j in range(1, 21)}
    assert flagged.isdisjoint(viral | fans | camouflage | {"u_h1", "u_h2"})


def test_column_weights(spark, engagements):
    # In-degree counts distinct users (rows, videos and kinds do not add): cA has 4 + 2 = 6.
    w = {(r.user_id, r.creator_id): r.w for r in weighted_edges(engagements).collect()}
    assert w[("u_r1", "cA")] == pytest.approx(1 / math.log(11))
    assert w[("u_r1", "cP1")] == pytest.approx(1 / math.log(26))
    assert w[("u_f1", "cF")] == pytest.approx(1 / math.log(12))   # 5 fans + h1, h2
    assert len(w) == 12 + 4 + 6 + 80 + 6 + 2 + 30 + 5 + 4


def test_density_threshold_binds(engagements):
    # Two passes find both rings, but a 0.6 bar drops ring 2 (0.546) and keeps ring 1 (0.715).
    strict = dense_blocks(engagements, n_blocks=2, min_density=0.6, min_density_ratio=1.0)
    assert {(r.syndicate_id, r.entity_id) for r in strict.collect()} == {
        ("dense:1", e) for e in RING1 + ["cA", "cB", "cC"]}
    # Relative bar: twice the graph's own density (~0.68) also keeps ring 1 (0.715) only.
    relative = dense_blocks(engagements, n_blocks=2, min_density=0.0, min_density_ratio=2.0)
    assert {(r.syndicate_id, r.entity_id) for r in relative.collect()} == {
        ("dense:1", e) for e in RING1 + ["cA", "cB", "cC"]}


@pytest.mark.parametrize("kwargs, message", [
    ({"n_blocks": 0}, "n_blocks"),
    ({"min_users": 0}, "min_users"),
    ({"min_creators": 1.5}, "min_creators"),
    ({"epsilon": 0.0}, "epsilon"),
    ({"min_density": -1.0}, "min_density"),
    ({"min_density_ratio": 0.5}, "min_density_ratio"),
    ({"weight_offset": 1.0}, "weight_offset"),
    ({"max_rounds": 0}, "max_rounds"),
])
def test_invalid_parameters(engagements, kwargs, message):
    with pytest.raises(ValueError, match=message):
        dense_blocks(engagements, **kwargs)


def test_invalid_input(engagements):
    with pytest.raises(ValueError, match="lack columns"):
        dense_blocks(engagements.drop("creator_id"))
    with pytest.raises(ValueError, match="user_id must be string"):
        dense_blocks(engagements.withColumn("user_id", engagements["ts"].cast("long")))
