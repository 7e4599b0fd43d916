"""The pipeline graph of ``conf/pipeline.yaml``, loaded and validated in one place.

Airflow (``airflow_dags/creator_governance.py``) and the local runner (``cgov pipeline``) both
build from :func:`load_pipeline`, so the tasks, their order and their arguments cannot drift
between what a data engineer runs on a laptop and what the scheduler runs in production.

Validation happens at load time, with messages that name the offending task, because the two
consumers fail far from the YAML otherwise: Airflow as an opaque DAG import error, the local
runner half-way through a run.
"""
from __future__ import annotations

import datetime as dt
import enum
import heapq
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Iterable, Mapping

import yaml

from libs.platform.config import KNOWN_ENVS
from libs.platform.jobargs import run_date as _parse_run_date

PIPELINE_FILE = "pipeline.yaml"
_REQUIRED_KEYS = ("dag_id", "schedule", "start_date", "tasks", "spark_submit")
_TASK_KEYS = frozenset({"job", "depends_on", "args"})


class PipelineError(ValueError):
    """``conf/pipeline.yaml`` (or inline pipeline text) is malformed or inconsistent."""


class JobCheck(enum.Enum):
    """Default of ``load_pipeline(known_jobs=...)``: check jobs against ``available_jobs()``.

    A sentinel rather than ``None`` because ``None`` has to mean "skip the check" (tests with
    inline YAML name jobs that do not exist).
    """

    AVAILABLE_JOBS = "available_jobs()"


@dataclass(frozen=True)
class Task:
    """One node of the graph: a job module, the jobs it waits for, and its extra CLI args.

    ``args`` come after the ``--run-date``/``--env`` pair that every job receives.
    """

    job: str
    depends_on: tuple[str, ...] = ()
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pipeline:
    """The whole pipeline: DAG-level scheduling settings plus the validated task graph.

    ``tasks`` keep their declaration order; :meth:`topological_order` derives a run order from
    it, deterministically, so the local runner executes the same sequence on every machine.
    """

    dag_id: str
    description: str
    schedule: str | None
    start_date: dt.date
    catchup: bool
    max_active_runs: int
    default_args: Mapping[str, Any]
    spark_submit: Mapping[str, Any]
    tasks: tuple[Task, ...] = field(default=())

    @property
    def jobs(self) -> tuple[str, ...]:
        """Job names in declaration order."""
        return tuple(t.job for t in self.tasks)

    def task(self, job: str) -> Task:
        """The task that runs ``job``; an unknown name is a :class:`PipelineError`."""
        for t in self.tasks:
            if t.job == job:
                return t
        raise PipelineError(f"pipeline {self.dag_id!r} has no task {job!r}")

    def topological_order(self) -> list[Task]:
        """Tasks so that every task comes after all of its dependencies.

        Kahn's algorithm with ties broken by declaration order (a heap keyed on the position in
        the YAML): among the tasks that are ready at any point, the one declared first runs
        first. The result depends only on the file, never on dict or set iteration order.
        """
        order, remaining = _kahn(self.tasks)
        if remaining:  # load_pipeline rejects cycles; this guards hand-built Pipelines too.
            raise PipelineError(_cycle_message(self.tasks, remaining))
        return order


def _kahn(tasks: tuple[Task, ...]) -> tuple[list[Task], set[str]]:
    """Kahn's algorithm; returns the ordered tasks and the jobs left over (those on or behind a cycle)."""
    position = {t.job: i for i, t in enumerate(tasks)}
    indegree = {t.job: len(set(t.depends_on)) for t in tasks}
    dependents: dict[str, list[str]] = {t.job: [] for t in tasks}
    for t in tasks:
        for dep in dict.fromkeys(t.depends_on):
            dependents[dep].append(t.job)
    ready = [position[j] for j, n in indegree.items() if n == 0]
    heapq.heapify(ready)
    order: list[Task] = []
    while ready:
        task = tasks[heapq.heappop(ready)]
        order.append(task)
        for child in dependents[task.job]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, position[child])
    remaining = {j for j, n in indegree.items() if n > 0}
    return order, remaining


def _cycle_message(tasks: tuple[Task, ...], remaining: set[str]) -> str:
    """Name one concrete cycle among the jobs Kahn's algorithm could not order.

    Every leftover job has at least one leftover dependency, so walking "first leftover
    dependency" from any of them must revisit a job: the walk from that job on is a cycle.
    Starting from the first declared leftover keeps the message stable.
    """
    by_job = {t.job: t for t in tasks}
    start = next(t.job for t in tasks if t.job in remaining)
    path: list[str] = []
    seen: dict[str, int] = {}
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(d for d in by_job[node].depends_on if d in remaining)
    cycle = path[seen[node]:] + [node]
    # Print in run direction (dependency before dependent): a -> b reads "b depends on a".
    return "dependency cycle: " + " -> ".join(reversed(cycle))


def _read_text() -> str:
    # importlib.resources works from a source checkout and from the installed wheel alike
    # (conf/ is package data), exactly like libs.platform.config.
    return resources.files("conf").joinpath(PIPELINE_FILE).read_text(encoding="utf-8")


def _str_tuple(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PipelineError(f"{what} must be a list of strings, got {value!r}")
    return tuple(value)


def _parse_task(index: int, raw: Any) -> Task:
    if not isinstance(raw, dict):
        raise PipelineError(f"tasks[{index}] must be a mapping with a 'job' key, got {raw!r}")
    unknown = set(raw) - _TASK_KEYS
    if unknown:
        raise PipelineError(f"tasks[{index}]: unknown key(s) {sorted(map(str, unknown))}; "
                            f"allowed: {sorted(_TASK_KEYS)}")
    job = raw.get("job")
    if not isinstance(job, str) or not job.isidentifier():
        # The job name is a module name (jobs/<job>.py) and an Airflow task_id.
        raise PipelineError(f"tasks[{index}]: 'job' must be a module name, got {job!r}")
    return Task(job=job,
                depends_on=_str_tuple(raw.get("depends_on"), f"task {job!r}: depends_on"),
                args=_str_tuple(raw.get("args"), f"task {job!r}: args"))


def _parse_start_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):  # unquoted YAML dates arrive already parsed
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise PipelineError(f"start_date must be a date YYYY-MM-DD, got {value!r}")


def _validate_graph(tasks: tuple[Task, ...], known_jobs: Iterable[str] | None) -> None:
    seen: set[str] = set()
    for t in tasks:
        if t.job in seen:
            raise PipelineError(f"duplicate task {t.job!r}: each job may appear once")
        seen.add(t.job)
    for t in tasks:
        for dep in t.depends_on:
            if dep not in seen:
                raise PipelineError(f"task {t.job!r} depends on unknown task {dep!r}")
    _, remaining = _kahn(tasks)
    if remaining:
        raise PipelineError(_cycle_message(tasks, remaining))
    if known_jobs is not None:
        known = set(known_jobs)
        missing = [t.job for t in tasks if t.job not in known]
        if missing:
            raise PipelineError(f"task(s) {missing} have no job module jobs/<name>.py; "
                                f"available jobs: {sorted(known)}")


def load_pipeline(text: str | None = None,
                  known_jobs: Iterable[str] | None | JobCheck = JobCheck.AVAILABLE_JOBS) -> Pipeline:
    """Parse and validate the pipeline.

    ``text`` defaults to the packaged ``conf/pipeline.yaml``; tests pass inline YAML instead.
    ``known_jobs`` are the job names a task may use: by default the modules under ``jobs/``
    (``cgov list``), so a typo fails here and not at 3 a.m. in the scheduler; ``None`` skips
    the check.
    """
    data = yaml.safe_load(_read_text() if text is None else text)
    if not isinstance(data, dict):
        raise PipelineError("the pipeline must be a YAML mapping at top level")
    missing = [k for k in _REQUIRED_KEYS if k not in data]
    if missing:
        raise PipelineError(f"the pipeline is missing required key(s): {', '.join(missing)}")
    if not isinstance(data["tasks"], list) or not data["tasks"]:
        raise PipelineError("'tasks' must be a non-empty list")
    tasks = tuple(_parse_task(i, raw) for i, raw in enumerate(data["tasks"]))

    spark_submit = data["spark_submit"]
    if not isinstance(spark_submit, dict) or not all(
            isinstance(spark_submit.get(k), str) and spark_submit[k] for k in ("conn_id", "packages")):
        raise PipelineError("spark_submit must be a mapping with string 'conn_id' and 'packages'")
    default_args = data.get("default_args") or {}
    if not isinstance(default_args, dict):
        raise PipelineError(f"default_args must be a mapping, got {default_args!r}")
    schedule = data["schedule"]
    if schedule is not None and not isinstance(schedule, str):
        raise PipelineError(f"schedule must be a string (cron or preset) or null, got {schedule!r}")
    catchup = data.get("catchup", False)
    if not isinstance(catchup, bool):
        raise PipelineError(f"catchup must be true or false, got {catchup!r}")
    max_active_runs = data.get("max_active_runs", 1)
    if isinstance(max_active_runs, bool) or not isinstance(max_active_runs, int) or max_active_runs < 1:
        raise PipelineError(f"max_active_runs must be a positive integer, got {max_active_runs!r}")

    if known_jobs is JobCheck.AVAILABLE_JOBS:
        from libs.platform.cli import available_jobs  # late: cli imports this module lazily too

        known_jobs = available_jobs()
    _validate_graph(tasks, known_jobs)

    return Pipeline(
        dag_id=str(data["dag_id"]),
        description=str(data.get("description") or ""),
        schedule=schedule,
        start_date=_parse_start_date(data["start_date"]),
        catchup=catchup,
        max_active_runs=max_active_runs,
        default_args=dict(default_args),
        spark_submit=dict(spark_submit),
        tasks=tasks,
    )


def job_arguments(task: Task, env: str, run_date: str) -> list[str]:
    """The job's own argv: the ``--run-date``/``--env`` pair every job takes, then the task's args.

    Shared by the local runner and spark-submit so a job sees identical arguments on both paths.
    """
    return ["--run-date", run_date, "--env", env, *task.args]


def spark_submit_command(task: Task, env: str, run_date: str, application_root: str,
                         packages: str) -> list[str]:
    """The exact spark-submit argv for ``task`` (what the Airflow task runs, minus the cluster
    options such as ``--master`` that the Spark connection supplies).

    spark-submit options must precede the application path; everything after it goes to the
    job. ``run_date`` and ``env`` are checked here because a bad value would otherwise surface
    only as a job failure on the cluster.
    """
    if env not in KNOWN_ENVS:
        raise PipelineError(f"unknown environment {env!r}; expected one of {', '.join(KNOWN_ENVS)}")
    try:
        _parse_run_date(run_date)
    except Exception as exc:  # argparse.ArgumentTypeError carries the readable message
        raise PipelineError(str(exc)) from None
    application = f"{application_root.rstrip('/')}/jobs/{task.job}.py"
    return [
        "spark-submit",
        "--packages", packages,
        "--name", f"cgov-{task.job}",
        application,
        *job_arguments(task, env, run_date),
    ]
