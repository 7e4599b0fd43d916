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
