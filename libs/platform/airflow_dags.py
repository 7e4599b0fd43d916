"""Airflow DAGs from the pipeline file: the one builder every DAG file (and the DAG tests) uses.

Each task is one ``spark-submit jobs/<job>.py --run-date <day> --env <env> [args]`` through the
Spark provider's ``SparkSubmitOperator``; nothing about a task is decided here that the pipeline
file (:mod:`libs.platform.pipeline`) does not say, so the local runner and Airflow run the same
jobs with the same arguments (``spark_submit_command`` is the argv the tests compare against).

**Run date.** ``--run-date`` is the last full day that ended before the run started:
``data_interval_end - 1 day`` (:data:`RUN_DATE_TEMPLATE`), never the clock, so a re-run recomputes
its own day. With the data-interval timetable of a daily cron this is exactly ``{{ ds }}`` (the run
starting 2026-11-02 01:00 UTC computes 2026-11-01). It differs for the weekly retraining DAG, on
purpose: ``{{ ds }}`` is the *start* of a week-long interval, so Monday's training would read the
tables of the Monday before and miss the week it exists to learn from; ``data_interval_end - 1
day`` is the Sunday the daily run has just finished. A manual run gets the last complete interval
(Airflow's ``infer_manual_data_interval``), i.e. again the last finished day, never "today".

**Schedule.** The cron of the pipeline file wrapped in a *data-interval* timetable on purpose:
Airflow 3's default for a cron string is a trigger timetable, whose interval and ``ds`` belong to
the moment the run starts -- a day with no complete data yet.

**needs** (jobs of another DAG whose output a task reads) become no Airflow edge: the DAGs run on
their own schedules (a cross-DAG sensor would tie each run to the other DAG's run of the same
logical date, which a daily and a weekly DAG do not have), and a job whose input is missing
already fails loudly. They are rendered into the task's ``doc_md`` so an operator looking at a
failed task sees which DAG produces its inputs.

Deployment knobs are environment variables of the Airflow processes (:meth:`Deployment.from_environ`),
not Airflow Variables, because Variables would cost a metadata-DB round-trip at every parse.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any, Mapping

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, CronDataIntervalTimetable

from libs.platform.config import KNOWN_ENVS
from libs.platform.pipeline import Pipeline, PipelineSet, Task, job_arguments

# The last day that ended before the run started (see the module docstring). ``data_interval_end``
# is a pendulum DateTime in the task context; ``ds`` is Airflow's YYYY-MM-DD filter.
RUN_DATE_TEMPLATE = "{{ data_interval_end.subtract(days=1) | ds }}"
TAGS = ("creator-governance", "spark")


@dataclass(frozen=True)
class Deployment:
    """Where and how the tasks run; read from the environment of the Airflow processes.

    * ``CGOV_ENV`` (default ``prod``): the settings file ``conf/<env>.yaml`` the jobs read.
    * ``CGOV_APPLICATION_ROOT`` (default: the checkout the DAG file lives in): where
      spark-submit finds ``jobs/<job>.py``.
    * ``CGOV_PY_FILES`` (optional): the project wheel, renamed .zip (``make dist``), shipped with
      ``--py-files`` (unset when the cluster image has the wheel installed).
    * ``CGOV_SPARK_JARS`` (optional): comma-separated jar files (or globs, which spark-submit
      expands) passed with ``--jars`` *instead of* ``--packages``: Delta from pre-resolved jars
      (``make jars`` -> ``.jars/``) where the cluster cannot reach Maven -- jobs never download at
      run time.
    """

    env: str
    application_root: str
    py_files: str | None = None
    jars: str | None = None

    def __post_init__(self) -> None:
        if self.env not in KNOWN_ENVS:
            # Fail the parse (a visible DAG import error) rather than every task at run time.
            raise ValueError(f"CGOV_ENV={self.env!r} is not one of {', '.join(KNOWN_ENVS)}")

    @classmethod
    def from_environ(cls, default_application_root: str,
                     environ: Mapping[str, str] | None = None) -> "Deployment":
        environ = os.environ if environ is None else environ
        return cls(env=environ.get("CGOV_ENV", "prod"),
                   application_root=environ.get("CGOV_APPLICATION_ROOT", default_application_root).rstrip("/"),
                   py_files=environ.get("CGOV_PY_FILES") or None,
                   jars=environ.get("CGOV_SPARK_JARS") or None)


def airflow_default_args(default_args: Mapping[str, Any]) -> dict[str, Any]:
    """The pipeline's ``default_args`` in Airflow's terms (``retry_delay_minutes`` -> ``retry_delay``).

    The YAML keeps minutes because a ``timedelta`` cannot be written in it.
    """
    out = dict(default_args)
    if "retry_delay_minutes" in out:
        out["retry_delay"] = dt.timedelta(minutes=out.pop("retry_delay_minutes"))
    return out


def task_doc_md(task: Task, dag_of: Mapping[str, str]) -> str:
    """The task's documentation in the Airflow UI: what it runs, and where its cross-DAG inputs come from."""
    lines = [f"Runs `jobs/{task.job}.py --run-date <day> --env <env>{''.join(' ' + a for a in task.args)}` "
             "with spark-submit."]
    if task.needs:
        lines += ["", "**Needs** (reads the output of jobs of other DAGs; no Airflow edge -- those DAGs run on "
                      "their own schedules, and this job fails loudly when an input is missing):", ""]
        lines += [f"* `{need}` (DAG `{dag_of[need]}`)" for need in task.needs]
    return "\n".join(lines)


def build_dag(pipeline: Pipeline, deployment: Deployment, dag_of: Mapping[str, str] | None = None) -> DAG:
    """One Airflow DAG for ``pipeline``; ``dag_of`` (job -> dag_id) names the DAG of each ``needs``."""
    dag_of = dag_of or {}
    start = pipeline.start_date
    packages = None if deployment.jars else pipeline.spark_submit["packages"]
    with DAG(
        dag_id=pipeline.dag_id,
        description=pipeline.description,
        doc_md=f"{pipeline.description}\n\nBuilt from `conf/pipeline.yaml` by `libs/platform/airflow_dags.py`; "
               f"`--run-date` = `data_interval_end - 1 day`, env `{deployment.env}`.",
        schedule=None if pipeline.schedule is None else CronDataIntervalTimetable(pipeline.schedule, timezone="UTC"),
        start_date=pendulum.datetime(start.year, start.month, start.day, tz="UTC"),
        catchup=pipeline.catchup,
        max_active_runs=pipeline.max_active_runs,
        default_args=airflow_default_args(pipeline.default_args),
        tags=list(TAGS),
    ) as dag:
        operators: dict[str, SparkSubmitOperator] = {}
        for task in pipeline.topological_order():
            operators[task.job] = SparkSubmitOperator(
                task_id=task.job,
                application=f"{deployment.application_root}/jobs/{task.job}.py",
                conn_id=pipeline.spark_submit["conn_id"],
                packages=packages,
                jars=deployment.jars,
                py_files=deployment.py_files,
                name=f"cgov-{task.job}",
                application_args=job_arguments(task, deployment.env, RUN_DATE_TEMPLATE),
                doc_md=task_doc_md(task, dag_of),
            )
            for upstream in task.depends_on:
                # Topological order guarantees every upstream operator already exists.
                operators[upstream] >> operators[task.job]
    return dag


def build_dags(pipelines: PipelineSet, deployment: Deployment) -> dict[str, DAG]:
    """Every DAG of the set, by dag_id, in declaration order."""
    dag_of = {job: dag_id for dag_id, p in pipelines.dags.items() for job in p.jobs}
    return {dag_id: build_dag(p, deployment, dag_of) for dag_id, p in pipelines.dags.items()}
