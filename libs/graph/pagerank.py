"""PageRank and personalized PageRank by iterative joins.

Semantics follow networkx (the conformance oracle): scores are a probability distribution
(sum = 1); a walker at a vertex with no out-edges ("dangling") jumps according to the
personalization vector; edge weights (optional column) split a vertex's mass proportionally; the
iteration stops when the L1 change is below ``n * tol`` or raises after ``max_iter`` rounds.
GraphX/GraphFrames report ``n`` times these values and drop dangling mass; :mod:`libs.graph.frame`
normalises GraphFrames' output so both backends answer the same question.

Personalized PageRank (``source_ids``) restarts only at the given vertices -- the primitive behind
SybilRank-style trust propagation from known-good seeds.
"""
from __future__ import annotations

from typing import Iterable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from libs.graph.materialize import RoundStore


class PageRankConvergenceError(RuntimeError):
    pass


def page_rank(spark: SparkSession, vertices: DataFrame, edges: DataFrame, reset_probability: float = 0.15,
              max_iter: int = 100, tol: float = 1e-6, source_ids: Iterable | None = None,
              weight_col: str | None = None, checkpoint_interval: int = 10) -> DataFrame:
    """``(id, pagerank)`` for every vertex.

    ``reset_probability`` is GraphFrames' name for ``1 - alpha`` (networkx's damping ``alpha``).
    Between Parquet materialisations (every ``checkpoint_interval`` iterations) each iteration is
    cached: one Parquet round-trip per iteration dominated run time on small graphs, while ten
    cached steps keep the plan short enough for the optimiser.
    """
    if not 0.0 < reset_probability < 1.0:
        raise ValueError("reset_probability must be in (0, 1)")
    alpha = 1.0 - reset_probability
    ids = vertices.select("id").distinct()
    n = ids.count()
    if n == 0:
        return vertices.select("id", F.lit(0.0).alias("pagerank")).limit(0)
    sources = None if source_ids is None else list(source_ids)
    if sources is not None:
        if not sources:
            raise ValueError("source_ids must not be empty for personalized PageRank")
        found = ids.where(F.col("id").isin(sources)).count()
        if found != len(set(sources)):
            raise ValueError(f"personalized PageRank: {len(set(sources)) - found} source id(s) are not vertices")
        p_col = F.when(F.col("id").isin(sources), F.lit(1.0 / len(set(sources)))).otherwise(F.lit(0.0))
    else:
        p_col = F.lit(1.0 / n)

    w = F.col(weight_col).cast("double") if weight_col else F.lit(1.0)
    raw = edges.select("src", "dst", w.alias("w"))
    if weight_col and raw.where(F.col("w") < 0).limit(1).count():
        raise ValueError(f"negative edge weights in {weight_col!r}")
    out_w = raw.groupBy("src").agg(F.sum("w").alias("wsum"))
    with RoundStore(spark, "pagerank") as store:
        trans = store.put(
            raw.join(out_w, "src").where(F.col("wsum") > 0)
            .select("src", "dst", (F.col("w") / F.col("wsum")).alias("share")),
            "transitions",
        )
        base = store.put(
            ids.join(trans.select(F.col("src").alias("id")).distinct().withColumn("has_out", F.lit(True)), "id", "left")
            .select("id", F.col("has_out").isNull().alias("dangling"), p_col.alias("p")),
            "base",
        )
        ranks = base.select("id", "dangling", "p", F.lit(1.0 / n).alias("pr"))
        dangling_mass = ranks.where("dangling").agg(F.sum("pr")).first()[0] or 0.0
        cached: DataFrame | None = None
        for it in range(1, max_iter + 1):
            contrib = (
                ranks.select(F.col("id").alias("src"), "pr").join(trans, "src")
                .groupBy(F.col("dst").alias("id")).agg(F.sum(F.col("pr") * F.col("share")).alias("c"))
            )
            nxt = ranks.select("id", "dangling", "p", F.col("pr").alias("prev")).join(contrib, "id", "left").select(
                "id", "dangling", "p", "prev",
                (F.lit(alpha) * (F.coalesce("c", F.lit(0.0)) + F.lit(dangling_mass) * F.col("p"))
                 + F.lit(1.0 - alpha) * F.col("p")).alias("pr"),
            )
            stale = cached
            if it % checkpoint_interval == 0:
                ranks = cached = store.put(nxt, f"iter-{it}")
            else:
                # localCheckpoint: cached blocks AND a cut lineage, so the plan (and its analysis
                # time) stays constant between the reliable Parquet rounds.
                ranks = cached = nxt.localCheckpoint(eager=False)
            stats = ranks.agg(
                F.sum(F.abs(F.col("pr") - F.col("prev"))).alias("err"),
                F.sum(F.when(F.col("dangling"), F.col("pr")).otherwise(0.0)).alias("dm"),
            ).first()
            dangling_mass = stats["dm"] or 0.0
            if stale is not None:
                stale.unpersist()  # its data now lives in `cached`
            ranks = ranks.drop("prev")
            if stats["err"] < n * tol:
                # Persist the answer outside the round folders, which are deleted on exit.
                result = RoundStore(spark, "pagerank-result", keep=True).put(
                    ranks.select("id", F.col("pr").alias("pagerank")), "ranks")
                cached.unpersist()
                return result
    raise PageRankConvergenceError(f"PageRank did not converge to tol={tol} in {max_iter} iterations")
