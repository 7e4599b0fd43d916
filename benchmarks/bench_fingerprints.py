"""Fingerprint near-duplicate search at scale: exact bands vs exact + 1-bit multi-probe.

Synthetic data generated in Spark (no driver-side data): ``N`` videos, 95 % with a random
256-bit fingerprint and 5 % *copies* of one of them with ``d = j % 49`` bits flipped at uniformly
random distinct positions (so ``d`` covers 0..48 evenly). For each mode it prints the wall time of
:func:`libs.quality.fingerprints.near_duplicates` (pairs materialised), the candidate rows it
verified (:func:`~libs.quality.fingerprints.candidate_count`, counted separately), recall of the
planted copies per distance bucket next to the exact combinatorial expectation, and false pairs
(returned pairs that are not a copy and its original: random pairs within the distance, ~0
expected since a random pair differs in 128 +- 8 bits).

The search verifies at ``--verify-distance`` (default 48, the farthest planted copy) so that the
41-48 bucket shows what the *candidate generation* reaches; the pairs within ``--max-distance``
(40, the production setting) are exactly a run at 40 would return (verification is a filter).
Not a test: numbers depend on the machine and its load (printed).

    .venv/bin/python benchmarks/bench_fingerprints.py --sizes 100000,1000000 [--modes exact,probe]

Measured (2026-11-30; local[2] on a 2-core VM shared with other engineers, load average 3-8
during the runs; 4 GB driver, AQE on; 16 bands, max bucket 5000, 5 % planted copies; recall =
found / planted, expected = the exact combinatorial value of :func:`expected_recall`):

    N     mode            wall     candidate rows  pairs<=40  false  recall 0-15  16-31  32-40  41-48
    100k  exact            66.7 s      1,246,629      3,954      0          1.000  0.979  0.786  0.544
    100k  + multi-probe    73.9 s     20,806,229      4,183      0          1.000  1.000  0.999  0.988
    300k  exact           119.5 s     11,060,230     11,870      0          1.000  0.981  0.787  0.549
    300k  + multi-probe   308.8 s    186,899,420     12,551      0          1.000  1.000  1.000  0.989
    1M    exact           303.9 s    122,303,617     39,580      0          1.000  0.981  0.787  0.543
    1M    + multi-probe   not finished: stopped by a 16-minute timeout (see below)
    expected  exact                                                         1.000  0.979  0.786  0.530
    expected  + multi-probe                                                 1.000  1.000  1.000  0.990

* Candidate rows grow as N^2 (random band collisions) and multi-probe multiplies them by ~17
  (16.7x at 100k, 16.9x at 300k), as the recall/cost math of :mod:`libs.quality.fingerprints`
  predicts; wall time grew less (x1.1 at 100k, x2.6 at 300k) because below ~10^8 candidates the
  shuffles of the band rows, not the distance checks, dominate.
* 1M with multi-probe means ~2.1e9 candidate rows (17 x 122M) and 272M probe-side band rows
  (~20 GB of shuffle). Extrapolated from 300k multi-probe (309 s for 187M candidates) and 1M
  exact (304 s for 122M): roughly 35-60 minutes on this shared 2-core VM, i.e. a cluster job
  (the join parallelises over band keys). 300k with multi-probe costs what 1M exact costs.
* The 100k exact row ran first in its process (JVM warm-up included); repeated runs of the same
  search measured 23-27 s exact and 53-65 s with multi-probe.
* Design check at 100k with multi-probe: verifying inside the band join (this module) 65 s vs
  grouping the candidates first and joining fingerprints to them (the previous design) 134 s;
  exact at 100k, where candidates are few, 27 s vs 24 s.
* False pairs stayed 0 even at 48 bits: a random pair differs in 128 +- 8 bits.

On the simulator's copies (``benchmarks/eval_fingerprints.py --root /tmp/bench10k``, 45,429
videos, 16 bands, 40 bits, same shared VM): exact 29.3 s, piracy at 16-40 bits 348/670 = 0.519,
licensed 17/18, 5,274 pairs; with multi-probe (``near_duplicates(..., multi_probe=True)`` through
a wrapper: the script has no flag for it) 39.0 s, piracy 612/670 = 0.913, licensed 18/18, 5,547
pairs; 0 false matches either way. (The simulator flips bits in arithmetic progressions, not
uniformly, hence lower recall than the synthetic 32-40 bucket.)
"""
from __future__ import annotations

import argparse
import math
import os
import time
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

MAX_PLANTED = 48
BUCKETS = [(0, 15), (16, 31), (32, 40), (41, 48)]
T0 = "2026-10-01 00:00:00"
# Bytes of one band row in the join's shuffle (id, band, key, four fingerprint words, row header).
ROW_BYTES = 80
# Target bytes a reduce task sorts: a local[2] driver of 4 GB gives each of its 2 task slots
# roughly 1 GB of execution memory; ~128 MB partitions sort in memory with room to spare, while
# far more partitions would only add per-task scheduling overhead on 2 cores (AQE coalesces the
# small ones anyway).
TARGET_PARTITION_BYTES = 128 << 20


def shuffle_partitions(n: int, n_bands: int, multi_probe: bool) -> int:
    """Partitions for the band join: its probe side holds ``n * n_bands * (1 + bits)`` rows with probes."""
    rows = n * n_bands * ((1 + 256 // n_bands) if multi_probe else 1)
    return max(8, math.ceil(rows * ROW_BYTES / TARGET_PARTITION_BYTES))


def _word_hex(w: F.Column) -> F.Column:
    return F.lpad(F.lower(F.hex(w)), 16, "0")     # hex() of a long is its 64-bit two's complement


def _orig_words(seed: int, idx: F.Column) -> list[F.Column]:
    return [F.xxhash64(F.lit(seed), F.lit(f"w{i}"), idx) for i in range(4)]


def synthetic(spark: SparkSession, n: int, seed: int, copy_share: float) -> tuple[DataFrame, DataFrame]:
    """``(videos, truth)``: ``truth`` = ``(copy_video_id, original_video_id, bits)`` of every planted copy.

    Copy ``j`` copies original ``j`` (each original has at most one copy, so two copies of one
    original never pair with each other) and is published 10 days after all originals.
    """
    n_copies = int(n * copy_share)
    n_orig = n - n_copies
    orig = spark.range(n_orig).select(
        F.format_string("o%09d", "id").alias("video_id"),
        F.format_string("c%05d", F.col("id") % 20000).alias("creator_id"),
        (F.lit(T0).cast("timestamp") + F.make_dt_interval(secs=F.col("id").cast("decimal(18,6)")))
        .alias("published_at"),
        F.concat(*[_word_hex(w) for w in _orig_words(seed, F.col("id"))]).alias("fingerprint"))
    positions = F.expr(f"transform(slice(array_sort(transform(sequence(0, 255), k -> named_struct("
                       f"'h', xxhash64({seed}, 'pos', id, k), 'p', k))), 1, bits), x -> x.p)")
    copies = (spark.range(n_copies).withColumn("bits", (F.col("id") % (MAX_PLANTED + 1)).cast("int"))
              .withColumn("pos", positions))
    # Bit p (0 = most significant of the fingerprint) lives in word p div 64, at 63 - p % 64 from its right.
    masks = [F.expr(f"aggregate(filter(pos, p -> p div 64 = {i}), 0L, "
                    f"(acc, p) -> acc | shiftleft(1L, 63 - p % 64))") for i in range(4)]
    copies = copies.select(
        F.format_string("x%09d", "id").alias("video_id"),
        F.format_string("p%05d", F.col("id") % 5000).alias("creator_id"),
        (F.lit(T0).cast("timestamp") + F.make_dt_interval(days=F.lit(10), secs=F.col("id").cast("decimal(18,6)")))
        .alias("published_at"),
        F.concat(*[_word_hex(w.bitwiseXOR(m)) for w, m in zip(_orig_words(seed, F.col("id")), masks)])
        .alias("fingerprint"),
        F.format_string("o%09d", "id").alias("original_video_id"), "bits")
    videos = orig.unionByName(copies.drop("original_video_id", "bits"))
    truth = copies.select(F.col("video_id").alias("copy_video_id"), "original_video_id", "bits")
    return videos, truth


def expected_recall(d: int, n_bands: int, tolerance: int) -> float:
    """P(some band of ``256 / n_bands`` bits holds <= ``tolerance`` of ``d`` random flipped bits)."""
    b = 256 // n_bands
    per_band = [math.comb(b, k) if k > tolerance else 0 for k in range(b + 1)]
    ways = [1]                        # ways[k]: flip sets of size k with every band above tolerance
    for _ in range(n_bands):
        ways = [sum(ways[i] * per_band[k - i] for i in range(max(0, k - b), min(k, len(ways) - 1) + 1))
                for k in range(len(ways) + b)]
    return 1 - (ways[d] if d < len(ways) else 0) / math.comb(256, d)


def run_mode(spark: SparkSession, videos: DataFrame, truth: DataFrame, n: int, multi_probe: bool,
             args: argparse.Namespace) -> dict:
    from libs.quality.fingerprints import candidate_count, near_duplicates

    spark.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions(n, args.bands, multi_probe)))
    load = os.getloadavg()[0]
    started = time.monotonic()
    pairs, skipped = near_duplicates(videos, args.verify_distance, args.bands, args.max_bucket, multi_probe=multi_probe)
    pairs = pairs.persist()
    n_pairs = pairs.count()                    # the cache materialises every column of every pair
    seconds = time.monotonic() - started
    started = time.monotonic()
    candidates = candidate_count(videos, args.bands, args.max_bucket, multi_probe).first()["candidates"]
    count_seconds = time.monotonic() - started
    found = truth.join(pairs.select(F.col("copy_video_id"), "original_video_id", F.lit(1).alias("hit")),
                       ["copy_video_id", "original_video_id"], "left")
    bucket = reduce(lambda acc, lh: acc.when((F.col("bits") >= lh[0]) & (F.col("bits") <= lh[1]), f"{lh[0]}-{lh[1]}"),
                    BUCKETS[1:], F.when(F.col("bits") <= BUCKETS[0][1], f"0-{BUCKETS[0][1]}"))
    recall = {r["bucket"]: (r["found"], r["copies"]) for r in found.groupBy(bucket.alias("bucket"))
              .agg(F.count("hit").alias("found"), F.count(F.lit(1)).alias("copies")).collect()}
    false_pairs = (pairs.join(truth, ["copy_video_id", "original_video_id"], "left_anti")
                   .agg(F.count(F.lit(1)).alias("all"),
                        F.count(F.when(F.col("distance") <= args.max_distance, 1)).alias("within")).first())
    within = pairs.where(F.col("distance") <= args.max_distance).count()
    n_skipped = skipped.count()
    pairs.unpersist()
    return {"n": n, "mode": f"{args.bands} bands " + ("+ multi-probe" if multi_probe else "exact"),
            "seconds": seconds, "count_seconds": count_seconds, "candidates": candidates, "pairs": within,
            "pairs_verify": n_pairs, "recall": recall, "false_pairs": false_pairs["within"],
            "false_pairs_verify": false_pairs["all"], "skipped": n_skipped, "load": (load, os.getloadavg()[0]),
            "partitions": spark.conf.get("spark.sql.shuffle.partitions")}


def print_row(r: dict, args: argparse.Namespace, multi_probe: bool) -> None:
    cells = []
    for lo, hi in BUCKETS:
        found, planted = r["recall"].get(f"{lo}-{hi}", (0, 0))
        expected = sum(expected_recall(d, args.bands, int(multi_probe)) for d in range(lo, hi + 1)) / (hi - lo + 1)
        cells.append(f"{lo}-{hi}: {found}/{planted}={found / max(planted, 1):.3f} (exp {expected:.3f})")
    recall = "  ".join(cells)
    print(f"[bench_fingerprints] N={r['n']:,} {r['mode']}: {r['seconds']:.1f}s, {r['candidates']:,} candidate rows "
          f"(counted in {r['count_seconds']:.1f}s), {r['pairs']:,} pairs <= {args.max_distance} bits "
          f"({r['pairs_verify']:,} <= {args.verify_distance}), false pairs {r['false_pairs']} "
          f"({r['false_pairs_verify']} <= {args.verify_distance}), skipped buckets {r['skipped']}, "
          f"shuffle partitions {r['partitions']}, load {r['load'][0]:.1f} -> {r['load'][1]:.1f}\n"
          f"[bench_fingerprints]   recall {recall}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated numbers of videos")
    parser.add_argument("--modes", default="exact,probe", help="exact, probe or both (comma-separated)")
    parser.add_argument("--bands", type=int, default=16)
    parser.add_argument("--max-distance", type=int, default=40)
    parser.add_argument("--verify-distance", type=int, default=MAX_PLANTED)
    parser.add_argument("--max-bucket", type=int, default=5000)
    parser.add_argument("--copy-share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("CGOV__SPARK__MASTER", "local[2]")

    from libs.platform.config import load_settings
    from libs.platform.session import get_spark
    from libs.quality.fingerprints import hamming

    spark = get_spark(load_settings("local"), "bench-fingerprints", extra_conf={"spark.driver.memory": "4g"})
    spark.sparkContext.setLogLevel("ERROR")
    for n in [int(s) for s in args.sizes.split(",")]:
        started = time.monotonic()
        videos, truth = synthetic(spark, n, args.seed, args.copy_share)
        videos = videos.persist()
        truth = truth.persist()
        bad = (truth.join(videos.select(F.col("video_id").alias("copy_video_id"), F.col("fingerprint").alias("c")),
                          "copy_video_id")
               .join(videos.select(F.col("video_id").alias("original_video_id"), F.col("fingerprint").alias("o")),
                     "original_video_id")
               .where(hamming(F.col("c"), F.col("o")) != F.col("bits")).count())
        if bad:
            raise AssertionError(f"{bad} planted copies are not at their planted distance")
        print(f"[bench_fingerprints] N={videos.count():,} videos ({truth.count():,} planted copies, distances "
              f"0..{MAX_PLANTED} checked) generated in {time.monotonic() - started:.1f}s", flush=True)
        for mode in args.modes.split(","):
            multi_probe = {"exact": False, "probe": True}[mode.strip()]
            print_row(run_mode(spark, videos, truth, n, multi_probe, args), args, multi_probe)
        videos.unpersist()
        truth.unpersist()


if __name__ == "__main__":
    main()
