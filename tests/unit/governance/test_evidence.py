"""Evidence gathering on a hand-made run date: who is flagged, numbered evidence, standing history, titles."""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import Row
from pyspark.testing import assertDataFrameEqual

from libs.governance.evidence import creator_evidence
from schemas import creator_quality_scores as cqs

RUN = dt.date(2026, 11, 1)
TS = dt.datetime


@pytest.fixture(scope="module")
def frames(spark):
    creators = spark.createDataFrame([(f"cr_{i}", "US" if i < 4 else "TH") for i in range(1, 7)],
                                     "creator_id string, market string")
    quality = spark.createDataFrame([
        ("cr_1", ["low_effort"], [("model", "p_low_effort", 0.8, 0.3, None, "model scores low_effort 0.80"),
                                  ("signal", "blur_mean", 0.4, 0.2, 0.97, "mean blur 0.40")]),
        ("cr_5", [], []),
    ], f"creator_id string, flagged array<string>, evidence array<{cqs.EVIDENCE.simpleString()}>")
    syndicates = spark.createDataFrame([
        ("lockstep", "lockstep:a", "creator", "cr_2", "customer", 12.0, 40, "hit by 37 ring members"),
        ("lockstep", "lockstep:a", "user", "u_9", "member", 20.0, 40, "synchronised on 20 videos"),
    ], "detector string, syndicate_id string, entity_type string, entity_id string, role string, score double, "
       "syndicate_size long, evidence string")
    migration = spark.createDataFrame([
        ("cr_9", 1, "account", "cr_3", 2.9, 1, "shares 3 resources"),
        ("cr_9", 1, "account", "cr_4", 1.0, 2, "shares 1 resource"),     # below the score bar: not flagged
        ("cr_9", 1, "market", "TH", 0.7, 1, "next market"),             # not an account prediction
    ], "operator_id string, banned_accounts long, prediction string, target string, score double, rank int, "
       "evidence string")
    risk = spark.createDataFrame([
        ("creator:cr_1", "creator", 0.3, 0.2, 0.1, 2),
        ("creator:cr_6", "creator", 0.9, 0.9, 0.0, 1),                  # risky but not flagged by any job
        ("device:d1", "device", 0.5, 0.5, 0.5, 1),
    ], "id string, vertex_type string, risk double, risk_content double, risk_shelf double, hops int")
    moderation = spark.createDataFrame([
        ("cr_1", "warning", "low_quality_selling", TS(2026, 10, 3), False),
        ("cr_1", "strike", "low_quality_selling", TS(2026, 10, 20), True),   # overturned on appeal
        ("cr_1", "strike", "spam", TS(2026, 11, 2, 1), False),               # after the run date
        ("cr_2", "strike", "engagement_manipulation", TS(2026, 9, 1), False),
        ("cr_2", "warning", "spam", TS(2026, 8, 1), False),
    ], "creator_id string, action string, reason string, decided_at timestamp, overturned boolean")
    videos = spark.createDataFrame([
        ("v1", "cr_1", TS(2026, 10, 30), "old title"),
        ("v2", "cr_1", TS(2026, 10, 31), "middle title"),
        ("v3", "cr_1", TS(2026, 11, 1, 23), "newest title"),
        ("v4", "cr_1", TS(2026, 11, 2, 8), "published after the run"),
        ("v5", "cr_5", TS(2026, 10, 31), "unflagged creator"),
    ], "video_id string, creator_id string, published_at timestamp, title string")
    return creators, quality, syndicates, migration, risk, moderation, videos


def test_flagged_creators_and_their_evidence(spark, frames):
    out = creator_evidence(*frames, RUN, migration_min_score=2.0, max_titles=2)
    E = Row("evidence_id", "source", "name", "value", "reference", "detail")
    H = Row("action", "reason", "violation_type", "decided_at")
    expected = spark.createDataFrame([
        ("cr_1", "US",
         [E("E1", "quality_model", "p_low_effort", 0.8, 0.3, "model scores low_effort 0.80"),
          E("E2", "signal", "blur_mean", 0.4, 0.2, "mean blur 0.40"),
          E("E3", "graph_risk", "risk", 0.3, None,
            "risk 0.30 propagated from enforced accounts within 2 hop(s) (content 0.20, shelf 0.10)")],
         [H("warning", "low_quality_selling", "low_effort_selling", TS(2026, 10, 3))],
         ["newest title", "middle title"]),
        ("cr_2", "US",
         [E("E1", "syndicate", "lockstep", 12.0, None,
            "lockstep syndicate lockstep:a (40 members, role customer): hit by 37 ring members")],
         [H("warning", "spam", None, TS(2026, 8, 1)),
          H("strike", "engagement_manipulation", "fake_engagement", TS(2026, 9, 1))],
         []),
        ("cr_3", "US",
         [E("E1", "migration", "operator_account", 2.9, 2.0,
            "likely account #1 of operator cr_9 (1 banned account(s)): shares 3 resources")],
         [], []),
    ], "creator_id string, market string, "
       "evidence array<struct<evidence_id:string,source:string,name:string,value:double,reference:double,detail:string>>, "
       "history array<struct<action:string,reason:string,violation_type:string,decided_at:timestamp>>, "
       "creator_text array<string>")
    assertDataFrameEqual(out, expected)


def test_flagged_creator_unknown_to_silver_creators_is_an_error(spark, frames):
    creators, *rest = frames
    with pytest.raises(ValueError, match="cr_3"):
        creator_evidence(creators.where("creator_id != 'cr_3'"), *rest, RUN, migration_min_score=2.0).collect()


def test_missing_column_is_named(spark, frames):
    creators, quality, *rest = frames
    with pytest.raises(ValueError, match="flagged"):
        creator_evidence(creators, quality.drop("flagged"), *rest, RUN)
