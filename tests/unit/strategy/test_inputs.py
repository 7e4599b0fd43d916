"""Traffic-quota inputs (libs.strategy.inputs) on a hand-made market, expected values worked out by hand."""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from libs.strategy import inputs

RUN = dt.date(2026, 11, 1)
SIGNALS = ("creator_id string, window_days int, views long, interactions long, follows long, gmv_usd double, "
           "complaints long, copied_video_share double, account_age_days int")


@pytest.fixture(scope="module")
def frames(spark):
    creators = spark.createDataFrame([
        ("a", "US", "active"), ("b", "US", "active"), ("c", "US", "active"), ("d", "US", "active"),
        ("e", "BR", "active"), ("f", "BR", "banned"),
    ], "creator_id string, market string, status string")
    signals = spark.createDataFrame([
        ("a", 28, 100, 8, 2, 50.0, 1, 0.0, 100),
        ("a", 7, 999, 999, 999, 999.0, 999, 1.0, 100),   # another window: must be ignored
        ("c", 28, 100, 0, 0, 0.0, 0, 0.2, 10),
        ("d", 28, 200, 50, 0, 1000.0, 10, 0.0, 400),
        ("e", 28, 0, 0, 0, 0.0, 0, None, 400),
        ("f", 28, 0, 0, 0, 0.0, 0, 0.0, 400),
    ], SIGNALS)
    scores = spark.createDataFrame([
        ("a", 80.0, 0.1, []), ("c", 90.0, 0.0, []), ("d", 20.0, 0.9, ["matrix"]), ("e", 75.0, 0.0, ["piracy"]),
        ("f", 95.0, 0.0, []),
    ], "creator_id string, cqs double, risk double, flagged array<string>")
    graph_risk = spark.createDataFrame([
        ("creator:a", "creator", 0.5), ("device:a", "device", 0.9),   # only creator vertices count
    ], "id string, vertex_type string, risk double")
    moderation = spark.createDataFrame([
        ("d", "ban", dt.datetime(2026, 10, 20), False),
        ("c", "ban", dt.datetime(2026, 10, 20), True),     # overturned: not standing
        ("a", "warning", dt.datetime(2026, 10, 21), False),  # a warning is not enforcement
        ("e", "strike", dt.datetime(2026, 11, 2), False),    # after the run date: not yet
    ], "creator_id string, action string, decided_at timestamp, overturned boolean")
    return creators, signals, scores, graph_risk, moderation


def test_quota_inputs_by_hand(spark, frames):
    out = inputs.quota_inputs(*frames, RUN, prior_views=100.0)
    # US market rates over non-enforced a, b, c: gmv 50/200 = 0.25, engaged 10/200 = 0.05, complaints 1/200.
    # a: ((50 + 100*0.25)/200)/0.25 = 1.5 (same for engagement and complaints); risk 1 - 0.9*0.5 = 0.55.
    # b: no signals -> the market average (1.0); no score -> merit 0.01, not eligible.
    # c: (0 + 25)/200/0.25 = 0.5; copied 20 % -> not original -> not eligible; 10 days old -> new.
    # BR has no views at all: rates 0 -> every relative value 0.
    expected = spark.createDataFrame([
        ("US", "a", 1.5, 1.5, 0.55, 1.5, 0.8, True, False, False, 102.0, 100, 80.0),
        ("US", "b", 1.0, 1.0, 0.0, 1.0, 0.01, False, False, False, 0.0, 0, None),
        ("US", "c", 0.5, 0.5, 0.0, 0.5, 0.9, False, True, False, 100.0, 100, 90.0),
        ("BR", "e", 0.0, 0.0, 0.0, 0.0, 0.75, False, False, False, 0.0, 0, 75.0),
        ("BR", "f", 0.0, 0.0, 0.0, 0.0, 0.95, False, False, True, 0.0, 0, 95.0),
    ], "market string, creator_id string, gmv double, prosperity double, risk double, complaints double, "
       "merit double, eligible boolean, is_new boolean, enforced boolean, popularity double, views long, cqs double")
    assert out.columns == inputs.QUOTA_INPUT_COLUMNS
    assertDataFrameEqual(out.where("creator_id != 'd'"), expected, rtol=1e-9)
    d = out.where("creator_id = 'd'").first()
    # The banned creator is enforced, not eligible, and its history did not enter the market rates.
    assert d["enforced"] and not d["eligible"] and d["merit"] == pytest.approx(0.2)
    assert d["gmv"] == pytest.approx(((1000 + 25) / 300) / 0.25)


def test_market_supply(spark, frames):
    rows = inputs.with_market_supply(inputs.quota_inputs(*frames, RUN, prior_views=100.0), window_days=28)
    assert rows.count() == 6        # a column on every creator's row, no row added or lost
    out = rows.select("market", "total_impressions").distinct()
    # US: (100 + 0 + 100 + 200) / 28 = 14.3 -> 14 (the enforced creator's audience is redistributed, not lost);
    # BR has no views but still gets a defined quota of 1.
    assertDataFrameEqual(out, spark.createDataFrame([("US", 14), ("BR", 1)], "market string, total_impressions long"))


def test_bad_parameters_and_inputs(spark, frames):
    with pytest.raises(ValueError, match="prior_views"):
        inputs.quota_inputs(*frames, RUN, prior_views=0)
    creators, signals, scores, graph_risk, moderation = frames
    with pytest.raises(ValueError, match="scores lacks columns \\['cqs'\\]"):
        inputs.quota_inputs(creators, signals, scores.drop("cqs"), graph_risk, moderation, RUN)
