"""Near-duplicate search over 256-bit perceptual fingerprints, without an all-pairs comparison.

Multi-index hashing: each 64-hex-digit fingerprint is cut into ``n_bands`` equal bands of
``b = 256 / n_bands`` bits; two videos become a *candidate* pair when a band matches (an
equi-join on ``(band, key)``), and every candidate is then *verified* by its exact Hamming
distance.

**Exact bands** (``multi_probe=False``): a band matches when it is identical. By the pigeonhole
principle two fingerprints that differ in fewer than ``n_bands`` bits leave at least one band
untouched, so every pair with distance ``d < n_bands`` is a candidate -- exactly, not
probabilistically.

**Multi-probe** (``multi_probe=True``): one side of the join also emits, per band, the ``b``
values with exactly one bit flipped; the other side stays exact. A band then matches when it
differs in at most one bit, and the guarantee doubles: ``d <= 2 * n_bands - 1`` leaves some band
with at most one differing bit, so every such pair is a candidate.

Beyond the guarantee, for ``d`` bits flipped at random positions, a band of ``b`` bits keeps

* ``P0(d) ~ (1 - d/256)^b`` (no flipped bit) -- what exact bands need;
* ``P<=1(d) ~ P0(d) + b * (d/256) * (1 - d/256)^(b-1)`` -- what multi-probe needs;

and a pair is a candidate unless *every* band misses: ``recall ~ 1 - (1 - P)^n_bands``. Exactly
(counting the ways ``d`` random flip positions spread over the bands, hypergeometric rather than
binomial), for 16 bands:

    distance d          16     24     32     36     40     44     48
    exact               1.000  0.991  0.892  0.790  0.669  0.544  0.428
    exact + multi-probe 1.000  1.000  1.000  1.000  0.999  0.994  0.975

(Uniformly random flip positions; a real re-recording concentrates its flips differently, which
is why ``benchmarks/eval_fingerprints.py`` measures recall on the simulator's copies: piracy at
16-40 bits went from 0.519 to 0.913 with multi-probe, still with 0 false matches.)

The price is candidates: a random pair matches a given band with probability ``2^-b``; with
probes, within one bit of it, ``(1 + b) * 2^-b``. So multi-probe costs a factor
``(1 + bits_per_band)`` in candidate rows (17x for 16 bands of 16 bits) and in the probe side's
rows -- where narrowing the bands instead (32 bands of 8 bits, ``32 * 2^-8`` vs ``16 * 2^-16``)
costs 512x, and did not finish on 45k videos (``benchmarks/eval_fingerprints.py``). Measured
wall times: ``benchmarks/bench_fingerprints.py``.

Why a guard on bucket size: a band value shared by thousands of videos (an all-black frame, a
common template) would make its join quadratic. Such buckets are dropped from candidate
generation (``max_bucket``) and *returned*, so the caller reports them instead of losing them.
With multi-probe the guard removes the bucket from both sides *before* probes are generated: a
hot bucket's videos emit no probes in that band (else each of its ``s`` videos would probe ``b``
neighbouring buckets) and probes of other videos into it find nothing (else ``s`` times the
probing videos). Every join key then pairs at most ``max_bucket`` exact rows with at most
``(1 + b) * max_bucket`` probe rows.

Why verify inside the join: candidate rows outnumber true pairs by orders of magnitude (tens of
millions for 100k videos with probes), so each band row carries its fingerprint as four 64-bit
words and the join's own condition computes the distance (four XOR + popcount). Only pairs within
``max_distance`` leave the join; they are deduplicated (a pair matching in several bands is one
pair) and only then joined to their metadata -- no shuffle of the candidates themselves.

Band keys are the band's bits as a signed long (``conv(hex, 16, -10)``), not the hex text: flipping
a bit is then one XOR with a constant, measured ~3x faster than hex-digit substitution and ~7x
faster than a ``conv``/``lpad`` round trip per probe on 100k videos (local[2]).
"""
from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

HEX_DIGITS = 64                     # 256 bits
_WORD = 16                          # hex digits per 64-bit word (conv(..., 16, -10) gives it signed)
_WORDS = HEX_DIGITS // _WORD
_LONG_KEY_DIGITS = 16               # bands up to 64 bits get a long join key
_VALID = f"^[0-9a-f]{{{HEX_DIGITS}}}$"


def _check_bands(n_bands: int) -> int:
    """Hex digits per band; refuses a band count that does not cut the fingerprint evenly."""
    if n_bands < 1 or HEX_DIGITS % n_bands:
        raise ValueError(f"n_bands must divide {HEX_DIGITS} (hex digits of a 256-bit fingerprint), got {n_bands}")
    return HEX_DIGITS // n_bands


def words(fingerprint: Column) -> list[Column]:
    """The fingerprint as four signed 64-bit words (most significant first); null if it is null."""
    return [F.conv(F.substring(fingerprint, i * _WORD + 1, _WORD), 16, -10).cast("long") for i in range(_WORDS)]


def _popcount_distance(a: list[Column], b: list[Column]) -> Column:
    return reduce(lambda p, q: p + q, [F.bit_count(x.bitwiseXOR(y)) for x, y in zip(a, b)]).cast("int")


def hamming(a: Column, b: Column) -> Column:
    """Exact Hamming distance of two 64-hex-digit fingerprints (null if either is null)."""
    return _popcount_distance(words(a), words(b))


def bands(fingerprint: Column, n_bands: int) -> Column:
    """Array of ``struct(band, value)``: the fingerprint cut into ``n_bands`` equal hex substrings."""
    width = _check_bands(n_bands)
    return F.array(*[F.struct(F.lit(i).alias("band"), F.substring(fingerprint, i * width + 1, width).alias("value"))
                     for i in range(n_bands)])


def _band_key(value: Column, width: int) -> Column:
    """Join key of a band: its bits as a signed long when they fit 64 bits, else the hex text."""
    return F.conv(value, 16, -10).cast("long") if width <= _LONG_KEY_DIGITS else value


def _key_hex(key: Column, width: int) -> Column:
    """Inverse of :func:`_band_key` (for reporting buckets): ``width`` lowercase hex digits."""
    if width > _LONG_KEY_DIGITS:
        return key
    # conv reads a negative decimal as its 64-bit two's complement: "-1" -> "FFFFFFFFFFFFFFFF".
    return F.lpad(F.lower(F.conv(key.cast("string"), 10, 16)), width, "0")


def _flip_masks(bits: int) -> list[int]:
    """``1 << i`` for every bit of a band, as signed 64-bit constants (bit 63 is the sign bit)."""
    return [(1 << i) - (1 << 64) if i == 63 else 1 << i for i in range(bits)]


def _probe_keys(key: Column, width: int) -> Column:
    """``[key, key ^ 1, key ^ 2, ...]``: the band itself and every value one bit away."""
    return F.array(key, *[key.bitwiseXOR(F.lit(m)) for m in _flip_masks(4 * width)])


def _keyed(videos: DataFrame, n_bands: int, multi_probe: bool,
           max_bucket: int | None) -> tuple[DataFrame, DataFrame, DataFrame, DataFrame]:
    """``(valid, keyed, kept_sizes, skipped)`` shared by :func:`near_duplicates` and :func:`candidate_count`.

    ``keyed``: one row per (video, band) outside hot buckets, with the band's ``key`` and the
    fingerprint words ``w0..w3``; ``kept_sizes``: ``(band, key, size)`` of the buckets kept.
    """
    width = _check_bands(n_bands)
    if multi_probe and width > _LONG_KEY_DIGITS:
        raise ValueError(f"multi-probe needs bands of at most 64 bits (n_bands >= {HEX_DIGITS // _LONG_KEY_DIGITS}), "
                         f"got {n_bands} bands of {4 * width} bits")
    if max_bucket is not None and max_bucket < 1:
        raise ValueError(f"max_bucket must be >= 1 or None, got {max_bucket}")
    # silver's contract guarantees the format; anything else (null, wrong length, upper case) is not compared.
    valid = videos.where(F.col("fingerprint").rlike(_VALID))
    fp = F.col("fingerprint")
    keyed = valid.select(
        "video_id", *[w.alias(f"w{i}") for i, w in enumerate(words(fp))],
        F.explode(F.array(*[F.struct(F.lit(i).alias("band"),
                                     _band_key(F.substring(fp, i * width + 1, width), width).alias("key"))
                            for i in range(n_bands)])).alias("b"),
    ).select("video_id", "b.band", "b.key", *[f"w{i}" for i in range(_WORDS)])
    sizes = keyed.groupBy("band", "key").agg(F.count(F.lit(1)).alias("size"))
    if max_bucket is None:
        skipped_keys = sizes.limit(0)
        kept = sizes
    else:
        skipped_keys = sizes.where(F.col("size") > max_bucket)
        kept = sizes.where(F.col("size") <= max_bucket)
        # Broadcast is safe by construction: each skipped bucket holds > max_bucket of the
        # n_videos * n_bands band rows, so there are fewer than n_videos * n_bands / max_bucket.
        keyed = keyed.join(F.broadcast(skipped_keys.select("band", "key")), ["band", "key"], "left_anti")
    skipped = skipped_keys.select("band", _key_hex(F.col("key"), width).alias("value"), "size")
    return valid, keyed, kept, skipped


def candidate_count(videos: DataFrame, n_bands: int = 16, max_bucket: int | None = None,
                    multi_probe: bool = False) -> DataFrame:
    """One row, ``candidates``: the band matches :func:`near_duplicates` verifies, from bucket sizes alone.

    The cost driver of the search (each candidate row is one distance computed), counted without
    running the join: ``sum C(s, 2)`` over the buckets kept, plus with multi-probe
    ``sum s_u * s_v`` over the unordered pairs of kept buckets one bit apart in the same band.
    A pair matching in several bands counts once per band, as the join sees it.
    """
    width = _check_bands(n_bands)
    _, _, kept, _ = _keyed(videos, n_bands, multi_probe, max_bucket)
    # s * (s - 1) is even: halving by a shift keeps the count an exact long (no double on the way).
    exact = kept.agg(F.shiftright(F.coalesce(F.sum(F.col("size") * (F.col("size") - 1)), F.lit(0)), 1)
                     .alias("candidates"))
    if not multi_probe:
        return exact
    # Every bucket u "probes" its b neighbours; joined with the kept buckets v, each unordered
    # pair {u, v} appears twice, hence the halving.
    probes = kept.select("band", F.explode(F.array(*[F.col("key").bitwiseXOR(F.lit(m))
                                                     for m in _flip_masks(4 * width)])).alias("key"),
                         F.col("size").alias("s_u"))
    near = (probes.join(kept, ["band", "key"])
            .agg(F.coalesce(F.sum(F.col("s_u") * F.col("size")), F.lit(0)).alias("ordered")))
    return exact.crossJoin(near).select((F.col("candidates") + F.shiftright("ordered", 1)).alias("candidates"))


def near_duplicates(videos: DataFrame, max_distance: int, n_bands: int = 16,
                    max_bucket: int | None = None, multi_probe: bool = False) -> tuple[DataFrame, DataFrame]:
    """Pairs of videos whose fingerprints differ in at most ``max_distance`` bits, original first.

    ``videos``: ``video_id`` (unique), ``creator_id``, ``published_at``, ``fingerprint`` (64
    lowercase hex; silver's contract guarantees the format, and a row without one is not compared).
    ``multi_probe``: also match bands one bit apart (see the module docstring: recall of far
    copies for ``1 + 256 / n_bands`` times the candidates); needs ``n_bands >= 4``.

    Returns ``(pairs, skipped_buckets)``: ``pairs`` has ``copy_video_id``, ``copy_creator_id``,
    ``original_video_id``, ``original_creator_id``, ``distance``, ``shared_bands`` (bands identical
    in both fingerprints), ``same_creator``, one row per pair; the original is the earlier
    publication (ties: the smaller video id), the attribution a copyright claim would use.
    ``skipped_buckets`` lists ``(band, value, size)`` of the buckets larger than ``max_bucket``
    (empty when ``max_bucket`` is None): their videos were not compared through that band,
    neither exactly nor by probes.
    """
    if max_distance < 0:
        raise ValueError(f"max_distance must be >= 0, got {max_distance}")
    width = _check_bands(n_bands)
    valid, keyed, _, skipped = _keyed(videos, n_bands, multi_probe, max_bucket)
    ws = [f"w{i}" for i in range(_WORDS)]
    right = keyed.select("band", "key", F.col("video_id").alias("b"), *[F.col(w).alias(f"b_{w}") for w in ws])
    left = keyed.select("band", "key", F.col("video_id").alias("a"), *[F.col(w).alias(f"a_{w}") for w in ws])
    if multi_probe:
        # Only the left side probes: {x within 1 bit of y} is symmetric, so with a < b each pair
        # and band meets at most once (exactly, or through one probe -- never both).
        left = left.select("band", F.explode(_probe_keys(F.col("key"), width)).alias("key"), "a",
                           *[f"a_{w}" for w in ws])
    distance = _popcount_distance([F.col(f"a_{w}") for w in ws], [F.col(f"b_{w}") for w in ws])
    found = (left.join(right, ["band", "key"])                     # equi-join: no cartesian product
             .where(F.col("a") < F.col("b"))
             .select("a", "b", distance.alias("distance"))
             .where(F.col("distance") <= max_distance)
             .distinct())                                          # a pair matching in several bands
    meta = valid.select("video_id", "creator_id", "published_at", "fingerprint")
    a = meta.select(*[F.col(c).alias(f"a_{c}") for c in meta.columns])
    b = meta.select(*[F.col(c).alias(f"b_{c}") for c in meta.columns])
    verified = found.join(a, F.col("a") == F.col("a_video_id")).join(b, F.col("b") == F.col("b_video_id"))
    shared = reduce(lambda p, q: p + q, [
        F.when(F.substring("a_fingerprint", i * width + 1, width) == F.substring("b_fingerprint", i * width + 1, width),
               1).otherwise(0) for i in range(n_bands)]).cast("long")
    a_first = (F.col("a_published_at") < F.col("b_published_at")) | (
        (F.col("a_published_at") == F.col("b_published_at")) & (F.col("a_video_id") < F.col("b_video_id")))
    pick = lambda first, second: F.when(a_first, F.col(first)).otherwise(F.col(second))  # noqa: E731
    pairs = verified.select(
        pick("b_video_id", "a_video_id").alias("copy_video_id"),
        pick("b_creator_id", "a_creator_id").alias("copy_creator_id"),
        pick("a_video_id", "b_video_id").alias("original_video_id"),
        pick("a_creator_id", "b_creator_id").alias("original_creator_id"),
        "distance", shared.alias("shared_bands"),
        (F.col("a_creator_id") == F.col("b_creator_id")).alias("same_creator"))
    return pairs, skipped
