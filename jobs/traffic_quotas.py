"""Job ``traffic_quotas``: creator quality, graph risk and traffic -> each creator's impression quota, per market.

Per market and run date, the market's daily impressions (its last ``strategy.window_days`` of
views, per day) are allocated to its creators to maximise expected value
``w_gmv*GMV + w_prosperity*prosperity - lambda*risk - mu*complaints`` under the fairness
constraints of ``strategy.policy`` (:mod:`libs.strategy.quota`, stated in
``docs/traffic_quotas.md``): exposure proportional to merit for eligible (high-quality, original)
creators within a tolerance, capped concentration (Gini, top-1 % share), a floor for new eligible
creators, zero for enforced ones. Each market is one ``applyInPandas`` group, solved twice: with
the constraints and without (the rich-get-richer counterfactual the report compares against).

**The constraints are verified on every run** by :func:`libs.strategy.quota.check`, which
recomputes them from the written columns independently of the solver; any violation fails the job
*before* anything is written (the previous quotas stay in force). Both tables are then replaced
for the run date: ``traffic_quotas`` (per creator) and ``traffic_quota_report`` (per market).

    cgov run traffic_quotas --run-date 2026-11-01
    cgov run traffic_quotas --run-date 2026-11-01 --lam 2 --mu 0.5   # a policy what-if
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import time
from typing import Any, Callable

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from libs.graph.materialize import RoundStore
from libs.platform import delta_io
from libs.platform.config import Settings, load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark
from libs.strategy import inputs as quota_inputs
from libs.strategy import quota
from schemas import traffic_quota_report as report_schema
from schemas import traffic_quotas as schema

TABLE = "traffic_quotas"
REPORT = "traffic_quota_report"
# applyInPandas output types: the tables' schemas without the run-date column the write adds.
SOLVED_STRUCT = StructType([f for f in schema.SCHEMA.fields if f.name != "dt"])
REPORT_STRUCT = StructType([f for f in report_schema.SCHEMA.fields if f.name != "dt"])


class QuotaConstraintViolation(RuntimeError):
    """A solved quota broke a fairness constraint: nothing was written."""


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--lam", type=float, default=None, help="override strategy.policy.lam (risk weight)")
    parser.add_argument("--mu", type=float, default=None, help="override strategy.policy.mu (complaint weight)")
    return parser


def solver(policy: quota.QuotaPolicy) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The per-market ``applyInPandas`` function: regulated and unregulated allocation of one market."""
    free = dataclasses.replace(policy, regulated=False)

    def solve(frame: pd.DataFrame) -> pd.DataFrame:
        total = int(frame["total_impressions"].iloc[0])
        creators = frame.drop(columns=["total_impressions"]).reset_index(drop=True)
        regulated = quota.allocate(creators, total, policy)
        unregulated = quota.allocate(creators, total, free).set_index("creator_id")
        by_id = regulated["creator_id"]
        regulated["unregulated_impressions"] = by_id.map(unregulated["impressions"]).astype("int64")
        regulated["unregulated_share"] = by_id.map(unregulated["share"]).astype("float64")
        return regulated[SOLVED_STRUCT.names]

    return solve


def _metrics_row(market: str, frame: pd.DataFrame, policy: quota.QuotaPolicy) -> dict[str, Any]:
    """Check the regulated allocation (constraints) and measure the unregulated one (for comparison)."""
    # Relaxations the policy allows (on_infeasible: relax) are reported, not violations; everything
    # else -- every constraint at its (possibly relaxed) value and the output contract -- must hold.
    reg = quota.check(frame, policy, allow_relaxed=True)
    free_frame = frame.assign(impressions=frame["unregulated_impressions"], share=frame["unregulated_share"],
                              lower=0.0, upper=(~frame["enforced"].astype(bool)).astype("float64"), relaxation="")
    free = quota.check(free_frame, dataclasses.replace(policy, regulated=False))
    m, u = reg.to_dict(), free.to_dict()
    return {
        "market": market, "creators": len(frame), "eligible_creators": int(frame["eligible"].sum()),
        "enforced_creators": int(frame["enforced"].sum()), "total_impressions": int(frame["impressions"].sum()),
        "utility": m["utility"], "utility_unregulated": u["utility"],
        "gmv_retained": (m["gmv"] / u["gmv"]) if u["gmv"] > 0 else None,
        "gini": m["gini"], "gini_unregulated": u["gini"], "top_share": m["top_share"],
        "top_share_unregulated": u["top_share"], "merit_disparity": m["merit_disparity"],
        "group_disparity": m["group_disparity"], "hq_original_share": m["hq_original_share"],
        "hq_original_share_unregulated": u["hq_original_share"],
        "relaxations": list(reg.relaxations), "violations": list(reg.violations) + [f"unregulated: {v}" for v in free.violations],
        "policy": json.dumps(policy.to_dict(), sort_keys=True),
    }


def checker(policy: quota.QuotaPolicy) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The per-market ``applyInPandas`` function: :func:`quota.check` on the solved rows, one report row."""
    def check(frame: pd.DataFrame) -> pd.DataFrame:
        row = _metrics_row(str(frame["market"].iloc[0]), frame, policy)
        return pd.DataFrame([row]).replace({np.nan: None})      # an undefined metric is null, not NaN

    return check


def quota_reports(solved: DataFrame, policy: quota.QuotaPolicy) -> DataFrame:
    """One :mod:`schemas.traffic_quota_report` row per market of ``solved`` (without ``dt``)."""
    return solved.groupBy("market").applyInPandas(checker(policy), schema=REPORT_STRUCT)


def solve_markets(rows: DataFrame, policy: quota.QuotaPolicy) -> DataFrame:
    """``quota_inputs`` rows joined with ``total_impressions`` -> :mod:`schemas.traffic_quotas` rows (no ``dt``)."""
    return rows.groupBy("market").applyInPandas(solver(policy), schema=SOLVED_STRUCT)


def publish(spark: SparkSession, settings: Settings, solved: DataFrame, policy: quota.QuotaPolicy,
            day: str) -> list[dict[str, Any]]:
    """Check every market of ``solved``; write both tables for ``day`` only if no constraint is violated.

    Raises :class:`QuotaConstraintViolation` naming each market's violations, before any write:
    the previous quotas stay in force. Returns the report rows (one per market).
    """
    reports = [r.asDict() for r in quota_reports(solved, policy).orderBy("market").collect()]
    broken = {r["market"]: r["violations"] for r in reports if r["violations"]}
    if broken:
        raise QuotaConstraintViolation(f"[{TABLE}] {day}: constraints violated, nothing written: {broken}")
    delta_io.replace_partition(solved.withColumn("dt", F.lit(day)), settings.table(TABLE), "dt", day)
    report_df = spark.createDataFrame([{**r, "dt": day} for r in reports], report_schema.SCHEMA)
    delta_io.replace_partition(report_df, settings.table(REPORT), "dt", day)
    return reports


def main(run_date: dt.date, env: str, lam: float | None = None, mu: float | None = None) -> dict[str, Any]:
    settings = load_settings(env)
    s = dict(settings.section("strategy"))
    overrides = {k: v for k, v in (("lam", lam), ("mu", mu)) if v is not None}
    policy = quota.QuotaPolicy.from_dict({**dict(s["policy"]), **overrides})
    spark = get_spark(settings, f"cgov-{TABLE}")
    started = time.time()
    day = run_date.isoformat()
    rows = quota_inputs.load_quota_rows(spark, settings, run_date)
    with RoundStore(spark, TABLE) as store:
        # Materialised once: the check, the report and the write read the same solved bytes
        # (a second evaluation of the pandas solver could only cost time, never differ).
        solved = store.put(solve_markets(rows, policy), "solved")
        reports = publish(spark, settings, solved, policy, day)
    summary = {"table": TABLE, "run_date": day, "markets": len(reports), "policy": policy.to_dict(),
               "reports": reports, "seconds": round(time.time() - started, 1)}
    for r in reports:
        print(f"[{TABLE}] {day} {r['market']}: {r['creators']:,} creators, {r['total_impressions']:,} impressions; "
              f"Gini {r['gini']:.3f} (unregulated {r['gini_unregulated']:.3f}), top-1% {r['top_share']:.3f} "
              f"({r['top_share_unregulated']:.3f}), HQ-original share {r['hq_original_share']:.3f} "
              f"({r['hq_original_share_unregulated']:.3f}), GMV retained {r['gmv_retained'] or 0:.3f}"
              + (f"; relaxed {r['relaxations']}" if r["relaxations"] else ""), flush=True)
    print(f"[{TABLE}] {day}: {len(reports)} markets -> {settings.table(TABLE)}, {settings.table(REPORT)} "
          f"in {summary['seconds']}s", flush=True)
    return summary


if __name__ == "__main__":
    run_job(arg_parser, main)
