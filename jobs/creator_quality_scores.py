"""Job ``creator_quality_scores``: batch inference of the registered champion -> per-creator abuse
scores, the Creator Quality Score and its evidence (gold ``creator_quality_scores``).

The model is loaded from the registry by alias (``models:/<ml.creator_quality_model>@<ml.champion_alias>``)
with ``mlflow.pyfunc.spark_udf``, which ships it to the executors and runs it on Arrow batches --
the same artifact a reviewer approved, no copy of the weights in this repo. The sequences are
built by the very code the training job used (:mod:`libs.quality.datasets`), so serving cannot
skew from training. Decision thresholds come from the champion's own training run
(``threshold.<label>``): a new champion brings its operating point with it.

Checks before the write: one row per creator of the snapshot, every probability in [0, 1] and
every CQS in [0, 100]; anything else fails the task and nothing is written.

    cgov run creator_quality_scores --run-date 2026-11-01
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

from pyspark.sql import functions as F

from libs.platform import delta_io, tracking
from libs.platform.config import load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark
from libs.quality import datasets, scores
from libs.quality import sequences as sq

TABLE = "creator_quality_scores"
EXPERIMENT = "creator-quality"


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--alias", default=None, help="registry alias to score with (default: ml.champion_alias)")
    return parser


def champion(settings, alias: str) -> tuple[str, str, dict[str, float]]:
    """``(model name, version, thresholds)`` of the version holding ``alias``; a clear error if none does."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    tracking.experiment(settings, EXPERIMENT)   # points MLflow at the environment's store
    name = str(settings.section("ml")["creator_quality_model"])
    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise LookupError(f"no version of model {name!r} holds alias {alias!r}: run creator_quality_model first "
                          "(or promote a version)") from exc
    run_metrics = client.get_run(mv.run_id).data.metrics
    thresholds = {k: float(run_metrics[f"threshold.{k}"]) for k in sq.LABELS if f"threshold.{k}" in run_metrics}
    if len(thresholds) != len(sq.LABELS):
        raise LookupError(f"{name} v{mv.version} (alias {alias}) has no threshold.* metrics for {sq.LABELS}: "
                          "it was not trained by creator_quality_model")
    return name, str(mv.version), thresholds


def main(run_date: dt.date, env: str, alias: str | None = None) -> dict[str, Any]:
    import mlflow.pyfunc

    settings = load_settings(env)
    ml = settings.section("ml")
    alias = alias or str(ml["champion_alias"])
    name, version, thresholds = champion(settings, alias)
    spark = get_spark(settings, f"cgov-{TABLE}")
    started = time.time()
    day = run_date.isoformat()
    rows = datasets.creator_rows(spark, settings, run_date, int(ml["sequence_max_len"]))
    result_type = ", ".join(f"p_{k} double" for k in sq.LABELS)
    # env_manager="local": executors use this job's environment (the one the model was trained in);
    # the version pinned in the model's requirements is the same by construction of the lock file.
    udf = mlflow.pyfunc.spark_udf(spark, f"models:/{name}@{alias}", result_type=result_type, env_manager="local")
    preds = rows.select("creator_id", udf(F.struct("seq", "seq_len")).alias("p")).select("creator_id", "p.*")
    signals = delta_io.read_snapshot(spark, settings.table("creator_signals"), day, "creator_signals")
    out = scores.creator_quality_scores(preds, signals, day, thresholds, name, version).persist()
    check = out.agg(
        F.count(F.lit(1)).alias("rows"), F.countDistinct("creator_id").alias("creators"),
        F.sum((~F.col("cqs").between(0, 100) | F.col("cqs").isNull()).cast("int")).alias("bad_cqs"),
        F.sum(sum((~F.col(f"p_{k}").between(0, 1) | F.col(f"p_{k}").isNull()).cast("int")
                  for k in sq.LABELS)).alias("bad_p"),
        *[F.sum(F.array_contains("flagged", k).cast("int")).alias(f"flagged_{k}") for k in sq.LABELS],
        F.avg("cqs").alias("mean_cqs")).first()
    # One row per snapshot creator is what creator_rows builds; counting the snapshot (not ``rows``)
    # avoids recomputing every sequence just to count them.
    expected = delta_io.read_snapshot(spark, settings.table("silver_creators"), day, "silver_creators").count()
    if check["rows"] != expected or check["creators"] != expected or check["bad_cqs"] or check["bad_p"]:
        raise RuntimeError(f"{TABLE}: refusing to write -- {check['rows']} rows for {expected} creators, "
                           f"{check['creators']} distinct, {check['bad_cqs']} CQS outside [0, 100], "
                           f"{check['bad_p']} probabilities outside [0, 1]")
    delta_io.replace_partition(out, settings.table(TABLE), "dt", day)
    out.unpersist()
    summary = {"table": TABLE, "run_date": day, "model": name, "version": version, "alias": alias,
               "rows": int(check["rows"]), "mean_cqs": round(float(check["mean_cqs"]), 2),
               "flagged": {k: int(check[f"flagged_{k}"]) for k in sq.LABELS}, "thresholds": thresholds,
               "version_written": delta_io.latest_version(spark, settings.table(TABLE)),
               "seconds": round(time.time() - started, 1)}
    print(f"[{TABLE}] {day}: {summary['rows']} creators scored by {name} v{version} (@{alias}); mean CQS "
          f"{summary['mean_cqs']}; flagged {summary['flagged']} -> {settings.table(TABLE)} "
          f"v{summary['version_written']} in {summary['seconds']}s", flush=True)
    return summary


if __name__ == "__main__":
    run_job(arg_parser, main)
