"""Sybil clusters (libs.graph.detectors.sybil) on a hand-made user-creator graph.

Honest region: creators h1..h6, each with its own audience plus users who watch several of them.
Sybil region: creators s1..s3 whose personas p1..p3 engage one another's videos, with one attack
edge (p1 watches h1). A fresh honest creator f1 has one loyal viewer and nothing else: low trust,
but no cluster -- it must not be reported.
"""
from __future__ import annotations

import datetime as dt

import pytest

from libs.graph.detectors.sybil import even_steps, social_edges, sybil_clusters, trusted_creators

EDGES = "src string, dst string, edge_type string"


def graph(spark):
    rows = []
    for i in range(1, 7):
        rows.append((f"creator:h{i}", f"video:vh{i}", "posts"))
        # Two own fans and two shared viewers per honest creator.
        rows += [(f"user:a{i}{k}", f"video:vh{i}", "engages") for k in range(2)]
        rows += [(f"user:w{(i + k) % 6}", f"video:vh{i}", "engages") for k in range(2)]
    for i in range(1, 4):
        rows.append((f"creator:s{i}", f"video:vs{i}", "posts"))
        rows.append((f"user:p{i}", f"creator:s{i}", "persona_of"))
        rows += [(f"user:p{i}", f"video:vs{j}", "engages") for j in range(1, 4) if j != i]
    rows.append(("user:p1", "video:vh1", "engages"))          # the attack edge
    rows += [("creator:f1", "video:vf1", "posts"), ("user:z1", "video:vf1", "engages")]
    return spark.createDataFrame(rows, EDGES)


def test_social_edges_project_engagement_onto_creators(spark):
    edges = spark.createDataFrame([("creator:c1", "video:v1", "posts"), ("user:u1", "video:v1", "engages"),
                                   ("user:u2", "creator:c1", "follows"), ("user:u3", "creator:c1", "persona_of"),
                                   ("creator:c1", "device:d1", "uses_device")], EDGES)
    got = sorted(tuple(r) for r in social_edges(edges).collect())
    assert got == [("user:u1", "creator:c1"), ("user:u2", "creator:c1"), ("user:u3", "creator:c1")]


def test_finds_the_sybil_cluster_not_the_lonely_newcomer(spark):
    out, trust = sybil_clusters(spark, graph(spark), ["creator:h1", "creator:h4"], quantile=0.45, min_size=3)
    assert sorted(r["entity_id"] for r in out.collect()) == ["s1", "s2", "s3"]
    assert {r["syndicate_id"] for r in out.collect()} == {"sybil:s1"}
    ranked = [r["creator_id"] for r in trust.orderBy("degree_normalized_trust", "creator_id").collect()]
    # The newcomer and the sybils are the four least trusted creators.
    assert set(ranked[:4]) == {"f1", "s1", "s2", "s3"}
    assert trust.count() == 10


def test_parameters_and_seeds(spark):
    with pytest.raises(ValueError, match="quantile"):
        sybil_clusters(spark, graph(spark), ["creator:h1"], quantile=1.5)
    with pytest.raises(ValueError, match="even"):
        sybil_clusters(spark, graph(spark), ["creator:h1"], steps=3)
    assert [even_steps(n) for n in (2, 5, 16, 17, 300_000)] == [2, 4, 4, 6, 20]
    creators = spark.createDataFrame([
        ("c1", "active", dt.date(2020, 1, 1)), ("c2", "active", dt.date(2026, 10, 1)),
        ("c3", "banned", dt.date(2020, 1, 1)), ("c4", "active", dt.date(2021, 1, 1)),
    ], "creator_id string, status string, signup_date date")
    moderation = spark.createDataFrame([("c4",)], "creator_id string")
    assert trusted_creators(creators, moderation, dt.date(2026, 11, 1)) == ["creator:c1"]
