"""Job ``smoke_graph_metrics``: the platform smoke pipeline (Delta MERGE + time travel + graph engine).

Loads the base creator/device graph, writes its per-vertex metrics with a MERGE (one Delta
version), then applies a late-arriving edge feed, MERGEs the recomputed metrics (the next
version), and prints both versions read back through time travel. Re-running a date converges to
the same rows (MERGE on ``run_date, id``).

Expected on the fixed graph (see :mod:`libs.smoke.graph_metrics`): 15 vertices per run date;
5 components before the late feed, 4 after.

    cgov run smoke_graph_metrics --run-date 2026-11-01 --env local
    spark-submit ... jobs/smoke_graph_metrics.py --run-date 2026-11-01 --env local
"""
from __future__ import annotations

import argparse
import datetime as dt

from libs.graph import make_graph
from libs.platform import delta_io
from libs.platform.config import load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark
from libs.platform.tracking import log_run
from libs.smoke.graph_metrics import graph_metrics, smoke_edges, smoke_vertices, summarize
from schemas import conform
from schemas.smoke_graph_metrics import KEYS, PARTITION_COLS, SCHEMA

TABLE = "smoke_graph_metrics"


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--graph-backend", choices=["auto", "native", "graphframes"], default="auto")
    return parser


def main(run_date: dt.date, env: str, graph_backend: str = "auto") -> dict:
    settings = load_settings(env)
    spark = get_spark(settings, f"cgov-{TABLE}")
    path = settings.table(TABLE)
    day = run_date.isoformat()
    vertices = smoke_vertices(spark)

    versions = {}
    for stage, include_late in (("base", False), ("with_late_edges", True)):
        graph = make_graph(vertices, smoke_edges(spark, include_late), backend=graph_backend)
        metrics = conform(graph_metrics(graph, day), SCHEMA)
        delta_io.merge_upsert(spark, metrics, path, KEYS, partition_cols=PARTITION_COLS)
        versions[stage] = delta_io.latest_version(spark, path)

    report = {"table": path, "run_date": day, "graph_backend": graph.backend}
    for stage, version in versions.items():
        snapshot = delta_io.read_version(spark, path, version).where(f"run_date = '{day}'")
        report[stage] = {"delta_version": version, **summarize(snapshot)}
    for stage in versions:
        s = report[stage]
        print(f"[{TABLE}] {stage}: delta version {s['delta_version']}, {s['vertices']} vertices, "
              f"{s['components']} components, top PageRank {s['top_pagerank']}", flush=True)
    report["mlflow_run_id"] = log_run(
        settings, TABLE, f"{TABLE}-{day}",
        params={"run_date": day, "graph_backend": graph.backend, "table": path},
        metrics={f"{stage}_{k}": report[stage][k] for stage in versions for k in ("components", "vertices")},
    )
    print(f"[{TABLE}] MLflow run {report['mlflow_run_id']} at {settings.mlflow['tracking_uri']}", flush=True)
    return report


if __name__ == "__main__":
    run_job(arg_parser, main)
