"""Lockstep ring detector (libs.graph.detectors.lockstep) on a hand-made engagement log.

The log (times in seconds after T0, window 900 s, so buckets are [900k, 900(k+1))):

* **Ring** r1..r5 serves customers cA, cB, cC (two videos each). On every video the members start
  at pub + 600 + 60 i (i = 0..4), r1 also comments a minute later. r5 skips vB1 and vC2
  (camouflage). On vA1 and vC1 the members straddle a bucket boundary (r5 lands in the next
  bucket), so r5's pairs only reach min_shared_videos = 4 through the adjacent-bucket join.
* **Camouflage**: r1 and r2 meet on popular vP1 (cP) within 5 min -- a 4th creator for that
  pair, but only 2 of 5 members: cP is no customer. r3, r4 engage vP2 hours apart; r5 follows
  cP from the profile (no video: ignored).
* **Co-audience** h1..h3 engage the ring's customers (4 videos of 3 creators) hours apart.
* **Viral bursts**: 12 users on vV within 220 s (one bucket), other crowds on vV2 and vW1.
* **Loyal live-stream fans** f1..f3 engage all 6 videos of cF within 2 min of each other: in
  lockstep, but on one creator only.

Expected results are worked out by hand in each test.
"""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (DoubleType, LongType, StringType, StructField, StructType, TimestampType)
from pyspark.testing import assertDataFrameEqual

from libs.graph.detectors.lockstep import crowded_buckets, lockstep_rings
from schemas.syndicates import DETECTOR_COLUMNS

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
ENG = StructType([StructField("user_id", StringType()), StructField("creator_id", StringType()),
                  StructField("video_id", StringType()), StructField("kind", StringType()),
                  StructField("ts", TimestampType())])
OUT = StructType([StructField("syndicate_id", StringType()), StructField("entity_type", StringType()),
                  StructField("entity_id", StringType()), StructField("role", StringType()),
                  StructField("score", DoubleType()), StructField("syndicate_size", LongType()),
                  StructField("syndicate_score", DoubleType()), StructField("evidence", StringType())])

RING = ["u_r1", "u_r2", "u_r3", "u_r4", "u_r5"]
CUSTOMER_VIDEOS = {"vA1": ("cA", 1000), "vA2": ("cA", 30000), "vB1": ("cB", 5000), "vB2": ("cB", 40000),
                   "vC1": ("cC", 10000), "vC2": ("cC", 50000)}
SKIPS = {("u_r5", "vB1"), ("u_r5", "vC2")}


def at(seconds: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def engagement_rows() -> list[tuple]:
    rows: list[tuple] = []
    for video, (creator, pub) in CUSTOMER_VIDEOS.items():
        for i, user in enumerate(RING):
            if (user, video) in SKIPS:
                continue
            rows.append((user, creator, video, "like", at(pub + 600 + 60 * i)))
            if user == "u_r1":
                rows.append((user, creator, video, "comment", at(pub + 660 + 60 * i)))
        # Honest co-audience: the same 3 users, but hours apart (2 h, 5 h, 9 h after publication).
        if video in ("vA1", "vB1", "vC1", "vA2"):
            for user, delay in (("u_h1", 7200), ("u_h2", 18000), ("u_h3", 32400)):
                rows.append((user, creator, video, "view", at(pub + delay)))
    # Camouflage on a popular creator, plus its organic audience at other times.
    rows += [("u_r1", "cP", "vP1", "like", at(9200)), ("u_r2", "cP", "vP1", "view", at(9500)),
             ("u_r3", "cP", "vP2", "like", at(23600)), ("u_r4", "cP", "vP2", "like", at(50000)),
             ("u_r5", "cP", None, "follow", at(60000)),
             ("u_p1", "cP", "vP1", "view", at(2100)), ("u_p2", "cP", "vP1", "view", at(22000)),
             ("u_p1", "cP", "vP2", "like", at(36000)), ("u_p3", "cP", "vP2", "view", at(70000))]
    # Viral bursts: a different crowd each time.
    for i in range(12):
        rows.append((f"u_o{i:02d}", "cV", "vV", "view", at(7200 + 20 * i)))          # bucket 8 only
        rows.append((f"u_o{12 + i:02d}", "cV", "vV2", "view", at(61000 + 20 * i)))  # buckets 67 / 68
        rows.append((f"u_o{24 + i:02d}", "cW", "vW1", "like", at(71000 + 20 * i)))  # buckets 78 / 79
    # Loyal live-stream fans of one creator, in lockstep on all of its 6 videos.
    for k in range(6):
        pub = 100000 + 5000 * k
        for j, fan in enumerate(("u_f1", "u_f2", "u_f3")):
            rows.append((fan, "cF", f"vF{k}", "comment", at(pub + 30 + 40 * j)))
    return rows


@pytest.fixture(scope="module")
def engagements(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(engagement_rows(), ENG)


@pytest.fixture(scope="module")
def default_result(engagements: DataFrame) -> DataFrame:
    return lockstep_rings(engagements, window_s=900, min_shared_creators=3, min_shared_videos=4,
                          min_ring_size=3, max_bucket_users=200, min_customer_share=0.5)


def test_ring_members_and_customers_exactly(spark, default_result):
    # Pairs within r1..r4: 6 customer videos of 3 creators; (r1, r2) also vP1 -> 7 videos, 4 creators.
    # Pairs with r5: vA1, vA2, vB2, vC1 -> 4 videos of 3 creators. Ring videos: the 6 + vP1 = 7.
    # Customers: cA, cB, cC engaged by all 5 members (2 videos each); cP by 2 of 5 < 0.5.
    sid, size, ring_score = "lockstep:u_r1", 8, 7.0
    member = "synchronised with {} ring members on {} videos of {} creators within 15 min"
    customer = "{} of {} ring members engaged {} of its videos in lockstep within 15 min"
    expected = spark.createDataFrame([
        (sid, "user", "u_r1", "member", 7.0, size, ring_score, member.format(4, 7, 4)),
        (sid, "user", "u_r2", "member", 7.0, size, ring_score, member.format(4, 7, 4)),
        (sid, "user", "u_r3", "member", 6.0, size, ring_score, member.format(4, 6, 3)),
        (sid, "user", "u_r4", "member", 6.0, size, ring_score, member.format(4, 6, 3)),
        (sid, "user", "u_r5", "member", 4.0, size, ring_score, member.format(4, 4, 3)),
        (sid, "creator", "cA", "customer", 1.0, size, ring_score, customer.format(5, 5, 2)),
        (sid, "creator", "cB", "customer", 1.0, size, ring_score, customer.format(5, 5, 2)),
        (sid, "creator", "cC", "customer", 1.0, size, ring_score, customer.format(5, 5, 2)),
    ], OUT)
    assertDataFrameEqual(default_result, expected)


def test_output_schema(default_result):
    assert default_result.columns == DETECTOR_COLUMNS
    assert [f.dataType for f in default_result.schema.fields] == [f.dataType for f in OUT.fields]


def test_look_alikes_are_not_flagged(default_result):
    flagged = {r.entity_id for r in default_result.collect()}
    fans = {"u_f1", "u_f2", "u_f3", "cF"}
    co_audience = {"u_h1", "u_h2", "u_h3"}
    # The fans' pairs share 6 lockstep videos: only the creator rule (1 < 3 creators) keeps them out.
    viral = {f"u_o{i:02d}" for i in range(36)} | {"cV", "cW"}
    camouflage = {"cP", "u_p1", "u_p2", "u_p3"}
    assert flagged.isdisjoint(fans | co_audience | viral | camouflage)


def test_crowded_buckets_lists_the_viral_moment(spark, engagements):
    # vV: 12 users in bucket 8 (7200..7420 s). vV2 splits 10 / 2 and vW1 5 / 7: not above 10.
    out = crowded_buckets(engagements, window_s=900, max_bucket_users=10)
    expected = spark.createDataFrame(
        [("vV", "cV", at(7200), 12)],
        "video_id string, creator_id string, bucket_start timestamp, users long")
    assertDataFrameEqual(out, expected)


def test_crowded_buckets_are_left_out_of_the_pair_join(engagements):
    # Cap 4: vA2 and vB2 (all 5 members in one bucket) are skipped; vA1, vC1 keep 4 + 1 and vB1,
    # vC2 have 4 members. r1..r4 still share vA1, vB1, vC1, vC2 (4 videos, 3 creators); r5 is left
    # with vA1, vC1 only and drops out.
    out = lockstep_rings(engagements, window_s=900, min_shared_creators=3, min_shared_videos=4,
                         max_bucket_users=4)
    members = {r.entity_id for r in out.where("role = 'member'").collect()}
    assert members == {"u_r1", "u_r2", "u_r3", "u_r4"}


def test_no_ring_gives_an_empty_frame_with_the_contract(spark):
    rows = [(f"u_o{i}", "cV", "vV", "view", at(100 + i)) for i in range(5)]
    out = lockstep_rings(spark.createDataFrame(rows, ENG))
    assert out.count() == 0
    assert out.columns == DETECTOR_COLUMNS


@pytest.mark.parametrize("kwargs, message", [
    ({"window_s": 0}, "window_s"),
    ({"window_s": 90.5}, "window_s"),
    ({"max_bucket_users": 1}, "max_bucket_users"),
    ({"min_shared_creators": 0}, "min_shared_creators"),
    ({"min_ring_size": 1}, "min_ring_size"),
    ({"min_shared_creators": 5, "min_shared_videos": 4}, "cannot bind"),
    ({"min_customer_share": 0.0}, "min_customer_share"),
    ({"min_customer_share": 1.5}, "min_customer_share"),
])
def test_invalid_parameters(engagements, kwargs, message):
    with pytest.raises(ValueError, match=message):
        lockstep_rings(engagements, **kwargs)


def test_invalid_input(spark, engagements):
    with pytest.raises(ValueError, match="lack columns"):
        lockstep_rings(engagements.drop("video_id"))
    with pytest.raises(ValueError, match="ts must be timestamp"):
        lockstep_rings(engagements.withColumn("ts", engagements["ts"].cast("string")))
    with pytest.raises(ValueError, match="window_s"):
        crowded_buckets(engagements, window_s=-5)
