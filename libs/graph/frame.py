"""The graph object jobs use: GraphFrames' data model and method names, two backends.

* :class:`Graph` -- the project's own engine on plain Spark DataFrames (always available).
* :class:`GraphFramesGraph` -- delegates to ``graphframes.GraphFrame`` when the GraphFrames JVM
  classes are on the classpath (a cluster started with
  ``--packages io.graphframes:graphframes-spark4_2.13:<version>``).

Both answer the same questions with the same conventions (checked by
``tests/unit/graph/test_conformance.py`` against networkx): components are labelled by their
smallest vertex id, PageRank scores sum to 1. Code written against this class ports to GraphFrames
by swapping the constructor, which is the point of keeping its names (camelCase included).
"""
from __future__ import annotations

from typing import Any, Iterable

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from libs.graph.components import connected_components
from libs.graph.messages import aggregate_messages, triplets
from libs.graph.pagerank import page_rank

GRAPHFRAMES_CLASS = "org.graphframes.GraphFrame"


class GraphValidationError(ValueError):
    pass


class Graph:
    """A property graph: ``vertices`` (``id`` + attributes) and ``edges`` (``src``, ``dst`` + attributes)."""

    backend = "native"

    def __init__(self, vertices: DataFrame, edges: DataFrame) -> None:
        if "id" not in vertices.columns:
            raise GraphValidationError(f"vertices need an 'id' column; got {vertices.columns}")
        missing = {"src", "dst"} - set(edges.columns)
        if missing:
            raise GraphValidationError(f"edges need columns src and dst; missing {sorted(missing)}")
        self._v = vertices
        self._e = edges

    # -- data -------------------------------------------------------------------------------------
    @property
    def vertices(self) -> DataFrame:
        return self._v

    @property
    def edges(self) -> DataFrame:
        return self._e

    @property
    def spark(self) -> SparkSession:
        return self._v.sparkSession

    @property
    def triplets(self) -> DataFrame:
        return triplets(self._v, self._e)

    def validate(self) -> "Graph":
        """Fail loudly on duplicate vertex ids or edges whose endpoint is not a vertex.

        Not done in the constructor because it costs two Spark jobs; loaders call it once.
        """
        dup = self._v.groupBy("id").count().where("count > 1").limit(3).collect()
        if dup:
            raise GraphValidationError(f"duplicate vertex ids, e.g. {[r['id'] for r in dup]}")
        ids = self._v.select("id")
        for end in ("src", "dst"):
            orphan = self._e.join(ids, self._e[end] == ids["id"], "left_anti").limit(3).collect()
            if orphan:
                raise GraphValidationError(f"edges whose {end} is not a vertex, e.g. {[r[end] for r in orphan]}")
        return self

    # -- degrees (vertices without edges are absent, as in GraphFrames) ---------------------------
    @property
    def outDegrees(self) -> DataFrame:
        return self._e.groupBy(F.col("src").alias("id")).agg(F.count("*").alias("outDegree"))

    @property
    def inDegrees(self) -> DataFrame:
        return self._e.groupBy(F.col("dst").alias("id")).agg(F.count("*").alias("inDegree"))

    @property
    def degrees(self) -> DataFrame:
        ends = self._e.select(F.col("src").alias("id")).unionAll(self._e.select(F.col("dst").alias("id")))
        return ends.groupBy("id").agg(F.count("*").alias("degree"))

    # -- algorithms -------------------------------------------------------------------------------
    def connectedComponents(self, algorithm: str = "randomized_contraction", seed: int = 7,
                            maxRounds: int = 200) -> DataFrame:
        """Vertices plus a ``component`` column (smallest id of the component)."""
        comps = connected_components(self.spark, self._v, self._e, algorithm=algorithm, seed=seed,
                                     max_rounds=maxRounds)
        return self._v.join(comps, "id")

    def pageRank(self, resetProbability: float = 0.15, sourceId: Any | None = None,
                 sourceIds: Iterable[Any] | None = None, maxIter: int = 100, tol: float = 1e-6,
                 weightCol: str | None = None) -> "Graph":
        """A graph whose vertices carry ``pagerank`` (sums to 1) and edges the transition ``weight``."""
        sources = _sources(sourceId, sourceIds)
        ranks = page_rank(self.spark, self._v, self._e, reset_probability=resetProbability, max_iter=maxIter,
                          tol=tol, source_ids=sources, weight_col=weightCol)
        w = F.col(weightCol).cast("double") if weightCol else F.lit(1.0)
        out = self._e.groupBy("src").agg(F.sum(w).alias("_wsum"))
        edges = self._e.join(out, "src").withColumn("weight", w / F.col("_wsum")).drop("_wsum")
        return Graph(self._v.join(ranks, "id"), edges)

    def aggregateMessages(self, aggCol: Column, sendToSrc: Column | None = None,
                          sendToDst: Column | None = None) -> DataFrame:
        return aggregate_messages(self._v, self._e, aggCol, sendToSrc, sendToDst)

    def find(self, pattern: str) -> DataFrame:
        from libs.graph.motif import find

        return find(self._v, self._e, pattern)

    # -- subgraphs --------------------------------------------------------------------------------
    def filterVertices(self, condition: Column | str) -> "Graph":
        v = self._v.where(condition)
        ids = v.select("id")
        e = self._e.join(ids.withColumnRenamed("id", "src"), "src", "left_semi").join(
            ids.withColumnRenamed("id", "dst"), "dst", "left_semi")
        return type(self)(v, e.select(*self._e.columns))

    def filterEdges(self, condition: Column | str) -> "Graph":
        return type(self)(self._v, self._e.where(condition))

    def dropIsolatedVertices(self) -> "Graph":
        ends = self._e.select(F.col("src").alias("id")).union(self._e.select(F.col("dst").alias("id"))).distinct()
        return type(self)(self._v.join(ends, "id", "left_semi"), self._e)


def _sources(source_id: Any | None, source_ids: Iterable[Any] | None) -> list[Any] | None:
    if source_id is not None and source_ids is not None:
        raise ValueError("give sourceId or sourceIds, not both")
    if source_id is not None:
        return [source_id]
    return None if source_ids is None else list(source_ids)


class GraphFramesGraph(Graph):
    """Same interface, computed by GraphFrames (JVM). Results are normalised to :class:`Graph`'s conventions."""

    backend = "graphframes"

    def __init__(self, vertices: DataFrame, edges: DataFrame) -> None:
        super().__init__(vertices, edges)
        from graphframes import GraphFrame  # the graphframes-py package (Python API only)

        self._gf = GraphFrame(vertices, edges)

    def connectedComponents(self, algorithm: str = "randomized_contraction", seed: int = 7,
                            maxRounds: int = 200) -> DataFrame:
        gf_algorithm = {"two_phase": "two_phase", "graphframes": "two_phase"}.get(algorithm, algorithm)
        # broadcastThreshold=-1: GraphFrames' docs recommend letting AQE handle skew (faster).
        raw = self._gf.connectedComponents(algorithm=gf_algorithm, broadcastThreshold=-1).select("id", "component")
        # GraphFrames labels with arbitrary longs; relabel with the smallest member id.
        mins = raw.groupBy("component").agg(F.min("id").alias("_min"))
        comps = raw.join(mins, "component").select("id", F.col("_min").alias("component"))
        return self._v.join(comps, "id")

    def pageRank(self, resetProbability: float = 0.15, sourceId: Any | None = None,
                 sourceIds: Iterable[Any] | None = None, maxIter: int = 100, tol: float = 1e-6,
                 weightCol: str | None = None) -> "Graph":
        sources = _sources(sourceId, sourceIds)
        if weightCol is not None or (sources is not None and len(sources) != 1):
            raise NotImplementedError("GraphFrames' pageRank supports neither edge weights nor several sources; "
                                      "use the native backend")
        res = self._gf.pageRank(resetProbability=resetProbability,
                                sourceId=None if sources is None else sources[0], tol=tol)
        total = res.vertices.agg(F.sum("pagerank")).first()[0]
        return Graph(res.vertices.withColumn("pagerank", F.col("pagerank") / F.lit(total)), res.edges)

    def aggregateMessages(self, aggCol: Column, sendToSrc: Column | None = None,
                          sendToDst: Column | None = None) -> DataFrame:
        return self._gf.aggregateMessages(aggCol, sendToSrc=sendToSrc, sendToDst=sendToDst)

    def find(self, pattern: str) -> DataFrame:
        return self._gf.find(pattern)


def graphframes_available(spark: SparkSession) -> tuple[bool, str]:
    """Whether the GraphFrames backend can run here, and why not."""
    try:
        import graphframes  # noqa: F401
    except ImportError:
        return False, "the graphframes-py package is not installed"
    try:
        jvm = spark.sparkContext._jvm
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName(GRAPHFRAMES_CLASS, False, loader)
    except Exception:
        return False, (f"{GRAPHFRAMES_CLASS} is not on the Spark classpath (io.graphframes jars are not "
                       "served by this environment's Maven registry)")
    return True, ""


def make_graph(vertices: DataFrame, edges: DataFrame, backend: str = "auto") -> Graph:
    """Build the graph on ``backend``: ``native``, ``graphframes`` or ``auto`` (GraphFrames if present)."""
    if backend not in ("auto", "native", "graphframes"):
        raise ValueError(f"unknown graph backend {backend!r}")
    if backend == "native":
        return Graph(vertices, edges)
    ok, why = graphframes_available(vertices.sparkSession)
    if ok:
        return GraphFramesGraph(vertices, edges)
    if backend == "graphframes":
        raise RuntimeError(f"GraphFrames backend unavailable: {why}")
    return Graph(vertices, edges)
