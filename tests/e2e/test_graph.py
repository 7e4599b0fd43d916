"""The graph jobs end to end on the session's small simulated, ingested world (400 creators x 3 days).

graph_edges -> syndicates / entity_risk / migration_predictions through their real ``main()``:
edge weights reconcile with the silver events, every table honours its contract, a re-run
replaces instead of appending, and the farm detector finds the simulator's farms (truth read
here only).
"""
from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from libs.platform import delta_io
from schemas import syndicates as syndicates_schema
from schemas.truth_creators import SCHEMA as TRUTH_CREATORS
from tests.e2e.conftest import LANDING

RUN = LANDING["run_date"]
DAY = RUN.isoformat()
FIRST = "2026-10-30"


@pytest.fixture(scope="module")
def graph(spark, settings, ingested) -> dict:
    import jobs.entity_risk as risk_job
    import jobs.graph_edges as edges_job
    import jobs.migration_predictions as migration_job
    import jobs.syndicates as syndicates_job

    return {"edges": edges_job.main(run_date=RUN, env="local", days=LANDING["days"]),
            "syndicates": syndicates_job.main(run_date=RUN, env="local"),
            "risk": risk_job.main(run_date=RUN, env="local"),
            "migration": migration_job.main(run_date=RUN, env="local")}


def _day(spark, settings, table: str, first: str = DAY):
    return delta_io.read_dates(spark, settings.table(table), first, DAY, table)


def test_edges_reconcile_with_silver_events(spark, settings, graph):
    events = delta_io.read_dates(spark, settings.table("silver_engagement_events"), FIRST, DAY)
    expected = events.where(F.col("user_key").isNotNull()
                            & ((F.col("event_type") == "follow") | F.col("video_id").isNotNull())).count()
    edges = _day(spark, settings, "graph_edges", FIRST)
    got = edges.where(F.col("edge_type").isin("engages", "follows")).agg(F.sum("weight")).first()[0]
    assert int(got) == expected
    assert graph["edges"]["days"] == ["2026-10-30", "2026-10-31", DAY]
    # Every edge endpoint is a vertex of the same day.
    vertices = _day(spark, settings, "graph_vertices", FIRST)
    ends = edges.select("src", "dt").union(edges.select("dst", "dt")).withColumnRenamed("src", "id")
    assert ends.join(vertices, ["id", "dt"], "left_anti").count() == 0


def test_syndicates_contract_and_farm_recall(spark, settings, graph):
    rows = _day(spark, settings, "syndicates")
    assert set(graph["syndicates"]["detectors"]) == set(syndicates_schema.DETECTORS)
    assert rows.select("detector").distinct().where(~F.col("detector").isin(*syndicates_schema.DETECTORS)).count() == 0
    assert rows.where(F.col("evidence") == "").count() == 0
    # syndicate_size is the number of member rows of the syndicate.
    sizes = rows.groupBy("detector", "syndicate_id").agg(F.count("*").alias("n"), F.first("syndicate_size").alias("s"))
    assert sizes.where(F.col("n") != F.col("s")).count() == 0
    truth = spark.read.schema(TRUTH_CREATORS).parquet(settings.table("truth_creators")).where(F.col("seed") == LANDING["seed"])
    farms = truth.where(F.array_contains("truth_abuse", "matrix_farm")).select(F.col("creator_id").alias("entity_id"))
    found = rows.where(F.col("detector") == "shared_infrastructure").select("entity_id")
    tp = found.join(farms, "entity_id").count()
    assert farms.count() > 0 and found.count() > 0
    assert tp / found.count() >= 0.9 and tp / farms.count() >= 0.8


def test_rerun_of_one_detector_replaces_only_its_rows(spark, settings, graph):
    import jobs.syndicates as syndicates_job

    before = {r["detector"]: r["count"] for r in _day(spark, settings, "syndicates").groupBy("detector").count().collect()}
    syndicates_job.main(run_date=RUN, env="local", detectors="shared_infrastructure")
    after = {r["detector"]: r["count"] for r in _day(spark, settings, "syndicates").groupBy("detector").count().collect()}
    assert after == before


def test_risk_and_migration_tables(spark, settings, graph):
    risk = _day(spark, settings, "entity_risk")
    assert risk.where((F.col("risk") <= 0) | (F.col("risk") > 1)).count() == 0
    assert risk.where(F.col("hops") == 0).count() == graph["risk"]["seeds_in_graph"] > 0
    mig = _day(spark, settings, "migration_predictions")
    per = mig.groupBy("operator_id", "prediction").agg(F.min("rank").alias("lo"), F.max("rank").alias("hi"),
                                                         F.count("*").alias("n"))
    assert per.where((F.col("lo") != 1) | (F.col("hi") != F.col("n"))).count() == 0
