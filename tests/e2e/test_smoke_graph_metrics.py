"""End to end: the smoke job on the embedded session writes Delta versions a reader can time-travel."""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

import jobs.smoke_graph_metrics as job
from libs.platform import delta_io


@pytest.mark.slow
def test_smoke_job_end_to_end_and_rerun_is_idempotent(spark, settings, monkeypatch):
    monkeypatch.setenv("CGOV__LAKEHOUSE_ROOT", settings.lakehouse_root)
    report = job.main(run_date=dt.date(2026, 11, 2), env="local", graph_backend="native")
    assert report["base"]["components"] == 5
    assert report["with_late_edges"]["components"] == 4
    assert report["base"]["vertices"] == report["with_late_edges"]["vertices"] == 15
    # Farm A (c01-c03, d1) and farm B (c04, c05, d2, d3) merge once c03 logs in on d2.
    after = delta_io.read_version(spark, report["table"]).where("run_date = '2026-11-02'")
    merged = {r["id"] for r in after.where(F.col("component") == "c01").collect()}
    assert merged == {"c01", "c02", "c03", "c04", "c05", "d1", "d2", "d3"}
    assert abs(after.agg(F.sum("pagerank")).first()[0] - 1.0) < 1e-9

    import mlflow

    run = mlflow.get_run(report["mlflow_run_id"])
    assert run.data.metrics["base_components"] == 5.0
    assert run.data.metrics["with_late_edges_components"] == 4.0
    assert run.info.artifact_uri.startswith(f"{settings.lakehouse_root}/_mlflow/artifacts")

    rows_before = after.collect()
    job.main(run_date=dt.date(2026, 11, 2), env="local", graph_backend="native")
    again = delta_io.read_version(spark, report["table"]).where("run_date = '2026-11-02'")
    assert sorted(map(tuple, again.collect())) == sorted(map(tuple, rows_before))
