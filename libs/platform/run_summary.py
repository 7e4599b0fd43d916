"""The closing summary of a local pipeline run (``cgov pipeline``): what was written and where to look.

Read back from the tables themselves, not from the jobs' return values, so the summary shows what
a reader of the lakehouse will find: every Delta table with its current version and the run
date's row count, the top syndicates, each market's quota fairness against the unregulated
counterfactual, the explanations by status, and where the data docs, the MLflow UI and the
explanation cards are. Missing tables are listed as such (a partial run is summarised honestly).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from libs.platform import delta_io
from libs.platform.config import Settings
from libs.platform.maintenance import schema_module

TOP_SYNDICATES = 5


def _partition_col(table: str) -> str | None:
    module = schema_module(table)
    cols = (getattr(module, "PARTITION_COLS", None) or []) if module is not None else []
    return cols[-1] if cols and cols[-1] in ("dt", "run_date") else None


def table_lines(spark: SparkSession, settings: Settings, day: str) -> list[str]:
    """``table  version  rows(run date)`` for every Delta table of the settings (raw/truth are Parquet)."""
    from delta.tables import DeltaTable

    lines = [f"  {'table':<28}{'version':>8}{'rows ' + day:>18}"]
    for name, path in settings.data["tables"].items():
        if not delta_io.table_exists(spark, path):
            continue
        version = DeltaTable.forPath(spark, path).history(1).select("version").first()[0]
        col = _partition_col(name)
        df = spark.read.format("delta").load(path)
        rows = df.where(F.col(col).cast("string") == day).count() if col else df.count()
        lines.append(f"  {name:<28}{version:>8}{rows:>18,}")
    return lines


def syndicate_lines(spark: SparkSession, settings: Settings, day: str) -> list[str]:
    path = settings.table("syndicates")
    if not delta_io.table_exists(spark, path):
        return ["  (syndicates not written)"]
    top = (spark.read.format("delta").load(path).where(F.col("dt") == day)
           .groupBy("detector", "syndicate_id").agg(F.max("syndicate_size").alias("size"),
                                                    F.max("syndicate_score").alias("score"),
                                                    F.first("evidence").alias("evidence"))
           .orderBy(F.col("size").desc(), F.col("score").desc(), "syndicate_id").limit(TOP_SYNDICATES).collect())
    return [f"  {r['detector']:<22} {r['syndicate_id'][:40]:<42} {r['size']:>6} members  {r['evidence'][:70]}"
            for r in top] or ["  (no syndicates found)"]


def quota_lines(spark: SparkSession, settings: Settings, day: str) -> list[str]:
    path = settings.table("traffic_quota_report")
    if not delta_io.table_exists(spark, path):
        return ["  (traffic_quota_report not written)"]
    rows = spark.read.format("delta").load(path).where(F.col("dt") == day).orderBy("market").collect()
    out = [f"  {'market':<7}{'creators':>9}{'Gini':>7}{'(unreg.)':>9}{'top-1%':>8}{'HQ share':>9}{'GMV ret.':>9}"]
    for r in rows:
        out.append(f"  {r['market']:<7}{r['creators']:>9,}{r['gini']:>7.3f}{r['gini_unregulated']:>9.3f}"
                   f"{r['top_share']:>8.3f}{r['hq_original_share']:>9.3f}{(r['gmv_retained'] or 0):>9.3f}")
    return out


def explanation_lines(spark: SparkSession, settings: Settings, day: str) -> list[str]:
    path = settings.table("governance_explanations")
    if not delta_io.table_exists(spark, path):
        return ["  (governance_explanations not written)"]
    df = spark.read.format("delta").load(path).where(F.col("dt") == day)
    status = {r["status"]: r["count"] for r in df.groupBy("status").count().collect()}
    steps = {r["recommended_step"]: r["count"] for r in df.groupBy("recommended_step").count().collect()
             if r["recommended_step"]}
    return [f"  decisions by status: {dict(sorted(status.items()))}; recommended steps: {dict(sorted(steps.items()))}"]


def summary_text(spark: SparkSession, settings: Settings, day: str, timings: Mapping[str, float]) -> str:
    """The whole summary as text (printed by ``cgov pipeline`` after the last job)."""
    root = Path(settings.lakehouse_root)
    mlflow = settings.mlflow
    cards = Path(settings.section("governance")["cards_dir"]) / day / "index.html"
    docs = Path(settings.section("ingest")["data_docs_dir"]) / "index.html"
    total = sum(timings.values())
    parts = [f"\n==== pipeline summary for {day} ({len(timings)} jobs, {total / 60:.1f} min) ====",
             "Stage timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()),
             "\nTables (Delta, current version, rows of the run date):", *table_lines(spark, settings, day),
             f"\nLargest syndicates found on {day}:", *syndicate_lines(spark, settings, day),
             "\nTraffic-quota fairness per market (regulated vs the unregulated counterfactual):",
             *quota_lines(spark, settings, day),
             "\nExplanations:", *explanation_lines(spark, settings, day),
             "\nWhere to look:",
             f"  lakehouse           {root}",
             f"  data docs           {docs}",
             f"  explanation cards   {cards}",
             f"  MLflow UI           .venv/bin/mlflow ui --backend-store-uri {mlflow['tracking_uri']} "
             f"--default-artifact-root {mlflow['artifact_location']} --port 5000   (then http://127.0.0.1:5000)"]
    return "\n".join(parts)
