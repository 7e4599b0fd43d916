"""Copies of a run (libs.quality.copies) and the video_copies job, on hand-built fingerprints.

Copies are made by flipping chosen bits of a base fingerprint, so every expected distance is the
number of bits flipped here; expected rows are written out in full, evidence text included.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from libs.quality.copies import video_copies, window_bounds
from schemas import silver_videos
from schemas import video_copies as copies_schema

RUN = dt.date(2026, 10, 28)
VIDEOS = "video_id string, creator_id string, published_at timestamp, fingerprint string, dt string"
PARAMS = {"max_distance": 40, "n_bands": 16, "multi_probe": True, "max_bucket": 5000, "lookback_days": 7}


def base(tag: str) -> str:
    """A fingerprint unrelated to every other tag's (random pairs differ in ~128 bits)."""
    return hashlib.sha256(tag.encode()).hexdigest()


def flip(fp: str, bits: list[int]) -> str:
    n = int(fp, 16)
    for b in bits:
        n ^= 1 << (255 - b)
    return f"{n:064x}"


def at(day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 10, day, hour, minute)


def video(video_id: str, creator_id: str, published_at: dt.datetime, fingerprint: str | None) -> tuple:
    return video_id, creator_id, published_at, fingerprint, published_at.date().isoformat()


A, B, C = base("a"), base("b"), base("c")
ONE_BIT_PER_BAND = list(range(0, 256, 16))          # 16 bits, one in every band: multi-probe only


def test_window_is_lookback_days_ending_at_the_run_date():
    assert window_bounds(RUN, 7) == ("2026-10-22", "2026-10-28")
    assert window_bounds(RUN, 1) == ("2026-10-28", "2026-10-28")
    with pytest.raises(ValueError, match="lookback_days"):
        window_bounds(RUN, 0)


def test_copies_attributed_with_evidence_inside_the_window_only(spark):
    videos = spark.createDataFrame([
        # A: original on the window's first day, a same-creator repost 5 hours later, a cross-creator
        # copy 3.5 days later whose 16 flipped bits (one per band) only multi-probe finds.
        video("a_orig", "cr_a", at(22), A),
        video("a_repost", "cr_a", at(22, 5), flip(A, [3, 77])),
        video("a_pirate", "cr_p", at(25, 12), flip(A, ONE_BIT_PER_BAND)),
        # B: the original is one minute before the window, its copy on the run date: no pair.
        video("b_old", "cr_b", at(21, 23, 59), B),
        video("b_copy", "cr_p", at(28, 10), flip(B, [1])),
        # C: published after the run date (a late partition of a re-run): not this run's.
        video("c_orig", "cr_c", at(27), C),
        video("c_future", "cr_p", at(29, 1), C),
        # No or an invalid fingerprint: never compared (C in upper case would otherwise match c_orig).
        video("x_null", "cr_x", at(27), None),
        video("x_upper", "cr_x", at(28), C.upper()),
        video("x_short", "cr_x", at(28), A[:63]),
    ], VIDEOS)
    copies, skipped = video_copies(videos, RUN, **PARAMS)
    expected = spark.createDataFrame([
        ("a_repost", "cr_a", "a_orig", "cr_a", 2, 14, True, at(22, 5), at(22), 5.0, "same_creator_repost",
         "fingerprint 2/256 bits from a_orig by the same creator cr_a published 5.0 hours earlier, "
         "14/16 bands identical", "2026-10-28"),
        ("a_pirate", "cr_p", "a_orig", "cr_a", 16, 0, False, at(25, 12), at(22), 84.0, "cross_creator",
         "fingerprint 16/256 bits from a_orig by cr_a published 3.5 days earlier, 0/16 bands identical",
         "2026-10-28"),
        ("a_pirate", "cr_p", "a_repost", "cr_a", 18, 0, False, at(25, 12), at(22, 5), 79.0, "cross_creator",
         "fingerprint 18/256 bits from a_repost by cr_a published 3.3 days earlier, 0/16 bands identical",
         "2026-10-28"),
    ], copies_schema.SCHEMA)
    assertDataFrameEqual(copies, expected)
    assert skipped.count() == 0
    # Without multi-probe the 16-bit copy (no band identical) is not even a candidate.
    exact, _ = video_copies(videos, RUN, **{**PARAMS, "multi_probe": False})
    assert sorted(r["copy_video_id"] for r in exact.collect()) == ["a_repost"]


def test_a_one_day_window_and_a_tie_in_publication_time(spark):
    # Same timestamp: the smaller video id is the original (a deterministic attribution).
    videos = spark.createDataFrame([video("v2", "cr_2", at(28, 8), flip(A, [0])), video("v1", "cr_1", at(28, 8), A),
                                    video("v0", "cr_0", at(27, 23), A)], VIDEOS)
    copies, _ = video_copies(videos, RUN, **{**PARAMS, "lookback_days": 1})
    assert [(r["copy_video_id"], r["original_video_id"], r["lag_hours"], r["copy_kind_hint"])
            for r in copies.collect()] == [("v2", "v1", 0.0, "cross_creator")]


def test_hot_buckets_are_returned_not_lost(spark):
    # Six videos share their first band (value "0000") and nothing else close: skipped at max_bucket=5.
    rows = [video(f"v{i}", f"cr_{i}", at(28), "0000" + f"{i:x}" * 60) for i in range(1, 7)]
    copies, skipped = video_copies(spark.createDataFrame(rows, VIDEOS), RUN,
                                   **{**PARAMS, "max_bucket": 5, "max_distance": 256})
    assert copies.count() == 0
    assert [(r["band"], r["value"], r["size"]) for r in skipped.collect()] == [(0, "0000", 6)]


def silver_row(video_id: str, creator_id: str, published_at: dt.datetime, fingerprint: str) -> dict:
    """A full silver_videos row: the job reads the real table layout, not a test-shaped one."""
    return {"video_id": video_id, "creator_id": creator_id, "published_at": published_at, "scenario": "video",
            "product_id": None, "static_frame_ratio": 0.1, "motion_score": 0.5, "aesthetic_score": 0.5,
            "blur": 0.1, "audio_reuse": False, "fingerprint": fingerprint, "title": video_id,
            "_source_file": "test", "_line_hash": "0" * 16, "_ingest_run_date": published_at.date(),
            "dt": published_at.date().isoformat()}


def test_job_writes_the_run_snapshot_idempotently(spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    from jobs import video_copies as job
    from libs.platform import delta_io
    from libs.platform.config import load_settings

    monkeypatch.setenv("CGOV__LAKEHOUSE_ROOT", str(tmp_path))
    settings = load_settings("local")
    rows = [silver_row("a_orig", "cr_a", at(1, 9), A), silver_row("a_copy", "cr_p", at(3, 9), flip(A, [5, 90])),
            silver_row("a_self", "cr_a", at(3, 10), flip(A, [5, 90, 200])),
            silver_row("b_orig", "cr_b", at(2, 9), B), silver_row("b_far", "cr_p", at(3, 11), flip(B, range(0, 96, 2))),
            silver_row("a_old", "cr_o", dt.datetime(2026, 9, 1), A)]          # before the 28-day window
    spark.createDataFrame([tuple(r[f.name] for f in silver_videos.SCHEMA.fields) for r in rows],
                          silver_videos.SCHEMA).write.format("delta").partitionBy("dt").save(
        settings.table("silver_videos"))
    run = dt.date(2026, 10, 3)
    first = job.main(run, "local")
    again = job.main(run, "local")
    written = delta_io.read_dates(spark, settings.table("video_copies"), "2026-10-03", "2026-10-03")
    assert written.count() == first["pairs"] == again["pairs"] == 3
    assert sorted((r["copy_video_id"], r["original_video_id"]) for r in written.collect()) == \
        [("a_copy", "a_orig"), ("a_self", "a_copy"), ("a_self", "a_orig")]
    assert first["pairs_by_kind"] == {"cross_creator": 2, "same_creator_repost": 1}
    assert (first["videos"], first["days_with_videos"], first["invalid_fingerprints"], first["skipped_buckets"]) == \
        (5, 3, 0, [])
    assert first["candidates"] > 0 and first["window"] == ["2026-09-06", "2026-10-03"]
    assert "5 videos published 2026-09-06..2026-10-03 scanned" in capsys.readouterr().out
