"""Traffic-quota frontier: GMV retained vs Gini vs merit-exposure disparity for a few lambda/mu settings.

On one simulated (or real) lakehouse day, the quota problem of every market is built exactly as
``jobs/traffic_quotas.py`` builds it (:func:`libs.strategy.inputs.load_quota_rows`), then solved
per market for each ``--settings`` pair ``lambda:mu``, regulated (the conf's fairness policy) and
unregulated (same objective, only enforcement). Every regulated allocation goes through the
independent constraint check (:func:`libs.strategy.quota.check`); the command exits non-zero if
one fails. Printed per setting and arm, over all markets:

* ``util ret.``: the objective (expected value) of the regulated arm / the unregulated arm's at the
  same lambda, mu -- at most 1: the constraints restrict the same problem;
* ``GMV retained``: expected GMV of the regulated arm / the unregulated arm at the same lambda, mu
  (the price of the fairness constraints; 1 for unregulated rows);
* ``GMV/ref``, ``risk``, ``compl.``: expected GMV, risk and complaint exposure relative to the
  unconstrained reference (unregulated, lambda = mu = 0, which maximises GMV + prosperity, so
  GMV alone can exceed it);
* ``Gini`` / ``top-1 %``: exposure concentration (impression-weighted over markets);
* ``merit disp.``: max over markets of max |exposure-per-merit / eligible mean - 1| (C3's quantity);
* ``group disp.``: Singh & Joachims head/tail exposure-per-merit ratio (1 = parity), weighted;
* ``HQ share``: exposure share of eligible (high-quality, original) creators;

Then the multi-round feedback simulation (:mod:`libs.strategy.feedback`) starts from the largest
market's real creators and runs both arms with the same draws: the rich-get-richer dynamic and its
control (Gini, top share, HQ-original share, GMV retained per round), plotted to PNG (Gini over
rounds, Lorenz curves, HQ share, and the frontier) and logged to MLflow with the frontier table.

    .venv/bin/python benchmarks/eval_traffic_quotas.py --root /tmp/q10k --run-date 2026-11-01 --run-job
    .venv/bin/python benchmarks/eval_traffic_quotas.py --root lakehouse --run-date 2026-11-01 --scale 100000
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from libs.strategy import feedback, quota  # noqa: E402


def parse_settings(text: str) -> list[tuple[float, float]]:
    """``"0:0,1:1,3:1"`` -> ``[(0, 0), (1, 1), (3, 1)]``; a clear error otherwise."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            lam, mu = (float(x) for x in part.split(":"))
        except ValueError:
            raise SystemExit(f"--settings entries are lambda:mu, got {part!r}") from None
        out.append((lam, mu))
    if not out:
        raise SystemExit("--settings is empty")
    return out


def solve_all(rows: pd.DataFrame, policy: quota.QuotaPolicy) -> tuple[list[tuple[str, pd.DataFrame, int]], float]:
    """Every market solved under ``policy``: ``[(market, allocated, total)]`` and the solve seconds."""
    out, t = [], time.perf_counter()
    for market, frame in rows.groupby("market", sort=True):
        total = int(frame["total_impressions"].iloc[0])
        creators = frame.drop(columns=["total_impressions"]).reset_index(drop=True)
        out.append((str(market), quota.allocate(creators, total, policy), total))
    return out, time.perf_counter() - t


def summarise(solved: list[tuple[str, pd.DataFrame, int]], policy: quota.QuotaPolicy) -> dict[str, Any]:
    """Totals and impression-weighted fairness metrics over markets, plus the check's violations."""
    reports = [(m, quota.check(f, policy, total_impressions=t, allow_relaxed=True), t) for m, f, t in solved]
    weight = np.array([t for _, _, t in reports], dtype=float)
    weight = weight / weight.sum()

    def wmean(values: list[float | None]) -> float | None:
        pairs = [(v, w) for v, w in zip(values, weight) if v is not None]
        return sum(v * w for v, w in pairs) / sum(w for _, w in pairs) if pairs else None

    merit = [r.merit_disparity for _, r, _ in reports if r.merit_disparity is not None]
    return {
        "gmv": sum(r.gmv for _, r, _ in reports), "risk": sum(r.risk for _, r, _ in reports),
        "complaints": sum(r.complaints for _, r, _ in reports), "utility": sum(r.utility for _, r, _ in reports),
        "gini": wmean([r.gini for _, r, _ in reports]), "top_share": wmean([r.top_share for _, r, _ in reports]),
        "merit_disparity": max(merit) if merit else None,
        "group_disparity": wmean([r.group_disparity for _, r, _ in reports]),
        "hq_share": wmean([r.hq_original_share for _, r, _ in reports]),
        "violations": {m: r.violations for m, r, _ in reports if r.violations},
        "relaxations": {m: r.relaxations for m, r, _ in reports if r.relaxations},
    }


def tile(rows: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` repeated (ids suffixed, demand jittered log-normally) until ``n`` creators: a scale test input.

    The real per-market structure (value, risk, merit, eligibility mix) is kept; only the count
    grows. Labelled as synthetic scale wherever printed.
    """
    reps = int(np.ceil(n / len(rows)))
    rng = np.random.default_rng(seed)
    parts = []
    for k in range(reps):
        part = rows.copy()
        part["creator_id"] = part["creator_id"].astype(str) + f"~{k}"
        part["popularity"] = part["popularity"] * rng.lognormal(0.0, 0.5, len(part))
        part["total_impressions"] = part["total_impressions"] * reps
        parts.append(part)
    return pd.concat(parts, ignore_index=True).head(n).reset_index(drop=True)


def fmt(x: Any, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def plot_frontier(points: list[dict[str, Any]], path: Path) -> str:
    from libs.platform.plots import saved_axes

    with saved_axes(path, (6.5, 4.5), dpi=120) as ax:
        for arm, marker in (("regulated", "o"), ("unregulated", "x")):
            pts = [p for p in points if p["arm"] == arm]
            ax.plot([p["gini"] for p in pts], [p["gmv_vs_ref"] for p in pts], marker=marker, linestyle="-",
                    label=arm)
            for p in pts:
                ax.annotate(f"λ={p['lam']:g},μ={p['mu']:g}", (p["gini"], p["gmv_vs_ref"]), fontsize=7,
                            textcoords="offset points", xytext=(4, 4))
        ax.set_xlabel("exposure Gini (impression-weighted over markets)")
        ax.set_ylabel("expected GMV vs unconstrained (unregulated, λ = μ = 0)")
        ax.set_title("Traffic-quota frontier")
        ax.grid(alpha=0.3)
        ax.legend()
    return str(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True, help="lakehouse root with creator_quality_scores and entity_risk")
    ap.add_argument("--run-date", type=dt.date.fromisoformat, required=True)
    ap.add_argument("--settings", default="0:0,1:1,3:3,10:10", help="lambda:mu pairs, comma-separated")
    ap.add_argument("--rounds", type=int, default=20, help="feedback-simulation rounds")
    ap.add_argument("--sim-impressions", type=int, default=1_000_000, help="impressions per simulated round")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=int, default=0, help="also time the solver on the rows tiled to this many creators")
    ap.add_argument("--run-job", action="store_true", help="run jobs/traffic_quotas.py first and print its time")
    ap.add_argument("--out", default=None, help="plot folder (default: <root>/_reports/traffic_quotas/<date>)")
    ap.add_argument("--no-mlflow", action="store_true", help="do not log to the environment's MLflow store")
    args = ap.parse_args()
    os.environ["CGOV__LAKEHOUSE_ROOT"] = args.root

    from libs.platform.config import load_settings
    from libs.platform.session import get_spark
    from libs.strategy.inputs import load_quota_rows

    settings = load_settings("local")
    base = quota.QuotaPolicy.from_dict(dict(settings.section("strategy")["policy"]))
    out_dir = Path(args.out or Path(args.root) / "_reports" / "traffic_quotas" / args.run_date.isoformat())
    started = time.time()
    if args.run_job:
        from jobs import traffic_quotas

        t = time.time()
        summary = traffic_quotas.main(args.run_date, "local")
        print(f"\n[traffic_quotas job] {summary['markets']} markets in {time.time() - t:.1f}s wall "
              f"({summary['seconds']}s in the job)")
    spark = get_spark(settings, "eval-traffic-quotas")
    spark.sparkContext.setLogLevel("ERROR")
    t = time.time()
    rows = load_quota_rows(spark, settings, args.run_date).toPandas()
    print(f"\n{len(rows):,} creators in {rows['market'].nunique()} markets, "
          f"{int(rows.groupby('market')['total_impressions'].first().sum()):,} daily impressions; "
          f"{int(rows['eligible'].sum()):,} eligible, {int(rows['is_new'].sum()):,} new, "
          f"{int(rows['enforced'].sum()):,} enforced (inputs built in {time.time() - t:.1f}s)")

    ref_solved, _ = solve_all(rows, dataclasses.replace(base, lam=0.0, mu=0.0, regulated=False))
    ref = summarise(ref_solved, dataclasses.replace(base, lam=0.0, mu=0.0, regulated=False))
    points, failures = [], {}
    print("\n## Frontier (all markets; GMV ret. = regulated / unregulated at the same lambda, mu; "
          "ref = unregulated, lambda = mu = 0)")
    print(f"{'lambda':>6} {'mu':>5} {'arm':<11} {'util ret.':>9} {'GMV ret.':>8} {'GMV/ref':>7} {'Gini':>6} {'top-1%':>6} {'merit disp.':>11} "
          f"{'group disp.':>11} {'HQ share':>8} {'risk':>6} {'compl.':>6} {'checks':>7} {'solve s':>7}")
    for lam, mu in parse_settings(args.settings):
        free_gmv = free_util = None
        for arm in ("unregulated", "regulated"):
            policy = dataclasses.replace(base, lam=lam, mu=mu, regulated=(arm == "regulated"))
            solved, seconds = solve_all(rows, policy)
            s = summarise(solved, policy)
            ok = not s["violations"]
            if not ok:
                failures[(lam, mu, arm)] = s["violations"]
            if arm == "unregulated":
                free_gmv, free_util = s["gmv"], s["utility"]
            point = {"lam": lam, "mu": mu, "arm": arm, "gmv_retained": s["gmv"] / free_gmv if free_gmv else None,
                     "gmv_vs_ref": s["gmv"] / ref["gmv"] if ref["gmv"] else None,
                     "utility_retained": s["utility"] / free_util if free_util else None,
                     "gini": s["gini"], "top_share": s["top_share"], "merit_disparity": s["merit_disparity"],
                     "group_disparity": s["group_disparity"], "hq_share": s["hq_share"],
                     "risk": s["risk"] / ref["risk"] if ref["risk"] else None,
                     "complaints": s["complaints"] / ref["complaints"] if ref["complaints"] else None,
                     "checks": "pass" if ok else "FAIL", "seconds": seconds, "relaxations": s["relaxations"]}
            points.append(point)
            print(f"{lam:>6g} {mu:>5g} {arm:<11} {fmt(point['utility_retained']):>9} {fmt(point['gmv_retained']):>8} {fmt(point['gmv_vs_ref']):>7} "
                  f"{fmt(s['gini']):>6} "
                  f"{fmt(s['top_share']):>6} {fmt(s['merit_disparity'], 2):>11} {fmt(s['group_disparity'], 2):>11} "
                  f"{fmt(s['hq_share']):>8} {fmt(point['risk']):>6} {fmt(point['complaints']):>6} "
                  f"{point['checks']:>7} {seconds:>7.2f}")
            if s["relaxations"]:
                print(f"{'':>14}relaxed: {s['relaxations']}")
    print(f"constraints (regulated rows): Gini <= {base.max_gini}, top-{base.top_fraction:.0%} share <= "
          f"{base.max_top_share}, merit band +/-{base.merit_tolerance}, new eligible floor {base.new_floor} x uniform, "
          "enforced = 0; 'checks' = libs.strategy.quota.check on every market (independent of the solver)")

    # Feedback simulation from the largest market's real creators.
    largest = rows.groupby("market")["creator_id"].count().idxmax()
    market_rows = rows[rows["market"] == largest].drop(columns=["total_impressions"]).reset_index(drop=True)
    t = time.time()
    comp = feedback.compare(market_rows, base, rounds=args.rounds, total_impressions=args.sim_impressions,
                            seed=args.seed)
    sim_seconds = time.time() - t
    m = comp.metrics
    print(f"\n## Feedback simulation ({largest}: {len(market_rows):,} real creators, {args.rounds} rounds, "
          f"{args.sim_impressions:,} impressions/round, conf policy lambda={base.lam:g} mu={base.mu:g}; {sim_seconds:.1f}s)")
    print(f"{'round':>5} {'arm':<11} {'Gini':>6} {'top-1%':>6} {'HQ share':>8} {'GMV':>12} {'GMV retained':>12}")
    shown = sorted({0, args.rounds // 4, args.rounds // 2, args.rounds - 1})
    for r in shown:
        for arm in ("unregulated", "regulated"):
            row = m[(m["round"] == r) & (m["arm"] == arm)].iloc[0]
            print(f"{r:>5} {arm:<11} {row['gini']:>6.3f} {row['top_share']:>6.3f} {row['hq_original_share']:>8.3f} "
                  f"{row['gmv']:>12,.0f} {row['gmv_retained']:>12.3f}")
    plots = feedback.plot_all(comp, out_dir)
    plots["frontier"] = plot_frontier(points, out_dir / "frontier.png")
    frontier = pd.DataFrame([{k: v for k, v in p.items() if k != "relaxations"} for p in points])
    frontier.to_csv(out_dir / "frontier.csv", index=False)
    m.to_csv(out_dir / "feedback_rounds.csv", index=False)
    print("\nplots: " + ", ".join(f"{k}: {v}" for k, v in plots.items()))

    if args.scale:
        big = tile(rows, args.scale, args.seed)
        print(f"\n## Solver scale (synthetic: the real rows tiled to {len(big):,} creators, demand jittered)")
        for arm in ("unregulated", "regulated"):
            policy = dataclasses.replace(base, regulated=(arm == "regulated"))
            solved, seconds = solve_all(big, policy)
            s = summarise(solved, policy)
            print(f"{arm:<11} {seconds:7.2f}s over {big['market'].nunique()} markets; checks "
                  f"{'pass' if not s['violations'] else 'FAIL ' + str(s['violations'])}")

    if not args.no_mlflow:
        import mlflow

        from libs.platform.tracking import experiment

        with mlflow.start_run(experiment_id=experiment(settings, "traffic-quotas"),
                              run_name=f"frontier-{args.run_date}"):
            mlflow.log_params({"run_date": args.run_date.isoformat(), "creators": len(rows), "rounds": args.rounds,
                               **{f"policy.{k}": v for k, v in dataclasses.asdict(base).items()}})
            for p in points:
                key = f"{p['arm']}.lam{p['lam']:g}_mu{p['mu']:g}"
                mlflow.log_metrics({f"{key}.{k}": float(p[k]) for k in ("gmv_retained", "gmv_vs_ref", "gini", "top_share",
                                                                         "hq_share")
                                    if p[k] is not None})
            last = m[m["round"] == m["round"].max()].set_index("arm")
            mlflow.log_metrics({"sim.gmv_retained": comp.gmv_retained,
                                "sim.gini.regulated": float(last.loc["regulated", "gini"]),
                                "sim.gini.unregulated": float(last.loc["unregulated", "gini"])})
            mlflow.log_artifacts(str(out_dir), artifact_path="traffic_quotas")
        print(f"logged to MLflow experiment {settings.mlflow['experiment_prefix']}-traffic-quotas")
    print(f"\ntotal {time.time() - started:.1f}s")
    if failures:
        print(f"CONSTRAINT CHECK FAILED: {failures}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
