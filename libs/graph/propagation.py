"""Risk propagation from known-bad seeds over a multi-relation graph ("guilt by association").

Model: **noisy-OR diffusion with restart**, synchronous, for a fixed number of steps.

* Each step every vertex ``u`` with risk ``r(u) > 0`` sends along each of its edges ``(u, v)`` a
  message ``m = decay * relation_weight[relation] * w(u, v) / W(u) * r(u)``, where ``W(u)`` is
  the sum of the *raw* weights of all of ``u``'s edges (every relation).
* The new risk of ``v`` is ``1 - (1 - seed(v)) * prod(1 - m)`` over the messages it received: the
  probability that at least one independent cause (being a known-bad seed, or any one risky
  neighbour) makes ``v`` risky.

Why noisy-OR rather than personalised PageRank: the output is a score in [0, 1] that reads as a
probability by construction (no clipping, no dependence on the graph's size the way PPR mass
spreads over ``n`` vertices), several independent risky neighbours *add up* but saturate below 1,
and a seed keeps at least its own risk each step (the restart) -- ``1 - (1 - s) * P >= s``.
Scores are comparable across graphs and runs, which a PPR distribution (sums to 1) is not. (For a
PPR ranking from the seeds, :func:`libs.graph.pagerank.page_rank` with ``source_ids`` and
``weight_col`` already does it.)

Why normalise by the sender's weighted degree ``W(u)``: a hub (a shared payment processor, a
popular creator, a data-centre IP) connected to a bad actor would otherwise pass near-full risk
to each of its thousands of neighbours. Splitting ``u``'s risk over its edges bounds what one
sender emits in total by ``decay * max(relation weight) * r(u)``. ``W(u)`` uses the *raw* edge
weights of all relations, so a relation weight scales the evidence an edge carries instead of
cancelling out (with relation-weighted normalisation a user whose only edge is a weak "follows"
would pass its full risk along it).

Risk is walk-based (like PPR): a vertex also hears its own risk echoed back through neighbours,
damped by ``decay**2`` per round trip. A fixed small number of ``steps`` (default 3) limits the
horizon: association evidence weakens quickly with distance, and SybilRank uses the same early
termination argument.
"""
from __future__ import annotations

from typing import Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from libs.graph.materialize import RoundStore

DEFAULT_STEPS = 3      # association evidence beyond ~3 hops is mostly noise in fraud graphs
DEFAULT_DECAY = 0.5    # a neighbour of a certain-bad seed gets at most 0.5 from it


def _check_params(steps: int, decay: float, relation_weights: Mapping[str, float] | None) -> None:
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    # decay < 1 keeps every message strictly below certainty: only a seed can be risk 1.
    if not 0.0 < decay < 1.0:
        raise ValueError(f"decay must be in (0, 1), got {decay}")
    if relation_weights is not None:
        bad = {k: v for k, v in relation_weights.items() if v is None or not 0.0 <= float(v) <= 1.0}
        if bad:
            raise ValueError(f"relation weights must be in [0, 1]; got {bad}")


def _weighted_edges(edges: DataFrame, relation_weights: Mapping[str, float] | None, relation_col: str,
                    weight_col: str | None) -> DataFrame:
    """``(src, dst, w, rw)`` with ``rw`` the relation weight; every bad input is a ValueError."""
    missing = {"src", "dst"} - set(edges.columns)
    if missing:
        raise ValueError(f"edges need columns src and dst; missing {sorted(missing)}")
    if weight_col is not None and weight_col not in edges.columns:
        raise ValueError(f"edges have no weight column {weight_col!r}; columns: {edges.columns}")
    has_relation = relation_col in edges.columns
    if has_relation and relation_weights is None:
        raise ValueError(f"edges carry a {relation_col!r} column: give relation_weights (relation -> weight in "
                         "[0, 1]) so every relation's strength is a decision, not a default")
    if relation_weights is not None and not has_relation:
        raise ValueError(f"relation_weights given but edges have no {relation_col!r} column")
    w = F.col(weight_col).cast("double") if weight_col else F.lit(1.0)
    rel = F.col(relation_col).cast("string") if has_relation else F.lit(None).cast("string")
    out = edges.select(F.col("src"), F.col("dst"), rel.alias("relation"), w.alias("w"))
    checks = out.agg(
        F.count(F.when(F.col("src").isNull() | F.col("dst").isNull(), 1)).alias("null_ends"),
        F.count(F.when(F.col("w").isNull() | F.isnan("w"), 1)).alias("null_w"),
        F.count(F.when(F.col("w") < 0, 1)).alias("neg_w"),
        F.count(F.when(F.col("src") == F.col("dst"), 1)).alias("loops"),
    ).first()
    if checks["null_ends"]:
        raise ValueError(f"{checks['null_ends']} edge(s) with a null src or dst")
    if checks["null_w"]:
        raise ValueError(f"{checks['null_w']} edge(s) with a null or non-numeric weight in {weight_col!r}")
    if checks["neg_w"]:
        raise ValueError(f"{checks['neg_w']} edge(s) with a negative weight: risk propagation needs weights >= 0 "
                         "(map signed ratings to association strength first)")
    if checks["loops"]:
        raise ValueError(f"{checks['loops']} self-loop(s): a vertex cannot be evidence against itself; drop them")
    if relation_weights is None:
        return out.withColumn("rw", F.lit(1.0))
    present = {r[0] for r in out.select("relation").distinct().collect()}   # a handful of relation names
    unknown = sorted(str(r) for r in present - set(relation_weights))
    if unknown:
        raise ValueError(f"relation(s) {unknown} have no entry in relation_weights {sorted(relation_weights)}: "
                         "give each relation an explicit weight (0 blocks it)")
    mapping = F.create_map(*[x for k, v in relation_weights.items() for x in (F.lit(k), F.lit(float(v)))])
    return out.withColumn("rw", mapping[F.col("relation")])


def _seed_frame(seeds: DataFrame) -> DataFrame:
    missing = {"id", "risk"} - set(seeds.columns)
    if missing:
        raise ValueError(f"seeds need columns id and risk; missing {sorted(missing)}")
    s = seeds.select("id", F.col("risk").cast("double").alias("seed"))
    checks = s.agg(
        F.count(F.lit(1)).alias("n"),
        F.countDistinct("id").alias("ids"),
        F.count(F.when(F.col("id").isNull(), 1)).alias("null_id"),
        F.count(F.when(F.col("seed").isNull() | F.isnan("seed") | (F.col("seed") <= 0) | (F.col("seed") > 1), 1))
        .alias("bad_risk"),
    ).first()
    if checks["n"] == 0:
        raise ValueError("seeds is empty: risk propagation needs at least one known-bad vertex")
    if checks["null_id"]:
        raise ValueError(f"{checks['null_id']} seed(s) with a null id")
    if checks["ids"] != checks["n"]:
        raise ValueError(f"seeds hold {checks['n'] - checks['ids']} duplicate id(s); give each seed once")
    if checks["bad_risk"]:
        raise ValueError(f"{checks['bad_risk']} seed(s) with risk outside (0, 1]")
    return s


def propagate_risk(spark: SparkSession, edges: DataFrame, seeds: DataFrame,
                   relation_weights: Mapping[str, float] | None = None, steps: int = DEFAULT_STEPS,
                   decay: float = DEFAULT_DECAY, undirected: bool = True, relation_col: str = "relation",
                   weight_col: str | None = "weight") -> DataFrame:
    """``(id, risk, hops)`` for every vertex of ``edges`` and ``seeds`` after ``steps`` rounds.

    * ``edges``: ``src``, ``dst``, optional ``relation_col`` and ``weight_col`` (>= 0; absent
      column -> 1.0; pass ``weight_col=None`` to ignore one). Parallel edges are kept: each is
      separate evidence.
    * ``seeds``: ``(id, risk)`` with risk in (0, 1] -- known-bad vertices and how sure we are.
    * ``relation_weights``: relation -> weight in [0, 1]; required when edges carry a relation
      column, and every relation present must be listed (0 blocks a relation explicitly).
    * ``undirected``: risk flows both ways along an edge (association is symmetric: sharing a
      device says the same about both accounts); ``False`` sends it ``src -> dst`` only.

    ``risk`` is 0.0 for vertices never reached; ``hops`` is the step at which a vertex first got
    risk > 0 (0 for seeds, null when never reached) -- the distance a reviewer should look back
    along. Each round is materialised through :class:`RoundStore`; the result lives in its own
    kept store.
    """
    _check_params(steps, decay, relation_weights)
    if weight_col is not None and weight_col not in edges.columns:
        weight_col = None if weight_col == "weight" else weight_col   # the default name is optional
    e = _weighted_edges(edges, relation_weights, relation_col, weight_col)
    s = _seed_frame(seeds)
    directed = e.select("src", "dst", "w", "rw")
    arcs = directed if not undirected else directed.unionByName(
        directed.select(F.col("dst").alias("src"), F.col("src").alias("dst"), "w", "rw"))
    degree = arcs.groupBy("src").agg(F.sum("w").alias("wdeg"))
    with RoundStore(spark, "propagate-risk") as store:
        # Zero-share arcs (relation weight 0, edge weight 0) carry nothing: dropped after they
        # counted in the sender's degree.
        trans = store.put(
            arcs.join(degree, "src").where((F.col("wdeg") > 0) & (F.col("rw") * F.col("w") > 0))
            .select("src", "dst", (F.lit(decay) * F.col("rw") * F.col("w") / F.col("wdeg")).alias("share")),
            "transitions",
        )
        ids = (e.select(F.col("src").alias("id")).unionByName(e.select(F.col("dst").alias("id")))
               .unionByName(s.select("id")).distinct())
        state = store.put(
            ids.join(s, "id", "left").select(
                "id", F.coalesce("seed", F.lit(0.0)).alias("seed"),
                F.coalesce("seed", F.lit(0.0)).alias("risk"),
                F.when(F.col("seed").isNotNull(), F.lit(0)).cast("int").alias("hops")),
            "state-0",
        )
        for step in range(1, steps + 1):
            # product() of (1 - m) is the noisy-OR of the messages; m <= decay < 1, never 0 factors.
            heard = (
                state.where(F.col("risk") > 0).select(F.col("id").alias("src"), "risk").join(trans, "src")
                .groupBy(F.col("dst").alias("id"))
                .agg(F.product(F.lit(1.0) - F.col("share") * F.col("risk")).alias("keep"))
            )
            nxt = state.join(heard, "id", "left").select(
                "id", "seed",
                (F.lit(1.0) - (F.lit(1.0) - F.col("seed")) * F.coalesce("keep", F.lit(1.0))).alias("risk"),
                F.col("hops"),
            ).withColumn("hops", F.when(F.col("hops").isNull() & (F.col("risk") > 0), F.lit(step))
                         .otherwise(F.col("hops")).cast("int"))
            state = store.put(nxt, f"state-{step}")
        return RoundStore(spark, "propagate-risk-result", keep=True).put(
            state.select("id", "risk", "hops"), "risk")

