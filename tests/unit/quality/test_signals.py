"""Per-creator signal aggregation on small hand-made frames; expected values computed by hand."""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import Row
from pyspark.testing import assertDataFrameEqual

from libs.quality import signals
from schemas import creator_signals as schema

RUN = dt.date(2026, 11, 28)
TS = dt.datetime

VIDEO_SCHEMA = ("video_id string, creator_id string, published_at timestamp, product_id string, title string, "
                "static_frame_ratio double, motion_score double, aesthetic_score double, blur double, "
                "audio_reuse boolean")
EVENT_SCHEMA = "creator_id string, user_key string, event_type string, ts timestamp, gmv_usd double"
COPY_SCHEMA = ("copy_video_id string, copy_creator_id string, original_video_id string, original_creator_id string, "
               "distance int, same_creator boolean, copy_published_at timestamp")


@pytest.fixture(scope="module")
def videos(spark):
    return spark.createDataFrame([
        # cr_a: three videos in the last 7 days, one 20 days ago, one after the run date (ignored)
        ("v1", "cr_a", TS(2026, 11, 27, 10, 0), "p1", "BUY NOW", 0.9, 0.1, 0.30, 0.5, True),
        ("v2", "cr_a", TS(2026, 11, 27, 10, 30), "p1", "BUY NOW", 0.8, 0.2, 0.35, 0.3, True),
        ("v3", "cr_a", TS(2026, 11, 28, 10, 30), None, "my day", 0.1, 0.8, 0.70, 0.1, False),
        ("v4", "cr_a", TS(2026, 11, 8, 9, 0), "p2", "old", 0.2, 0.6, 0.80, 0.2, False),
        ("v5", "cr_a", TS(2026, 11, 29, 1, 0), "p9", "future", 0.0, 0.0, 0.0, 0.0, False),
        # cr_b: one video 27 days ago (28-day window only)
        ("v6", "cr_b", TS(2026, 11, 1, 12, 0), None, "hello", 0.5, 0.5, 0.5, 0.5, False),
    ], VIDEO_SCHEMA)


def test_in_windows_edges(spark):
    df = spark.createDataFrame([(dt.date(2026, 11, 28),), (dt.date(2026, 11, 22),), (dt.date(2026, 11, 21),),
                                (dt.date(2026, 11, 1),), (dt.date(2026, 10, 31),), (dt.date(2026, 11, 29),)], "d date")
    got = [r.w for r in df.select(signals.in_windows(df.d, RUN, [28, 7]).alias("w")).collect()]
    # 0 and 6 days ago are inside 7 days; 7 days ago is not; 27 days ago is inside 28; 28 and -1 are outside.
    assert got == [[7, 28], [7, 28], [28], [28], [], []]


def test_windows_must_be_positive(spark, videos):
    with pytest.raises(ValueError, match="positive"):
        signals.video_signals(videos, RUN, [0, 7])


def test_video_signals(spark, videos):
    got = signals.video_signals(videos, RUN, [7, 28]).where("creator_id = 'cr_a' AND window_days = 7").first()
    assert got.n_videos == 3 and got.active_days == 2
    assert got.videos_per_active_day == pytest.approx(1.5)
    assert got.static_frame_mean == pytest.approx((0.9 + 0.8 + 0.1) / 3)
    assert got.static_frame_share == pytest.approx(2 / 3)          # 0.9 and 0.8 are >= 0.6
    assert got.low_aesthetic_share == pytest.approx(2 / 3)         # 0.30, 0.35 < 0.4
    assert got.audio_reuse_share == pytest.approx(2 / 3)
    assert got.title_dup_share == pytest.approx(1 - 2 / 3)         # "BUY NOW" twice
    assert got.title_caps_share == pytest.approx((1 + 1 + 0) / 3)
    assert got.product_video_share == pytest.approx(2 / 3)
    assert got.product_repeat_ratio == pytest.approx(0.5)          # one distinct product over two videos
    assert got.min_gap_minutes == pytest.approx(30.0)
    # gaps 30 and 1440 minutes: population std / mean
    mean, std = (30 + 1440) / 2, (1440 - 30) / 2
    assert got.gap_cv == pytest.approx(std / mean)
    w28 = signals.video_signals(videos, RUN, [7, 28]).where("creator_id = 'cr_a' AND window_days = 28").first()
    assert w28.n_videos == 4                                        # v5 is after the run date
    b = signals.video_signals(videos, RUN, [7, 28]).where("creator_id = 'cr_b'").collect()
    assert [(r.window_days, r.n_videos, r.gap_cv) for r in b] == [(28, 1, None)]


def test_copy_signals_shares_and_victims(spark, videos):
    copies = spark.createDataFrame([
        ("v1", "cr_a", "o1", "cr_x", 12, False, TS(2026, 11, 27, 10, 0)),
        ("v1", "cr_a", "o2", "cr_y", 20, False, TS(2026, 11, 27, 10, 0)),   # same copy, second original: counted once
        ("v2", "cr_a", "v1", "cr_a", 3, True, TS(2026, 11, 27, 10, 30)),     # self repost
        ("v6", "cr_b", "v4", "cr_a", 30, False, TS(2026, 11, 1, 12, 0)),
    ], COPY_SCHEMA)
    got = signals.copy_signals(copies, videos, RUN, [7, 28])
    expected = [
        Row(creator_id="cr_a", window_days=7, copied_video_share=1 / 3, self_repost_share=1 / 3, copy_sources=2,
            copy_min_distance=12, times_copied=0),
        Row(creator_id="cr_a", window_days=28, copied_video_share=1 / 4, self_repost_share=1 / 4, copy_sources=2,
            copy_min_distance=12, times_copied=1),
        Row(creator_id="cr_b", window_days=28, copied_video_share=1.0, self_repost_share=0.0, copy_sources=1,
            copy_min_distance=30, times_copied=0),
        # victims without videos in the window still get their times_copied row
        Row(creator_id="cr_x", window_days=7, copied_video_share=None, self_repost_share=None, copy_sources=0,
            copy_min_distance=None, times_copied=1),
        Row(creator_id="cr_x", window_days=28, copied_video_share=None, self_repost_share=None, copy_sources=0,
            copy_min_distance=None, times_copied=1),
        Row(creator_id="cr_y", window_days=7, copied_video_share=None, self_repost_share=None, copy_sources=0,
            copy_min_distance=None, times_copied=1),
        Row(creator_id="cr_y", window_days=28, copied_video_share=None, self_repost_share=None, copy_sources=0,
            copy_min_distance=None, times_copied=1),
    ]
    assertDataFrameEqual(got, expected, checkRowOrder=False, rtol=1e-9)


def test_engagement_signals(spark):
    events = spark.createDataFrame([
        ("cr_a", "u1", "view", TS(2026, 11, 28, 1), None),
        ("cr_a", "u1", "like", TS(2026, 11, 28, 1), None),
        ("cr_a", "u1", "share", TS(2026, 11, 28, 1), None),
        ("cr_a", "u2", "view", TS(2026, 11, 27, 1), None),
        ("cr_a", "u2", "purchase", TS(2026, 11, 27, 2), 25.0),
        ("cr_a", "u3", "follow", TS(2026, 11, 10, 2), None),            # 28-day window only
        ("cr_b", "u4", "like", TS(2026, 11, 28, 1), None),               # no views: rates are null
    ], EVENT_SCHEMA)
    got = {(r.creator_id, r.window_days): r for r in signals.engagement_signals(events, RUN, [7, 28]).collect()}
    a7 = got[("cr_a", 7)]
    assert (a7.views, a7.interactions, a7.follows, a7.purchases, a7.distinct_users) == (2, 2, 0, 1, 2)
    assert a7.gmv_usd == pytest.approx(25.0)
    assert a7.interaction_rate == pytest.approx(1.0) and a7.conversion_rate == pytest.approx(0.5)
    assert a7.top_user_share == pytest.approx(3 / 5) and a7.events_per_user == pytest.approx(2.5)
    assert got[("cr_a", 28)].follows == 1 and got[("cr_a", 28)].distinct_users == 3
    b7 = got[("cr_b", 7)]
    assert b7.interaction_rate is None and b7.conversion_rate is None and b7.gmv_usd == 0.0


def test_creator_signals_every_creator_every_window(spark, videos):
    creators = spark.createDataFrame([("cr_a", "US", "beauty", dt.date(2026, 1, 1)),
                                      ("cr_b", "ID", "toys", dt.date(2026, 11, 20)),
                                      ("cr_c", "GB", "home", dt.date(2025, 11, 28))],
                                     "creator_id string, market string, category string, signup_date date")
    empty = lambda ddl: spark.createDataFrame([], ddl)  # noqa: E731
    events = spark.createDataFrame([("cr_a", "u2", "purchase", TS(2026, 11, 27, 2), 25.0),
                                    ("cr_a", "u2", "purchase", TS(2026, 11, 27, 3), 5.0)], EVENT_SCHEMA)
    complaints = spark.createDataFrame([("cr_a", "copyright", TS(2026, 11, 27, 5))],
                                       "creator_id string, reason string, ts timestamp")
    refunds = spark.createDataFrame([("cr_a", 5.0, TS(2026, 11, 27, 6))],
                                    "creator_id string, amount_usd double, ts timestamp")
    out = signals.creator_signals(creators, videos, empty(COPY_SCHEMA), events, complaints, refunds,
                                  empty("creator_id string, device_id string, geo string, ts timestamp"), RUN, [28, 7])
    assert [(f.name, f.dataType) for f in out.schema] == [(f.name, f.dataType) for f in schema.SCHEMA]
    rows = {(r.creator_id, r.window_days): r for r in out.collect()}
    assert sorted(rows) == [(c, w) for c in ("cr_a", "cr_b", "cr_c") for w in (7, 28)]
    c7 = rows[("cr_c", 7)]
    # inactive creator: counts are 0, rates null, age from signup
    assert (c7.n_videos, c7.views, c7.purchases, c7.complaints, c7.gmv_usd) == (0, 0, 0, 0, 0.0)
    assert c7.static_frame_share is None and c7.complaint_rate is None and c7.copied_video_share is None
    assert c7.account_age_days == 365 and c7.market == "GB" and c7.dt == "2026-11-28"
    a7 = rows[("cr_a", 7)]
    assert a7.complaint_rate == pytest.approx(0.5) and a7.refund_rate == pytest.approx(0.5)
    assert a7.copyright_complaints == 1 and a7.refund_usd == pytest.approx(5.0)
    assert a7.copied_video_share == 0.0            # has videos, none copied: a measured 0, not null
    assert rows[("cr_b", 28)].n_videos == 1 and rows[("cr_b", 7)].n_videos == 0
