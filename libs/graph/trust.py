"""Trust on graphs: SybilRank (who is reachable from known-good accounts) and Fairness-Goodness
(who rates honestly, and who is rated well by honest raters).

* :func:`sybil_rank` -- Cao, Sirivianos, Yang, Pregueiro, "Aiding the Detection of Fake Accounts
  in Large Scale Social Online Services", NSDI 2012. Trust starts on known-good seeds and is
  spread by an *early-terminated* power iteration over the undirected graph: each step a vertex
  splits its trust equally among its neighbours. Stopping after ``O(log n)`` steps -- before the
  walk mixes -- leaves the honest region (fast-mixing, where the seeds are) holding most of the
  trust, because the few *attack edges* into the sybil region pass only a trickle. Vertices are
  then ranked by trust / degree, which removes the advantage high-degree vertices get from any
  random walk (the stationary distribution is proportional to degree).
* :func:`fairness_goodness` -- Kumar, Spezzano, Subrahmanian, Faloutsos, "Edge Weight Prediction
  in Weighted Signed Networks", ICDM 2016. On a signed rating graph (weights in [-1, 1]) the
  goodness of ``v`` is the mean rating it receives, each rating weighted by its rater's fairness;
  the fairness of ``u`` is 1 minus the mean distance (scaled by the weight range 2) between its
  ratings and the goodness of what it rated. The paper proves the mutual recursion converges to
  a unique fixed point; the rating ``u`` would give ``v`` is predicted as ``fairness(u) *
  goodness(v)`` (:func:`predict_edge_weights`).

Both iterate with joins and aggregations, every round materialised through
:class:`libs.graph.materialize.RoundStore`; nothing that grows with the graph reaches the driver.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from libs.graph.materialize import RoundStore


class FairnessGoodnessConvergenceError(RuntimeError):
    pass


# ------------------------------------------------------------------------------------ SybilRank

def sybil_rank(spark: SparkSession, vertices: DataFrame, edges: DataFrame, trusted_seeds: Iterable[Any],
               steps: int | None = None, total_trust: float = 1.0) -> DataFrame:
    """``(id, trust, degree_normalized_trust)`` for every vertex of ``vertices``.

    ``edges`` (``src``, ``dst``) are read as an undirected simple graph: direction is ignored and
    parallel or reciprocal edges count once (SybilRank's social graph is a friendship graph; a
    mutual rating is one relationship, not two). Self-loops are an error. ``total_trust`` is split
    evenly over ``trusted_seeds`` (the ranking does not depend on it); ``steps`` defaults to
    ``ceil(log2(n))`` as in the paper. Isolated vertices keep their trust (nowhere to send it) and
    have a null ``degree_normalized_trust`` (degree 0: undefined, not "least trusted").
    """
    seeds = sorted(set(trusted_seeds))
    if not seeds:
        raise ValueError("sybil_rank needs at least one trusted seed")
    if total_trust <= 0:
        raise ValueError(f"total_trust must be > 0, got {total_trust}")
    missing = {"src", "dst"} - set(edges.columns)
    if missing:
        raise ValueError(f"edges need columns src and dst; missing {sorted(missing)}")
    ids = vertices.select("id").distinct()
    n = ids.count()
    found = ids.where(F.col("id").isin(seeds)).count()
    if found != len(seeds):
        raise ValueError(f"sybil_rank: {len(seeds) - found} trusted seed(s) are not vertices")
    loops = edges.where(F.col("src") == F.col("dst")).limit(1).count()
    if loops:
        raise ValueError("sybil_rank: edges contain self-loops; drop them (they are not relationships)")
    for end in ("src", "dst"):
        orphan = edges.select(F.col(end).alias("id")).join(ids, "id", "left_anti").limit(3).collect()
        if orphan:
            raise ValueError(f"sybil_rank: edges whose {end} is not a vertex, e.g. {[r['id'] for r in orphan]}")
    if steps is None:
        steps = max(1, math.ceil(math.log2(n))) if n > 1 else 1
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")

    pairs = (edges.select(F.least("src", "dst").alias("a"), F.greatest("src", "dst").alias("b")).distinct())
    arcs = pairs.select(F.col("a").alias("u"), F.col("b").alias("v")).unionByName(
        pairs.select(F.col("b").alias("u"), F.col("a").alias("v")))
    with RoundStore(spark, "sybil-rank") as store:
        arcs = store.put(arcs, "arcs")
        degree = arcs.groupBy(F.col("u").alias("id")).agg(F.count(F.lit(1)).alias("degree"))
        per_seed = float(total_trust) / len(seeds)
        state = store.put(
            ids.join(degree, "id", "left").select(
                "id", F.coalesce("degree", F.lit(0)).cast("long").alias("degree"),
                F.when(F.col("id").isin(seeds), F.lit(per_seed)).otherwise(F.lit(0.0)).alias("trust")),
            "trust-0",
        )
        for step in range(1, steps + 1):
            received = (
                state.where((F.col("trust") > 0) & (F.col("degree") > 0))
                .select(F.col("id").alias("u"), (F.col("trust") / F.col("degree")).alias("share"))
                .join(arcs, "u").groupBy(F.col("v").alias("id")).agg(F.sum("share").alias("got"))
            )
            nxt = state.join(received, "id", "left").select(
                "id", "degree",
                F.when(F.col("degree") == 0, F.col("trust")).otherwise(F.coalesce("got", F.lit(0.0))).alias("trust"))
            state = store.put(nxt, f"trust-{step}")
        return RoundStore(spark, "sybil-rank-result", keep=True).put(
            state.select("id", "trust",
                         F.when(F.col("degree") > 0, F.col("trust") / F.col("degree")).alias("degree_normalized_trust")),
            "trust")


# ---------------------------------------------------------------------------- Fairness-Goodness

def scale_weights(ratings: DataFrame, low: float, high: float, weight_col: str = "weight") -> DataFrame:
    """Map ``weight_col`` linearly from ``[low, high]`` onto [-1, 1] (e.g. Bitcoin's -10..10).

    Values outside the range are an error, not clipped: they mean the range is wrong.
    """
    if not high > low:
        raise ValueError(f"weight range must have high > low, got [{low}, {high}]")
    outside = ratings.where((F.col(weight_col) < low) | (F.col(weight_col) > high)).limit(1).count()
    if outside:
        raise ValueError(f"{weight_col!r} has values outside [{low}, {high}]")
    return ratings.withColumn(weight_col, (F.col(weight_col).cast("double") - F.lit(low)) * F.lit(2.0 / (high - low))
                              - F.lit(1.0))


def _check_ratings(ratings: DataFrame, weight_col: str) -> DataFrame:
    missing = {"src", "dst", weight_col} - set(ratings.columns)
    if missing:
        raise ValueError(f"ratings need columns src, dst, {weight_col}; missing {sorted(missing)}")
    r = ratings.select("src", "dst", F.col(weight_col).cast("double").alias("w"))
    checks = r.agg(
        F.count(F.lit(1)).alias("n"),
        F.count(F.when(F.col("src").isNull() | F.col("dst").isNull(), 1)).alias("null_ends"),
        F.count(F.when(F.col("w").isNull() | F.isnan("w"), 1)).alias("null_w"),
        F.count(F.when((F.col("w") < -1) | (F.col("w") > 1), 1)).alias("out_of_range"),
        F.count(F.when(F.col("src") == F.col("dst"), 1)).alias("loops"),
    ).first()
    if checks["n"] == 0:
        raise ValueError("ratings is empty")
    if checks["null_ends"]:
        raise ValueError(f"{checks['null_ends']} rating(s) with a null src or dst")
    if checks["null_w"]:
        raise ValueError(f"{checks['null_w']} rating(s) with a null or non-numeric {weight_col!r}")
    if checks["out_of_range"]:
        raise ValueError(f"{checks['out_of_range']} rating(s) outside [-1, 1]: scale them first (scale_weights)")
    if checks["loops"]:
        raise ValueError(f"{checks['loops']} self-rating(s): a node rating itself says nothing about fairness")
    dup = r.groupBy("src", "dst").count().where("count > 1").limit(3).collect()
    if dup:
        raise ValueError(f"several ratings of the same (src, dst), e.g. {[(d['src'], d['dst']) for d in dup]}: "
                         "keep one per pair (e.g. the latest) before computing fairness and goodness")
    return r


def fairness_goodness(spark: SparkSession, ratings: DataFrame, max_iter: int = 100, tol: float = 1e-6,
                      weight_col: str = "weight") -> tuple[DataFrame, DataFrame]:
    """``(fairness (id, fairness), goodness (id, goodness))`` at the fixed point.

    ``ratings``: ``src`` rates ``dst`` with ``weight_col`` in [-1, 1], one rating per pair, no
    self-ratings. Iteration ``t`` (the paper's Algorithm 1, initialised "all fair, all good",
    ``f = g = 1``)::

        g_t(v) = mean over u->v of f_{t-1}(u) * w(u, v)
        f_t(u) = 1 - mean over u->v of |w(u, v) - g_t(v)| / 2

    (goodness first, then fairness from the *new* goodness). It stops when the largest change of
    any score is below ``tol`` and raises :class:`FairnessGoodnessConvergenceError` after
    ``max_iter`` iterations. The authors' released code starts goodness at each node's mean
    received weight instead of 1; the fixed point is the same (it is unique), only the first
    iterations differ.

    Fairness is defined for nodes that rate (out-degree > 0), goodness for nodes that are rated
    (in-degree > 0); other nodes are absent from the respective frame (callers choose a default,
    see :func:`predict_edge_weights`).
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if tol <= 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    r = _check_ratings(ratings, weight_col)
    with RoundStore(spark, "fairness-goodness") as store:
        r = store.put(r, "ratings")
        raters = r.select(F.col("src").alias("id")).distinct().withColumn("fairness", F.lit(1.0))
        ratees = r.select(F.col("dst").alias("id")).distinct().withColumn("goodness", F.lit(1.0))
        state = store.put(raters.join(ratees, "id", "full_outer"), "state-0")
        for it in range(1, max_iter + 1):
            f_prev = state.where(F.col("fairness").isNotNull()).select(F.col("id").alias("src"), F.col("fairness").alias("f"))
            g_new = (r.join(f_prev, "src").groupBy(F.col("dst").alias("id"))
                     .agg(F.avg(F.col("f") * F.col("w")).alias("g")))
            f_new = (r.join(g_new.withColumnRenamed("id", "dst"), "dst").groupBy(F.col("src").alias("id"))
                     .agg((F.lit(1.0) - F.avg(F.abs(F.col("w") - F.col("g"))) / F.lit(2.0)).alias("f")))
            nxt = (state.join(g_new, "id", "left").join(f_new, "id", "left")
                   .select("id", F.col("f").alias("fairness"), F.col("g").alias("goodness"),
                           F.greatest(F.coalesce(F.abs(F.col("f") - F.col("fairness")), F.lit(0.0)),
                                      F.coalesce(F.abs(F.col("g") - F.col("goodness")), F.lit(0.0))).alias("delta")))
            state = store.put(nxt, f"state-{it}")
            change = state.agg(F.max("delta")).first()[0] or 0.0
            state = state.drop("delta")
            if change < tol:
                result = RoundStore(spark, "fairness-goodness-result", keep=True).put(state, "scores")
                return (result.where(F.col("fairness").isNotNull()).select("id", "fairness"),
                        result.where(F.col("goodness").isNotNull()).select("id", "goodness"))
        raise FairnessGoodnessConvergenceError(
            f"fairness-goodness did not converge to tol={tol} in {max_iter} iterations "
            f"(largest change in the last iteration: {change:.3g})")


def predict_edge_weights(pairs: DataFrame, fairness: DataFrame, goodness: DataFrame,
                         default_fairness: float = 1.0, default_goodness: float = 0.0) -> DataFrame:
    """``pairs`` (``src``, ``dst``, any other columns) plus ``predicted = fairness(src) * goodness(dst)``
    and ``fallback`` (whether a default was used).

    Defaults for nodes the scores do not cover follow the authors' reference code: a node that
    rated nobody keeps the initial fairness 1; a node nobody rated has goodness 0 (neutral).
    """
    f = fairness.select(F.col("id").alias("src"), F.col("fairness").alias("_f"))
    g = goodness.select(F.col("id").alias("dst"), F.col("goodness").alias("_g"))
    return (pairs.join(f, "src", "left").join(g, "dst", "left")
            .withColumn("fallback", F.col("_f").isNull() | F.col("_g").isNull())
            .withColumn("predicted", F.coalesce("_f", F.lit(float(default_fairness)))
                        * F.coalesce("_g", F.lit(float(default_goodness))))
            .drop("_f", "_g"))
