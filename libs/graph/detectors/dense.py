"""Dense-block detector: FRAUDAR-style dense subgraphs of the user x creator engagement graph.

A fake-engagement ring is a near-complete bipartite block: every member engages every customer.
Honest structure is sparse in comparison -- a viral video or a big creator's fan base is a *star*
(many users, one creator), and organic users spread over creators more or less at random. What
makes the block hard to see is **camouflage**: members also engage popular honest creators, so
by raw degree they look like busy ordinary users. FRAUDAR (Hooi et al., KDD 2016) answers with
*column weighting*: an edge to creator ``c`` weighs ``1 / log(in_degree(c) + offset)``, so an edge
to a creator with thousands of fans adds almost nothing, while the ring's edges to its small
customers keep their weight. Camouflage can then only *add* to a block's density, never hide it.

Density of a node set ``S`` (users and creators): ``f(S) / |S|`` with ``f`` the summed weight of
the edges inside ``S``. The densest set is found by peeling, done in batches so that each round is
a couple of aggregates over the edge table instead of one node at a time (FRAUDAR's greedy needs
a priority queue and |V| sequential steps):

* **Batch peeling** (Bahmani, Kumar, Vassilvitskii, "Densest Subgraph in Streaming and
  MapReduce", VLDB 2012): each round removes *every* node whose weighted degree is at most
  ``2 (1 + epsilon) rho(S)`` -- ``(1 + epsilon)`` times the average weighted degree, ``2 rho``.
  Fewer than ``1 / (1 + epsilon)`` of the nodes can sit above that, so each round removes a
  fixed share of the nodes: ``O(log_{1+epsilon} n)`` rounds. The round with the highest density
  is kept; it is within ``2 (1 + epsilon)`` of the densest subgraph. Each round's edge table is
  materialised through :class:`RoundStore` (lineage cut, a failed write fails the job).
* **Several blocks**: the best round's edges are removed from the graph and peeling starts again
  on the rest, ``n_blocks`` times (or until the graph is empty). Weights stay those of the full
  graph: a creator's popularity does not change because a ring was found next to it.
* **Split into components**: peeling is global, so the best round may hold several disjoint
  dense groups (two rings of similar density, a sybil cluster beside them). Each connected
  component of the best round is reported as its own syndicate when it has ``min_users`` users,
  ``min_creators`` creators and density ``>= min_density``.

Output: ``syndicate_id = 'dense:<n>'`` (``n = 1, 2, ...`` in order of discovery: block, then
density descending), members (users, role ``member``) and customers (creators, role
``customer``) with ``score = syndicate_score = density``.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from libs.graph.components import ConvergenceError, connected_components
from libs.graph.materialize import RoundStore
from schemas.syndicates import DETECTOR_COLUMNS

PREFIX = "dense:"
ROLE_MEMBER = "member"
ROLE_CUSTOMER = "customer"
# FRAUDAR's constant: 1 / log(d + 5) keeps a creator with a single fan at weight 1/log(6) ~ 0.56
# instead of an infinite 1/log(1).
DEFAULT_WEIGHT_OFFSET = 5.0
# Density (weighted edges per node) a reported component must reach. A star -- one creator and
# its fans, however many: viral burst, loyal audience -- stays below 1/log(6) / 2 ~ 0.28 for 1
# fan and ~1/log(d) for d fans; a complete block of m users x k creators of in-degree ~d has
# m k / ((m + k) log(d + 5)), e.g. 8 x 3 small customers (d ~ 50) ~ 0.55.
DEFAULT_MIN_DENSITY = 0.5
# ... and a multiple of the background: the whole graph's density (see dense_blocks).
DEFAULT_MIN_DENSITY_RATIO = 1.5

_U, _C = "u:", "c:"   # component ids: users and creators are different id spaces


def _check_engagements(engagements: DataFrame) -> None:
    types = {f.name: f.dataType.simpleString() for f in engagements.schema.fields}
    missing = sorted({"user_id", "creator_id"} - set(types))
    if missing:
        raise ValueError(f"engagements lack columns {missing}; got {sorted(types)}")
    for name in ("user_id", "creator_id"):
        if types[name] != "string":
            raise ValueError(f"engagements.{name} must be string, got {types[name]}")


def weighted_edges(engagements: DataFrame, weight_offset: float = DEFAULT_WEIGHT_OFFSET) -> DataFrame:
    """``user_id, creator_id, w``: one edge per (user, creator) engaged at least once, any kind.

    ``w = 1 / ln(in_degree(creator) + weight_offset)``, in-degree = distinct users of the creator
    in ``engagements`` (FRAUDAR's column weighting).
    """
    pairs = (engagements.where(F.col("user_id").isNotNull() & F.col("creator_id").isNotNull())
             .select("user_id", "creator_id").distinct())
    indeg = pairs.groupBy("creator_id").agg(F.count(F.lit(1)).alias("indeg"))
    return pairs.join(indeg, "creator_id").select(
        "user_id", "creator_id", (F.lit(1.0) / F.log(F.col("indeg") + F.lit(float(weight_offset)))).alias("w"))


def _stats(edges: DataFrame) -> tuple[float, int, int]:
    """Summed weight, users and creators of an edge table (three scalars)."""
    row = edges.agg(F.sum("w").alias("f"), F.countDistinct("user_id").alias("nu"),
                    F.countDistinct("creator_id").alias("nc")).first()
    return float(row["f"] or 0.0), int(row["nu"]), int(row["nc"])


def _peel(store: RoundStore, edges: DataFrame, epsilon: float, max_rounds: int,
          block: int) -> tuple[DataFrame, float]:
    """Edges and density of the densest round of batch peeling ``edges`` (see module doc)."""
    best_density, best = -1.0, edges
    cur = edges
    for rnd in range(max_rounds + 1):
        f, nu, nc = _stats(cur)
        if nu + nc == 0:
            return best, best_density
        if rnd == max_rounds:
            raise ConvergenceError(f"dense block {block}: peeling did not empty the graph in {max_rounds} rounds")
        density = f / (nu + nc)
        if density > best_density:    # strict: on a tie keep the earlier (larger) round
            best_density, best = density, cur
        threshold = 2.0 * (1.0 + epsilon) * density
        keep_u = cur.groupBy("user_id").agg(F.sum("w").alias("d")).where(F.col("d") > threshold).select("user_id")
        keep_c = cur.groupBy("creator_id").agg(F.sum("w").alias("d")).where(F.col("d") > threshold).select("creator_id")
        cur = store.put(cur.join(keep_u, "user_id", "left_semi").join(keep_c, "creator_id", "left_semi"),
                        f"block-{block}-round-{rnd + 1}")
    return best, best_density  # unreachable: the loop returns or raises


def dense_blocks(engagements: DataFrame, n_blocks: int = 10, min_users: int = 3, min_creators: int = 2,
                 epsilon: float = 0.1, min_density: float = DEFAULT_MIN_DENSITY,
                 weight_offset: float = DEFAULT_WEIGHT_OFFSET, max_rounds: int = 500,
                 min_density_ratio: float = DEFAULT_MIN_DENSITY_RATIO) -> DataFrame:
    """Dense user x creator blocks as rows of ``DETECTOR_COLUMNS`` (see module doc).

    ``engagements``: ``user_id, creator_id`` (other columns ignored; any kind counts, a follow
    without a video included).

    * ``n_blocks`` (10): peeling passes; each removes its best round's edges before the next.
    * ``min_users`` (3) / ``min_creators`` (2): smallest reported block. One creator is a star --
      a fan base, never a ring signal in this graph (the lockstep detector covers single-customer
      rings through timing).
    * ``epsilon`` (0.1): batch-peeling slack; larger = fewer rounds, coarser blocks.
    * ``min_density`` (0.5): reported blocks' weighted density (see ``DEFAULT_MIN_DENSITY``).
    * ``weight_offset`` (5): ``c`` of the edge weight ``1 / ln(in_degree + c)``; must exceed 1.
    * ``min_density_ratio`` (1.5): a block is reported only when its density is at least this
      multiple of the whole engagement graph's density, and peeling stops after the first block
      without such a component (later blocks are peeled from what is left: no denser). An absolute
      ``min_density`` alone does not transfer across scales: on the 10k-creator simulation the
      *whole* organic graph has density 1.9 (users touch 8-10 creators each) -- far above a
      small ring's ~0.7 -- and the second block was the entire graph.
    * ``max_rounds`` (500): guard against a runaway loop (peeling provably ends in
      ``O(log n / epsilon)`` rounds).

    Needs the session's checkpoint dir; the result is read back from Parquet that outlives the call.
    """
    _check_engagements(engagements)
    for name, value, low in (("n_blocks", n_blocks, 1), ("min_users", min_users, 1),
                             ("min_creators", min_creators, 1), ("max_rounds", max_rounds, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if not 0.0 < float(epsilon) <= 10.0:
        raise ValueError(f"epsilon must be in (0, 10], got {epsilon!r}")
    if not float(min_density_ratio) >= 1.0:
        raise ValueError(f"min_density_ratio must be >= 1 (a block no denser than the graph is no block), "
                         f"got {min_density_ratio!r}")
    if not float(min_density) >= 0.0:
        raise ValueError(f"min_density must be >= 0, got {min_density!r}")
    if not float(weight_offset) > 1.0:
        raise ValueError(f"weight_offset must be > 1 (ln(1 + offset) > 0 keeps weights finite), got {weight_offset!r}")

    spark: SparkSession = engagements.sparkSession
    with RoundStore(spark, "dense") as store:
        remaining = store.put(weighted_edges(engagements, weight_offset), "edges")
        found: list[DataFrame] = []
        f0, nu0, nc0 = _stats(remaining)
        background = f0 / (nu0 + nc0) if nu0 + nc0 else 0.0
        floor = max(float(min_density), float(min_density_ratio) * background)
        reportable = (F.col("nu") >= min_users) & (F.col("nc") >= min_creators) & (F.col("density") >= floor)
        for block in range(1, n_blocks + 1):
            if remaining.isEmpty():
                break
            best, _ = _peel(store, remaining, float(epsilon), max_rounds, block)
            comps = store.put(_components(spark, best, block), f"block-{block}")
            found.append(comps)
            if not comps.where(reportable).limit(1).count():
                # Later blocks are peeled from what is left and are no denser: once a block has
                # no reportable component (at scale: the whole organic graph), stop peeling.
                break
            remaining = store.put(remaining.join(best, ["user_id", "creator_id"], "left_anti"),
                                  f"remaining-{block}")
        if not found:
            empty = spark.createDataFrame([], "syndicate_id string, entity_type string, entity_id string, role string, "
                                              "score double, syndicate_size long, syndicate_score double, evidence string")
            return RoundStore(spark, "dense-result", keep=True).put(empty, "syndicates")
        nodes = found[0]
        for more in found[1:]:
            nodes = nodes.unionByName(more)
        blocks = nodes.select("block", "component", "density", "nu", "nc").distinct().where(reportable)
        # One row per reported block: a global order over a handful of rows (single partition is fine).
        order = Window.orderBy("block", F.col("density").desc(), "component")
        named = blocks.withColumn("n", F.row_number().over(order))
        rows = nodes.join(named.select("block", "component", "n"), ["block", "component"]).select(
            F.concat(F.lit(PREFIX), F.col("n").cast("string")).alias("syndicate_id"),
            F.when(F.col("is_user"), F.lit("user")).otherwise(F.lit("creator")).alias("entity_type"),
            "entity_id",
            F.when(F.col("is_user"), F.lit(ROLE_MEMBER)).otherwise(F.lit(ROLE_CUSTOMER)).alias("role"),
            F.col("density").alias("score"),
            (F.col("nu") + F.col("nc")).cast("long").alias("syndicate_size"),
            F.col("density").alias("syndicate_score"),
            F.format_string(f"dense block of %d users x %d creators: weighted density %.2f "
                            f"(reported from {floor:.2f})", F.col("nu"), F.col("nc"),
                            F.col("density")).alias("evidence"),
        )
        result = RoundStore(spark, "dense-result", keep=True).put(rows.select(*DETECTOR_COLUMNS), "syndicates")
    return result


def _components(spark: SparkSession, best: DataFrame, block: int) -> DataFrame:
    """Nodes of a block's best round with their component and its size/density.

    Columns ``block, component, entity_id, is_user, density, nu, nc``.
    """
    edges = best.select(F.concat(F.lit(_U), "user_id").alias("src"), F.concat(F.lit(_C), "creator_id").alias("dst"), "w")
    vertices = edges.select(F.col("src").alias("id")).unionByName(edges.select(F.col("dst").alias("id"))).distinct()
    comp = connected_components(spark, vertices, edges.select("src", "dst"))
    weight = (edges.join(comp.select(F.col("id").alias("src"), "component"), "src")
              .groupBy("component").agg(F.sum("w").alias("f")))
    counts = comp.groupBy("component").agg(
        F.sum(F.col("id").startswith(_U).cast("long")).alias("nu"),
        F.sum(F.col("id").startswith(_C).cast("long")).alias("nc"))
    summary = weight.join(counts, "component").withColumn("density", F.col("f") / (F.col("nu") + F.col("nc")))
    return comp.join(summary, "component").select(
        F.lit(block).alias("block"), "component", F.substring(F.col("id"), 3, 1 << 20).alias("entity_id"),
        F.col("id").startswith(_U).alias("is_user"), "density", "nu", "nc")
