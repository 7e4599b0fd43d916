"""End to end: silver -> video_copies -> creator_signals -> creator_quality_model -> creator_quality_scores.

Runs the real jobs on the session's small simulated world (400 creators, 3 days) and judges the
copy search against the simulator's hidden truth; the model jobs are judged on what must hold
at any size -- tables reconcile with the snapshot, the registry and the alias are set, decisions
are recorded with reasons, re-runs replace rather than append. Model *quality* is measured by
``benchmarks/eval_creator_quality.py`` on a larger world, not asserted here.
"""
from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from libs.platform import delta_io
from libs.quality import sequences as sq
from schemas.truth_videos import SCHEMA as TRUTH_VIDEOS
from tests.e2e.conftest import LANDING

pytestmark = pytest.mark.slow
RUN = LANDING["run_date"]
DAY = RUN.isoformat()


@pytest.fixture(scope="module")
def quality(spark, settings, ingested) -> dict:
    import jobs.creator_quality_model as model_job
    import jobs.creator_quality_scores as scores_job
    import jobs.creator_signals as signals_job
    import jobs.video_copies as copies_job

    out = {"copies": copies_job.main(run_date=RUN, env="local"),
           "signals": signals_job.main(run_date=RUN, env="local"),
           "model": model_job.main(run_date=RUN, env="local", epochs=2)}
    out["scores"] = scores_job.main(run_date=RUN, env="local")
    return out


def _snapshot(spark, settings, table: str):
    return delta_io.read_dates(spark, settings.table(table), DAY, DAY, table)


def test_close_copies_found_with_attribution_and_no_false_match(spark, settings, quality):
    copies = _snapshot(spark, settings, "video_copies")
    videos = delta_io.read_version(spark, settings.table("silver_videos")).select("video_id")
    truth = (spark.read.schema(TRUTH_VIDEOS).parquet(settings.table("truth_videos"))
             .where(F.col("seed") == LANDING["seed"]))
    # Every planted copy under 16 bits whose copy and original were both ingested: found, right way round.
    close = (truth.where(F.col("truth_original_video_id").isNotNull() & (F.col("truth_copy_bits") < 16))
             .join(videos, "video_id").join(videos.withColumnRenamed("video_id", "truth_original_video_id"),
                                            "truth_original_video_id"))
    n_close = close.count()
    assert n_close >= 10
    missed = close.join(copies.select(F.col("copy_video_id").alias("video_id"),
                                      F.col("original_video_id").alias("truth_original_video_id")),
                        ["video_id", "truth_original_video_id"], "left_anti")
    assert missed.count() == 0
    root = truth.select("video_id", F.coalesce("truth_original_video_id", "video_id").alias("root"))
    pairs = (copies.join(root.withColumnRenamed("video_id", "copy_video_id").withColumnRenamed("root", "r1"), "copy_video_id")
             .join(root.withColumnRenamed("video_id", "original_video_id").withColumnRenamed("root", "r2"),
                   "original_video_id"))
    assert pairs.count() == copies.count()                           # every pair is of ingested videos
    assert pairs.where(F.col("r1") != F.col("r2")).count() == 0      # no pair of unrelated videos


def test_signals_reconcile_with_silver(spark, settings, quality):
    sig = _snapshot(spark, settings, "creator_signals")
    creators = delta_io.read_dates(spark, settings.table("silver_creators"), DAY, DAY)
    n = creators.count()
    assert quality["signals"]["rows"] == sig.count() == 2 * n
    assert sorted(r[0] for r in sig.select("window_days").distinct().collect()) == [7, 28]
    # Every video of a snapshot creator is counted once in the 28-day window (the world is 3 days long).
    videos = delta_io.read_version(spark, settings.table("silver_videos")).join(creators.select("creator_id"), "creator_id")
    assert sig.where("window_days = 28").agg(F.sum("n_videos")).first()[0] == videos.count()
    assert sig.where("window_days = 28").agg(F.sum("purchases")).first()[0] == \
        delta_io.read_version(spark, settings.table("silver_engagement_events")).where("event_type = 'purchase'") \
        .join(creators.select("creator_id"), "creator_id").count()


def test_model_registered_promoted_and_evaluated(spark, settings, quality):
    from mlflow import MlflowClient

    m = quality["model"]
    assert m["promoted"] is True and "becomes the first" in m["reason"]
    client = MlflowClient()
    champion = client.get_model_version_by_alias(m["model"], "champion")
    assert str(champion.version) == m["version"]
    assert champion.tags["promotion.decision"] == "promoted"
    evals = delta_io.read_version(spark, settings.table("model_evaluations")).where(F.col("dt") == DAY).collect()
    assert len(evals) == 1 and evals[0].model_version == m["version"]
    assert set(evals[0].thresholds) == set(sq.LABELS)
    hold = _snapshot(spark, settings, "creator_quality_holdout")
    assert hold.count() == evals[0].holdout_rows > 0
    assert hold.where(F.size("p_model") != 3).count() == 0


def test_scores_cover_every_creator_with_bounded_cqs_and_evidence(spark, settings, quality):
    scores = _snapshot(spark, settings, "creator_quality_scores")
    n = delta_io.read_dates(spark, settings.table("silver_creators"), DAY, DAY).count()
    assert scores.count() == scores.select("creator_id").distinct().count() == n
    assert scores.where(~F.col("cqs").between(0, 100)).count() == 0
    assert scores.where(F.col("model_version") != quality["model"]["version"]).count() == 0
    flagged = scores.where(F.size("flagged") > 0)
    # a flag always comes with the model evidence that justifies it
    assert flagged.where(~F.exists("evidence", lambda e: e["kind"] == "model")).count() == 0
    # copiers found by video_copies carry the copy evidence
    copiers = _snapshot(spark, settings, "video_copies").where(~F.col("same_creator")).select(
        F.col("copy_creator_id").alias("creator_id")).distinct()
    with_copy_ev = scores.join(copiers, "creator_id").where(F.exists("evidence", lambda e: e["kind"] == "copies"))
    assert with_copy_ev.count() == scores.join(copiers, "creator_id").count() > 0


def test_retraining_records_a_decision_and_rescoring_replaces(spark, settings, quality):
    import jobs.creator_quality_model as model_job
    import jobs.creator_quality_scores as scores_job
    from mlflow import MlflowClient

    second = model_job.main(run_date=RUN, env="local", epochs=1)
    assert int(second["version"]) == int(quality["model"]["version"]) + 1
    tags = MlflowClient().get_model_version(second["model"], second["version"]).tags
    assert tags["promotion.decision"] in ("promoted", "refused") and tags["promotion.reason"]
    evals = delta_io.read_version(spark, settings.table("model_evaluations")).where(F.col("dt") == DAY).collect()
    assert [e.model_version for e in evals] == [second["version"]]     # MERGE: one row per date
    rescored = scores_job.main(run_date=RUN, env="local")
    assert rescored["rows"] == quality["scores"]["rows"] == _snapshot(spark, settings, "creator_quality_scores").count()
