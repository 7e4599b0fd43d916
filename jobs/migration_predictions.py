"""Job ``migration_predictions``: banned operators + the typed graph -> where each is likely to reappear.

Banned accounts are creators with a standing ``ban`` decision up to ``--run-date``; grouped into
operators by the infrastructure they shared, each operator's candidate accounts, markets and
scenarios are ranked (:func:`libs.graph.risk.migration_predictions`) over the
``graph.lookback_days`` window. Replaces the run's partition (a snapshot).

    cgov run migration_predictions --run-date 2026-11-01
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
from schemas import migration_predictions as schema

TABLE = "migration_predictions"


def arg_parser() -> argparse.ArgumentParser:
    return base_parser(__doc__.split("\n")[0])


def main(run_date: dt.date, env: str) -> dict[str, Any]:
    settings = load_settings(env)
    g = dict(settings.section("graph"))
    spark = get_spark(settings, f"cgov-{TABLE}")
    started = time.time()
    day = run_date.isoformat()
    _, _, graph = hetero.load_window(spark, settings, run_date,
                                     edge_types=["uses_device", "logs_in_from", "pays_to", "posts", "lists", "buys"])
    moderation = delta_io.read_snapshot(spark, settings.table("silver_moderation"), day, "silver_moderation")
    banned = (moderation.where((F.col("action") == "ban") & ~F.coalesce(F.col("overturned"), F.lit(False))
                               & (F.col("decided_at") <= F.lit(f"{day} 23:59:59")))
              .groupBy("creator_id").agg(F.min("decided_at").alias("banned_at")))
    creators = delta_io.read_snapshot(spark, settings.table("silver_creators"), day, "silver_creators")
    out = risk.migration_predictions(spark, graph.edges, creators, banned, top_k=int(g["migration_top_k"]))
    delta_io.replace_partition(out.select(*[f.name for f in schema.SCHEMA.fields if f.name != "dt"],
                                          F.lit(day).alias("dt")), settings.table(TABLE), "dt", day)
    written = delta_io.read_dates(spark, settings.table(TABLE), day, day, TABLE)
    counts = written.agg(F.countDistinct("operator_id").alias("ops"),
                         F.count(F.when(F.col("prediction") == "account", 1)).alias("accounts")).first()
    summary = {"table": TABLE, "run_date": day, "banned_accounts": banned.count(),
               "operators_with_candidates": int(counts["ops"]), "account_predictions": int(counts["accounts"]),
               "seconds": round(time.time() - started, 1)}
    print(f"[{TABLE}] {day}: {summary['banned_accounts']:,} banned accounts -> {summary['operators_with_candidates']:,} "
          f"operators with candidates, {summary['account_predictions']:,} ranked accounts -> {settings.table(TABLE)} "
          f"in {summary['seconds']}s", flush=True)
    return summary


if __name__ == "__main__":
    run_job(arg_parser, main)
