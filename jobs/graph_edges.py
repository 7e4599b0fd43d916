"""Job ``graph_edges``: silver feeds -> the typed heterogeneous graph (``graph_edges`` + ``graph_vertices``).

For every observation day of ``--days`` days ending at ``--run-date`` (default 1: the scheduled
daily run; the simulated demo reloads its week with 7), reads that day's silver partitions --
engagement events, video publications, logins, withdrawals, and the snapshot feeds (creators,
users, devices, listings) on days that have one -- and replaces those days' partitions of both
graph tables (one ``replaceWhere`` commit each). Older days are never recomputed: the graph is
built incrementally and read back over any window by :func:`libs.graph.hetero.load_graph`.

Source rows that cannot become an edge (a null endpoint) are counted per relation and printed;
the relation counts and the reconciliation of event rows are in the returned summary.

    cgov run graph_edges --run-date 2026-11-01 --days 7
    spark-submit ... jobs/graph_edges.py --run-date 2026-11-01 --env prod
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from libs.graph import hetero
from libs.platform import delta_io
from libs.platform.config import load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark

TABLE = "graph_edges"
VERTICES = "graph_vertices"


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=1,
                        help="observation days ending at --run-date to (re)build (default 1)")
    return parser


def main(run_date: dt.date, env: str, days: int = 1) -> dict[str, Any]:
    if days < 1:
        raise ValueError(f"--days must be >= 1, got {days}")
    settings = load_settings(env)
    spark = get_spark(settings, f"cgov-{TABLE}")
    started = time.time()
    last = run_date.isoformat()
    first = (run_date - dt.timedelta(days=days - 1)).isoformat()
    wanted = [(run_date - dt.timedelta(days=i)).isoformat() for i in range(days)][::-1]

    def feed(name: str) -> DataFrame:
        return delta_io.read_dates(spark, settings.table(name), first, last, name)

    def snapshot(name: str) -> DataFrame | None:
        df = feed(name)
        return df if df.limit(1).count() else None

    creators, users = snapshot("silver_creators"), snapshot("silver_users")
    events = feed("silver_engagement_events")
    edges, dropped = hetero.build_edges(events, feed("silver_videos"), feed("silver_logins"),
                                        feed("silver_withdrawals"), creators, users, snapshot("silver_devices"),
                                        snapshot("silver_listings"))
    # Edges feed both the edge write and the vertex derivation: computed once.
    edges = edges.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        delta_io.replace_partitions(edges.select(*hetero.EDGE_COLUMNS), settings.table(TABLE), {"dt": wanted}, ["dt"])
        vertices = hetero.vertices_of(edges, creators, users)
        delta_io.replace_partitions(vertices.select(*hetero.VERTEX_COLUMNS), settings.table(VERTICES),
                                    {"dt": wanted}, ["dt"])
        lost = {f"{r['edge_type']}/{r['kind']}": int(r["n"]) for r in
                dropped.groupBy("edge_type", "kind").agg(F.sum("count").alias("n")).collect()}
    finally:
        edges.unpersist()
    written = delta_io.read_dates(spark, settings.table(TABLE), first, last, TABLE)
    relations = hetero.relation_counts(written)
    n_vertices = {r["vertex_type"]: int(r["count"]) for r in
                  delta_io.read_dates(spark, settings.table(VERTICES), first, last, VERTICES)
                  .groupBy("vertex_type").count().collect()}
    summary = {"table": TABLE, "run_date": last, "days": wanted, "edges": sum(relations.values()),
               "edges_by_type": relations, "vertex_rows_by_type": n_vertices,
               "event_rows": events.count(), "dropped_rows": lost,
               "seconds": round(time.time() - started, 1)}
    print(f"[{TABLE}] {first}..{last}: {summary['edges']:,} day-edges {dict(sorted(relations.items()))}; "
          f"vertex-days {dict(sorted(n_vertices.items()))} from {summary['event_rows']:,} engagement events; "
          f"{sum(lost.values()):,} source rows without an endpoint {lost} -> {settings.table(TABLE)} "
          f"in {summary['seconds']}s", flush=True)
    return summary


if __name__ == "__main__":
    run_job(arg_parser, main)
