"""Job ``external_graph_scores``: any edge list -> per-node PageRank, degrees, fairness/goodness, trust, risk.

"Any graph, not only ours": a partner's trust network, a public benchmark (SNAP's Bitcoin
ratings), an investigator's export. Reads ``--edges`` (CSV with a header naming ``src``, ``dst``
and optionally ``weight`` (signed) and ``ts``; a headerless CSV with ``--columns src,dst,weight,ts``;
or Parquet with those columns), optionally ``--seeds`` (``node``, ``label`` in good/bad), and
replaces the ``dt = --run-date`` partition of ``--output`` (default: the ``external_graph_scores``
table of the settings) with one row per node (:mod:`schemas.external_graph_scores`):

* ``pagerank`` (directed, unweighted -- signed weights are not transition probabilities),
  ``in_degree``/``out_degree``;
* ``fairness``/``goodness`` (:func:`libs.graph.trust.fairness_goodness`) when weights are given,
  scaled to [-1, 1] by ``--weight-scale`` (default: 1 when every |weight| <= 1, else max |weight|);
* ``trust`` (:func:`libs.graph.trust.sybil_rank`, degree-normalised) from the good seeds and
  ``risk``/``risk_hops`` (:func:`libs.graph.propagation.propagate_risk`) from the bad seeds, both over
  the *positive* links only (every link when unweighted): a negative rating is distrust, not a
  relationship that vouches for or implicates anyone.

Bad input is an error or is counted and reported, never dropped silently: missing columns, empty
ids, non-numeric weights or timestamps and conflicting duplicates fail the run; self-loops are
dropped and counted; duplicate ``(src, dst)`` pairs collapse to the latest ``ts`` (a re-rating
replaces the earlier one), or -- without ``ts`` -- to one edge when they agree, counted.

    cgov run external_graph_scores --run-date 2026-11-01 --edges soc-sign-bitcoinalpha.csv \\
        --columns src,dst,weight,ts --seeds seeds.csv --output /lake/external/bitcoin_alpha
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from libs.graph.pagerank import page_rank
from libs.graph.propagation import DEFAULT_DECAY, DEFAULT_STEPS, propagate_risk
from libs.graph.trust import fairness_goodness, sybil_rank
from libs.platform import delta_io
from libs.platform.config import load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark
from schemas import external_graph_scores as out_schema

TABLE = "external_graph_scores"
EDGE_COLUMNS = ("src", "dst", "weight", "ts")
MAX_EXAMPLES = 3          # offending values quoted in an error message


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--edges", required=True, help="edge list: CSV (header or --columns) or Parquet")
    parser.add_argument("--columns", default=None,
                        help="a headerless CSV's column names in order, among src,dst,weight,ts")
    parser.add_argument("--format", dest="input_format", choices=("auto", "csv", "parquet"), default="auto",
                        help="input format (auto: by extension; a folder is Parquet)")
    parser.add_argument("--seeds", default=None, help="CSV (header node,label) or Parquet of known good/bad nodes")
    parser.add_argument("--output", default=None,
                        help="Delta table path (default: the settings table external_graph_scores)")
    parser.add_argument("--weight-scale", type=float, default=None,
                        help="divide weights by this to reach [-1, 1] (default: 1 if all |w| <= 1, else max |w|)")
    parser.add_argument("--risk-steps", type=int, default=DEFAULT_STEPS, help="risk propagation steps")
    parser.add_argument("--risk-decay", type=float, default=DEFAULT_DECAY, help="risk decay per hop, in (0, 1)")
    parser.add_argument("--fg-max-iter", type=int, default=100, help="fairness-goodness iteration limit")
    parser.add_argument("--fg-tol", type=float, default=1e-6, help="fairness-goodness convergence tolerance")
    return parser


def _format(path: str, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    lower = path.lower().rstrip("/")
    if lower.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
        return "csv"
    return "parquet"      # *.parquet files and folders written by Spark


def read_edges(spark: SparkSession, path: str, fmt: str = "auto", columns: str | None = None) -> DataFrame:
    """The edge list as strings (``src``, ``dst`` [, ``weight``] [, ``ts``]); column problems are errors."""
    fmt = _format(path, fmt)
    if fmt == "csv":
        if columns:
            names = [c.strip().lower() for c in columns.split(",")]
            unknown = sorted(set(names) - set(EDGE_COLUMNS))
            if unknown or len(set(names)) != len(names):
                raise ValueError(f"--columns must name distinct columns among {EDGE_COLUMNS}; got {names}")
            raw = spark.read.csv(path, header=False, inferSchema=False)
            if len(raw.columns) != len(names):
                raise ValueError(f"{path}: the file has {len(raw.columns)} column(s) but --columns names {len(names)}")
            df = raw.toDF(*names)
        else:
            df = spark.read.csv(path, header=True, inferSchema=False)
            df = df.toDF(*[c.strip().lower() for c in df.columns])
    elif columns:
        raise ValueError("--columns is for headerless CSV; Parquet carries its column names")
    else:
        df = spark.read.parquet(path)
        df = df.toDF(*[c.lower() for c in df.columns])
    missing = [c for c in ("src", "dst") if c not in df.columns]
    if missing:
        hint = "" if columns or fmt != "csv" else " (a headerless CSV needs --columns, e.g. src,dst,weight,ts)"
        raise ValueError(f"{path}: missing column(s) {missing}; found {df.columns}{hint}")
    keep = [c for c in EDGE_COLUMNS if c in df.columns]
    return df.select(*[F.col(c).cast("string").alias(c) for c in keep])


def _examples(df: DataFrame, condition, col: str) -> list:
    return [r[col] for r in df.where(condition).select(col).limit(MAX_EXAMPLES).collect()]


def clean_edges(raw: DataFrame) -> tuple[DataFrame, dict[str, int]]:
    """Typed, one-edge-per-pair edges and the counts of what was changed.

    Errors: empty ids, non-numeric weight or ts, duplicates that disagree without a ts to order
    them or with the same latest ts. Counted: self-loops (dropped), duplicates (collapsed).
    """
    has_w, has_ts = "weight" in raw.columns, "ts" in raw.columns
    df = raw.select(F.trim("src").alias("src"), F.trim("dst").alias("dst"),
                    *([F.trim("weight").alias("weight_raw")] if has_w else []),
                    *([F.trim("ts").alias("ts_raw")] if has_ts else []))
    empty = (F.col("src").isNull() | (F.col("src") == "") | F.col("dst").isNull() | (F.col("dst") == ""))
    n_empty = df.where(empty).count()
    if n_empty:
        raise ValueError(f"{n_empty} edge(s) with an empty src or dst")
    if has_w:
        df = df.withColumn("weight", F.col("weight_raw").try_cast("double"))
        bad = F.col("weight").isNull() | F.isnan("weight") | F.col("weight").isin(float("inf"), float("-inf"))
        n_bad = df.where(bad).count()
        if n_bad:
            raise ValueError(f"{n_bad} edge(s) with a missing or non-numeric weight, e.g. "
                             f"{_examples(df, bad, 'weight_raw')}")
    if has_ts:
        # Epoch seconds, or anything Spark reads as a timestamp (ISO 8601); both become seconds.
        df = df.withColumn("ts", F.coalesce(F.col("ts_raw").try_cast("double"),
                                            F.unix_timestamp(F.try_to_timestamp("ts_raw")).cast("double")))
        bad_ts = F.col("ts").isNull()
        n_bad = df.where(bad_ts).count()
        if n_bad:
            raise ValueError(f"{n_bad} edge(s) with a missing or unreadable ts, e.g. {_examples(df, bad_ts, 'ts_raw')}")
    cols = ["src", "dst"] + (["weight"] if has_w else []) + (["ts"] if has_ts else [])
    df = df.select(*cols)
    counts = {"edges_read": df.count()}
    loops = F.col("src") == F.col("dst")
    counts["self_loops_dropped"] = df.where(loops).count()
    df = df.where(~loops)
    per_pair = df.groupBy("src", "dst").agg(
        F.count(F.lit(1)).alias("n"),
        *([F.countDistinct("weight").alias("weights")] if has_w else []),
        *([F.max("ts").alias("last_ts")] if has_ts else []))
    dups = per_pair.where("n > 1")
    counts["duplicate_edges_collapsed"] = int(dups.agg(F.sum(F.col("n") - 1)).first()[0] or 0)
    if counts["duplicate_edges_collapsed"] == 0:
        return df, counts
    if has_ts:
        latest = (df.join(per_pair.select("src", "dst", "last_ts"), ["src", "dst"])
                  .where(F.col("ts") == F.col("last_ts")))
        if has_w:
            tied = latest.groupBy("src", "dst").agg(F.countDistinct("weight").alias("k")).where("k > 1")
            example = tied.limit(MAX_EXAMPLES).collect()
            if example:
                raise ValueError(f"{tied.count()} (src, dst) pair(s) have different weights at the same latest ts, "
                                 f"e.g. {[(r['src'], r['dst']) for r in example]}: which rating holds is ambiguous")
        return latest.dropDuplicates(["src", "dst"]).select(*cols), counts
    if has_w:
        conflict = dups.where("weights > 1")
        example = conflict.limit(MAX_EXAMPLES).collect()
        if example:
            raise ValueError(f"{conflict.count()} (src, dst) pair(s) appear with different weights and no ts to tell "
                             f"which is current, e.g. {[(r['src'], r['dst']) for r in example]}")
    return df.dropDuplicates(["src", "dst"]), counts


def read_seeds(spark: SparkSession, path: str) -> DataFrame:
    """``(node_id, seed_label)``; unknown labels and nodes labelled twice are errors."""
    df = (spark.read.csv(path, header=True, inferSchema=False) if _format(path, "auto") == "csv"
          else spark.read.parquet(path))
    df = df.toDF(*[c.strip().lower() for c in df.columns])
    missing = [c for c in ("node", "label") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: seeds need columns node and label; missing {missing}")
    seeds = df.select(F.trim(F.col("node").cast("string")).alias("node_id"),
                      F.lower(F.trim(F.col("label").cast("string"))).alias("seed_label"))
    bad = ~F.col("seed_label").isin(*out_schema.SEED_LABELS) | F.col("seed_label").isNull() | F.col("node_id").isNull()
    example = seeds.where(bad).limit(MAX_EXAMPLES).collect()
    if example:
        raise ValueError(f"{path}: labels must be one of {out_schema.SEED_LABELS} with a node, e.g. bad rows "
                         f"{[tuple(r) for r in example]}")
    seeds = seeds.distinct()
    twice = seeds.groupBy("node_id").count().where("count > 1").limit(MAX_EXAMPLES).collect()
    if twice:
        raise ValueError(f"{path}: nodes labelled both good and bad, e.g. {[r['node_id'] for r in twice]}")
    return seeds


def score(spark: SparkSession, edges: DataFrame, seeds: DataFrame | None, weight_scale: float | None,
          risk_steps: int, risk_decay: float, fg_max_iter: int, fg_tol: float) -> tuple[DataFrame, dict[str, Any]]:
    """All scores per node (without ``dt``) and what was decided on the way."""
    info: dict[str, Any] = {}
    has_w = "weight" in edges.columns
    nodes = edges.select(F.col("src").alias("id")).union(edges.select(F.col("dst").alias("id"))).distinct()
    info["nodes"] = nodes.count()
    out = (nodes.join(edges.groupBy(F.col("dst").alias("id")).agg(F.count(F.lit(1)).alias("in_degree")), "id", "left")
           .join(edges.groupBy(F.col("src").alias("id")).agg(F.count(F.lit(1)).alias("out_degree")), "id", "left")
           .join(page_rank(spark, nodes, edges.select("src", "dst")), "id", "left"))
    if has_w:
        max_abs = edges.agg(F.max(F.abs("weight"))).first()[0]
        scale = float(weight_scale) if weight_scale else (1.0 if max_abs <= 1.0 else float(max_abs))
        if scale <= 0 or max_abs / scale > 1.0 + 1e-12:
            raise ValueError(f"--weight-scale {scale} leaves weights outside [-1, 1] (max |weight| = {max_abs})")
        info["weight_scale"] = scale
        scaled = edges.select("src", "dst", F.least(F.lit(1.0), F.greatest(F.lit(-1.0), F.col("weight") / scale))
                              .alias("weight"))
        fair, good = fairness_goodness(spark, scaled, max_iter=fg_max_iter, tol=fg_tol)
        out = out.join(fair, "id", "left").join(good, "id", "left")
        links = scaled.where(F.col("weight") > 0)
    else:
        out = out.withColumn("fairness", F.lit(None).cast("double")).withColumn("goodness", F.lit(None).cast("double"))
        links = edges.select("src", "dst", F.lit(1.0).alias("weight"))
    info.update(seeds_good=0, seeds_bad=0, seeds_not_in_graph=0)
    labelled = None
    if seeds is not None:
        labelled = seeds.join(nodes.withColumnRenamed("id", "node_id"), "node_id", "left_semi")
        by_label = {r["seed_label"]: r["count"] for r in labelled.groupBy("seed_label").count().collect()}
        info["seeds_good"], info["seeds_bad"] = by_label.get("good", 0), by_label.get("bad", 0)
        info["seeds_not_in_graph"] = seeds.count() - sum(by_label.values())
    if info["seeds_good"]:
        good_ids = [r["node_id"] for r in labelled.where("seed_label = 'good'").collect()]  # the seed list is small
        trust = sybil_rank(spark, nodes, links.select("src", "dst"), good_ids)
        out = out.join(trust.select("id", F.col("degree_normalized_trust").alias("trust")), "id", "left")
    else:
        out = out.withColumn("trust", F.lit(None).cast("double"))
    if info["seeds_bad"]:
        bad = labelled.where("seed_label = 'bad'").select(F.col("node_id").alias("id"), F.lit(1.0).alias("risk"))
        risk = propagate_risk(spark, links.select("src", "dst", "weight"), bad, steps=risk_steps, decay=risk_decay)
        out = out.join(risk.select("id", "risk", F.col("hops").alias("risk_hops")), "id", "left")
    else:
        out = out.withColumn("risk", F.lit(None).cast("double")).withColumn("risk_hops", F.lit(None).cast("int"))
    if labelled is not None:
        out = out.join(labelled.withColumnRenamed("node_id", "id"), "id", "left")
    else:
        out = out.withColumn("seed_label", F.lit(None).cast("string"))
    return out.withColumnRenamed("id", "node_id"), info


def main(run_date: dt.date, env: str, edges: str, columns: str | None = None, input_format: str = "auto",
         seeds: str | None = None, output: str | None = None, weight_scale: float | None = None,
         risk_steps: int = DEFAULT_STEPS, risk_decay: float = DEFAULT_DECAY, fg_max_iter: int = 100,
         fg_tol: float = 1e-6) -> dict[str, Any]:
    settings = load_settings(env)
    day = run_date.isoformat()
    path = output or settings.table(TABLE)
    spark = get_spark(settings, f"cgov-{TABLE}")
    started = time.time()
    cleaned, counts = clean_edges(read_edges(spark, edges, input_format, columns))
    if counts["edges_read"] - counts["self_loops_dropped"] == 0:
        raise ValueError(f"{edges}: no edges left after dropping {counts['self_loops_dropped']} self-loop(s)")
    # One cleaned copy (memory, spilling to disk) serves every score below instead of re-reading
    # and re-validating the file for each of them.
    cleaned = cleaned.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        seed_df = read_seeds(spark, seeds) if seeds else None
        scores, info = score(spark, cleaned, seed_df, weight_scale, risk_steps, risk_decay, fg_max_iter, fg_tol)
        rows = scores.select(*[F.coalesce(F.col(f.name), F.lit(0)).cast(f.dataType).alias(f.name)
                               if f.name in ("in_degree", "out_degree") else F.col(f.name).cast(f.dataType)
                               for f in out_schema.SCHEMA.fields if f.name != "dt"], F.lit(day).alias("dt"))
        delta_io.replace_partition(rows, path, "dt", day)
    finally:
        cleaned.unpersist()
    written = delta_io.read_dates(spark, path, day, day, TABLE).count()
    summary = {"table": TABLE, "run_date": day, "output": path, "edges_path": edges, **counts, **info,
               "rows_written": written, "seconds": round(time.time() - started, 1)}
    weights = (f"scaled by {info['weight_scale']:g}" if "weight_scale" in info else "absent: no fairness/goodness")
    print(f"[{TABLE}] {day}: {counts['edges_read']:,} edge rows from {edges} "
          f"({counts['self_loops_dropped']:,} self-loop(s) dropped, "
          f"{counts['duplicate_edges_collapsed']:,} duplicate(s) collapsed) -> {info['nodes']:,} nodes; weights {weights}; "
          f"seeds good={info['seeds_good']} bad={info['seeds_bad']} not in graph={info['seeds_not_in_graph']} "
          f"-> {written:,} rows in {path} in {summary['seconds']}s", flush=True)
    return summary


if __name__ == "__main__":
    run_job(arg_parser, main)
