"""SybilRank and Fairness-Goodness (libs.graph.trust) on hand-made graphs, values worked out by hand.

Every expected number is derived in the comments from the algorithms' definitions (SybilRank:
each step a vertex splits its trust equally among its neighbours; Fairness-Goodness: the ICDM 2016
update equations), never by running the code under test.
"""
from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.sql.types import DoubleType, StringType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from libs.graph.trust import (FairnessGoodnessConvergenceError, fairness_goodness, predict_edge_weights,
                              scale_weights, sybil_rank)

RATINGS = StructType([StructField("src", StringType()), StructField("dst", StringType()),
                      StructField("weight", DoubleType())])
FAIR = StructType([StructField("id", StringType()), StructField("fairness", DoubleType())])
GOOD = StructType([StructField("id", StringType()), StructField("goodness", DoubleType())])
TRUST = StructType([StructField("id", StringType()), StructField("trust", DoubleType()),
                    StructField("degree_normalized_trust", DoubleType())])


def ratings(spark: SparkSession, rows):
    return spark.createDataFrame(rows, RATINGS)


# ------------------------------------------------------------------------------------ SybilRank

def two_regions(spark: SparkSession):
    """Honest 4-clique h1..h4, sybil 4-clique s1..s4, one attack edge h4 - s1 (given twice, as a
    reciprocal pair, which must count once). Seed: h1."""
    honest = [("h1", "h2"), ("h1", "h3"), ("h1", "h4"), ("h2", "h3"), ("h2", "h4"), ("h3", "h4")]
    sybil = [(a.replace("h", "s"), b.replace("h", "s")) for a, b in honest]
    e = spark.createDataFrame(honest + sybil + [("h4", "s1"), ("s1", "h4")], "src string, dst string")
    v = spark.createDataFrame([(f"h{i}",) for i in range(1, 5)] + [(f"s{i}",) for i in range(1, 5)] + [("iso",)],
                              "id string")
    return v, e


def test_sybil_region_gets_low_degree_normalized_trust(spark):
    # n = 9 vertices -> default steps = ceil(log2 9) = 4; pin steps=3 to keep the hand computation short.
    # Degrees: h1 h2 h3 = 3, h4 = 4, s1 = 4, s2 s3 s4 = 3, iso = 0.
    # t0: h1 = 1.
    # t1: h2 = h3 = h4 = 1/3.
    # t2: h1 = 1/9 + 1/9 + 1/12 = 11/36; h2 = h3 = 1/9 + 1/12 = 7/36; h4 = 2/9 = 8/36; s1 = 1/12 = 3/36.
    # t3 (in 432ths): h1 sends 44 to each of h2 h3 h4; h2, h3 send 28; h4 sends 24 (to h1 h2 h3 s1);
    #   s1 sends 9 (to h4 s2 s3 s4).
    #   h1 = 28+28+24 = 80, h2 = h3 = 44+28+24 = 96, h4 = 44+28+28+9 = 109, s1 = 24, s2 = s3 = s4 = 9.
    v, e = two_regions(spark)
    got = sybil_rank(spark, v, e, ["h1"], steps=3)
    t = {"h1": 80, "h2": 96, "h3": 96, "h4": 109, "s1": 24, "s2": 9, "s3": 9, "s4": 9}
    deg = {"h1": 3, "h2": 3, "h3": 3, "h4": 4, "s1": 4, "s2": 3, "s3": 3, "s4": 3}
    expected = [(k, x / 432, x / 432 / deg[k]) for k, x in t.items()] + [("iso", 0.0, None)]
    assertDataFrameEqual(got, spark.createDataFrame(expected, TRUST), atol=1e-12)
    # Every honest non-seed (the look-alikes of a fresh account) ranks above every sybil.
    rows = {r["id"]: r["degree_normalized_trust"] for r in got.collect()}
    assert min(rows[f"h{i}"] for i in range(1, 5)) > max(rows[f"s{i}"] for i in range(1, 5))


def test_sybil_rank_default_steps_and_errors(spark):
    v, e = two_regions(spark)
    # Default steps for n = 9 is 4; trust is conserved (no isolated seed): the sum stays 1.
    total = sybil_rank(spark, v, e, ["h1", "h2"]).agg({"trust": "sum"}).first()[0]
    assert total == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="not vertices"):
        sybil_rank(spark, v, e, ["nobody"])
    with pytest.raises(ValueError, match="at least one trusted seed"):
        sybil_rank(spark, v, e, [])
    loop = spark.createDataFrame([("h1", "h1")], "src string, dst string")
    with pytest.raises(ValueError, match="self-loops"):
        sybil_rank(spark, v, loop, ["h1"])


# ---------------------------------------------------------------------------- Fairness-Goodness

def test_fairness_goodness_fixed_point_by_hand(spark):
    # a -> b 1.0, a -> c 1.0, c -> b 0.5.
    # g_b = (f_a + 0.5 f_c)/2, g_c = f_a, f_a = 1 - (|1 - g_b| + |1 - g_c|)/4, f_c = 1 - |0.5 - g_b|/2.
    # With 0.5 < g_b < 1 and g_c = f_a <= 1: 3 f_a = 2 + g_b; f_c = 5/4 - g_b/2;
    # g_b = f_a/2 + 5/16 - g_b/8 -> g_b = 4/9 f_a + 5/18 -> g_b (23/27) = 31/54 -> g_b = 31/46,
    # f_a = (2 + 31/46)/3 = 41/46, g_c = 41/46, f_c = 5/4 - 31/92 = 21/23.
    r = ratings(spark, [("a", "b", 1.0), ("a", "c", 1.0), ("c", "b", 0.5)])
    fair, good = fairness_goodness(spark, r, max_iter=100, tol=1e-10)
    assertDataFrameEqual(fair, spark.createDataFrame([("a", 41 / 46), ("c", 21 / 23)], FAIR), atol=1e-8)
    assertDataFrameEqual(good, spark.createDataFrame([("b", 31 / 46), ("c", 41 / 46)], GOOD), atol=1e-8)


def test_first_iteration_uses_all_fair_all_good_and_new_goodness(spark):
    # Same graph; iteration 1 from f = g = 1: g_b = (1 + 0.5)/2 = 0.75, g_c = 1;
    # f_a = 1 - (0.25 + 0)/4 = 0.9375, f_c = 1 - |0.5 - 0.75|/2 = 0.875 (the *new* g_b; the old
    # g_b = 1 would give 0.75). Largest change = 0.25 (g_b) < tol 0.3 -> stops after one iteration.
    r = ratings(spark, [("a", "b", 1.0), ("a", "c", 1.0), ("c", "b", 0.5)])
    fair, good = fairness_goodness(spark, r, tol=0.3)
    assertDataFrameEqual(fair, spark.createDataFrame([("a", 0.9375), ("c", 0.875)], FAIR), atol=1e-12)
    assertDataFrameEqual(good, spark.createDataFrame([("b", 0.75), ("c", 1.0)], GOOD), atol=1e-12)


def test_harsh_but_consistent_raters_are_fairer_than_a_shill(spark):
    # x, y rate bad node b -1 and good node q +1; shill z rates both +1.
    # By symmetry f_x = f_y = F, f_z = Z; g_q = (2F + Z)/3, g_b = (Z - 2F)/3.
    # F = 1 - ((1 + g_b) + (1 - g_q))/4 = 1/2 + F/3 -> F = 3/4;
    # Z = 1 - ((1 - g_b) + (1 - g_q))/4 = 1/2 + Z/6 -> Z = 3/5; g_q = 0.7, g_b = -0.3.
    # The negative ratings of x and y are honest (the look-alike that must not look unfair).
    r = ratings(spark, [("x", "b", -1.0), ("y", "b", -1.0), ("z", "b", 1.0),
                        ("x", "q", 1.0), ("y", "q", 1.0), ("z", "q", 1.0)])
    fair, good = fairness_goodness(spark, r, tol=1e-10)
    assertDataFrameEqual(fair, spark.createDataFrame([("x", 0.75), ("y", 0.75), ("z", 0.6)], FAIR), atol=1e-8)
    assertDataFrameEqual(good, spark.createDataFrame([("b", -0.3), ("q", 0.7)], GOOD), atol=1e-8)
    # Predicted weights f(u) * g(v), with the reference fallbacks for unseen nodes (f 1, g 0):
    # x -> q: 0.75 * 0.7 = 0.525; z -> b: 0.6 * -0.3 = -0.18; new -> q: 1 * 0.7; x -> new: 0.75 * 0.
    pairs = spark.createDataFrame([("x", "q"), ("z", "b"), ("new", "q"), ("x", "new")], "src string, dst string")
    got = {(p["src"], p["dst"]): (p["predicted"], p["fallback"])
           for p in predict_edge_weights(pairs, fair, good).collect()}
    assert got[("x", "q")] == (pytest.approx(0.525), False)
    assert got[("z", "b")] == (pytest.approx(-0.18), False)
    assert got[("new", "q")] == (pytest.approx(0.7), True)
    assert got[("x", "new")] == (0.0, True)


def test_convergence_failure_and_bad_ratings_are_errors(spark):
    r = ratings(spark, [("a", "b", 1.0), ("a", "c", 1.0), ("c", "b", 0.5)])
    # Two iterations cannot reach 1e-12 (iteration 2 still moves f_c by 0.03125).
    with pytest.raises(FairnessGoodnessConvergenceError, match=r"did not converge to tol=1e-12 in 2 iterations"):
        fairness_goodness(spark, r, max_iter=2, tol=1e-12)
    with pytest.raises(ValueError, match=r"outside \[-1, 1\]"):
        fairness_goodness(spark, ratings(spark, [("a", "b", 5.0)]))
    with pytest.raises(ValueError, match="self-rating"):
        fairness_goodness(spark, ratings(spark, [("a", "a", 1.0)]))
    with pytest.raises(ValueError, match="same \\(src, dst\\)"):
        fairness_goodness(spark, ratings(spark, [("a", "b", 1.0), ("a", "b", -1.0)]))
    with pytest.raises(ValueError, match="null or non-numeric"):
        fairness_goodness(spark, ratings(spark, [("a", "b", None)]))


def test_scale_weights_maps_the_range_linearly(spark):
    # -10 -> -1, 0 -> 0, 5 -> 0.5, 10 -> 1 on the Bitcoin scale; 11 is outside -> error.
    r = ratings(spark, [("a", "b", -10.0), ("a", "c", 0.0), ("b", "c", 5.0), ("c", "a", 10.0)])
    got = sorted((x["src"], x["dst"], x["weight"]) for x in scale_weights(r, -10, 10).collect())
    assert got == [("a", "b", -1.0), ("a", "c", 0.0), ("b", "c", 0.5), ("c", "a", 1.0)]
    with pytest.raises(ValueError, match="outside"):
        scale_weights(ratings(spark, [("a", "b", 11.0)]), -10, 10)
