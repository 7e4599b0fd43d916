"""traffic_quotas end to end on the session's small simulated world: quality + graph risk -> quotas + report.

Its upstream tables (creator_quality_scores, entity_risk) are produced by the other end-to-end
modules when the whole suite runs; run alone, :func:`tests.e2e.conftest.ensure_upstream` runs
the missing upstream jobs (each is idempotent), so this module never depends on test order.
"""
from __future__ import annotations

import json
import math

import pytest
from pyspark.sql import functions as F

from libs.platform import delta_io
from tests.e2e.conftest import LANDING, ensure_upstream

pytestmark = pytest.mark.slow
RUN = LANDING["run_date"]
DAY = RUN.isoformat()


@pytest.fixture(scope="module")
def quotas(spark, settings, ingested) -> dict:
    import jobs.traffic_quotas as job

    ensure_upstream(spark, settings, ("creator_quality_scores", "entity_risk"))
    return job.main(run_date=RUN, env="local")


def _day(spark, settings, table: str):
    return delta_io.read_dates(spark, settings.table(table), DAY, DAY, table)


def test_every_creator_gets_a_checked_quota(spark, settings, quotas):
    rows = _day(spark, settings, "traffic_quotas")
    roster = delta_io.read_snapshot(spark, settings.table("silver_creators"), DAY, "silver_creators")
    assert rows.count() == roster.count() == rows.select("creator_id").distinct().count()
    assert rows.join(roster, "creator_id", "left_anti").count() == 0
    assert rows.where(F.col("enforced") & (F.col("impressions") > 0)).count() == 0
    # A market's quota is its 28-day views per day, handed out exactly, in both arms.
    signals = (delta_io.read_snapshot(spark, settings.table("creator_signals"), DAY, "creator_signals")
               .where(F.col("window_days") == 28).select("creator_id", "views")
               .join(roster.select("creator_id", "market"), "creator_id"))
    views = {r["market"]: r["v"] for r in signals.groupBy("market").agg(F.sum("views").alias("v")).collect()}
    per_market = {r["market"]: (r["q"], r["u"]) for r in rows.groupBy("market").agg(
        F.sum("impressions").alias("q"), F.sum("unregulated_impressions").alias("u")).collect()}
    for market, (q, u) in per_market.items():
        # Spark rounds half up (Python's round() would round half to even).
        assert q == u == max(1, math.floor((views.get(market) or 0) / 28 + 0.5)), market
    policy = json.loads(quotas["reports"][0]["policy"])
    for r in _day(spark, settings, "traffic_quota_report").collect():
        assert r["violations"] == [] and r["total_impressions"] == per_market[r["market"]][0]
        assert r["gini"] <= policy["max_gini"] + 1e-9 or r["relaxations"]


def test_rerun_replaces_and_a_what_if_is_recorded(spark, settings, quotas):
    import jobs.traffic_quotas as job

    before = _day(spark, settings, "traffic_quotas").count()
    job.main(run_date=RUN, env="local", lam=5.0)
    assert _day(spark, settings, "traffic_quotas").count() == before
    reports = _day(spark, settings, "traffic_quota_report").collect()
    assert reports and all(json.loads(r["policy"])["lam"] == 5.0 for r in reports)
