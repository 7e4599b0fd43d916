"""Connected-components benchmark: scale (1M edges) and depth (a 100k-vertex path).

Prints wall time, rounds materialised and correctness against scipy's in-memory union-find for
both algorithms of :mod:`libs.graph.components`. Not a test: numbers depend on the machine.

    .venv/bin/python benchmarks/bench_connected_components.py [--edges 1000000] [--vertices 1000000]
        [--path 100000] [--algorithms randomized_contraction,two_phase]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from pyspark.sql import functions as F
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_cc

from libs.graph.components import connected_components
from libs.platform.config import load_settings
from libs.platform.session import get_spark


def random_graph(spark, n_vertices: int, n_edges: int, seed: int):
    """Uniform random multigraph built in parallel from hashes (no driver-side data)."""
    e = spark.range(n_edges).select(
        (F.abs(F.xxhash64("id", F.lit(seed))) % n_vertices).alias("src"),
        (F.abs(F.xxhash64("id", F.lit(seed + 1))) % n_vertices).alias("dst"),
    )
    return spark.range(n_vertices), e


def path_graph(spark, n: int):
    return spark.range(n), spark.range(n - 1).select(F.col("id").alias("src"), (F.col("id") + 1).alias("dst"))


def oracle(edges_pdf, n: int) -> np.ndarray:
    """Component label = min vertex id, from scipy (union-find in C), for comparison."""
    a = coo_matrix((np.ones(len(edges_pdf)), (edges_pdf["src"].to_numpy(), edges_pdf["dst"].to_numpy())), shape=(n, n))
    _, labels = scipy_cc(a, directed=False)
    mins = np.full(labels.max() + 1, n, dtype=np.int64)
    np.minimum.at(mins, labels, np.arange(n))
    return mins[labels]


def run_case(spark, name: str, vertices, edges, n: int, algorithms: list[str]) -> None:
    edges = edges.cache()
    m = edges.count()
    t = time.time()
    expected = oracle(edges.toPandas(), n)
    print(f"[{name}] {n:,} vertices, {m:,} edges; scipy oracle {time.time() - t:.1f}s; "
          f"{len(np.unique(expected)):,} components", flush=True)
    for alg in algorithms:
        t = time.time()
        comps = connected_components(spark, vertices, edges, algorithm=alg)
        got = comps.toPandas().sort_values("id")
        elapsed = time.time() - t
        ok = len(got) == n and np.array_equal(got["component"].to_numpy(), expected)
        print(f"[{name}] {alg:<24} {elapsed:7.1f}s  components={got['component'].nunique():,}  "
              f"matches_scipy={ok}", flush=True)
        if not ok:
            raise SystemExit(f"{name}/{alg}: result differs from scipy")
    edges.unpersist()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vertices", type=int, default=1_000_000)
    p.add_argument("--edges", type=int, default=1_000_000)
    p.add_argument("--path", type=int, default=100_000)
    p.add_argument("--algorithms", default="randomized_contraction,two_phase")
    p.add_argument("--seed", type=int, default=3)
    args = p.parse_args()
    algorithms = args.algorithms.split(",")
    os.environ.setdefault("CGOV__LAKEHOUSE_ROOT", tempfile.mkdtemp(prefix="cgov-bench-"))
    spark = get_spark(load_settings("local"), "cgov-bench-cc")
    spark.sparkContext.setLogLevel("ERROR")
    print(f"spark {spark.version}, master {spark.sparkContext.master}, cores {os.cpu_count()}, "
          f"shuffle partitions {spark.conf.get('spark.sql.shuffle.partitions')}", flush=True)
    v, e = random_graph(spark, args.vertices, args.edges, args.seed)
    run_case(spark, "random", v, e, args.vertices, algorithms)
    v, e = path_graph(spark, args.path)
    run_case(spark, "path", v, e, args.path, algorithms)


if __name__ == "__main__":
    main()
