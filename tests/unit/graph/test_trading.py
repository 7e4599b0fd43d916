"""Account-trading change-point detector (libs.graph.detectors.trading) on hand-made histories.

Four creators over the window 2026-10-26 .. 2026-11-01, every expected number worked out by hand
in the comments (never by calling the code under test):

* ``cr_trade`` -- sold on 2026-10-30: two seller phones (home /24 in DE) last seen on 10-29, the
  buyer's phone (new /24, FR) first logs in on 10-31 -- *not* on the trade day, so the date must
  come from the catalogue and the follower burst: two electronics listings listed on 10-30 while
  the three beauty listings are removed, 60 follows on 10-30 after one a day, posting moved from
  ~11h to ~21h.
* ``cr_phone`` -- honest look-alike: a new phone on 10-29 replaces the old one (same /24, same
  country, same catalogue, same habits).
* ``cr_travel`` -- honest look-alike: one device, abroad (FR, hotel /24) on 10-29 and 10-30.
* ``cr_fresh`` -- a creator that signed up on 11-01: a single active day, so no change point.
"""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import DateType, StringType, StructField, StructType, TimestampType
from pyspark.testing import assertDataFrameEqual

from libs.graph.detectors.trading import CHANGE_POINT_COLUMNS, change_points, traded_accounts
from schemas.syndicates import DETECTOR_COLUMNS
from schemas.syndicates import SCHEMA as SYNDICATES_SCHEMA

LOGINS = StructType([StructField("creator_id", StringType()), StructField("device_id", StringType()),
                     StructField("ip24", StringType()), StructField("geo", StringType()),
                     StructField("ts", TimestampType())])
VIDEOS = StructType([StructField("creator_id", StringType()), StructField("published_at", TimestampType())])
LISTINGS = StructType([StructField("creator_id", StringType()), StructField("category", StringType()),
                       StructField("listed_at", TimestampType()), StructField("listing_status", StringType())])
FOLLOWS = StructType([StructField("creator_id", StringType()), StructField("user_id", StringType()),
                      StructField("ts", TimestampType())])
CREATORS = StructType([StructField("creator_id", StringType()), StructField("market", StringType()),
                       StructField("category", StringType()), StructField("signup_date", DateType())])
CP_SCHEMA = ("creator_id string, change_date date, score double, device_turnover double, ip_turnover double, "
             "geo_shift double, category_shift double, rhythm_shift double, follow_burst double, evidence string")


def t(day: str, hh: int, mm: int = 0) -> dt.datetime:
    """A naive timestamp; the session time zone is UTC (libs.platform.session)."""
    return dt.datetime.fromisoformat(f"{day}T{hh:02d}:{mm:02d}:00")


def _logins() -> list[tuple]:
    rows = []
    # cr_trade: seller phones s1 (daily 09:00) and s2 (20:00 on 10-27, 10-29), home /24 in DE;
    # the buyer's b1 on a new /24 in FR from 10-31 on.
    for d in ("2026-10-26", "2026-10-27", "2026-10-28", "2026-10-29"):
        rows.append(("cr_trade", "dv_s1", "10.0.1", "DE", t(d, 9)))
    for d in ("2026-10-27", "2026-10-29"):
        rows.append(("cr_trade", "dv_s2", "10.0.1", "DE", t(d, 20)))
    for d in ("2026-10-31", "2026-11-01"):
        rows.append(("cr_trade", "dv_b1", "88.7.6", "FR", t(d, 14)))
    # cr_phone: old phone up to 10-28, the new one from 10-29, same home /24 in DE.
    for d in ("2026-10-26", "2026-10-27", "2026-10-28"):
        rows.append(("cr_phone", "dv_old", "10.2.2", "DE", t(d, 8)))
    for d in ("2026-10-29", "2026-10-30", "2026-10-31", "2026-11-01"):
        rows.append(("cr_phone", "dv_new", "10.2.2", "DE", t(d, 8)))
    # cr_travel: one device every day at noon, in FR on a hotel /24 on 10-29 and 10-30.
    for d in ("2026-10-26", "2026-10-27", "2026-10-28", "2026-10-31", "2026-11-01"):
        rows.append(("cr_travel", "dv_t", "10.3.3", "DE", t(d, 12)))
    for d in ("2026-10-29", "2026-10-30"):
        rows.append(("cr_travel", "dv_t", "77.1.1", "FR", t(d, 12)))
    # cr_fresh: signed up on 11-01, two logins that day.
    rows += [("cr_fresh", "dv_f", "10.4.4", "DE", t("2026-11-01", 9)),
             ("cr_fresh", "dv_f", "10.4.4", "DE", t("2026-11-01", 18))]
    return rows


def _videos() -> list[tuple]:
    return [
        # cr_trade: 10:00 and 12:00 before (circular mean 11h), 20:00 and 22:00 after (21h).
        ("cr_trade", t("2026-10-26", 10)), ("cr_trade", t("2026-10-28", 12)),
        ("cr_trade", t("2026-10-31", 20)), ("cr_trade", t("2026-11-01", 22)),
        # cr_phone: always at 10:00.
        ("cr_phone", t("2026-10-26", 10)), ("cr_phone", t("2026-10-28", 10)),
        ("cr_phone", t("2026-10-30", 10)), ("cr_phone", t("2026-11-01", 10)),
        ("cr_fresh", t("2026-11-01", 15)),
    ]


def _listings() -> list[tuple]:
    return [
        ("cr_trade", "beauty", t("2025-01-10", 10), "removed"),
        ("cr_trade", "beauty", t("2025-01-10", 11), "removed"),
        ("cr_trade", "beauty", t("2025-01-12", 10), "removed"),
        ("cr_trade", "electronics", t("2026-10-30", 6), "active"),
        ("cr_trade", "electronics", t("2026-10-30", 8), "active"),
        ("cr_phone", "beauty", t("2024-05-01", 10), "active"),
        ("cr_phone", "beauty", t("2024-06-01", 10), "active"),
        ("cr_travel", "fashion", t("2024-03-01", 10), "active"),
        ("cr_fresh", "toys", t("2026-11-01", 9, 30), "active"),
    ]


def _follows() -> list[tuple]:
    rows = []
    # cr_trade: one organic follow a day at noon on 10-26..10-29, then 60 bought ones on 10-30
    # every 15 minutes from 02:00 (02:00 .. 16:45).
    for d in ("2026-10-26", "2026-10-27", "2026-10-28", "2026-10-29"):
        rows.append(("cr_trade", f"us_org_{d}", t(d, 12)))
    for i in range(60):
        rows.append(("cr_trade", f"us_bot_{i:02d}", t("2026-10-30", 2) + dt.timedelta(minutes=15 * i)))
    # cr_phone: two a day, 06:00 and 18:00, all week.
    for d in ("2026-10-26", "2026-10-27", "2026-10-28", "2026-10-29", "2026-10-30", "2026-10-31", "2026-11-01"):
        rows += [("cr_phone", f"us_a_{d}", t(d, 6)), ("cr_phone", f"us_b_{d}", t(d, 18))]
    rows += [("cr_fresh", f"us_f_{i}", t("2026-11-01", 16, i)) for i in range(5)]
    return rows


def _creators() -> list[tuple]:
    return [
        ("cr_trade", "DE", "electronics", dt.date(2023, 5, 1)),
        ("cr_phone", "DE", "beauty", dt.date(2024, 4, 20)),
        ("cr_travel", "DE", "fashion", dt.date(2024, 2, 1)),
        ("cr_fresh", "DE", "toys", dt.date(2026, 11, 1)),
    ]


def inputs(spark: SparkSession) -> dict[str, DataFrame]:
    return {
        "logins": spark.createDataFrame(_logins(), LOGINS),
        "videos": spark.createDataFrame(_videos(), VIDEOS),
        "listings": spark.createDataFrame(_listings(), LISTINGS),
        "follows": spark.createDataFrame(_follows(), FOLLOWS),
        "creators": spark.createDataFrame(_creators(), CREATORS),
    }


TRADE_EVIDENCE = ("on 2026-10-30 all 2 devices replaced by 1 new device on a new /24 in FR (was DE); "
                  "listings switched beauty -> electronics (3 earlier removed); "
                  "posting peak moved from 11h to 21h UTC; 60 follows within 36 h (about 2 expected)")


@pytest.fixture(scope="module")
def cps(spark: SparkSession) -> DataFrame:
    return change_points(**inputs(spark)).cache()


def test_change_points_by_hand(spark: SparkSession, cps: DataFrame) -> None:
    """Every creator's best split, components and evidence, as worked out by hand.

    cr_trade on 10-30: devices {s1,s2} -> {b1}: 1; /24 {10.0.1} -> {88.7.6}: 1; geo DE -> FR: 1;
    catalogue 3 beauty -> 2 electronics (new listings on 10-30): 1; posting 11h -> 21h, gap 10 h,
    (10 - 3) / 9 = 7/9; follows: 4 in the 4 days before -> 1.5 expected in 36 h, 60 seen, excess
    58.5 / max(20, 4.5) -> 1. Default weights 1, .5, 1, 2, .5, 1.5 (sum 6.5): score
    (1 + .5 + 1 + 2 + .5 * 7/9 + 1.5) / 6.5 = 115/117. (10-31 splits the devices as well but adds
    no listing and no burst: 0.44; 10-29 keeps s1/s2 after: 0.76.)
    cr_phone on 10-29: devices {old} -> {new}: 1, nothing else moves: 1/6.5 = 2/13 (10-27, 10-28
    and 10-30 see both phones on one side: 0.5 -> 1/13).
    cr_travel on 10-29: same device; /24 {10.3.3} -> {10.3.3, 77.1.1}: 0.5; geo DE -> half FR:
    0.5; (0.5 * 0.5 + 0.5) / 6.5 = 3/26 (10-28 and 10-31: 0.65 / 6.5, 10-30: 0.11 / 6.5).
    cr_fresh: one active day, no row.
    """
    expected = spark.createDataFrame([
        ("cr_trade", dt.date(2026, 10, 30), 115 / 117, 1.0, 1.0, 1.0, 1.0, 7 / 9, 1.0, TRADE_EVIDENCE),
        ("cr_phone", dt.date(2026, 10, 29), 2 / 13, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0,
         "on 2026-10-29 its device replaced by 1 new device on a known /24 in DE"),
        ("cr_travel", dt.date(2026, 10, 29), 3 / 26, 0.0, 0.5, 0.5, 0.0, 0.0, 0.0,
         "on 2026-10-29 same device on 1 new of 2 /24s in DE"),
    ], CP_SCHEMA)
    assert cps.columns == CHANGE_POINT_COLUMNS
    assertDataFrameEqual(cps, expected, rtol=1e-6, atol=1e-9)


def test_traded_accounts_flags_only_the_sold_account(cps: DataFrame, spark: SparkSession) -> None:
    flagged = traded_accounts(cps)          # default threshold 0.5: new phone 0.15, traveller 0.12
    expected = spark.createDataFrame(
        [("trade:cr_trade", "creator", "cr_trade", "account", 115 / 117, 1, 115 / 117, TRADE_EVIDENCE)],
        "syndicate_id string, entity_type string, entity_id string, role string, score double, "
        "syndicate_size long, syndicate_score double, evidence string")
    assert flagged.columns == DETECTOR_COLUMNS
    assertDataFrameEqual(flagged, expected, rtol=1e-6, atol=1e-9)
    # Same types as the syndicates table (bar detector / dt, which the job adds).
    want = {f.name: f.dataType for f in SYNDICATES_SCHEMA.fields}
    assert {f.name: f.dataType for f in flagged.schema.fields} == {c: want[c] for c in DETECTOR_COLUMNS}


def test_threshold_is_inclusive_and_independent_of_the_scan(spark: SparkSession) -> None:
    cp = spark.createDataFrame([
        ("cr_a", dt.date(2026, 10, 30), 0.59, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, "a"),
        ("cr_b", dt.date(2026, 10, 30), 0.60, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, "b"),
        ("cr_c", dt.date(2026, 10, 31), 0.95, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, "c"),
    ], CP_SCHEMA)
    assertDataFrameEqual(
        traded_accounts(cp, threshold=0.6).select("entity_id", "syndicate_id", "score"),
        spark.createDataFrame([("cr_b", "trade:cr_b", 0.60), ("cr_c", "trade:cr_c", 0.95)],
                              "entity_id string, syndicate_id string, score double"))
    assert traded_accounts(cp, threshold=0.96).count() == 0


def test_min_days_each_side(spark: SparkSession) -> None:
    # Active days of cr_trade: "before the window" (its 2025 listings) + 10-26 .. 11-01 = 8 days
    # (10-30 counts: the new listings). m = 4 leaves only 10-29 (4 days on each side): devices
    # {s1,s2} -> {s1,s2,b1} 1/3, /24s 1/2, geo DE 4 vs DE 2 / FR 2 -> 1/2, catalogue 1, rhythm 7/9,
    # follows 41 in 36 h vs 1.5 expected -> 1:
    # (1/3 + 1/2 * 1/2 + 1/2 + 2 + 1/2 * 7/9 + 3/2) / 6.5 = 179/234. m = 5 needs 10 active days.
    cols = "creator_id string, change_date date, score double"
    four = change_points(**inputs(spark), min_days_each_side=4).where("creator_id = 'cr_trade'")
    assertDataFrameEqual(four.select("creator_id", "change_date", "score"),
                         spark.createDataFrame([("cr_trade", dt.date(2026, 10, 29), 179 / 234)], cols), rtol=1e-6)
    assert change_points(**inputs(spark), min_days_each_side=5).isEmpty()


def test_weights_and_unknown_creators(spark: SparkSession) -> None:
    # Only creators of ``creators`` are scanned: drop cr_trade there and it is gone (its events
    # stay in the feeds). Only the device weight left: the new phone's full device change scores 1;
    # the traveller's one device never changes, every day ties at 0 and the latest day wins.
    data = inputs(spark)
    data["creators"] = data["creators"].where("creator_id != 'cr_trade'")
    got = change_points(**data, w_ip=0.0, w_geo=0.0, w_category=0.0, w_rhythm=0.0, w_follow=0.0)
    assertDataFrameEqual(got.select("creator_id", "change_date", "score"), spark.createDataFrame(
        [("cr_phone", dt.date(2026, 10, 29), 1.0), ("cr_travel", dt.date(2026, 11, 1), 0.0)],
        "creator_id string, change_date date, score double"), rtol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"min_days_each_side": 0}, "min_days_each_side"),
    ({"min_days_each_side": 1.5}, "min_days_each_side"),
    ({"min_days_each_side": True}, "min_days_each_side"),
    ({"w_geo": -1.0}, "weight geo_shift"),
    ({"w_device": 0, "w_ip": 0, "w_geo": 0, "w_category": 0, "w_rhythm": 0, "w_follow": 0}, "at least one"),
    ({"burst_hours": 0}, "burst_hours"),
    ({"min_burst_follows": -5}, "min_burst_follows"),
    ({"burst_multiple": float("nan")}, "burst_multiple"),
    ({"rhythm_tolerance_hours": 12}, "rhythm_tolerance_hours"),
    ({"min_videos_each_side": 0}, "min_videos_each_side"),
])
def test_bad_parameters(spark: SparkSession, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        change_points(**inputs(spark), **kwargs)


def test_missing_columns(spark: SparkSession) -> None:
    data = inputs(spark)
    data["logins"] = data["logins"].drop("ip24")
    with pytest.raises(ValueError, match=r"logins lacks column\(s\) \['ip24'\]"):
        change_points(**data)
    with pytest.raises(ValueError, match="change_points_df lacks"):
        traded_accounts(spark.createDataFrame([("cr_a", 0.9)], "creator_id string, score double"))


@pytest.mark.parametrize("threshold", [-0.1, 1.5, "0.6", None])
def test_bad_threshold(cps: DataFrame, threshold) -> None:
    with pytest.raises(ValueError, match="threshold"):
        traded_accounts(cps, threshold=threshold)
