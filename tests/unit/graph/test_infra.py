"""Shared-infrastructure syndicates (libs.graph.detectors.infra) on a hand-made creator-resource graph.

The graph holds one farm (a payout account for all four accounts, two phones, one /24) beside the
look-alikes the detector must leave alone: a family phone, an agency office, a carrier NAT shared
by 60 creators, and a pair sharing only a payout account (too small to be a farm).
"""
from __future__ import annotations

import pytest
from pyspark.testing import assertDataFrameEqual

from libs.graph.detectors.infra import creator_resource_links, shared_infrastructure
from schemas.syndicates import DETECTOR_COLUMNS, SCHEMA

LINKS = "creator_id string, resource_id string, resource_type string"
FARM_EVIDENCE = ("shares 1 payout account(s), 1 device(s), 1 IP /24(s) with 3 of 3 other accounts of this group "
                 "(tie strength 1.42)")


def links(spark):
    rows = [
        # The farm: one payout account, phones D1 (f1, f2) and D2 (f3, f4), one /24.
        *[(f, "payment:P1", "payment") for f in ("f1", "f2", "f3", "f4")],
        ("f1", "device:D1", "device"), ("f2", "device:D1", "device"),
        ("f3", "device:D2", "device"), ("f4", "device:D2", "device"),
        *[(f, "ip:10.0.1", "ip") for f in ("f1", "f2", "f3", "f4")],
        # A family: one phone and its home /24.
        ("h1", "device:D9", "device"), ("h2", "device:D9", "device"),
        ("h1", "ip:10.9.9", "ip"), ("h2", "ip:10.9.9", "ip"),
        # An agency office computer used by five honest creators.
        *[(a, "device:D8", "device") for a in ("a1", "a2", "a3", "a4", "a5")],
        *[(a, "ip:10.8.8", "ip") for a in ("a1", "a2", "a3", "a4", "a5")],
        # A carrier NAT: 60 creators (farm account f1 among them) behind one /24.
        *[(f"n{i:02d}", "ip:100.64.0", "ip") for i in range(59)], ("f1", "ip:100.64.0", "ip"),
        # Two creators sharing a payout account only: linked, but no farm of one pair.
        ("p1", "payment:P2", "payment"), ("p2", "payment:P2", "payment"),
        ("f1", "payment:P1", "payment"),     # a duplicate link changes nothing
    ]
    return spark.createDataFrame(rows, LINKS)


def test_finds_the_farm_and_leaves_families_offices_and_nat_alone(spark):
    out, skipped = shared_infrastructure(spark, links(spark))
    expected = spark.createDataFrame(
        [("infra:f1", "creator", f, "account", 1.4167, 4, 1.4167, FARM_EVIDENCE) for f in ("f1", "f2", "f3", "f4")],
        "syndicate_id string, entity_type string, entity_id string, role string, score double, "
        "syndicate_size long, syndicate_score double, evidence string")
    assertDataFrameEqual(out, expected)
    assertDataFrameEqual(skipped, spark.createDataFrame([("ip:100.64.0", "ip", 60)],
                                                        "resource_id string, resource_type string, sharers long"))


def test_output_matches_the_syndicates_contract(spark):
    out, _ = shared_infrastructure(spark, links(spark))
    fields = {f.name: f.dataType for f in SCHEMA.fields}
    assert out.columns == DETECTOR_COLUMNS
    assert {f.name: f.dataType for f in out.schema.fields} == {c: fields[c] for c in DETECTOR_COLUMNS}


def test_thresholds_change_what_links(spark):
    # Lowering the pair threshold to one device + its /24 merges the family and the office too;
    # min_size 2 then keeps the payout-only pair.
    out, _ = shared_infrastructure(spark, links(spark), min_pair_weight=0.75, min_size=2)
    got = {(r["syndicate_id"], r["syndicate_size"]) for r in out.select("syndicate_id", "syndicate_size").collect()}
    assert got == {("infra:f1", 4), ("infra:h1", 2), ("infra:a1", 5), ("infra:p1", 2)}
    # A NAT cap above 60 lets the shared /24 link everyone behind it with f1 only at weight 0.25: no merge.
    out2, skipped2 = shared_infrastructure(spark, links(spark), max_sharers=100)
    assert skipped2.count() == 0
    assert sorted(r["entity_id"] for r in out2.collect()) == ["f1", "f2", "f3", "f4"]


@pytest.mark.parametrize("kwargs, message", [
    ({"weights": {}}, "at least one resource type"),
    ({"weights": {"payment": 0.0, "device": 0.5, "ip": 0.25}}, "must be > 0"),
    ({"max_sharers": 1}, "max_sharers"),
    ({"min_size": 1}, "min_size"),
    ({"weights": {"payment": 1.0, "device": 0.5}}, "without a weight"),
])
def test_bad_parameters_are_refused(spark, kwargs, message):
    with pytest.raises(ValueError, match=message):
        shared_infrastructure(spark, links(spark), **kwargs)


def test_links_from_graph_edges_keep_typed_resource_ids(spark):
    edges = spark.createDataFrame([
        ("creator:c1", "device:D1", "creator", "device"),
        ("creator:c1", "payment:P1", "creator", "payment"),
        ("creator:c1", "video:v1", "creator", "video"),      # not infrastructure
        ("user:u1", "creator:c1", "user", "creator"),
    ], "src string, dst string, src_type string, dst_type string")
    assertDataFrameEqual(creator_resource_links(edges), spark.createDataFrame(
        [("c1", "device:D1", "device"), ("c1", "payment:P1", "payment")], LINKS))
