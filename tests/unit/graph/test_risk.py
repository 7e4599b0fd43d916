"""Risk by scenario and migration predictions (libs.graph.risk) on hand-made typed graphs."""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from libs.graph import risk

EDGES = "src string, dst string, edge_type string, src_type string, dst_type string, scenario string, " \
        "weight double, first_ts timestamp"


def at(month: int, day: int) -> dt.datetime:
    return dt.datetime(2026, month, day)


def test_scenario_risk_keeps_content_and_shelf_apart(spark):
    edges = spark.createDataFrame([
        ("creator:c0", "payment:P", "pays_to", "creator", "payment", "account", 1.0, at(10, 1)),
        ("creator:c1", "payment:P", "pays_to", "creator", "payment", "account", 1.0, at(10, 1)),
        ("creator:c0", "product:X", "lists", "creator", "product", "shelf", 1.0, at(10, 1)),
        ("creator:c2", "product:X", "lists", "creator", "product", "shelf", 1.0, at(10, 1)),
        ("creator:c0", "video:V", "posts", "creator", "video", "video", 1.0, at(10, 1)),
        ("creator:c3", "video:V", "posts", "creator", "video", "video", 1.0, at(10, 1)),   # odd, but a content link
    ], EDGES)
    vertices = spark.createDataFrame([(f"creator:c{i}", "creator", "DE") for i in range(4)],
                                     "id string, vertex_type string, market string")
    seeds = spark.createDataFrame([("creator:c0", 1.0)], "id string, risk double")
    weights = {"pays_to": 1.0, "lists/shelf": 0.5, "posts/content": 0.5}
    out = {r["id"]: r for r in risk.entity_risk(spark, edges, vertices, seeds, weights, steps=2).collect()}
    assert out["creator:c0"]["hops"] == 0 and out["creator:c0"]["risk"] == pytest.approx(1.0)
    # The payout sibling is at risk in every view; the shelf neighbour only where shelf relations count.
    assert out["creator:c1"]["risk_content"] > 0 and out["creator:c1"]["risk_shelf"] > 0
    assert out["creator:c2"]["risk_shelf"] > 0 and out["creator:c2"]["risk_content"] == 0.0
    assert out["creator:c3"]["risk_content"] > 0 and out["creator:c3"]["risk_shelf"] == 0.0
    # A payout account (weight 1.0) is stronger evidence than a shared product (0.5).
    assert out["creator:c1"]["risk"] > out["creator:c2"]["risk"]
    assert out["creator:c1"]["hops"] == 2 and out["creator:c1"]["market"] == "DE"
    with pytest.raises(ValueError, match="nothing to propagate"):
        risk.entity_risk(spark, edges, vertices, seeds, {"uses_device": 1.0})


def test_moderation_seeds_skip_overturned_and_rank_bans_first(spark):
    moderation = spark.createDataFrame([
        ("c1", "ban", False), ("c1", "warning", False), ("c2", "strike", False), ("c3", "ban", True),
    ], "creator_id string, action string, overturned boolean")
    assertDataFrameEqual(risk.moderation_seeds(moderation), spark.createDataFrame(
        [("creator:c1", 1.0), ("creator:c2", 0.5)], "id string, risk double"))


def test_migration_ranks_the_operators_new_account_first(spark):
    rows = [
        # Operator: banned b1 and b2 share phone D1 and payout account P1.
        ("creator:b1", "device:D1", "uses_device", "creator", "device", "account", 0.0, at(9, 1)),
        ("creator:b2", "device:D1", "uses_device", "creator", "device", "account", 0.0, at(9, 2)),
        ("creator:b1", "payment:P1", "pays_to", "creator", "payment", "account", 1.0, at(9, 1)),
        ("creator:b2", "payment:P1", "pays_to", "creator", "payment", "account", 1.0, at(9, 1)),
        ("creator:b1", "ip:1.2.3", "logs_in_from", "creator", "ip", "account", 0.0, at(9, 1)),
        ("creator:b2", "device:D2", "uses_device", "creator", "device", "account", 0.0, at(9, 3)),
        # n1: the operator's new account, on D1 and its /24 after the ban, selling on the shelf.
        ("creator:n1", "device:D1", "uses_device", "creator", "device", "account", 4.0, at(10, 20)),
        ("creator:n1", "ip:1.2.3", "logs_in_from", "creator", "ip", "account", 4.0, at(10, 20)),
        ("creator:n1", "product:X", "lists", "creator", "product", "shelf", 1.0, at(10, 20)),
        # s1: a sibling that shared the payout account all along (never caught).
        ("creator:s1", "payment:P1", "pays_to", "creator", "payment", "account", 1.0, at(9, 1)),
        # h1: an honest creator who bought b2's second-hand phone after the ban; posts videos.
        ("creator:h1", "device:D2", "uses_device", "creator", "device", "account", 2.0, at(10, 25)),
        ("creator:h1", "video:V", "posts", "creator", "video", "video", 3.0, at(10, 25)),
    ]
    # A carrier NAT shared with 60 creators is no evidence.
    rows += [(f"creator:x{i:02d}", "ip:9.9.9", "logs_in_from", "creator", "ip", "account", 1.0, at(10, 1))
             for i in range(60)]
    rows += [("creator:b1", "ip:9.9.9", "logs_in_from", "creator", "ip", "account", 0.0, at(9, 1))]
    edges = spark.createDataFrame(rows, EDGES)
    creators = spark.createDataFrame([("b1", "DE"), ("b2", "DE"), ("n1", "FR"), ("s1", "DE"), ("h1", "DE")]
                                     + [(f"x{i:02d}", "DE") for i in range(60)], "creator_id string, market string")
    banned = spark.createDataFrame([("b1", at(10, 10)), ("b2", at(10, 12))], "creator_id string, banned_at timestamp")
    out = risk.migration_predictions(spark, edges, creators, banned)
    expected = spark.createDataFrame([
        ("b1", 2, "account", "n1", 1.8, 1, "shares 2 resource(s) (device, ip) with the operator's banned accounts, "
                                          "2 first used after the ban; market FR, sells via shelf"),
        ("b1", 2, "account", "h1", 1.2, 2, "shares 1 resource(s) (device) with the operator's banned accounts, "
                                          "1 first used after the ban; market DE, sells via content"),
        ("b1", 2, "account", "s1", 1.0, 3, "shares 1 resource(s) (payment) with the operator's banned accounts, "
                                          "0 first used after the ban; market DE, sells via content"),
        ("b1", 2, "market", "DE", 2.2, 1, "2 candidate account(s) in this market"),
        ("b1", 2, "market", "FR", 1.8, 2, "1 candidate account(s) in this market"),
        ("b1", 2, "scenario", "content", 2.2, 1, "2 candidate account(s) selling via this scenario"),
        ("b1", 2, "scenario", "shelf", 1.8, 2, "1 candidate account(s) selling via this scenario"),
    ], "operator_id string, banned_accounts long, prediction string, target string, score double, rank int, "
       "evidence string")
    assertDataFrameEqual(out, expected)
    top1 = risk.migration_predictions(spark, edges, creators, banned, top_k=1)
    assert [r["target"] for r in top1.where("prediction = 'account'").collect()] == ["n1"]
    with pytest.raises(ValueError, match="resource_weights"):
        risk.migration_predictions(spark, edges, creators, banned, resource_weights={"phone": 1.0})
