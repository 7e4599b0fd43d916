"""Impression samples (libs.strategy.impressions) on a hand-made week; every expected value worked out by hand.

The week: label window Mon 2024-03-04 .. Sun 2024-03-10, complaint horizon 2 days, all markets SG
(UTC+8, no DST) except one viewer from an unknown market "XX" (UTC). Creators: c1 (beauty, a
warning and a strike after the window: not enforced), c2 (food, a ban overturned on appeal in the
latest moderation snapshot), c3 (struck before the window: no impressions), c4 (tech, banned
2024-03-07 12:00: risk positive before that, no impressions after).
"""
from __future__ import annotations

import datetime as dt
import math

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from libs.quality.sequences import holdout as quality_holdout
from libs.strategy import impressions as imp
from schemas import creator_signals

START, END = dt.date(2024, 3, 4), dt.date(2024, 3, 10)
UTC = dt.timezone.utc

EVENTS = ("event_id string, event_type string, user_key string, creator_id string, video_id string, "
          "scenario string, market string, ts timestamp, gmv_usd double, dt string")
VIDEOS = "video_id string, creator_id string, published_at timestamp, scenario string, product_id string, dt string"
LISTINGS = "product_id string, creator_id string, category string, price_usd double, dt string"
CREATORS = "creator_id string, market string, category string, dt string"
COMPLAINTS = "complaint_id string, user_key string, creator_id string, ts timestamp, dt string"
MODERATION = ("case_id string, creator_id string, action string, reason string, decided_at timestamp, "
              "overturned boolean, dt string")
# creator_features: the real creator_signals columns (dt + creator_id + account_age_days + FEATURE_NAMES).
_CF_FIELDS = {f.name: f for f in creator_signals.SCHEMA.fields}
CF_SCHEMA = T.StructType([_CF_FIELDS[n]
                          for n in ("dt", "creator_id", "account_age_days", *creator_signals.FEATURE_NAMES)])


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """March 2024, UTC (aware: PySpark would read a naive datetime in the machine's zone)."""
    return dt.datetime(2024, 3, day, hour, minute, tzinfo=UTC)


def ev(eid, etype, user, creator, video, ts, gmv=None, market="SG", scenario="content"):
    return (eid, etype, user, creator, video, scenario, market, ts, gmv, ts.date().isoformat())


def cf_row(creator_id: str, day: str = "2024-03-03", **values):
    row = {f.name: None for f in CF_SCHEMA.fields}
    row.update(dt=day, creator_id=creator_id, **values)
    return tuple(row[f.name] for f in CF_SCHEMA.fields)


@pytest.fixture(scope="module")
def dims(spark):
    videos = spark.createDataFrame([
        ("v1", "c1", at(3, 2), "video", "p1", "2024-03-03"),
        ("v2", "c1", at(4, 0), "live", None, "2024-03-04"),
        ("v3", "c2", at(5, 0), "video", "p2", "2024-03-05"),     # p2 has no listing: price unknown
        ("v4", "c3", at(1, 0), "video", None, "2024-03-01"),
        ("v5", "c4", at(6, 0), "video", "p3", "2024-03-06"),
    ], VIDEOS)
    listings = spark.createDataFrame([
        ("p1", "c1", "cosmetics", 5.0, "2024-03-01"),            # older snapshot: superseded by 03-03
        ("p1", "c1", "cosmetics", 9.0, "2024-03-03"),            # latest before the window: used
        ("p1", "c1", "gadgets", 99.0, "2024-03-06"),             # inside the window: never used for p1
        ("p3", "c4", "kitchen", 3.0, "2024-03-05"),              # first listed inside the window: used
        ("p3", "c4", "garden", 50.0, "2024-03-08"),              # later still: not used
    ], LISTINGS)
    creators = spark.createDataFrame([
        ("c1", "SG", "beauty", "2024-03-03"),
        ("c1", "SG", "toys", "2024-03-05"),                      # a change inside the window: ignored
        ("c2", "SG", "food", "2024-03-03"),
        ("c3", "SG", "beauty", "2024-03-03"),
        ("c4", "SG", "tech", "2024-03-03"),
    ], CREATORS)
    moderation = spark.createDataFrame([
        ("m1", "c4", "ban", "account_farm", at(7, 12), False, "2024-03-12"),
        ("m2", "c3", "strike", "copyright", at(1, 0), False, "2024-03-12"),
        ("m3", "c2", "ban", "copyright", at(6, 0), False, "2024-03-06"),   # older snapshot of m3 ...
        ("m3", "c2", "ban", "copyright", at(6, 0), True, "2024-03-12"),    # ... overturned in the latest
        ("m4", "c1", "warning", "low_quality_selling", at(5, 0), False, "2024-03-12"),  # not enforcement
        ("m5", "c1", "strike", "low_quality_selling", at(12, 0), False, "2024-03-12"),  # after label_end
    ], MODERATION)
    features = spark.createDataFrame([
        cf_row("c1", n_videos=3, static_frame_mean=0.5, motion_mean=float("nan"), copied_video_share=0.0,
               views=99, interaction_rate=0.25, logins=0, account_age_days=365),
        cf_row("c2", n_videos=0, views=0, account_age_days=10),   # no videos, no views: rates null
        cf_row("c3", account_age_days=100),
        # c4 has no feature row at all
    ], CF_SCHEMA)
    return {"videos": videos, "listings": listings, "creators": creators, "moderation": moderation,
            "features": features}


@pytest.fixture(scope="module")
def week(spark, dims):
    events = spark.createDataFrame([
        ev("e00", "view", "u1", "c1", "v1", at(3, 23)),                       # before the window
        ev("e01", "view", "u1", "c1", "v1", at(11, 1)),                       # after the window
        # conversion
        ev("e1", "view", "u1", "c1", "v1", at(4, 2)),
        ev("p11", "purchase", "u1", "c1", "v1", at(4, 3), 20.0),
        ev("p12", "purchase", "u1", "c1", None, at(4, 5), 4.0, scenario="shelf"),   # shelf purchase after the view
        ev("p13", "purchase", "u1", "c1", "v1", at(4, 1), 100.0),             # before the view
        ev("e2", "view", "u2", "c1", "v1", at(4, 6)),
        ev("p21", "purchase", "u2", "c1", "v1", at(4, 5), 50.0),              # before the view
        ev("e3", "view", "u3", "c1", "v1", at(4, 7), market="XX"),
        ev("p31", "purchase", "u9", "c1", "v1", at(4, 8), 30.0),              # another user
        ev("p32", "purchase", "u3", "c2", None, at(4, 8), 30.0, scenario="shelf"),  # another creator
        ev("p33", "purchase", "u3", "c1", "v1", at(5, 1), 30.0),              # the next day
        # engagement
        ev("e4", "view", "u4", "c1", "v1", at(5, 10)),
        ev("l4", "like", "u4", "c1", "v1", at(5, 10, 5)),                     # same video, after
        ev("e5", "view", "u5", "c1", "v1", at(5, 10)),
        ev("l5", "like", "u5", "c1", "v2", at(5, 10, 5)),                     # another video of the creator
        ev("e6", "view", "u6", "c1", "v2", at(5, 10)),
        ev("f6", "follow", "u6", "c1", None, at(5, 11), scenario="profile"),  # follows the creator
        ev("e7", "view", "u7", "c1", "v2", at(5, 12)),
        ev("k7", "comment", "u7", "c1", "v2", at(5, 11)),                     # before the view
        # complaint
        ev("e8", "view", "u8", "c2", "v3", at(5, 9)),
        ev("e9", "view", "u10", "c2", "v3", at(5, 9)),
        ev("e10", "view", "u11", "c2", "v3", at(9, 9)),
        # risk / exclusion
        ev("e11", "view", "u12", "c4", "v5", at(6, 12)),
        ev("e12", "view", "u13", "c4", "v5", at(7, 13)),                      # after c4's ban: excluded
        ev("e13", "view", "u14", "c3", "v4", at(4, 12)),                      # c3 struck before: excluded
        ev("e14", "view", "u15", "c2", "v9", at(6, 12)),                      # unknown video
    ], EVENTS)
    complaints = spark.createDataFrame([
        ("k8", "u8", "c2", at(7, 8), "2024-03-07"),       # view day 5 + 2 = 7: inside
        ("k9a", "u10", "c2", at(5, 8), "2024-03-05"),     # before the view
        ("k9b", "u10", "c2", at(8, 1), "2024-03-08"),     # day 8 > 7: outside
        ("k10", "u11", "c2", at(9, 10), "2024-03-09"),    # view day 9 + 2 > 10: undefined (NaN)
    ], COMPLAINTS)
    out, vocab = imp.impression_samples(
        events, dims["videos"], dims["listings"], dims["creators"], complaints, dims["moderation"], dims["features"],
        START, END, sample_rate=1.0, complaint_horizon_days=2)
    out = out.cache()   # the tests below read it several times; computing it once keeps the file fast
    rows = {r["event_id"]: r for r in out.collect()}
    yield out, vocab, rows
    out.unpersist()


def _nan_to_null(c: str):
    return F.when(~F.isnan(F.col(c)), F.col(c).cast("double")).alias(c)


def test_output_schema_and_impressions(week):
    out, _, rows = week
    assert tuple(out.columns) == imp.OUTPUT_COLUMNS
    types = {f.name: f.dataType for f in out.schema.fields}
    assert types["x_num"].elementType == T.FloatType()
    assert types["x_cat"].elementType == T.IntegerType()
    assert all(types[t] == T.FloatType() for t in imp.TASKS)
    # Views of the window only; c3 (struck before) and c4 after its ban get no impressions.
    assert sorted(rows) == sorted(["e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8", "e9", "e10", "e11", "e14"])
    assert all(len(r["x_num"]) == len(imp.NUMERIC_FEATURES) for r in rows.values())
    assert all(len(r["x_cat"]) == len(imp.CATEGORICAL_FEATURES) for r in rows.values())
    assert rows["e1"]["market"] == "SG" and rows["e1"]["dt"] == "2024-03-04" and rows["e1"]["creator_id"] == "c1"


def test_labels(spark, week):
    out, _, _ = week
    actual = out.select("event_id", *[_nan_to_null(t) for t in imp.TASKS], F.col("weight").cast("double"))
    nan = None   # NaN shown as null (assertDataFrameEqual would call NaN equal to anything)
    expected = spark.createDataFrame([
        # event, conversion, gmv, engagement, complaint, risk, weight
        ("e1", 1.0, math.log(25.0), 0.0, 0.0, 0.0, 1.0),    # 20 + 4 after the view; the 100 before does not count
        ("e2", 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),               # bought before the view
        ("e3", 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),               # other user / other creator / next day
        ("e4", 0.0, 0.0, 1.0, 0.0, 0.0, 1.0),               # liked the same video
        ("e5", 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),               # liked another video
        ("e6", 0.0, 0.0, 1.0, 0.0, 0.0, 1.0),               # followed the creator from the profile
        ("e7", 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),               # commented before the view
        ("e8", 0.0, 0.0, 0.0, 1.0, 0.0, 1.0),               # complaint on view day + 2
        ("e9", 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),               # complaints before the view and on day + 3
        ("e10", 0.0, 0.0, 0.0, nan, 0.0, 1.0),              # horizon reaches past label_end
        ("e11", 0.0, 0.0, 0.0, 0.0, 1.0, 1.0),              # c4 banned the next day
        ("e14", 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),              # c2's ban was overturned
    ], "event_id string, conversion double, gmv double, engagement double, complaint double, risk double, "
       "weight double")
    assertDataFrameEqual(actual, expected)


def test_holdout_is_the_creator_hash(week):
    out, _, _ = week
    wrong = out.where(F.col("holdout") != quality_holdout(F.col("creator_id"))).count()
    assert wrong == 0


def test_vocab_from_snapshots_before_the_window(week):
    _, vocab, rows = week
    assert vocab.to_dict() == {"market": ["SG"], "creator_category": ["beauty", "food", "tech"],
                               "product_category": ["cosmetics", "kitchen"], "scenario": ["live", "video"]}
    assert imp.model_spec(vocab)["categorical_cardinalities"] == [1, 3, 2, 2]
    # market, creator category, product category, scenario; 0 = null/unseen
    assert rows["e1"]["x_cat"] == [1, 1, 1, 2]
    assert rows["e3"]["x_cat"] == [0, 1, 1, 2]     # viewer market "XX" is unknown
    assert rows["e6"]["x_cat"] == [1, 1, 0, 1]     # live video without a product
    assert rows["e8"]["x_cat"] == [1, 2, 0, 2]     # product p2 has no listing
    assert rows["e11"]["x_cat"] == [1, 3, 2, 2]    # p3 first listed inside the window: kitchen
    assert rows["e14"]["x_cat"] == [1, 2, 0, 0]    # unknown video: no scenario, no product


def _vector(**nonzero: float) -> list[float]:
    unknown = set(nonzero) - set(imp.NUMERIC_FEATURES)
    assert not unknown, unknown
    return [nonzero.get(n, 0.0) for n in imp.NUMERIC_FEATURES]


S3 = math.sqrt(3) / 2
CREATOR_C1 = dict(log1p_n_videos=math.log(4), static_frame_mean=0.5, copied_video_share=0.0,  # motion_mean NaN -> 0
                  log1p_views=math.log(100), interaction_rate=0.25, log1p_account_age_days=math.log(366),
                  missing_after_sale=1.0)   # complaint_rate, refund_rate null
MISSING_ALL = dict(missing_content=1.0, missing_copies=1.0, missing_engagement=1.0, missing_after_sale=1.0,
                   missing_account=1.0)


@pytest.mark.parametrize("event_id, expected", [
    # 02:00 UTC = 10:00 SG on Monday 2024-03-04; v1 published exactly one day earlier; listing p1 at 9 USD.
    ("e1", _vector(**CREATOR_C1, has_product=1.0, log1p_price_usd=math.log(10), hour_sin=0.5, hour_cos=-S3,
                   weekday_sin=0.0, weekday_cos=1.0, log1p_video_age_days=math.log(2))),
    # unknown market: UTC hour 07:00; another market than the creator's; v1 29 hours old.
    ("e3", _vector(**CREATOR_C1, has_product=1.0, log1p_price_usd=math.log(10),
                   hour_sin=math.sin(7 * math.pi / 12), hour_cos=math.cos(7 * math.pi / 12),
                   weekday_sin=0.0, weekday_cos=1.0, log1p_video_age_days=math.log1p(29 / 24), cross_market=1.0)),
    # c2: only account age known; 09:00 UTC = 17:00 SG Tuesday; v3 9 h old; p2 without listing.
    ("e8", _vector(log1p_account_age_days=math.log(11), missing_content=1.0, missing_copies=1.0,
                   missing_engagement=1.0, missing_after_sale=1.0, has_product=1.0, price_missing=1.0,
                   hour_sin=math.sin(17 * math.pi / 12), hour_cos=math.cos(17 * math.pi / 12),
                   weekday_sin=math.sin(2 * math.pi / 7), weekday_cos=math.cos(2 * math.pi / 7),
                   log1p_video_age_days=math.log1p(9 / 24))),
    # c4 has no feature row: all flags 1; 20:00 SG Wednesday; v5 12 h old; p3 at 3 USD.
    ("e11", _vector(**MISSING_ALL, has_product=1.0, log1p_price_usd=math.log(4), hour_sin=-S3, hour_cos=0.5,
                    weekday_sin=math.sin(4 * math.pi / 7), weekday_cos=math.cos(4 * math.pi / 7),
                    log1p_video_age_days=math.log(1.5))),
    # unknown video: no age, no product.
    ("e14", _vector(log1p_account_age_days=math.log(11), missing_content=1.0, missing_copies=1.0,
                    missing_engagement=1.0, missing_after_sale=1.0, hour_sin=-S3, hour_cos=0.5,
                    weekday_sin=math.sin(4 * math.pi / 7), weekday_cos=math.cos(4 * math.pi / 7), video_missing=1.0)),
])
def test_numeric_features(week, event_id, expected):
    _, _, rows = week
    assert rows[event_id]["x_num"] == pytest.approx(expected, abs=1e-5)


# --- sampling -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def crowd(spark):
    """200 views of v1 on Fri 2024-03-08; u7 buys later that day, u8 complains later that day."""
    day = at(8, 3)
    rows = [ev(f"s{i:03d}", "view", f"u{i}", "c1", "v1", day) for i in range(200)]
    rows.append(ev("buy7", "purchase", "u7", "c1", "v1", at(8, 4), 10.0))
    events = spark.createDataFrame(rows, EVENTS)
    complaints = spark.createDataFrame([("k", "u8", "c1", at(8, 5), "2024-03-08")], COMPLAINTS)
    return events, complaints


def _sampled(dims, crowd, seed: int, rate: float, vocab: imp.Vocab):
    events, complaints = crowd
    out, returned = imp.impression_samples(
        events, dims["videos"], dims["listings"], dims["creators"], complaints, dims["moderation"], dims["features"],
        dt.date(2024, 3, 8), dt.date(2024, 3, 8), sample_rate=rate, seed=seed, complaint_horizon_days=0, vocab=vocab)
    assert returned is vocab
    return {r["event_id"]: (r["weight"], r["conversion"], r["complaint"], r["x_cat"]) for r in out.collect()}


def test_sampling_is_deterministic_keeps_positives_and_weights(spark, dims, crowd):
    given = imp.Vocab({"market": ("MY", "SG"), "creator_category": ("food",), "product_category": (),
                       "scenario": ("video",)})
    # The documented rule, evaluated independently: pmod(xxhash64(seed, event_id), 2^30) / 2^30 < rate.
    # Matching it exactly is determinism (the sample is a function of seed and event_id only); the
    # seed-3 and seed-0 samples differ, so matching seed 3 also proves the seed is used.
    ids = spark.createDataFrame([(f"s{i:03d}",) for i in range(200)], "event_id string")
    rule = {seed: F.pmod(F.xxhash64(F.lit(seed).cast("long"), F.col("event_id")), F.lit(1 << 30)) / float(1 << 30)
            for seed in (0, 3)}
    flags = ids.select("event_id", *[(u < 0.25).alias(f"k{seed}") for seed, u in rule.items()]).collect()
    assert {r["event_id"] for r in flags if r["k3"]} != {r["event_id"] for r in flags if r["k0"]}
    got = _sampled(dims, crowd, seed=3, rate=0.25, vocab=given)
    # Positives always kept at weight 1 (the buyer u7 = s007, the complainer u8 = s008).
    assert got["s007"][:3] == (1.0, 1.0, 0.0) and got["s008"][:3] == (1.0, 0.0, 1.0)
    negatives = {k for k in got if k not in ("s007", "s008")}
    assert all(got[k][0] == 4.0 for k in negatives)
    assert negatives == {r["event_id"] for r in flags if r["k3"]} - {"s007", "s008"}
    assert 30 <= len(negatives) <= 70          # ~ 198 * 0.25 = 49.5 (sd 6.1)
    # The given vocabulary is used as is: SG = 2, beauty unknown = 0, no product categories, video = 1.
    assert got["s007"][3] == [2, 0, 0, 1]


# --- guards and the vocabulary object -------------------------------------------------------------

def test_creator_features_leakage_and_duplicates_raise(spark, dims):
    events = spark.createDataFrame([], EVENTS)
    complaints = spark.createDataFrame([], COMPLAINTS)
    args = (events, dims["videos"], dims["listings"], dims["creators"], complaints, dims["moderation"])
    leaky = dims["features"].unionByName(spark.createDataFrame([cf_row("c9", day="2024-03-04")], CF_SCHEMA))
    with pytest.raises(ValueError, match="strictly before"):
        imp.impression_samples(*args, leaky, START, END)
    twice = dims["features"].unionByName(spark.createDataFrame([cf_row("c1", day="2024-03-02")], CF_SCHEMA))
    with pytest.raises(ValueError, match="several rows per creator_id"):
        imp.impression_samples(*args, twice, START, END)
    with pytest.raises(ValueError, match="does not cover label_end"):
        imp.impression_samples(*args, dims["features"], START, dt.date(2024, 3, 13))
    with pytest.raises(ValueError, match="sample_rate"):
        imp.impression_samples(*args, dims["features"], START, END, sample_rate=0.0)
    with pytest.raises(ValueError, match="lacks columns"):
        imp.impression_samples(*args, dims["features"].drop("views"), START, END)


def test_vocab_object():
    v = imp.Vocab.from_dict({"market": ["GB", "SG"], "creator_category": ["beauty"], "product_category": [],
                             "scenario": ["live", "video"]})
    assert v.index("market", "SG") == 2 and v.index("market", "US") == 0 and v.index("market", None) == 0
    assert v.cardinalities == (2, 1, 0, 2)
    assert imp.Vocab.from_dict(v.to_dict()) == v
    with pytest.raises(ValueError, match="exactly the columns"):
        imp.Vocab.from_dict({"market": ["SG"]})
    with pytest.raises(ValueError, match="duplicate"):
        imp.Vocab.from_dict({"market": ["SG", "SG"], "creator_category": [], "product_category": [], "scenario": []})
    spec = imp.model_spec(v)
    assert spec["num_features"] == len(imp.NUMERIC_FEATURES)
    assert [t["name"] for t in spec["tasks"]] == ["conversion", "gmv", "engagement", "complaint", "risk"]
    assert len(set(imp.NUMERIC_FEATURES)) == len(imp.NUMERIC_FEATURES)
