"""Ingestion benchmark: raw -> bronze -> silver throughput, and the reconciliation against planted defects.

Simulates a landing zone (skipped when ``--root`` already holds one for the same seed), then runs
the real jobs (``bronze_feeds``, ``silver_feeds``) exactly as Airflow does and prints:

* wall time and throughput (raw records per second) of each job, session start included;
* the reconciliation table per feed: raw, accepted, quarantined (per reason kind), and the
  simulator's planted defects (``truth_defects``) next to what quarantine caught -- matched by
  line hash (by key date for duplicates, whose two copies are identical lines).

Not a test: numbers depend on the machine.

    .venv/bin/python benchmarks/bench_ingest.py [--creators 10000] [--days 7] [--defect-rate 0.002] [--root DIR]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from collections import Counter, defaultdict



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--creators", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--defect-rate", type=float, default=None, help="simulator defect rate (default: its own)")
    parser.add_argument("--run-date", default="2026-11-01")
    parser.add_argument("--root", default=None, help="scratch lakehouse root (default: a new temp dir)")
    parser.add_argument("--skip-simulation", action="store_true", help="the landing zone under --root is ready")
    args = parser.parse_args()
    root = args.root or tempfile.mkdtemp(prefix="bench_ingest_")
    os.environ["CGOV__LAKEHOUSE_ROOT"] = root      # before settings load: every table path derives from it
    run_date = dt.date.fromisoformat(args.run_date)

    from pyspark.sql import functions as F

    import jobs.bronze_feeds as bronze_job
    import jobs.raw_landing_zone as sim_job
    import jobs.silver_feeds as silver_job
    from libs.platform import delta_io
    from libs.platform.config import load_settings
    from libs.platform.session import get_spark
    from libs.sim.defects import INGEST_REASON
    from schemas.truth_defects import SCHEMA as TRUTH_DEFECTS

    timings: dict[str, float] = {}
    if not args.skip_simulation:
        t = time.monotonic()
        sim_job.main(run_date=run_date, env="local", seed=args.seed, creators=args.creators, days=args.days,
                     defect_rate=args.defect_rate)
        timings["simulate"] = time.monotonic() - t
    t = time.monotonic()
    bronze_job.main(run_date=run_date, env="local", days=args.days)
    timings["bronze_feeds"] = time.monotonic() - t
    t = time.monotonic()
    silver_job.main(run_date=run_date, env="local", days=args.days)
    timings["silver_feeds"] = time.monotonic() - t

    settings = load_settings("local")
    spark = get_spark(settings, "bench-ingest")
    audit = (delta_io.read_version(spark, settings.table("ingest_audit"))
             .where(F.col("run_date") == run_date).collect())
    raw_total = sum(r["raw_records"] for r in audit)
    truth = (spark.read.schema(TRUTH_DEFECTS).parquet(settings.table("truth_defects"))
             .where(F.col("seed") == args.seed).collect())
    quarantine = (delta_io.read_version(spark, settings.table("ingest_quarantine"))
                  .where(F.col("_ingest_run_date") == run_date).collect())
    by_hash = {(q["feed"], q["_line_hash"]): q["reason"].split(":")[0] for q in quarantine}
    dup_dates = Counter((q["feed"], q["dt"]) for q in quarantine if q["reason"].startswith("duplicate_key"))
    planted: dict[str, Counter] = defaultdict(Counter)
    caught: dict[str, Counter] = defaultdict(Counter)
    for t_ in truth:
        feed = t_["feed"].removeprefix("raw_")
        planted[feed][t_["defect"]] += 1
        if t_["defect"] == "duplicate_event_id":
            if dup_dates[(feed, t_["dt"])] > 0:
                dup_dates[(feed, t_["dt"])] -= 1
                caught[feed][t_["defect"]] += 1
        elif by_hash.get((feed, t_["line_hash"])) == INGEST_REASON[t_["defect"]]:
            caught[feed][t_["defect"]] += 1

    print(f"\n[bench_ingest] {args.creators:,} creators x {args.days} days, seed {args.seed} -> {root}")
    for job, seconds in timings.items():
        rate = f"{raw_total / seconds:>10,.0f} raw records/s" if job != "simulate" else ""
        print(f"  {job:<14}{seconds:>8.1f}s  {rate}")
    per_feed: dict[str, dict] = defaultdict(lambda: {"raw": 0, "accepted": 0, "quarantined": 0, "reasons": Counter()})
    for r in audit:
        agg = per_feed[r["feed"]]
        agg["raw"] += r["raw_records"]
        agg["accepted"] += r["accepted"]
        agg["quarantined"] += r["quarantined"]
        agg["reasons"].update({k.split(":")[0]: v for k, v in (r["quarantine_reasons"] or {}).items()})
        agg.setdefault("status", Counter())[r["status"]] += 1
    print(f"\n{'feed':<18}{'raw':>11}{'accepted':>11}{'quarant.':>9}{'planted':>8}{'caught':>7}  ok  reasons")
    for feed, agg in per_feed.items():
        ok = agg["raw"] == agg["accepted"] + agg["quarantined"]
        n_planted, n_caught = sum(planted[feed].values()), sum(caught[feed].values())
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(agg["reasons"].items()))
        print(f"{feed:<18}{agg['raw']:>11,}{agg['accepted']:>11,}{agg['quarantined']:>9,}{n_planted:>8,}"
              f"{n_caught:>7,}  {'yes' if ok else 'NO'}  {reasons}")
    total_q = sum(a["quarantined"] for a in per_feed.values())
    print(f"{'total':<18}{raw_total:>11,}{sum(a['accepted'] for a in per_feed.values()):>11,}{total_q:>9,}"
          f"{len(truth):>8,}{sum(sum(c.values()) for c in caught.values()):>7,}")
    print("statuses:", dict(Counter(r["status"] for r in audit)))


if __name__ == "__main__":
    main()
