"""Fingerprint near-duplicate search (libs.quality.fingerprints) on hand-built 256-bit hashes.

Copies are made by flipping chosen bits of a base fingerprint, so every expected distance is
the number of bits flipped here -- never recomputed with the function under test.
"""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from libs.quality.fingerprints import bands, hamming, near_duplicates

BASE = "0123456789abcdef" * 4
OTHER = "f0e1d2c3b4a59687" * 4          # unrelated: far from BASE
T0 = dt.datetime(2026, 10, 1, 12, 0)
SCHEMA = "video_id string, creator_id string, published_at timestamp, fingerprint string"


def flip(fp: str, bits: list[int]) -> str:
    """``fp`` with the given bit positions (0 = most significant) inverted."""
    n = int(fp, 16)
    for b in bits:
        n ^= 1 << (255 - b)
    return f"{n:064x}"


def test_hamming_counts_flipped_bits(spark):
    rows = [(BASE, BASE, 0), (BASE, flip(BASE, [0]), 1), (BASE, flip(BASE, [3, 100, 255]), 3),
            (BASE, flip(BASE, list(range(0, 256, 2))), 128), ("0" * 64, "f" * 64, 256)]
    df = spark.createDataFrame(rows, "a string, b string, expected int")
    got = df.select(hamming("a", "b").alias("d"), "expected").collect()
    assert [r["d"] for r in got] == [r["expected"] for r in got]


def test_bands_cut_the_fingerprint_evenly(spark):
    row = spark.createDataFrame([(BASE,)], "fp string").select(bands("fp", 4).alias("b")).first()
    assert [(x["band"], x["value"]) for x in row["b"]] == [(i, "0123456789abcdef") for i in range(4)]
    with pytest.raises(ValueError, match="divide"):
        bands("fp", 5)


def test_copies_found_attributed_to_the_earlier_video_and_far_ones_not(spark):
    near = flip(BASE, [1, 70, 200])                         # 3 bits: always a candidate (< 16 bands)
    # 20 flipped bits, all inside bands 0-4 (bits 0..79): bands 5-15 intact, so found despite d >= 16.
    spread = flip(BASE, list(range(0, 80, 4)))
    videos = spark.createDataFrame([
        ("v_orig", "c_honest", T0, BASE),
        ("v_copy", "c_pirate", T0 + dt.timedelta(days=3), near),
        ("v_spread", "c_pirate", T0 + dt.timedelta(days=5), spread),
        ("v_far", "c_other", T0 - dt.timedelta(days=1), OTHER),
        ("v_bad", "c_other", T0, "not-a-fingerprint"),
    ], SCHEMA)
    pairs, skipped = near_duplicates(videos, max_distance=24, n_bands=16)
    expected = spark.createDataFrame([
        ("v_copy", "c_pirate", "v_orig", "c_honest", 3, False),
        ("v_spread", "c_pirate", "v_orig", "c_honest", 20, False),
        ("v_spread", "c_pirate", "v_copy", "c_pirate", 23, True),
    ], "copy_video_id string, copy_creator_id string, original_video_id string, original_creator_id string, "
       "distance int, same_creator boolean")
    assertDataFrameEqual(pairs.drop("shared_bands"), expected)
    assert skipped.count() == 0
    # A tighter threshold keeps only the close copy.
    tight, _ = near_duplicates(videos, max_distance=5, n_bands=16)
    assert [r["copy_video_id"] for r in tight.collect()] == ["v_copy"]


def test_an_earlier_copy_makes_the_other_video_the_copy(spark):
    videos = spark.createDataFrame([("v_a", "c1", T0 + dt.timedelta(hours=1), BASE),
                                    ("v_b", "c2", T0, flip(BASE, [9]))], SCHEMA)
    row = near_duplicates(videos, max_distance=2)[0].first()
    assert (row["copy_video_id"], row["original_video_id"], row["distance"]) == ("v_a", "v_b", 1)


def test_oversized_buckets_are_skipped_and_reported(spark):
    # Eight videos identical in their first band only; the rest of each fingerprint is distinct.
    rows = [(f"v{i}", f"c{i}", T0, "0000" + f"{i:x}" * 60) for i in range(1, 9)]
    videos = spark.createDataFrame(rows, SCHEMA)
    pairs, skipped = near_duplicates(videos, max_distance=256, n_bands=16, max_bucket=5)
    assert [(r["band"], r["value"], r["size"]) for r in skipped.collect()] == [(0, "0000", 8)]
    assert pairs.count() == 0                   # the only shared band was skipped: no candidates
    everything, _ = near_duplicates(videos, max_distance=256, n_bands=16)
    assert everything.count() == 8 * 7 // 2     # without the guard every pair shares band 0


def test_candidate_generation_is_an_equi_join_not_a_cross_join(spark):
    videos = spark.createDataFrame([("v1", "c1", T0, BASE), ("v2", "c2", T0, flip(BASE, [5]))], SCHEMA)
    plan = near_duplicates(videos, max_distance=8)[0]._jdf.queryExecution().executedPlan().toString()
    assert "CartesianProduct" not in plan and "NestedLoopJoin" not in plan
