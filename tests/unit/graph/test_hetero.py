"""The typed graph build (libs.graph.hetero) on one hand-made day of silver rows, and its read-back."""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from libs.graph import hetero
from libs.platform import delta_io
from schemas import graph_edges, graph_vertices

D = "2026-11-01"
T = dt.datetime(2026, 11, 1, 10, 0)
T2 = dt.datetime(2026, 11, 1, 12, 0)


def frames(spark):
    events = spark.createDataFrame([
        ("view", "uk1", "c1", "v1", None, "content", "DE", T, None, None, D),
        ("view", "uk1", "c1", "v1", None, "content", "DE", T2, None, None, D),     # same edge, later
        ("follow", "uk2", "c1", None, None, "profile", "DE", T, None, None, D),
        ("purchase", "uk2", "c1", None, "p9", "shelf", "FR", T2, 2, 30.0, D),     # shelf: no video
        ("like", None, "c1", "v1", None, "content", "DE", T, None, None, D),      # no user: counted, not an edge
    ], "event_type string, user_key string, creator_id string, video_id string, product_id string, scenario string, "
       "market string, ts timestamp, quantity int, gmv_usd double, dt string")
    videos = spark.createDataFrame([("v1", "c1", T, "video", "p1", D)],
                                   "video_id string, creator_id string, published_at timestamp, scenario string, "
                                   "product_id string, dt string")
    logins = spark.createDataFrame([("c1", "d1", "10.0.1", "DE", T, D)],
                                   "creator_id string, device_id string, ip24 string, geo string, ts timestamp, dt string")
    withdrawals = spark.createDataFrame([("c1", "pa1", 12.5, T2, D)],
                                        "creator_id string, payment_account_id string, amount_usd double, "
                                        "requested_at timestamp, dt string")
    creators = spark.createDataFrame([("c1", "pa1", "DE", D)],
                                     "creator_id string, payment_account_id string, market string, dt string")
    users = spark.createDataFrame([("uk1", "DE", None, D), ("uk3", "FR", "c1", D)],
                                  "user_key string, market string, creator_id string, dt string")
    return events, videos, logins, withdrawals, creators, users


def test_build_edges_types_scenarios_and_counts(spark):
    events, videos, logins, withdrawals, creators, users = frames(spark)
    edges, dropped = hetero.build_edges(events, videos, logins, withdrawals, creators, users, None, None)
    cols = "src string, dst string, edge_type string, src_type string, dst_type string, kind string, scenario string, " \
           "market string, weight double, amount_usd double, first_ts timestamp, last_ts timestamp, dt string"
    expected = spark.createDataFrame([
        ("creator:c1", "video:v1", "posts", "creator", "video", "video", "video", None, 1.0, None, T, T, D),
        ("video:v1", "product:p1", "features", "video", "product", "features", "video", None, 1.0, None, T, T, D),
        ("user:uk1", "video:v1", "engages", "user", "video", "view", "content", "DE", 2.0, None, T, T2, D),
        ("user:uk2", "creator:c1", "follows", "user", "creator", "follow", "profile", "DE", 1.0, None, T, T, D),
        ("user:uk2", "product:p9", "buys", "user", "product", "purchase", "shelf", "FR", 2.0, 30.0, T2, T2, D),
        ("creator:c1", "device:d1", "uses_device", "creator", "device", "uses_device", "account", "DE", 1.0, None, T, T, D),
        ("creator:c1", "ip:10.0.1", "logs_in_from", "creator", "ip", "logs_in_from", "account", "DE", 1.0, None, T, T, D),
        ("creator:c1", "payment:pa1", "pays_to", "creator", "payment", "withdrawal", "account", None, 1.0, 12.5, T2, T2, D),
        ("creator:c1", "payment:pa1", "pays_to", "creator", "payment", "profile", "account", "DE", 1.0, None, None, None, D),
        ("user:uk3", "creator:c1", "persona_of", "user", "creator", "persona_of", "account", "FR", 1.0, None, None, None, D),
    ], cols)
    assertDataFrameEqual(edges.select(*hetero.EDGE_COLUMNS), expected)
    assert [tuple(r) for r in dropped.select("edge_type", "kind", "count", "reason").collect()] == \
        [("engages", "like", 1, "null endpoint")]
    vertices = hetero.vertices_of(edges, creators, users)
    assertDataFrameEqual(vertices.select(*hetero.VERTEX_COLUMNS), spark.createDataFrame([
        ("creator:c1", "creator", "c1", "DE", D), ("video:v1", "video", "v1", "DE", D),
        ("product:p1", "product", "p1", None, D), ("product:p9", "product", "p9", "FR", D),
        ("user:uk1", "user", "uk1", "DE", D), ("user:uk2", "user", "uk2", "DE", D),
        ("user:uk3", "user", "uk3", "FR", D), ("device:d1", "device", "d1", "DE", D),
        ("ip:10.0.1", "ip", "10.0.1", "DE", D), ("payment:pa1", "payment", "pa1", "DE", D),
    ], "id string, vertex_type string, key string, market string, dt string"))
    assert set(graph_edges.EDGE_TYPES) >= set(r[0] for r in expected.select("edge_type").distinct().collect())
    assert hetero.VERTEX_COLUMNS == [f.name for f in graph_vertices.SCHEMA.fields]


def test_load_graph_folds_days_and_refuses_an_unbuilt_window(spark, tmp_path):
    events, videos, logins, withdrawals, creators, users = frames(spark)
    edges, _ = hetero.build_edges(events, videos, logins, withdrawals, creators, users, None, None)
    later = edges.where("edge_type = 'engages'").withColumn("dt", hetero.F.lit("2026-11-02"))
    vpath, epath = str(tmp_path / "v"), str(tmp_path / "e")
    all_edges = edges.unionByName(later).select(*hetero.EDGE_COLUMNS)
    delta_io.replace_partitions(all_edges, epath, {"dt": [D, "2026-11-02"]}, ["dt"])
    delta_io.replace_partitions(hetero.vertices_of(edges, creators, users).select(*hetero.VERTEX_COLUMNS), vpath,
                                {"dt": [D]}, ["dt"])
    g = hetero.load_graph(spark, vpath, epath, D, "2026-11-02", edge_types=["engages"], backend="native")
    assert [(r["src"], r["dst"], r["weight"]) for r in g.edges.collect()] == [("user:uk1", "video:v1", 4.0)]
    assert sorted(r["id"] for r in g.vertices.collect()) == ["user:uk1", "video:v1"]
    with pytest.raises(ValueError, match="no graph edges between 2026-12-01"):
        hetero.load_graph(spark, vpath, epath, "2026-12-01", "2026-12-02")
    with pytest.raises(ValueError, match="unknown edge types"):
        hetero.load_graph(spark, vpath, epath, D, D, edge_types=["likes"])
    # The ring detectors' view: user, creator (through posts), video, kind, first time.
    eng = hetero.engagements(g.edges.unionByName(
        edges.where("edge_type = 'posts'").drop("dt").select(*g.edges.columns)))
    assert [tuple(r) for r in eng.collect()] == [("uk1", "c1", "v1", "view", T)]
