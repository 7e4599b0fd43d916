"""Risk propagation (libs.graph.propagation) on hand-made graphs with hand-computed values.

Noisy-OR with restart: ``risk_t(v) = 1 - (1 - seed(v)) * prod(1 - decay * rw * w/W(u) * risk_{t-1}(u))``
over v's neighbours u, ``W(u)`` = u's raw weighted degree. Every expected number below is worked
out in the comments from that formula, never by running the code.
"""
from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from libs.graph.propagation import propagate_risk

EDGES = StructType([StructField("src", StringType()), StructField("dst", StringType()),
                    StructField("relation", StringType()), StructField("weight", DoubleType())])
SEEDS = StructType([StructField("id", StringType()), StructField("risk", DoubleType())])
OUT = StructType([StructField("id", StringType()), StructField("risk", DoubleType()),
                  StructField("hops", IntegerType())])


def edges(spark: SparkSession, rows):
    return spark.createDataFrame(rows, EDGES)


def seeds(spark: SparkSession, rows):
    return spark.createDataFrame(rows, SEEDS)


def expect(spark: SparkSession, rows):
    return spark.createDataFrame(rows, OUT)


def test_path_values_for_three_steps(spark):
    # a - b - c (undirected), seed a = 1, decay 0.5, all weights 1. Degrees W: a 1, b 2, c 1.
    # step 1: b hears a: 0.5*1/1*1 = 0.5                         -> b = 0.5, c = 0
    # step 2: b hears a: 0.5 (c has 0)                           -> b = 0.5
    #         c hears b: 0.5*1/2*0.5 = 0.125                      -> c = 0.125
    # step 3: b hears a 0.5 and c 0.5*1/1*0.125 = 0.0625          -> b = 1 - 0.5*0.9375 = 0.53125
    #         c hears b: 0.5*1/2*0.5 = 0.125                      -> c = 0.125
    # a is a seed of risk 1: 1 - (1 - 1) * ... = 1 every step.
    e = edges(spark, [("a", "b", "device", 1.0), ("b", "c", "device", 1.0)])
    s = seeds(spark, [("a", 1.0)])
    rw = {"device": 1.0}
    assertDataFrameEqual(propagate_risk(spark, e, s, rw, steps=2, decay=0.5),
                         expect(spark, [("a", 1.0, 0), ("b", 0.5, 1), ("c", 0.125, 2)]), atol=1e-12)
    assertDataFrameEqual(propagate_risk(spark, e, s, rw, steps=3, decay=0.5),
                         expect(spark, [("a", 1.0, 0), ("b", 0.53125, 1), ("c", 0.125, 2)]), atol=1e-12)


def test_directed_flow_and_partial_seed_restart(spark):
    # Directed a -> b -> c, seed b = 0.4, a is upstream and must stay at 0.
    # step 1: c hears b: 0.5*1/1*0.4 = 0.2; b = 1 - 0.6*1 = 0.4 (nothing flows into b)
    # step 2: same: c = 0.2. With undirected=True a would hear b instead (see the path test).
    e = edges(spark, [("a", "b", "pay", 1.0), ("b", "c", "pay", 1.0)])
    s = seeds(spark, [("b", 0.4)])
    got = propagate_risk(spark, e, s, {"pay": 1.0}, steps=2, decay=0.5, undirected=False)
    assertDataFrameEqual(got, expect(spark, [("a", 0.0, None), ("b", 0.4, 0), ("c", 0.2, 1)]), atol=1e-12)


def test_noisy_or_combines_independent_neighbours_and_seed_keeps_its_risk(spark):
    # x and y (seeds 1.0) both linked to v; v also linked to seed z of risk 0.5 which hears v back.
    # Degrees: x 1, y 1, z 1, v 3. step 1: v hears x 0.5, y 0.5, z 0.5*0.5 = 0.25
    #   -> v = 1 - 0.5*0.5*0.75 = 0.8125; z hears v (risk 0 at step 0): z stays 0.5.
    e = edges(spark, [("x", "v", "r", 1.0), ("y", "v", "r", 1.0), ("z", "v", "r", 1.0)])
    s = seeds(spark, [("x", 1.0), ("y", 1.0), ("z", 0.5)])
    got = propagate_risk(spark, e, s, {"r": 1.0}, steps=1, decay=0.5)
    assertDataFrameEqual(got, expect(spark, [("x", 1.0, 0), ("y", 1.0, 0), ("z", 0.5, 0), ("v", 0.8125, 1)]),
                         atol=1e-12)
    # step 2: z now hears v: 0.5*1/3*0.8125 -> z = 1 - 0.5*(1 - 0.8125/6) = 0.5 + 0.8125/12 > 0.5
    got2 = propagate_risk(spark, e, s, {"r": 1.0}, steps=2, decay=0.5).where("id = 'z'").first()
    assert got2["risk"] == pytest.approx(0.5 + 0.8125 / 12, abs=1e-12)


def test_relation_weights_scale_and_zero_blocks(spark):
    # s -device- a (rw 1), s -follows- b (rw 0.2), a -ip- c (rw 0: blocked), weights 1.
    # W(s) = 2 (raw weights of all relations), W(a) = 2.
    # step 1: a = 0.5*1*1/2*1 = 0.25; b = 0.5*0.2*1/2*1 = 0.05.
    # step 2: c hears a only through the zero-weight relation -> c = 0, never reached.
    #         a hears s 0.25 again (c has 0) -> 0.25; b -> 0.05 (b's degree 1, s is a seed of 1).
    e = edges(spark, [("s", "a", "device", 1.0), ("s", "b", "follows", 1.0), ("a", "c", "ip", 1.0)])
    got = propagate_risk(spark, e, seeds(spark, [("s", 1.0)]), {"device": 1.0, "follows": 0.2, "ip": 0.0},
                         steps=2, decay=0.5)
    assertDataFrameEqual(got, expect(spark, [("s", 1.0, 0), ("a", 0.25, 1), ("b", 0.05, 1), ("c", 0.0, None)]),
                         atol=1e-12)


def test_hub_spreads_less_per_neighbour_than_a_private_link(spark):
    # Seed h is a hub with 4 neighbours (a shared payment processor); seed p has 1 neighbour.
    # step 1: each hub leaf gets 0.5*1/4 = 0.125; p's only contact gets 0.5.
    # The hub's leaves are the honest look-alikes: they must stay well below p's contact.
    rows = [("h", f"l{i}", "pays", 1.0) for i in range(4)] + [("p", "q", "pays", 1.0)]
    got = propagate_risk(spark, edges(spark, rows), seeds(spark, [("h", 1.0), ("p", 1.0)]), {"pays": 1.0},
                         steps=1, decay=0.5)
    assertDataFrameEqual(got, expect(spark, [("h", 1.0, 0), ("p", 1.0, 0), ("q", 0.5, 1)]
                                     + [(f"l{i}", 0.125, 1) for i in range(4)]), atol=1e-12)


def test_edge_weights_split_the_senders_risk(spark):
    # Seed s with weights 3 (to a) and 1 (to b): W(s) = 4 -> a = 0.5*3/4 = 0.375, b = 0.5*1/4 = 0.125.
    e = edges(spark, [("s", "a", "r", 3.0), ("s", "b", "r", 1.0)])
    got = propagate_risk(spark, e, seeds(spark, [("s", 1.0)]), {"r": 1.0}, steps=1, decay=0.5)
    assertDataFrameEqual(got, expect(spark, [("s", 1.0, 0), ("a", 0.375, 1), ("b", 0.125, 1)]), atol=1e-12)


def test_bad_inputs_are_clear_errors(spark):
    e = edges(spark, [("a", "b", "device", 1.0), ("b", "c", "follows", 1.0)])
    s = seeds(spark, [("a", 1.0)])
    with pytest.raises(ValueError, match=r"relation\(s\) \['follows'\] have no entry"):
        propagate_risk(spark, e, s, {"device": 1.0})
    with pytest.raises(ValueError, match="give relation_weights"):
        propagate_risk(spark, e, s, None)
    with pytest.raises(ValueError, match=r"relation weights must be in \[0, 1\]"):
        propagate_risk(spark, e, s, {"device": 1.0, "follows": 2.0})
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\)"):
        propagate_risk(spark, e, s, {"device": 1.0, "follows": 1.0}, decay=1.0)
    with pytest.raises(ValueError, match=r"risk outside \(0, 1\]"):
        propagate_risk(spark, e, seeds(spark, [("a", 0.0)]), {"device": 1.0, "follows": 1.0})
    with pytest.raises(ValueError, match="duplicate id"):
        propagate_risk(spark, e, seeds(spark, [("a", 1.0), ("a", 0.5)]), {"device": 1.0, "follows": 1.0})
    with pytest.raises(ValueError, match="negative weight"):
        propagate_risk(spark, edges(spark, [("a", "b", "r", -1.0)]), s, {"r": 1.0})
    with pytest.raises(ValueError, match="self-loop"):
        propagate_risk(spark, edges(spark, [("a", "a", "r", 1.0)]), s, {"r": 1.0})

