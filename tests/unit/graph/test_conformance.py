"""One conformance suite for every graph backend, with networkx as the oracle.

Each algorithm runs on each available backend over small graphs chosen for their traps
(isolated vertices, string ids, dangling vertices, a long chain, self-loops) and is compared with
networkx's answer. The GraphFrames leg skips, with the reason, where its jar is not on the
classpath (this environment's Maven registry does not serve io.graphframes).
"""
from __future__ import annotations

import networkx as nx
import pytest
from pyspark.sql import functions as F

from libs.graph import AM, make_graph
from libs.graph.frame import graphframes_available


def _random_long_graph() -> nx.DiGraph:
    g = nx.gnm_random_graph(40, 42, seed=11, directed=True)
    g.add_node(40)  # isolated
    g.add_edge(5, 5)  # self-loop
    return g


def _string_graph() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_edges_from([("ann", "bob"), ("bob", "cy"), ("cy", "ann"), ("cy", "dee"),  # cycle + dangling dee
                      ("eve", "fay"), ("gus", "fay")])
    g.add_node("hal")
    return g


def _path_graph() -> nx.DiGraph:
    # Reversed orientation on purpose: direction must not matter for components.
    return nx.DiGraph([(i + 1, i) for i in range(0, 60)])


GRAPHS = {"random_long": _random_long_graph, "strings": _string_graph, "path": _path_graph}


@pytest.fixture(params=["native", "graphframes"])
def backend(request, spark) -> str:
    if request.param == "graphframes":
        ok, why = graphframes_available(spark)
        if not ok:
            pytest.skip(f"GraphFrames backend unavailable: {why}")
    return request.param


def _to_graph(spark, nxg: nx.DiGraph, backend: str):
    id_type = "string" if isinstance(next(iter(nxg.nodes)), str) else "long"
    v = spark.createDataFrame([(n, float(len(str(n)) + i)) for i, n in enumerate(sorted(nxg.nodes))],
                              f"id {id_type}, score double")
    e = spark.createDataFrame([(a, b, "rel") for a, b in nxg.edges], f"src {id_type}, dst {id_type}, kind string")
    return make_graph(v, e, backend=backend)


@pytest.mark.parametrize("name", sorted(GRAPHS))
@pytest.mark.parametrize("algorithm", ["randomized_contraction", "two_phase"])
def test_connected_components_match_networkx(spark, backend, name, algorithm):
    nxg = GRAPHS[name]()
    got = {r["id"]: r["component"] for r in _to_graph(spark, nxg, backend).connectedComponents(algorithm=algorithm).collect()}
    expected = {n: min(c) for c in nx.weakly_connected_components(nxg) for n in c}
    assert got == expected


def test_degrees_match_networkx(spark, backend):
    nxg = _random_long_graph()
    g = _to_graph(spark, nxg, backend)
    assert {r["id"]: r["inDegree"] for r in g.inDegrees.collect()} == {n: d for n, d in nxg.in_degree() if d}
    assert {r["id"]: r["outDegree"] for r in g.outDegrees.collect()} == {n: d for n, d in nxg.out_degree() if d}
    assert {r["id"]: r["degree"] for r in g.degrees.collect()} == {n: d for n, d in nxg.degree() if d}


@pytest.mark.parametrize("name", ["random_long", "strings"])
def test_pagerank_matches_networkx(spark, backend, name):
    nxg = GRAPHS[name]()
    got = {r["id"]: r["pagerank"] for r in _to_graph(spark, nxg, backend).pageRank(resetProbability=0.15, tol=1e-7).vertices.collect()}
    expected = nx.pagerank(nxg, alpha=0.85, tol=1e-12, max_iter=1000)
    assert got.keys() == expected.keys()
    assert max(abs(got[k] - expected[k]) for k in expected) < 5e-5
    assert sum(got.values()) == pytest.approx(1.0, abs=1e-9)


def test_personalized_pagerank_matches_networkx(spark, backend):
    nxg = _string_graph()
    got = {r["id"]: r["pagerank"] for r in _to_graph(spark, nxg, backend).pageRank(sourceId="ann", tol=1e-7).vertices.collect()}
    expected = nx.pagerank(nxg, alpha=0.85, personalization={"ann": 1.0}, tol=1e-12, max_iter=1000)
    assert max(abs(got[k] - expected[k]) for k in expected) < 5e-5
    # Unreachable from the seed -> no trust at all (what makes PPR useful for sybil detection).
    assert got["eve"] == 0.0 and got["hal"] == 0.0


def test_aggregate_messages_sum_of_in_neighbour_scores(spark, backend):
    nxg = _string_graph()
    g = _to_graph(spark, nxg, backend)
    scores = {r["id"]: r["score"] for r in g.vertices.collect()}
    got = {r["id"]: r["s"] for r in g.aggregateMessages(F.sum(AM.msg).alias("s"), sendToDst=AM.src["score"]).collect()}
    expected = {n: sum(scores[p] for p in nxg.predecessors(n)) for n in nxg.nodes if nxg.in_degree(n)}
    assert got == expected


def test_find_two_paths_match_networkx(spark, backend):
    nxg = _random_long_graph()
    rows = _to_graph(spark, nxg, backend).find("(a)-[]->(b); (b)-[]->(c)").select("a.id", "b.id", "c.id").collect()
    got = sorted(tuple(r) for r in rows)
    expected = sorted((a, b, c) for a, b in nxg.edges for c in nxg.successors(b))
    assert got == expected
