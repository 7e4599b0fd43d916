"""Fingerprint near-duplicate search (libs.quality.fingerprints) on hand-built 256-bit hashes.

Copies are made by flipping chosen bits of a base fingerprint, so every expected distance is
the number of bits flipped here -- never recomputed with the function under test.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import random
from collections import Counter

import pytest
from pyspark.testing import assertDataFrameEqual

from libs.quality.fingerprints import bands, candidate_count, hamming, near_duplicates

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


# --- multi-probe ---------------------------------------------------------------------------------

def far_base(tag: str) -> str:
    """A fingerprint unrelated to every other tag's (random pairs differ in ~128 bits)."""
    return hashlib.sha256(tag.encode()).hexdigest()


def bits_in_bands(n_bands: int, per_band: list[int]) -> list[int]:
    """Bit positions flipping ``per_band[i]`` bits inside band ``i`` (bands of ``256 / n_bands`` bits)."""
    width = 256 // n_bands
    return [i * width + 3 * j + 1 for i, k in enumerate(per_band) for j in range(k)]


PAIR = "copy_video_id string, original_video_id string, distance int"


@pytest.mark.parametrize("n_bands", [8, 16])
def test_multi_probe_finds_pairs_with_at_most_one_bit_per_band(spark, n_bands):
    # Three independent pairs (far bases), each original published before its copy:
    # * one bit in every band (distance n): no band identical, every band one bit away;
    # * two bits in all bands but one (distance 2n - 1): the largest distance multi-probe guarantees;
    # * two bits in every band (distance 2n): no band within one bit -- beyond the guarantee.
    one = far_base("one")
    edge = far_base("edge")
    beyond = far_base("beyond")
    rows = [("o_one", "c1", T0, one),
            ("x_one", "c2", T0 + dt.timedelta(hours=1), flip(one, bits_in_bands(n_bands, [1] * n_bands))),
            ("o_edge", "c1", T0, edge),
            ("x_edge", "c2", T0 + dt.timedelta(hours=1),
             flip(edge, bits_in_bands(n_bands, [1] + [2] * (n_bands - 1)))),
            ("o_beyond", "c1", T0, beyond),
            ("x_beyond", "c2", T0 + dt.timedelta(hours=1), flip(beyond, bits_in_bands(n_bands, [2] * n_bands)))]
    videos = spark.createDataFrame(rows, SCHEMA)
    exact, _ = near_duplicates(videos, max_distance=2 * n_bands, n_bands=n_bands)
    probed, _ = near_duplicates(videos, max_distance=2 * n_bands, n_bands=n_bands, multi_probe=True)
    assert exact.count() == 0                        # every pair differs in every band
    assertDataFrameEqual(probed.select("copy_video_id", "original_video_id", "distance"),
                         spark.createDataFrame([("x_one", "o_one", n_bands),
                                                ("x_edge", "o_edge", 2 * n_bands - 1)], PAIR))


def test_multi_probe_returns_each_pair_once_with_its_identical_bands(spark):
    # v2 is one bit from v1 (15 identical bands + 1 probed), v3 identical to v1 (16 bands): every
    # band matches, exactly or through a probe, yet each pair comes out once.
    videos = spark.createDataFrame([("v1", "c1", T0, BASE), ("v2", "c1", T0 + dt.timedelta(days=1), flip(BASE, [7])),
                                    ("v3", "c2", T0 + dt.timedelta(days=2), BASE)], SCHEMA)
    pairs, _ = near_duplicates(videos, max_distance=8, n_bands=16, multi_probe=True)
    assertDataFrameEqual(
        pairs,
        spark.createDataFrame([("v2", "c1", "v1", "c1", 1, 15, True), ("v3", "c2", "v1", "c1", 0, 16, False),
                               ("v3", "c2", "v2", "c1", 1, 15, False)],
                              "copy_video_id string, copy_creator_id string, original_video_id string, "
                              "original_creator_id string, distance int, shared_bands long, same_creator boolean"))


@pytest.mark.parametrize("multi_probe", [False, True])
def test_existing_guarantees_hold_with_multi_probe(spark, multi_probe):
    near = flip(BASE, [1, 70, 200])
    videos = spark.createDataFrame([("v_orig", "c_honest", T0, BASE),
                                    ("v_copy", "c_pirate", T0 + dt.timedelta(days=3), near),
                                    ("v_far", "c_other", T0 - dt.timedelta(days=1), OTHER),
                                    ("v_null", "c_other", T0, None),
                                    ("v_upper", "c_other", T0, BASE.upper())],
                                   "video_id string, creator_id string, published_at timestamp, fingerprint string")
    pairs, skipped = near_duplicates(videos, max_distance=24, n_bands=16, multi_probe=multi_probe)
    assert [(r["copy_video_id"], r["original_video_id"], r["distance"]) for r in pairs.collect()] == \
        [("v_copy", "v_orig", 3)]
    assert skipped.count() == 0
    plan = pairs._jdf.queryExecution().executedPlan().toString()
    assert "CartesianProduct" not in plan and "NestedLoopJoin" not in plan


def test_hot_buckets_are_guarded_for_probes_too(spark):
    # Eight videos share band 0 = "0000" (a hot bucket at max_bucket=5); v9's band 0 is one bit
    # away ("0001"). Every other band differs in >= 4 bits between any two of them.
    rows = [(f"v{i}", f"c{i}", T0, "0000" + f"{i:x}" * 60) for i in range(1, 9)]
    rows.append(("v9", "c9", T0, "0001" + "9" * 60))
    videos = spark.createDataFrame(rows, SCHEMA)
    pairs, skipped = near_duplicates(videos, max_distance=256, n_bands=16, max_bucket=5, multi_probe=True)
    assert [(r["band"], r["value"], r["size"]) for r in skipped.collect()] == [(0, "0000", 8)]
    assert pairs.count() == 0                   # neither exact matches nor probes into / out of "0000"
    everything, _ = near_duplicates(videos, max_distance=256, n_bands=16, multi_probe=True)
    assert everything.count() == 8 * 7 // 2 + 8  # unguarded: band 0 pairs all, v9 through its probe


def test_multi_probe_needs_bands_of_at_most_64_bits(spark):
    videos = spark.createDataFrame([("v1", "c1", T0, BASE)], SCHEMA)
    with pytest.raises(ValueError, match="at most 64 bits"):
        near_duplicates(videos, max_distance=8, n_bands=2, multi_probe=True)


def test_pairs_and_candidate_count_match_a_brute_force_search(spark):
    # 8-bit bands (32) on 40 videos make many random band matches; a few share band 0 = "00"
    # (a hot bucket at max_bucket=4) and a few are planted near copies. The expected pairs and
    # candidate counts come from plain Python over every pair.
    rng = random.Random(6)
    fps = [f"{rng.getrandbits(256):064x}" for _ in range(30)]
    fps += ["00" + fps[i][2:] for i in range(5)]                                  # hot "00" in band 0
    fps += [flip(fps[i], rng.sample(range(256), d)) for i, d in [(5, 3), (6, 30), (7, 45), (8, 63), (9, 70)]]
    ids = [f"v{i:02d}" for i in range(len(fps))]
    when = {v: T0 + dt.timedelta(minutes=rng.randrange(10_000)) for v in ids}
    videos = spark.createDataFrame([(v, "c" + v, when[v], fp) for v, fp in zip(ids, fps)], SCHEMA)
    n_bands, max_bucket, max_distance = 32, 4, 64

    def band(fp: str, i: int) -> int:
        return int(fp[2 * i:2 * i + 2], 16)

    buckets = Counter((i, band(fp, i)) for fp in fps for i in range(n_bands))
    hot = {k for k, s in buckets.items() if s > max_bucket}
    assert (0, 0) in hot
    for multi_probe in (False, True):
        tolerance = 1 if multi_probe else 0
        matches, expected = 0, set()
        for (i, x), (j, y) in itertools.combinations(enumerate(fps), 2):
            hits = sum(1 for k in range(n_bands) if (k, band(x, k)) not in hot and (k, band(y, k)) not in hot
                       and (band(x, k) ^ band(y, k)).bit_count() <= tolerance)
            matches += hits
            d = (int(x, 16) ^ int(y, 16)).bit_count()
            if hits and d <= max_distance:
                first, second = sorted([ids[i], ids[j]], key=lambda v: (when[v], v))
                expected.add((second, first, d))
        pairs, skipped = near_duplicates(videos, max_distance, n_bands, max_bucket, multi_probe=multi_probe)
        got = [(r["copy_video_id"], r["original_video_id"], r["distance"]) for r in pairs.collect()]
        assert sorted(got) == sorted(expected), multi_probe          # sorted lists: duplicates would show
        assert sorted((r["band"], r["value"]) for r in skipped.collect()) == sorted((k, f"{v:02x}") for k, v in hot)
        counted = candidate_count(videos, n_bands, max_bucket, multi_probe=multi_probe).first()["candidates"]
        assert counted == matches, multi_probe
