"""End to end: the simulator job lands every public feed + hidden truth; the raw feeds carry the
injected defects the truth lists; a re-run of the same date is a no-op on the data."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

import jobs.raw_landing_zone as job
from tests.e2e.conftest import LANDING
from schemas.raw_videos import SCHEMA as RAW_VIDEOS
from schemas.truth_defects import SCHEMA as TRUTH_DEFECTS

JSON_FEEDS = ("raw_engagement_events", "raw_logins", "raw_withdrawals", "raw_listings", "raw_complaints", "raw_refunds")
PARQUET = ("raw_creators", "raw_devices", "raw_users", "raw_videos", "raw_moderation", "truth_creators",
           "truth_videos", "truth_users", "truth_events", "truth_moderation", "truth_defects")


def _lines(path: str) -> list[str]:
    out = []
    for f in sorted(Path(path).rglob("*.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            out.extend(line.rstrip("\n") for line in fh)
    return out


@pytest.mark.slow
def test_landing_zone_written_with_defects_and_rerun_is_idempotent(spark, settings, landing_zone):
    # Tiny world, elevated defect rate so every applicable defect kind shows up in a few thousand lines.
    args = LANDING
    first = landing_zone
    rows = first["rows"]
    assert rows["raw_creators"] == rows["truth_creators"] == 400
    assert rows["raw_videos"] == rows["truth_videos"] > 0
    for name in JSON_FEEDS + PARQUET:
        assert rows[name] > 0, name
    videos = spark.read.schema(RAW_VIDEOS).parquet(settings.table("raw_videos"))
    assert sorted(r["dt"] for r in videos.select("dt").distinct().collect()) == ["2026-10-30", "2026-10-31", "2026-11-01"]
    assert not [c for c in videos.columns if c.startswith("truth_")]

    # The raw JSON feeds carry the defects the truth lists -- checked by parsing the files here.
    truth = spark.read.schema(TRUTH_DEFECTS).parquet(settings.table("truth_defects")).where(F.col("seed") == 3)
    by_feed = {}
    for r in truth.groupBy("feed", "defect").count().collect():
        by_feed.setdefault(r["feed"], {})[r["defect"]] = r["count"]
    events = _lines(settings.table("raw_engagement_events"))
    assert len(events) == rows["raw_engagement_events"]
    malformed = 0
    parsed = []
    for line in events:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            malformed += 1
    assert malformed == by_feed["raw_engagement_events"]["malformed_json"] > 0
    ids = [p.get("event_id") for p in parsed]
    assert len(ids) - len(set(ids)) == by_feed["raw_engagement_events"]["duplicate_event_id"] > 0
    assert sum(1 for p in parsed if p.get("market") not in ("US", "UK", "ID", "MY", "TH", "VN", "PH", "SG")) \
        == by_feed["raw_engagement_events"]["unknown_market"] > 0
    kinds = set().union(*(d.keys() for d in by_feed.values()))
    assert kinds == {"malformed_json", "missing_field", "negative_price", "duplicate_event_id", "unknown_market",
                     "future_timestamp", "wrong_type"}
    # No truth leaks into any public line.
    assert not any("truth_" in line for line in events)
    assert first["defects"] == {(f, d): n for f, kinds_ in by_feed.items() for d, n in kinds_.items()}

    before_videos = sorted(map(tuple, videos.collect()))
    before_events = sorted(events)
    again = job.main(**args)
    assert again["rows"] == rows
    assert sorted(map(tuple, spark.read.schema(RAW_VIDEOS).parquet(settings.table("raw_videos")).collect())) == before_videos
    assert sorted(_lines(settings.table("raw_engagement_events"))) == before_events
