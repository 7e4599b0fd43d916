"""Job ``entity_risk``: enforced accounts + the typed graph -> risk of every associated entity, per scenario.

Seeds are creators with standing (not overturned) moderation decisions up to ``--run-date``
(:func:`libs.graph.risk.moderation_seeds`: a ban 1.0, a warning/strike 0.5); risk spreads over the
``graph.relation_weights`` relations of the ``graph.lookback_days`` window for
``graph.risk_steps`` steps with decay ``graph.risk_decay``, once over every relation and once
each over content-only and shelf-only traffic relations (:func:`libs.graph.risk.entity_risk`).
Replaces the run's partition (a snapshot) with every entity whose risk is above zero.

    cgov run entity_risk --run-date 2026-11-01
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

from pyspark.sql import functions as F

from libs.graph import hetero, risk
from libs.platform import delta_io
from libs.platform.config import load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark
from schemas import entity_risk as schema

TABLE = "entity_risk"


def arg_parser() -> argparse.ArgumentParser:
    return base_parser(__doc__.split("\n")[0])


def main(run_date: dt.date, env: str) -> dict[str, Any]:
    settings = load_settings(env)
    g = dict(settings.section("graph"))
    spark = get_spark(settings, f"cgov-{TABLE}")
    started = time.time()
    day = run_date.isoformat()
    first, _, graph = hetero.load_window(spark, settings, run_date)
    moderation = delta_io.read_snapshot(spark, settings.table("silver_moderation"), day, "silver_moderation")
    seeds = risk.moderation_seeds(moderation.where(F.col("decided_at") <= F.lit(f"{day} 23:59:59")))
    # Seeds must be vertices of the window's graph to spread anything; the rest are reported.
    seeds_in = seeds.join(graph.vertices.select("id"), "id", "left_semi")
    n_seeds, n_in = seeds.count(), seeds_in.count()
    weights = {k: float(v) for k, v in g["relation_weights"].items()}
    out = risk.entity_risk(spark, graph.edges, graph.vertices, seeds_in, weights, int(g["risk_steps"]),
                           float(g["risk_decay"]))
    rows = out.where(F.col("risk") > 0).select(*[f.name for f in schema.SCHEMA.fields if f.name != "dt"],
                                               F.lit(day).alias("dt"))
    delta_io.replace_partition(rows, settings.table(TABLE), "dt", day)
    written = delta_io.read_dates(spark, settings.table(TABLE), day, day, TABLE)
    by_type = {r["vertex_type"]: int(r["count"]) for r in written.groupBy("vertex_type").count().collect()}
    summary = {"table": TABLE, "run_date": day, "window": [first, day], "seeds": n_seeds, "seeds_in_graph": n_in,
               "entities_at_risk": by_type, "seconds": round(time.time() - started, 1)}
    print(f"[{TABLE}] {day}: {n_in:,} of {n_seeds:,} enforced creators in the {first}..{day} graph; "
          f"{sum(by_type.values()):,} entities with risk > 0 {by_type} -> {settings.table(TABLE)} "
          f"in {summary['seconds']}s", flush=True)
    return summary


if __name__ == "__main__":
    run_job(arg_parser, main)
