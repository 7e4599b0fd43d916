"""Motif finding (libs.graph.motif.find) against independently computed expectations.

Expected results are written literally or enumerated with plain Python / networkx over the same
edge-list literal the DataFrames are built from -- never by calling ``find`` itself.
"""
from __future__ import annotations

import re

import networkx as nx
import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from libs.graph.motif import find

V_LONG = StructType([StructField("id", LongType()), StructField("name", StringType())])
E_LONG = StructType(
    [StructField("src", LongType()), StructField("dst", LongType()), StructField("kind", StringType())]
)
V_STR = StructType([StructField("id", StringType()), StructField("name", StringType())])
E_STR = StructType(
    [StructField("src", StringType()), StructField("dst", StringType()), StructField("kind", StringType())]
)


def graph(spark: SparkSession, edge_list, vertex_ids=None, string_ids: bool = False):
    """Vertices (named ``v<id>``) and edges (kind ``k``) from literals; vertex ids default to the
    endpoints of ``edge_list``."""
    ids = sorted(vertex_ids if vertex_ids is not None else {x for e in edge_list for x in e[:2]})
    v = spark.createDataFrame([(i, f"v{i}") for i in ids], V_STR if string_ids else V_LONG)
    rows = [e if len(e) == 3 else (e[0], e[1], "k") for e in edge_list]
    e = spark.createDataFrame(rows, E_STR if string_ids else E_LONG)
    return v, e


def ids(df: DataFrame, *names: str) -> list[tuple]:
    """Sorted ``(name1.id, name2.id, ...)`` tuples of a motif result (keeps duplicates)."""
    return sorted(tuple(r) for r in df.select(*[f"{n}.id" for n in names]).collect())


# --------------------------------------------------------------------------- paths vs networkx

PATH_EDGES = [(1, 2), (2, 3), (3, 1), (2, 4), (4, 5), (5, 5), (3, 6)]


def test_two_paths_match_networkx_enumeration(spark):
    v, e = graph(spark, PATH_EDGES, vertex_ids=[1, 2, 3, 4, 5, 6, 7])
    g = nx.DiGraph()
    g.add_nodes_from([1, 2, 3, 4, 5, 6, 7])
    g.add_edges_from(PATH_EDGES)
    expected_nx = sorted((a, b, c) for a in g for b in g.successors(a) for c in g.successors(b))
    # The same enumeration with bare loops over the literal, as a check on the networkx one.
    expected_loops = sorted(
        (a, b, c) for (a, b) in PATH_EDGES for (b2, c) in PATH_EDGES if b2 == b
    )
    assert expected_nx == expected_loops

    result = find(v, e, "(a)-[e1]->(b); (b)-[e2]->(c)")

    assert result.columns == ["a", "e1", "b", "e2", "c"]
    assert ids(result, "a", "b", "c") == expected_nx
    # The edge structs are the edges that were walked.
    walked = sorted(
        tuple(r) for r in result.select("e1.src", "e1.dst", "e2.src", "e2.dst").collect()
    )
    assert walked == sorted((a, b, b, c) for a, b, c in expected_nx)


def test_two_paths_literal_including_self_loop(spark):
    v, e = graph(spark, [(1, 2), (2, 2), (2, 3)])
    result = find(v, e, "(a)-[]->(b); (b)-[]->(c)")
    assert result.columns == ["a", "b", "c"]
    assert ids(result, "a", "b", "c") == [(1, 2, 2), (1, 2, 3), (2, 2, 2), (2, 2, 3)]


# --------------------------------------------------------------------------- cycles


def test_triangles(spark):
    # One directed triangle 1->2->3->1, a 2-cycle 3<->4 and a dead end 4->5.
    v, e = graph(spark, [(1, 2), (2, 3), (3, 1), (3, 4), (4, 3), (4, 5)])
    result = find(v, e, "(a)-[]->(b); (b)-[]->(c); (c)-[]->(a)")
    assert result.columns == ["a", "b", "c"]
    assert ids(result, "a", "b", "c") == [(1, 2, 3), (2, 3, 1), (3, 1, 2)]


def test_mutual_pairs_reuse_vertex_names(spark):
    v, e = graph(spark, [(1, 2), (2, 1), (2, 3), (3, 3)])
    result = find(v, e, "(a)-[e]->(b); (b)-[e2]->(a)")
    assert result.columns == ["a", "e", "b", "e2"]
    # The self-loop 3->3 is its own reverse (homomorphism semantics, as in GraphFrames).
    assert ids(result, "a", "b") == [(1, 2), (2, 1), (3, 3)]


def test_self_loop_binds_one_vertex(spark):
    v, e = graph(spark, [(1, 2), (2, 2), (3, 3), (3, 1)])
    result = find(v, e, "(a)-[e]->(a)")
    assert result.columns == ["a", "e"]
    assert sorted(tuple(r) for r in result.select("a.id", "e.src", "e.dst").collect()) == [
        (2, 2, 2),
        (3, 3, 3),
    ]


def test_lone_vertex_reused_in_edge_term_is_the_same_vertex(spark):
    v, e = graph(spark, [(1, 2), (2, 3)], vertex_ids=[1, 2, 3, 4])
    result = find(v, e, "(a); (a)-[]->(b)")
    assert result.columns == ["a", "b"]
    assert ids(result, "a", "b") == [(1, 2), (2, 3)]


def test_lone_vertex_lists_all_vertices(spark):
    v, e = graph(spark, [(1, 2)], vertex_ids=[1, 2, 3])
    result = find(v, e, "(x)")
    assert result.columns == ["x"]
    assert sorted(tuple(r) for r in result.select("x.id", "x.name").collect()) == [
        (1, "v1"),
        (2, "v2"),
        (3, "v3"),
    ]


def test_disconnected_terms_give_cross_product(spark):
    v, e = graph(spark, [(1, 2), (3, 4)])
    result = find(v, e, "(a)-[]->(b); (c)-[]->(d)")
    assert ids(result, "a", "b", "c", "d") == [
        (1, 2, 1, 2),
        (1, 2, 3, 4),
        (3, 4, 1, 2),
        (3, 4, 3, 4),
    ]


# --------------------------------------------------------------------------- negation


def test_negation_gives_one_way_edges(spark):
    v, e = graph(spark, [(1, 2), (2, 1), (2, 3), (3, 4), (4, 4)])
    result = find(v, e, "(a)-[]->(b); !(b)-[]->(a)")
    assert result.columns == ["a", "b"]
    assert ids(result, "a", "b") == [(2, 3), (3, 4)]


def test_negation_is_order_independent(spark):
    v, e = graph(spark, [(1, 2), (2, 1), (2, 3), (3, 4)])
    result = find(v, e, "!(b)-[]->(a); (a)-[e]->(b)")
    assert result.columns == ["b", "a", "e"]
    assert ids(result, "a", "b") == [(2, 3), (3, 4)]


def test_negation_with_anonymous_endpoint_means_no_such_edge_at_all(spark):
    # b must have no outgoing edge whatsoever.
    v, e = graph(spark, [(1, 2), (2, 3), (3, 4), (1, 5)])
    result = find(v, e, "(a)-[]->(b); !(b)-[]->()")
    assert ids(result, "a", "b") == [(1, 5), (3, 4)]


def test_negated_transitive_closure_edge(spark):
    # Open 2-paths a->b->c without a shortcut a->c.
    v, e = graph(spark, [(1, 2), (2, 3), (1, 3), (3, 4)])
    result = find(v, e, "(a)-[]->(b); (b)-[]->(c); !(a)-[]->(c)")
    assert ids(result, "a", "b", "c") == [(1, 3, 4), (2, 3, 4)]


# --------------------------------------------------------------------------- attributes


def test_struct_columns_carry_all_attributes_and_can_be_filtered(spark):
    v = spark.createDataFrame(
        [(1, "ann", 34), (2, "bob", 36), (3, "cid", 30)],
        "id long, name string, age int",
    )
    e = spark.createDataFrame(
        [(1, 2, "follow", 0.5), (2, 3, "friend", 1.0), (1, 3, "follow", 2.0)],
        "src long, dst long, kind string, weight double",
    )
    result = find(v, e, "(a)-[e]->(b)")

    assert result.columns == ["a", "e", "b"]
    assert [(f.name, f.dataType) for f in result.schema["a"].dataType.fields] == [
        ("id", LongType()),
        ("name", StringType()),
        ("age", IntegerType()),
    ]
    assert [f.name for f in result.schema["e"].dataType.fields] == ["src", "dst", "kind", "weight"]

    follows = result.where("e.kind = 'follow' AND b.age > 30").select("a.name", "b.name", "e.weight")
    assert sorted(tuple(r) for r in follows.collect()) == [("ann", "bob", 0.5)]


def test_attribute_columns_with_dots_are_kept_verbatim(spark):
    v = spark.createDataFrame([(1, "x"), (2, "y")], "id long, `user.name` string")
    e = spark.createDataFrame([(1, 2, 7)], "src long, dst long, `w.t` int")
    result = find(v, e, "(a)-[e]->(b)")
    assert [f.name for f in result.schema["a"].dataType.fields] == ["id", "user.name"]
    assert result.select("a.`user.name`", "e.`w.t`", "b.`user.name`").collect() == [Row("x", 7, "y")]


# --------------------------------------------------------------------------- string ids


def test_string_ids_full_rows(spark):
    # The GraphFrames user-guide "friends" graph.
    v = spark.createDataFrame(
        [("a", "Alice", 34), ("b", "Bob", 36), ("c", "Charlie", 30), ("d", "David", 29),
         ("e", "Esther", 32), ("f", "Fanny", 36), ("g", "Gabby", 60)],
        "id string, name string, age int",
    )
    e = spark.createDataFrame(
        [("a", "b", "friend"), ("b", "c", "follow"), ("c", "b", "follow"), ("f", "c", "follow"),
         ("e", "f", "follow"), ("e", "d", "friend"), ("d", "a", "friend"), ("a", "e", "friend")],
        "src string, dst string, relationship string",
    )
    result = find(v, e, "(a)-[e]->(b); (b)-[e2]->(a)")

    expected = spark.createDataFrame(
        [
            (("b", "Bob", 36), ("b", "c", "follow"), ("c", "Charlie", 30), ("c", "b", "follow")),
            (("c", "Charlie", 30), ("c", "b", "follow"), ("b", "Bob", 36), ("b", "c", "follow")),
        ],
        "a struct<id:string,name:string,age:int>, e struct<src:string,dst:string,relationship:string>, "
        "b struct<id:string,name:string,age:int>, e2 struct<src:string,dst:string,relationship:string>",
    )
    assertDataFrameEqual(result, expected, checkRowOrder=False)


def test_string_ids_negation(spark):
    v, e = graph(spark, [("x", "y"), ("y", "x"), ("y", "z")], string_ids=True)
    assert ids(find(v, e, "(a)-[]->(b); !(b)-[]->(a)"), "a", "b") == [("y", "z")]


# --------------------------------------------------------------------------- duplicates, anonymity


def test_duplicate_edges_give_duplicate_matches(spark):
    v, e = graph(spark, [(1, 2, "p"), (1, 2, "q"), (2, 3, "r")])

    named = find(v, e, "(a)-[e]->(b)").where("a.id = 1")
    assert sorted(tuple(r) for r in named.select("a.id", "b.id", "e.kind").collect()) == [
        (1, 2, "p"),
        (1, 2, "q"),
    ]
    # Anonymous edges: the rows are identical but both stay.
    assert ids(find(v, e, "(a)-[]->(b)"), "a", "b") == [(1, 2), (1, 2), (2, 3)]
    assert ids(find(v, e, "(a)-[]->(b); (b)-[]->(c)"), "a", "b", "c") == [(1, 2, 3), (1, 2, 3)]
    # Negation filters but does not collapse surviving duplicates.
    assert ids(find(v, e, "(a)-[]->(b); !(b)-[]->(a)"), "a", "b") == [(1, 2), (1, 2), (2, 3)]


def test_anonymous_vertex_is_not_checked_against_vertices_named_one_is(spark):
    # Vertex 9 is a dangling edge endpoint, absent from the vertices DataFrame.
    v, e = graph(spark, [(1, 2), (1, 9)], vertex_ids=[1, 2])
    assert ids(find(v, e, "(a)-[]->()"), "a") == [(1,), (1,)]
    assert ids(find(v, e, "(a)-[]->(b)"), "a", "b") == [(1, 2)]
    anonymous_both = find(v, e, "()-[e]->()")
    assert anonymous_both.columns == ["e"]
    assert sorted(tuple(r) for r in anonymous_both.select("e.src", "e.dst").collect()) == [(1, 2), (1, 9)]


def test_output_columns_follow_first_appearance(spark):
    v, e = graph(spark, [(1, 2), (2, 3)])
    assert find(v, e, "(b)-[e2]->(c); (a)-[e]->(b)").columns == ["b", "e2", "c", "a", "e"]
    assert find(v, e, "(a)-[e]->(b); (z)").columns == ["a", "e", "b", "z"]
    assert find(v, e, " ( a ) - [ e ] -> ( b ) ").columns == ["a", "e", "b"]


# --------------------------------------------------------------------------- invalid patterns


@pytest.mark.parametrize(
    ("pattern", "bad_term"),
    [
        ("", ""),
        ("   ", "   "),
        ("(a)-[e]->(b);", ""),
        ("(a)-[e]->(b);;(c)", ""),
        ("(a)-[e]-(b)", "(a)-[e]-(b)"),
        ("(a)<-[e]-(b)", "(a)<-[e]-(b)"),
        ("(a)->(b)", "(a)->(b)"),
        ("a-[e]->b", "a-[e]->b"),
        ("(a-b)", "(a-b)"),
        ("(a)-[e*2]->(b)", "(a)-[e*2]->(b)"),
        ("!(a)", "!(a)"),
        ("(a)-[e]->(b); (b)-[e]->(c)", "(b)-[e]->(c)"),
        ("(a)-[]->(b); !(a)-[e]->(b)", "!(a)-[e]->(b)"),
        ("(a)-[]->(b); !(a)-[]->(c)", "!(a)-[]->(c)"),
        ("!(a)-[]->(b)", "!(a)-[]->(b)"),
        ("(a)-[]->(b); !()-[]->()", "!()-[]->()"),
        ("()", "()"),
        ("(a)-[]->(b); ( )", "( )"),
        ("()-[]->()", "()-[]->()"),
        ("(a)-[a]->(b)", "(a)-[a]->(b)"),
        ("(a)-[e]->(b); (e)", "(e)"),
        ("(a)-[e]->(b); (e)-[]->(c)", "(e)-[]->(c)"),
    ],
)
def test_invalid_patterns_raise_value_error_quoting_the_term(spark, pattern, bad_term):
    v, e = graph(spark, [(1, 2)])
    with pytest.raises(ValueError, match=re.escape(repr(bad_term))):
        find(v, e, pattern)


def test_inputs_must_have_graph_columns(spark):
    v, e = graph(spark, [(1, 2)])
    with pytest.raises(ValueError, match="'id'"):
        find(v.withColumnRenamed("id", "vid"), e, "(a)-[]->(b)")
    with pytest.raises(ValueError, match="'dst'"):
        find(v, e.withColumnRenamed("dst", "to"), "(a)-[]->(b)")
