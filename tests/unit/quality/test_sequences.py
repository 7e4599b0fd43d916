"""Activity sequences and moderation labels on hand-made frames."""
from __future__ import annotations

import datetime as dt
import math

import pytest

from libs.quality import sequences as sq

TS = dt.datetime
F_N = len(sq.FEATURES)
IDX = {name: i for i, name in enumerate(sq.FEATURES)}


@pytest.fixture(scope="module")
def frames(spark):
    videos = spark.createDataFrame([
        ("v1", "cr_a", TS(2026, 11, 27, 6, 0), "p1", "SALE", 0.9, 0.1, 0.3, 0.5, True),
        ("v2", "cr_a", TS(2026, 11, 27, 12, 0), None, "hello", 0.1, 0.9, 0.7, 0.1, False),
    ], "video_id string, creator_id string, published_at timestamp, product_id string, title string, "
       "static_frame_ratio double, motion_score double, aesthetic_score double, blur double, audio_reuse boolean")
    copies = spark.createDataFrame([("v1", "o9", 16, False)],
                                   "copy_video_id string, original_video_id string, distance int, same_creator boolean")
    creators = spark.createDataFrame([("cr_a", "US", "beauty", dt.date(2026, 11, 17)),
                                      ("cr_b", "GB", "toys", dt.date(2026, 1, 1))],
                                     "creator_id string, market string, category string, signup_date date")
    listings = spark.createDataFrame([("cr_a", "electronics", 99.0, TS(2026, 11, 26, 0, 0))],
                                     "creator_id string, category string, price_usd double, listed_at timestamp")
    events = spark.createDataFrame([
        ("cr_a", "u1", "view", TS(2026, 11, 27, 7, 0)), ("cr_a", "u1", "like", TS(2026, 11, 27, 8, 0)),
        ("cr_a", "u2", "purchase", TS(2026, 11, 27, 9, 0)),
    ], "creator_id string, user_key string, event_type string, ts timestamp")
    logins = spark.createDataFrame([
        ("l1", "cr_a", "d1", "US", TS(2026, 11, 25, 1, 0)), ("l2", "cr_a", "d1", "US", TS(2026, 11, 25, 2, 0)),
        ("l3", "cr_a", "d2", "VN", TS(2026, 11, 28, 3, 0)),
    ], "login_id string, creator_id string, device_id string, geo string, ts timestamp")
    return videos, copies, listings, creators, events, logins


def _steps(row) -> list[list[float]]:
    return [row.seq[i * F_N:(i + 1) * F_N] for i in range(len(row.seq) // F_N)]


def test_sequence_order_features_and_padding(spark, frames):
    videos, copies, listings, creators, events, logins = frames
    toks = sq.all_tokens(videos, copies, listings, creators, events, logins)
    row = sq.sequences(toks, max_len=8).where("creator_id = 'cr_a'").first()
    # listing (11-26 00:00), video v1 (27 06:00), engagement day (27, stamped 09:00), v2 (27 12:00),
    # device change d1 -> d2 (28 03:00); the repeat login on d1 is not a change.
    assert row.seq_len == 5 and len(row.seq) == 8 * F_N
    steps = _steps(row)
    kinds = [[k for k in sq.KINDS if s[IDX[f"is_{k}"]] == 1.0] for s in steps[:5]]
    assert kinds == [["listing"], ["video"], ["engagement_day"], ["video"], ["device_change"]]
    assert all(v == 0.0 for s in steps[5:] for v in s)                 # zero padding after the real steps
    listing, v1, day, v2, dev = steps[:5]
    assert listing[IDX["category_switch"]] == 1.0 and listing[IDX["log_price_usd"]] == pytest.approx(math.log1p(99))
    assert listing[IDX["log_gap_hours"]] == 0.0                        # first token: no previous one
    assert v1[IDX["log_gap_hours"]] == pytest.approx(math.log1p(30.0))  # 30 hours after the listing
    assert v1[IDX["is_cross_copy"]] == 1.0 and v1[IDX["copy_closeness"]] == pytest.approx(0.75)
    assert v1[IDX["title_caps_share"]] == 1.0 and v1[IDX["has_product"]] == 1.0 and v1[IDX["audio_reuse"]] == 1.0
    assert v2[IDX["is_cross_copy"]] == 0.0 and v2[IDX["copy_closeness"]] == 0.0
    assert v1[IDX["hour_sin"]] == pytest.approx(1.0, abs=1e-6)         # 06:00 is a quarter of the day
    assert day[IDX["log_events"]] == pytest.approx(math.log1p(3)) and day[IDX["log_users"]] == pytest.approx(math.log1p(2))
    assert day[IDX["top_user_share"]] == pytest.approx(2 / 3) and day[IDX["log_purchases"]] == pytest.approx(math.log1p(1))
    assert dev[IDX["new_geo"]] == 1.0
    # age at the token: the listing came 9 days after sign-up, the device change 11 days 3 hours after
    assert listing[IDX["log_account_age_days"]] == pytest.approx(math.log1p(9.0))
    assert dev[IDX["log_account_age_days"]] == pytest.approx(math.log1p(11 + 3 / 24))


def test_truncation_keeps_newest(spark, frames):
    videos, copies, listings, creators, events, logins = frames
    toks = sq.all_tokens(videos, copies, listings, creators, events, logins)
    row = sq.sequences(toks, max_len=2).where("creator_id = 'cr_a'").first()
    steps = _steps(row)
    assert row.seq_len == 2 and len(steps) == 2
    assert steps[0][IDX["is_video"]] == 1.0 and steps[1][IDX["is_device_change"]] == 1.0
    assert steps[0][IDX["log_gap_hours"]] == pytest.approx(math.log1p(3.0))  # gap to the dropped token survives


def test_labels_and_training_rows(spark, frames):
    videos, copies, listings, creators, events, logins = frames
    moderation = spark.createDataFrame([
        ("cr_a", "copyright", TS(2026, 11, 20), False),
        ("cr_a", "low_quality_selling", TS(2026, 11, 21), True),    # overturned on appeal: not a label
        ("cr_a", "account_farm", TS(2026, 12, 5), False),            # after the run date: not known yet
        ("cr_c", "account_farm", TS(2026, 11, 1), False),
    ], "creator_id string, reason string, decided_at timestamp, overturned boolean")
    lab = {r.creator_id: r.labels for r in sq.labels(moderation, dt.date(2026, 11, 28)).collect()}
    assert lab == {"cr_a": [0.0, 1.0, 0.0], "cr_c": [0.0, 0.0, 1.0]}
    seqs = sq.sequences(sq.all_tokens(videos, copies, listings, creators, events, logins), max_len=4)
    rows = {r.creator_id: r for r in sq.training_rows(creators, seqs, sq.labels(moderation, dt.date(2026, 11, 28)),
                                                      max_len=4).collect()}
    assert sorted(rows) == ["cr_a", "cr_b"]                          # the snapshot decides who is scored
    assert rows["cr_b"].seq_len == 1 and rows["cr_b"].seq == [0.0] * (4 * F_N)
    assert rows["cr_b"].labels == [0.0, 0.0, 0.0] and rows["cr_a"].labels == [0.0, 1.0, 0.0]


def test_holdout_is_stable_and_about_one_in_five(spark):
    df = spark.range(2000).selectExpr("concat('cr_', id) AS creator_id")
    share = df.where(sq.holdout(df.creator_id)).count() / 2000
    assert 0.15 < share < 0.25
    # a hash of the id alone: the same creators whatever the partitioning (re-runs agree)
    again = df.repartition(7)
    assert sorted(r[0] for r in df.where(sq.holdout(df.creator_id)).collect()) == \
        sorted(r[0] for r in again.where(sq.holdout(again.creator_id)).collect())


def test_unknown_token_feature_rejected(spark, frames):
    with pytest.raises(ValueError, match="unknown token features"):
        sq._token(frames[0], "video", frames[0].published_at, not_a_feature=frames[0].blur)
