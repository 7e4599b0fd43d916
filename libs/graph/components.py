"""Connected components (weakly: edge direction ignored) on Spark DataFrames.

Two algorithms, both returning ``(id, component)`` for **every** vertex with
``component = the smallest vertex id of its component`` (GraphFrames' convention), so the result
does not depend on the algorithm, the random seed or the partitioning:

* ``"randomized_contraction"`` (default) -- each round, every vertex picks the vertex with the
  smallest *random* hash in its closed neighbourhood as its representative; edges are rewritten
  to representatives and self-loops dropped. Random priorities make the number of surviving
  vertices shrink geometrically in expectation on *any* graph (a 100k-vertex path included), so
  rounds are O(log n) and each round is a single join + aggregate. Labels are resolved backwards
  through the per-round maps, which shrink geometrically too. (Bögeholz, Brand, Todor:
  "In-database connected component analysis", ICDE 2020; GraphFrames >= 0.10 ships a variant.)
* ``"two_phase"`` (alias ``"graphframes"``) -- the large-star / small-star algorithm of Kiveris et
  al. ("Connected Components in MapReduce and Beyond", SoCC 2014), GraphFrames' classic default.

Every round is materialised as Parquet through :class:`RoundStore` (a failed write fails the
job; nothing silently continues from a half-written checkpoint), and termination is decided by an
exact structural test, not by a checksum that could collide.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from libs.graph.materialize import RoundStore

ALGORITHMS = ("randomized_contraction", "two_phase")
_ALIASES = {"graphframes": "two_phase", "large_star_small_star": "two_phase"}


class ConvergenceError(RuntimeError):
    pass


def _undirected_pairs(edges: DataFrame) -> DataFrame:
    """Distinct unordered pairs (a < b), self-loops dropped: the only input CC needs."""
    return (
        edges.select(F.least("src", "dst").alias("a"), F.greatest("src", "dst").alias("b"))
        .where(F.col("a") != F.col("b"))
        .distinct()
    )


def _canonical_labels(vertices: DataFrame, labels: DataFrame) -> DataFrame:
    """Attach labels to all vertices (unlabelled = own component) and rename each component to its min id."""
    labelled = vertices.select("id").join(labels, "id", "left").select(
        "id", F.coalesce("label", "id").alias("label")
    )
    mins = labelled.groupBy("label").agg(F.min("id").alias("component"))
    return labelled.join(mins, "label").select("id", "component")


def connected_components(spark: SparkSession, vertices: DataFrame, edges: DataFrame,
                         algorithm: str = "randomized_contraction", seed: int = 7,
                         max_rounds: int = 200, keep_rounds: bool = False) -> DataFrame:
    """``(id, component)`` for every vertex of ``vertices``; ``edges`` endpoints must be vertices.

    The result is itself materialised (Parquet) before the round folders are removed, so the
    returned DataFrame never points at deleted files. ``max_rounds`` turns a runaway loop into a
    clear :class:`ConvergenceError` instead of an endless job.
    """
    algorithm = _ALIASES.get(algorithm, algorithm)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown connected-components algorithm {algorithm!r}; choose from {ALGORITHMS}")
    store = RoundStore(spark, f"cc-{algorithm}", keep=True)
    try:
        if algorithm == "randomized_contraction":
            labels = _randomized_contraction(store, edges, seed, max_rounds)
        else:
            labels = _two_phase(store, edges, max_rounds)
        # The final result lives outside the round folders, in its own store that the caller's
        # lifetime owns (cleaned with the session's checkpoint dir, not here).
        result_store = RoundStore(spark, "cc-result", keep=True)
        return result_store.put(_canonical_labels(vertices, labels), "components")
    finally:
        if not keep_rounds:
            store.cleanup()


def _randomized_contraction(store: RoundStore, edges: DataFrame, seed: int, max_rounds: int) -> DataFrame:
    pairs = store.put(_undirected_pairs(edges), "pairs-0")
    maps: list[DataFrame] = []
    for rnd in range(max_rounds + 1):
        if pairs.isEmpty():
            break
        if rnd == max_rounds:
            raise ConvergenceError(f"randomized contraction did not finish within {max_rounds} rounds")
        salt = F.lit(seed * 1_000_003 + rnd)
        both = pairs.select(F.col("a").alias("u"), F.col("b").alias("w")).unionByName(
            pairs.select(F.col("b").alias("u"), F.col("a").alias("w"))
        )
        # Priority = (random hash, id): a total order, fresh every round; ties cannot occur.
        best_nbr = both.groupBy("u").agg(F.min(F.struct(F.xxhash64("w", salt).alias("h"), F.col("w").alias("v"))).alias("n"))
        rep = best_nbr.select(
            "u", F.least("n", F.struct(F.xxhash64("u", salt).alias("h"), F.col("u").alias("v"))).getField("v").alias("rep")
        )
        # Only vertices that move are stored; a missing entry means "represents itself".
        moved = store.put(rep.where(F.col("u") != F.col("rep")), f"map-{rnd}")
        maps.append(moved)
        ra, rb = moved.alias("ra"), moved.alias("rb")
        rewired = (
            pairs.alias("p")
            .join(ra, F.col("p.a") == F.col("ra.u"), "left")
            .join(rb, F.col("p.b") == F.col("rb.u"), "left")
            .select(F.coalesce("ra.rep", "p.a").alias("x"), F.coalesce("rb.rep", "p.b").alias("y"))
        )
        pairs = store.put(
            rewired.select(F.least("x", "y").alias("a"), F.greatest("x", "y").alias("b"))
            .where(F.col("a") != F.col("b")).distinct(),
            f"pairs-{rnd + 1}",
        )
    # Backward resolution: label_r(u) = label_{r+1}(map_r(u)); the last round's labels are identity.
    labels: DataFrame | None = None
    for rnd in range(len(maps) - 1, -1, -1):
        moved = maps[rnd]
        if labels is None:
            labels = moved.select("u", F.col("rep").alias("label"))
            continue
        nxt = labels.select(F.col("u").alias("rep"), F.col("label").alias("nlabel"))
        through = moved.join(nxt, "rep", "left").select("u", F.coalesce("nlabel", "rep").alias("label"))
        kept = labels.join(moved.select("u"), "u", "left_anti")
        labels = store.put(through.unionByName(kept), f"labels-{rnd}")
    if labels is None:
        return edges.select(F.col("src").alias("id"), F.col("src").alias("label")).limit(0)
    return labels.select(F.col("u").alias("id"), "label")


def _two_phase(store: RoundStore, edges: DataFrame, max_rounds: int) -> DataFrame:
    # Edges are kept as child -> parent with parent < child.
    star = store.put(_undirected_pairs(edges).select(F.col("b").alias("v"), F.col("a").alias("p")), "star-0")
    for rnd in range(1, max_rounds + 1):
        if _is_star_forest(star):
            break
        # Large-star: every vertex u links its larger neighbours to the min of its closed neighbourhood.
        nbrs = star.select(F.col("v").alias("u"), F.col("p").alias("n")).unionByName(
            star.select(F.col("p").alias("u"), F.col("v").alias("n"))
        )
        mins = nbrs.groupBy("u").agg(F.min("n").alias("m"))
        large = (
            nbrs.where(F.col("n") > F.col("u")).join(mins, "u")
            .select(F.col("n").alias("v"), F.least("m", "u").alias("p")).distinct()
        )
        large = store.put(large, f"large-{rnd}")
        # Small-star: every vertex u links itself and its smaller neighbours to their min.
        smin = large.groupBy("v").agg(F.min("p").alias("m"))
        small = (
            large.join(smin, "v").select(F.col("p").alias("x"), "m")
            .unionByName(smin.select(F.col("v").alias("x"), "m"))
            .where(F.col("x") != F.col("m"))
            .select(F.col("x").alias("v"), F.col("m").alias("p")).distinct()
        )
        star = store.put(small, f"small-{rnd}")
    else:
        if not _is_star_forest(star):
            raise ConvergenceError(f"large-star/small-star did not converge within {max_rounds} rounds")
    return star.select(F.col("v").alias("id"), F.col("p").alias("label"))


def _is_star_forest(star: DataFrame) -> bool:
    """Exact termination test: every child has one parent and no parent is itself a child.

    The algorithm preserves connectivity, so once the child->parent edges form stars each star is
    exactly one component (rooted at its minimum).
    """
    multi_parent = star.groupBy("v").count().where("count > 1").limit(1).count()
    if multi_parent:
        return False
    parents = star.select(F.col("p").alias("v")).distinct()
    return parents.join(star.select("v"), "v", "left_semi").limit(1).count() == 0
