"""Pure transforms of the smoke pipeline (no I/O): a fixed creator/device graph and its metrics.

The graph is small and hand-made so every number the job prints can be checked by eye:

* creators ``c01..c10`` and devices ``d1..d5``; ``uses_device`` edges creator -> device and
  ``follows`` edges creator -> creator.
* base feed: farm A = c01, c02, c03 on d1; farm B = c04, c05 on d2 (c05 also on d3); c06 follows
  c07 and c07 uses d4; c08 uses d5; c09 follows c08; c10 is alone.
  Components: {c01,c02,c03,d1}, {c04,c05,d2,d3}, {c06,c07,d4}, {c08,c09,d5}, {c10} -> **5**.
* late feed (arrives after the first load, a correction): c03 logs in on d2, which joins farm A
  and farm B -> **4** components. 15 vertices either way.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from libs.graph import Graph

CREATORS = [f"c{i:02d}" for i in range(1, 11)]
DEVICES = [f"d{i}" for i in range(1, 6)]
BASE_EDGES = [
    ("c01", "d1", "uses_device"), ("c02", "d1", "uses_device"), ("c03", "d1", "uses_device"),
    ("c04", "d2", "uses_device"), ("c05", "d2", "uses_device"), ("c05", "d3", "uses_device"),
    ("c06", "c07", "follows"), ("c07", "d4", "uses_device"),
    ("c08", "d5", "uses_device"), ("c09", "c08", "follows"),
]
LATE_EDGES = [("c03", "d2", "uses_device")]
EDGE_SCHEMA = "src string, dst string, relationship string"


def smoke_vertices(spark: SparkSession) -> DataFrame:
    rows = [(c, "creator") for c in CREATORS] + [(d, "device") for d in DEVICES]
    return spark.createDataFrame(rows, "id string, kind string")


def smoke_edges(spark: SparkSession, include_late: bool) -> DataFrame:
    return spark.createDataFrame(BASE_EDGES + (LATE_EDGES if include_late else []), EDGE_SCHEMA)


def graph_metrics(graph: Graph, run_date: str) -> DataFrame:
    """``(run_date, id, kind, component, pagerank)`` for every vertex of ``graph``."""
    comps = graph.connectedComponents().select("id", "kind", "component")
    # tol 1e-5 per vertex: plenty for the 4 printed decimals, and fewer iterations than 1e-6.
    ranks = graph.pageRank(resetProbability=0.15, tol=1e-5).vertices.select("id", "pagerank")
    return comps.join(ranks, "id").select(F.lit(run_date).alias("run_date"), "id", "kind", "component", "pagerank")


def summarize(metrics: DataFrame, top: int = 3) -> dict:
    """Component count and top-``top`` PageRank vertices (ties by id), for printing and checks."""
    n_components = metrics.select("component").distinct().count()
    top_rows = metrics.orderBy(F.desc("pagerank"), "id").limit(top).collect()
    return {
        "vertices": metrics.count(),
        "components": n_components,
        "top_pagerank": [(r["id"], round(r["pagerank"], 4)) for r in top_rows],
    }
