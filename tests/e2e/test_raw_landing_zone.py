"""End to end: the simulator job writes public feeds + hidden truth, and a re-run is a no-op on the data."""
from __future__ import annotations

import datetime as dt

import pytest

import jobs.raw_landing_zone as job
from schemas.raw_videos import SCHEMA as RAW_VIDEOS


@pytest.mark.slow
def test_landing_zone_written_and_rerun_is_idempotent(spark, settings, monkeypatch):
    monkeypatch.setenv("CGOV__LAKEHOUSE_ROOT", settings.lakehouse_root)
    args = dict(run_date=dt.date(2026, 11, 1), env="local", seed=3, creators=150, days=2)
    first = job.main(**args)
    rows = first["rows"]
    assert rows["raw_creators"] == rows["truth_creators"] == 150
    assert rows["raw_videos"] == rows["truth_videos"] > 0
    videos = spark.read.schema(RAW_VIDEOS).parquet(settings.table("raw_videos"))
    assert sorted(r["dt"] for r in videos.select("dt").distinct().collect()) == ["2026-10-31", "2026-11-01"]
    assert not [c for c in videos.columns if c.startswith("truth_")]
    before = sorted(map(tuple, videos.collect()))

    again = job.main(**args)
    assert again["rows"] == rows
    assert sorted(map(tuple, spark.read.schema(RAW_VIDEOS).parquet(settings.table("raw_videos")).collect())) == before
