"""``cgov``: run any job by name, list jobs, or run the whole pipeline locally.

    cgov run smoke_graph_metrics --run-date 2026-11-01 --env local
    cgov list
    cgov pipeline --run-date 2026-11-01 --env local
    cgov pipeline --run-date 2026-11-01 --env local --dags daily,maintenance

Jobs are the modules ``jobs/<table_it_writes>.py``; the same modules run under spark-submit, so
what a data engineer runs locally is what Airflow schedules. ``cgov pipeline`` runs the selected
DAGs of ``conf/pipeline.yaml`` (default: all) as one graph -- ``depends_on`` plus the cross-DAG
``needs`` -- so a fresh machine goes from ingestion through training, scoring and maintenance in
one command (see :meth:`libs.platform.pipeline.PipelineSet.merged`).
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from typing import Sequence

import jobs
from libs.platform.jobargs import run_date
from libs.platform.pipeline import PipelineError, job_arguments, load_pipelines


class UnknownJobError(LookupError):
    pass


def available_jobs() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(jobs.__path__) if not m.name.startswith("_"))


def load_job(name: str):
    if name not in available_jobs():
        raise UnknownJobError(f"unknown job {name!r}; available: {', '.join(available_jobs())}")
    module = importlib.import_module(f"jobs.{name}")
    for attr in ("arg_parser", "main"):
        if not callable(getattr(module, attr, None)):
            raise UnknownJobError(f"jobs.{name} has no {attr}(): not a job module")
    return module


def run_named_job(name: str, argv: Sequence[str], progress: str = "") -> float:
    """Run one job in this process; returns its wall seconds."""
    module = load_job(name)
    args = module.arg_parser().parse_args(list(argv))
    started = time.monotonic()
    print(f"[cgov] {progress}{name} {' '.join(argv)}", flush=True)
    module.main(**vars(args))
    seconds = time.monotonic() - started
    print(f"[cgov] {progress}{name} finished in {seconds:.1f}s", flush=True)
    return seconds


def run_pipeline(run_date: str, env: str, dags: Sequence[str] | None = None, summary: bool = True) -> list[str]:
    """Run the selected DAGs (ids or suffixes; empty = all) as one graph; returns the jobs run, in order.

    The whole order is printed before the first job starts, with every need that lies outside the
    selection (that job then reads what the need's job last wrote, e.g. the registered champion).
    """
    merged = load_pipelines().merged(dags)
    order = merged.topological_order()
    print(f"[cgov] pipeline {merged.dag_id} for {run_date} (env={env}): {len(order)} tasks", flush=True)
    for i, task in enumerate(order, start=1):
        outside = f"   (outside this run, reads the latest output of: {', '.join(task.needs)})" if task.needs else ""
        print(f"[cgov] {i:>3}. {task.job}{outside}", flush=True)
    timings: dict[str, float] = {}
    started = time.monotonic()
    for i, task in enumerate(order, start=1):
        elapsed = (time.monotonic() - started) / 60
        timings[task.job] = run_named_job(task.job, job_arguments(task, env, run_date),
                                          progress=f"({i}/{len(order)}, {elapsed:.1f} min) ")
    if summary:
        print_summary(run_date, env, timings)
    return [t.job for t in order]


def print_summary(run_date: str, env: str, timings: dict[str, float]) -> None:
    """The run's closing summary (:mod:`libs.platform.run_summary`), read back from the lakehouse."""
    from libs.platform.config import load_settings
    from libs.platform.run_summary import summary_text
    from libs.platform.session import get_spark

    settings = load_settings(env)
    print(summary_text(get_spark(settings, "cgov-summary"), settings, run_date, timings), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cgov", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one job", add_help=False)
    run.add_argument("job")
    sub.add_parser("list", help="list the jobs")
    pipe = sub.add_parser("pipeline", help="run DAGs of conf/pipeline.yaml as one graph in dependency order")
    pipe.add_argument("--run-date", type=run_date, required=True)
    pipe.add_argument("--env", default="local")
    pipe.add_argument("--dags", default="",
                      help="comma-separated DAG ids or their suffixes (daily, weekly_retraining, maintenance); "
                           "default: every DAG")
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command == "list":
            print("\n".join(available_jobs()))
        elif args.command == "run":
            run_named_job(args.job, rest)
        else:
            if rest:
                parser.error(f"unrecognized arguments: {' '.join(rest)}")
            run_pipeline(args.run_date.isoformat(), args.env, args.dags.split(","))
    except (UnknownJobError, PipelineError) as exc:
        print(f"cgov: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
