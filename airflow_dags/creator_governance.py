"""Airflow DAG for the creator-governance pipeline, built from ``conf/pipeline.yaml``.

Deliberately thin: tasks, dependencies, arguments and scheduling all come from the pipeline
file that ``cgov pipeline`` also runs, so this file never needs editing when a job is added.
Each task is one ``spark-submit jobs/<job>.py --run-date {{ ds }} --env <env> [args]``: the run
date is the logical date of the DAG run (never the clock), so a re-run recomputes its own day.

Deployment knobs are environment variables of the Airflow processes, not Airflow Variables,
because Variables would cost a metadata-DB round-trip at every parse:

* ``CGOV_ENV`` (default ``prod``): the settings file ``conf/<env>.yaml`` the jobs read.
* ``CGOV_APPLICATION_ROOT`` (default: the checkout this file lives in): where spark-submit
  finds ``jobs/<job>.py``.
* ``CGOV_PY_FILES`` (optional): the project wheel, renamed .zip (`make dist`), shipped with
  ``--py-files`` (unset when the cluster image has the wheel installed).

Schedule: a cron from the pipeline file, wrapped in a *data-interval* timetable on purpose.
Airflow 3's default for a cron string is a trigger timetable whose ``{{ ds }}`` is the day the run
starts -- a day with no complete data yet. With data intervals the run that starts at
2026-11-02 00:00 UTC gets ``ds = 2026-11-01``: the finished day, which is what jobs compute.

Parsing does nothing beyond reading the YAML (no clock, no DB, no network).
"""
from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

REPO_ROOT = Path(__file__).resolve().parents[1]

try:
    from libs.platform.config import KNOWN_ENVS
    from libs.platform.pipeline import load_pipeline
except ModuleNotFoundError as exc:
    # The DAG folder is on sys.path, the repo root is not (unless the wheel is installed).
    if not (exc.name or "").startswith("libs"):
        raise
    sys.path.insert(0, str(REPO_ROOT))
    from libs.platform.config import KNOWN_ENVS
    from libs.platform.pipeline import load_pipeline

CGOV_ENV = os.environ.get("CGOV_ENV", "prod")
APPLICATION_ROOT = os.environ.get("CGOV_APPLICATION_ROOT", str(REPO_ROOT)).rstrip("/")
if CGOV_ENV not in KNOWN_ENVS:
    # Fail the parse (a visible DAG import error) rather than every task at run time.
    raise ValueError(f"CGOV_ENV={CGOV_ENV!r} is not one of {', '.join(KNOWN_ENVS)}")

pipeline = load_pipeline()

default_args = dict(pipeline.default_args)
if "retry_delay_minutes" in default_args:
    default_args["retry_delay"] = dt.timedelta(minutes=default_args.pop("retry_delay_minutes"))

with DAG(
    dag_id=pipeline.dag_id,
    description=pipeline.description,
    schedule=None if pipeline.schedule is None else CronDataIntervalTimetable(pipeline.schedule, timezone="UTC"),
    start_date=pendulum.datetime(pipeline.start_date.year, pipeline.start_date.month,
                                 pipeline.start_date.day, tz="UTC"),
    catchup=pipeline.catchup,
    max_active_runs=pipeline.max_active_runs,
    default_args=default_args,
    tags=["creator-governance", "spark"],
) as dag:
    operators: dict[str, SparkSubmitOperator] = {}
    for task in pipeline.topological_order():
        operators[task.job] = SparkSubmitOperator(
            task_id=task.job,
            application=f"{APPLICATION_ROOT}/jobs/{task.job}.py",
            conn_id=pipeline.spark_submit["conn_id"],
            packages=pipeline.spark_submit["packages"],
            name=f"cgov-{task.job}",
            py_files=os.environ.get("CGOV_PY_FILES") or None,
            application_args=["--run-date", "{{ ds }}", "--env", CGOV_ENV, *task.args],
        )
        for upstream in task.depends_on:
            # Topological order guarantees every upstream operator already exists.
            operators[upstream] >> operators[task.job]
