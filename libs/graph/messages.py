"""GraphFrames' ``aggregateMessages``: send a column expression along each edge, aggregate per vertex.

Messages are built from the triplet columns ``src``, ``dst`` and ``edge`` (structs holding all
vertex/edge attributes), exactly like ``graphframes.lib.AggregateMessages``; the aggregate refers to
the message as ``AM.msg``. Vertices that receive nothing are absent from the result (as in
GraphFrames).
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

MSG = "MSG"


class _ColumnHandle:
    """Class attribute resolved to a Column on access: a Column needs a live SparkContext,
    which does not exist at import time (executors, DAG parsing)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: type) -> Column:
        return F.col(self.name)


class AggregateMessages:
    """Column handles for message expressions (``AM.src["age"]``, ``AM.msg``)."""

    src = _ColumnHandle("src")
    dst = _ColumnHandle("dst")
    edge = _ColumnHandle("edge")
    msg = _ColumnHandle(MSG)


AM = AggregateMessages


def triplets(vertices: DataFrame, edges: DataFrame) -> DataFrame:
    """``(src struct, edge struct, dst struct)`` per edge."""
    v_struct = F.struct(*[F.col(c) for c in vertices.columns])
    vs = vertices.select(F.col("id").alias("_vid"), v_struct.alias("_v"))
    e = edges.select(F.col("src").alias("_s"), F.col("dst").alias("_d"), F.struct(*[F.col(c) for c in edges.columns]).alias("edge"))
    return (
        e.join(vs.withColumnRenamed("_v", "src"), F.col("_s") == F.col("_vid")).drop("_vid")
        .join(vs.withColumnRenamed("_v", "dst"), F.col("_d") == F.col("_vid")).drop("_vid")
        .select("src", "edge", "dst")
    )


def aggregate_messages(vertices: DataFrame, edges: DataFrame, agg_col: Column,
                       send_to_src: Column | None = None, send_to_dst: Column | None = None) -> DataFrame:
    """``(id, <aggregate>)`` for every vertex that received at least one message."""
    if send_to_src is None and send_to_dst is None:
        raise ValueError("aggregate_messages needs send_to_src and/or send_to_dst")
    t = triplets(vertices, edges)
    parts = []
    if send_to_src is not None:
        parts.append(t.select(F.col("src.id").alias("id"), send_to_src.alias(MSG)))
    if send_to_dst is not None:
        parts.append(t.select(F.col("dst.id").alias("id"), send_to_dst.alias(MSG)))
    msgs = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
    return msgs.groupBy("id").agg(agg_col)
