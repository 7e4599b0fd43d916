"""Shared end-to-end fixtures: one simulated landing zone per test session.

Simulating is the expensive step of every end-to-end test, so the simulator's own test and the
ingestion tests share one run (a tiny world with an elevated defect rate, so every defect kind
appears in a few thousand lines). Jobs read their settings from the environment, exactly as
under Airflow; the lakehouse root points at the session's temporary lakehouse.
"""
from __future__ import annotations

import datetime as dt

import pytest

LANDING = dict(run_date=dt.date(2026, 11, 1), env="local", seed=3, creators=400, days=3, defect_rate=0.05)


@pytest.fixture(scope="session")
def job_env(settings):
    """Environment for job ``main()`` calls: the session lakehouse, for the whole session."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CGOV__LAKEHOUSE_ROOT", settings.lakehouse_root)
        yield


@pytest.fixture(scope="session")
def landing_zone(spark, job_env) -> dict:
    """The simulator's result for :data:`LANDING` (rows per table, defects per feed and kind)."""
    import jobs.raw_landing_zone as job

    return job.main(**LANDING)


def ingest(feeds: str | None = None) -> list[dict]:
    """bronze_feeds + silver_feeds over the landing zone's dates (what the pipeline runs)."""
    import jobs.bronze_feeds as bronze_job
    import jobs.silver_feeds as silver_job

    bronze_job.main(run_date=LANDING["run_date"], env="local", feeds=feeds, days=LANDING["days"])
    return silver_job.main(run_date=LANDING["run_date"], env="local", feeds=feeds, days=LANDING["days"])


@pytest.fixture(scope="session")
def ingested(landing_zone) -> list[dict]:
    """The landing zone ingested once per session (ingestion and creator-quality tests share it)."""
    return ingest()


def ensure_upstream(spark, settings, tables: tuple[str, ...]) -> None:
    """Run the jobs producing ``tables`` for the landing zone's run date when no earlier module did.

    The end-to-end modules share one lakehouse; when the whole suite runs, the quality and graph
    modules have written these already. Run alone, a module gets them here (each job is
    idempotent), so no module depends on test order.
    """
    from libs.platform import delta_io

    run, day = LANDING["run_date"], LANDING["run_date"].isoformat()

    def missing(table: str) -> bool:
        return table in tables and not delta_io.partition_written(spark, settings.table(table), day)

    if missing("creator_quality_scores"):
        import jobs.creator_quality_model as model_job
        import jobs.creator_quality_scores as scores_job
        import jobs.creator_signals as signals_job
        import jobs.video_copies as copies_job

        copies_job.main(run_date=run, env="local")
        signals_job.main(run_date=run, env="local")
        model_job.main(run_date=run, env="local", epochs=1)
        scores_job.main(run_date=run, env="local")
    graph_jobs = [t for t in ("entity_risk", "syndicates", "migration_predictions") if missing(t)]
    if graph_jobs and not delta_io.partition_written(spark, settings.table("graph_edges"), day):
        import jobs.graph_edges as edges_job

        edges_job.main(run_date=run, env="local", days=LANDING["days"])
    for table in graph_jobs:
        import importlib

        importlib.import_module(f"jobs.{table}").main(run_date=run, env="local")


# End-to-end modules in pipeline order: each reuses what the modules before it wrote (see
# ensure_upstream), so running them in this order never runs an upstream job twice.
E2E_ORDER = ("test_raw_landing_zone", "test_ingest", "test_quality", "test_graph", "test_strategy",
             "test_governance", "test_smoke_graph_metrics")


def pytest_collection_modifyitems(session, config, items) -> None:
    """Reorder the e2e modules' tests into :data:`E2E_ORDER` (stable; other tests keep their places)."""
    def rank(item) -> int:
        name = item.path.stem
        return E2E_ORDER.index(name) if name in E2E_ORDER else len(E2E_ORDER)

    slots = [i for i, item in enumerate(items) if "e2e" in item.path.parts]
    ordered = sorted((items[i] for i in slots), key=rank)
    for i, item in zip(slots, ordered):
        items[i] = item
