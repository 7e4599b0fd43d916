"""The DAGs of ``conf/pipeline.yaml``, loaded and validated in one place.

One file declares several Airflow DAGs (daily processing, weekly retraining, maintenance): shared
``default_args`` and ``spark_submit`` settings, then a ``dags:`` mapping of ``dag_id`` -> schedule
and tasks. Airflow (``airflow_dags/`` through :mod:`libs.platform.airflow_dags`) and the local
runner (``cgov pipeline``) both build from :func:`load_pipelines`, so the tasks, their order and
their arguments cannot drift between what a data engineer runs on a laptop and what the
scheduler runs in production.

Two kinds of dependency, because the DAGs run on their own schedules:

* ``depends_on``: jobs of the *same* DAG that must finish first -- an Airflow edge.
* ``needs``: jobs of *another* DAG whose output the task reads (``creator_quality_scores`` scores
  with the champion that ``creator_quality_model`` of the weekly DAG registers). Airflow gets no
  edge for it (a cross-DAG sensor would couple the schedules, and a job whose input is missing
  already fails loudly); it is documentation there. The local runner, which runs a selection of
  DAGs in one go, treats it as an edge: :meth:`PipelineSet.merged`.

Validation happens at load time, with messages that name the offending task, because the
consumers fail far from the YAML otherwise: Airflow as an opaque DAG import error, the local
runner half-way through a run.
"""
from __future__ import annotations

import datetime as dt
import enum
import heapq
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Iterable, Mapping

import yaml

from libs.platform.config import KNOWN_ENVS
from libs.platform.jobargs import run_date as _parse_run_date

PIPELINE_FILE = "pipeline.yaml"
_TOP_KEYS = frozenset({"default_args", "spark_submit", "dags"})
_TOP_REQUIRED = ("spark_submit", "dags")
_DAG_KEYS = frozenset({"description", "schedule", "start_date", "catchup", "max_active_runs", "tasks"})
_DAG_REQUIRED = ("schedule", "start_date", "tasks")
_TASK_KEYS = frozenset({"job", "depends_on", "needs", "args"})
# Airflow's own rule for a dag_id (airflow.utils.helpers.KEY_REGEX): letters, digits, _ . -
_DAG_ID = re.compile(r"[\w.-]{1,250}", re.ASCII)


class PipelineError(ValueError):
    """``conf/pipeline.yaml`` (or inline pipeline text) is malformed or inconsistent."""


class JobCheck(enum.Enum):
    """Default of ``load_pipelines(known_jobs=...)``: check jobs against ``available_jobs()``.

    A sentinel rather than ``None`` because ``None`` has to mean "skip the check" (tests with
    inline YAML name jobs that do not exist).
    """

    AVAILABLE_JOBS = "available_jobs()"


@dataclass(frozen=True)
class Task:
    """One node: a job module, what it waits for, and its extra CLI args.

    ``depends_on`` are jobs of the same DAG (Airflow edges); ``needs`` are jobs of other DAGs
    whose output the job reads (no Airflow edge; see the module docstring). ``args`` come after
    the ``--run-date``/``--env`` pair that every job receives.
    """

    job: str
    depends_on: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pipeline:
    """One DAG: scheduling settings plus its validated task graph.

    ``tasks`` keep their declaration order; :meth:`topological_order` derives a run order from
    it, deterministically, so the local runner executes the same sequence on every machine.
    The merged graph of the local runner (:meth:`PipelineSet.merged`) is a ``Pipeline`` too.
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
        """Tasks so that every task comes after all of its ``depends_on``.

        Kahn's algorithm with ties broken by declaration order (a heap keyed on the position in
        the YAML): among the tasks that are ready at any point, the one declared first runs
        first. The result depends only on the file, never on dict or set iteration order.
        """
        order, remaining = _kahn(self.tasks)
        if remaining:  # load_pipelines rejects cycles; this guards hand-built Pipelines too.
            raise PipelineError(_cycle_message(self.tasks, remaining))
        return order


@dataclass(frozen=True)
class PipelineSet:
    """Every DAG of the pipeline file, in declaration order, plus the settings they share."""

    dags: Mapping[str, Pipeline]
    default_args: Mapping[str, Any]
    spark_submit: Mapping[str, Any]

    @property
    def dag_ids(self) -> tuple[str, ...]:
        return tuple(self.dags)

    def dag(self, dag_id: str) -> Pipeline:
        """The DAG ``dag_id`` (exact id); an unknown id is a :class:`PipelineError`."""
        try:
            return self.dags[dag_id]
        except KeyError:
            raise PipelineError(f"no DAG {dag_id!r}; declared: {', '.join(self.dags)}") from None

    def dag_of(self, job: str) -> str:
        """The id of the DAG that runs ``job``."""
        for dag_id, pipeline in self.dags.items():
            if job in pipeline.jobs:
                return dag_id
        raise PipelineError(f"no DAG runs job {job!r}")

    def select(self, names: Iterable[str] | None = None) -> tuple[str, ...]:
        """DAG ids for ``names`` (ids or their ``_``-separated suffixes), in declaration order.

        ``None`` or an empty selection means every DAG. ``daily`` selects
        ``creator_governance_daily``; a suffix that fits several DAGs or none is an error naming
        the candidates, never a guess.
        """
        wanted = [n.strip() for n in (names or ()) if n.strip()]
        if not wanted:
            return self.dag_ids
        chosen: set[str] = set()
        for name in wanted:
            if name in self.dags:
                chosen.add(name)
                continue
            matches = [d for d in self.dags if d.endswith(f"_{name}")]
            if len(matches) != 1:
                what = "is ambiguous: it fits " + ", ".join(matches) if matches else "matches no DAG"
                raise PipelineError(f"DAG selection {name!r} {what}; declared: {', '.join(self.dags)}")
            chosen.add(matches[0])
        return tuple(d for d in self.dags if d in chosen)

    def merged(self, dag_ids: Iterable[str] | None = None) -> Pipeline:
        """The selected DAGs as ONE graph, for the local runner.

        Edges are ``depends_on`` plus every ``needs`` whose job is among the selected DAGs
        (appended to the task's ``depends_on``); a need outside the selection stays in ``needs``:
        the run then reads whatever that job last wrote. Tasks are listed DAG by DAG in
        declaration order, so :meth:`Pipeline.topological_order` breaks ties by DAG, then by task.
        """
        selected = self.select(dag_ids)
        pipelines = [self.dags[d] for d in selected]
        in_run = {job for p in pipelines for job in p.jobs}
        tasks = tuple(
            Task(job=t.job,
                 depends_on=tuple(dict.fromkeys((*t.depends_on, *(n for n in t.needs if n in in_run)))),
                 args=t.args,
                 needs=tuple(n for n in t.needs if n not in in_run))
            for p in pipelines for t in p.tasks)
        return Pipeline(
            dag_id="+".join(selected),
            description="merged: " + ", ".join(selected),
            schedule=None,  # never scheduled: it exists for `cgov pipeline` only
            start_date=min(p.start_date for p in pipelines),
            catchup=False,
            max_active_runs=1,
            default_args=dict(self.default_args),
            spark_submit=dict(self.spark_submit),
            tasks=tasks,
        )


def _kahn(tasks: tuple[Task, ...]) -> tuple[list[Task], set[str]]:
    """Kahn's algorithm over ``depends_on``; the ordered tasks and the jobs left over (on or behind a cycle)."""
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
    # Print in run direction (dependency before dependent): a -> b reads "b depends on (or needs) a".
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


def _parse_task(dag_id: str, index: int, raw: Any) -> Task:
    where = f"DAG {dag_id!r}: tasks[{index}]"
    if not isinstance(raw, dict):
        raise PipelineError(f"{where} must be a mapping with a 'job' key, got {raw!r}")
    unknown = set(raw) - _TASK_KEYS
    if unknown:
        raise PipelineError(f"{where}: unknown key(s) {sorted(map(str, unknown))}; allowed: {sorted(_TASK_KEYS)}")
    job = raw.get("job")
    if not isinstance(job, str) or not job.isidentifier():
        # The job name is a module name (jobs/<job>.py) and an Airflow task_id.
        raise PipelineError(f"{where}: 'job' must be a module name, got {job!r}")
    return Task(job=job,
                depends_on=_str_tuple(raw.get("depends_on"), f"task {job!r}: depends_on"),
                args=_str_tuple(raw.get("args"), f"task {job!r}: args"),
                needs=_str_tuple(raw.get("needs"), f"task {job!r}: needs"))


def _parse_start_date(value: Any, dag_id: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):  # unquoted YAML dates arrive already parsed
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise PipelineError(f"DAG {dag_id!r}: start_date must be a date YYYY-MM-DD, got {value!r}")


def _parse_dag(dag_id: Any, raw: Any, default_args: Mapping[str, Any],
               spark_submit: Mapping[str, Any]) -> Pipeline:
    if not isinstance(dag_id, str) or not _DAG_ID.fullmatch(dag_id):
        raise PipelineError(f"DAG id {dag_id!r} must be letters, digits, '_', '.' or '-' (Airflow's rule)")
    if not isinstance(raw, dict):
        raise PipelineError(f"DAG {dag_id!r} must be a mapping, got {raw!r}")
    unknown = set(raw) - _DAG_KEYS
    if unknown:
        raise PipelineError(f"DAG {dag_id!r}: unknown key(s) {sorted(map(str, unknown))}; allowed: {sorted(_DAG_KEYS)}")
    missing = [k for k in _DAG_REQUIRED if k not in raw]
    if missing:
        raise PipelineError(f"DAG {dag_id!r} is missing required key(s): {', '.join(missing)}")
    if not isinstance(raw["tasks"], list) or not raw["tasks"]:
        raise PipelineError(f"DAG {dag_id!r}: 'tasks' must be a non-empty list")
    schedule = raw["schedule"]
    if schedule is not None and not isinstance(schedule, str):
        raise PipelineError(f"DAG {dag_id!r}: schedule must be a string (cron or preset) or null, got {schedule!r}")
    catchup = raw.get("catchup", False)
    if not isinstance(catchup, bool):
        raise PipelineError(f"DAG {dag_id!r}: catchup must be true or false, got {catchup!r}")
    max_active_runs = raw.get("max_active_runs", 1)
    if isinstance(max_active_runs, bool) or not isinstance(max_active_runs, int) or max_active_runs < 1:
        raise PipelineError(f"DAG {dag_id!r}: max_active_runs must be a positive integer, got {max_active_runs!r}")
    return Pipeline(
        dag_id=dag_id,
        description=str(raw.get("description") or ""),
        schedule=schedule,
        start_date=_parse_start_date(raw["start_date"], dag_id),
        catchup=catchup,
        max_active_runs=max_active_runs,
        default_args=dict(default_args),
        spark_submit=dict(spark_submit),
        tasks=tuple(_parse_task(dag_id, i, t) for i, t in enumerate(raw["tasks"])),
    )


def _validate(dags: Mapping[str, Pipeline], known_jobs: Iterable[str] | None) -> None:
    """The cross-task rules; each message names the task (and its DAG) at fault."""
    owner: dict[str, str] = {}  # job -> the DAG that runs it
    for dag_id, p in dags.items():
        seen: set[str] = set()
        for t in p.tasks:
            if t.job in seen:
                raise PipelineError(f"duplicate task {t.job!r} in DAG {dag_id!r}: each job may appear once")
            seen.add(t.job)
            if t.job in owner:
                raise PipelineError(f"job {t.job!r} appears in DAG {owner[t.job]!r} and in DAG {dag_id!r}: "
                                    "a job belongs to one DAG")
            owner[t.job] = dag_id
    for dag_id, p in dags.items():
        for t in p.tasks:
            for dep in t.depends_on:
                if dep not in owner:
                    raise PipelineError(f"task {t.job!r} of DAG {dag_id!r} depends on unknown task {dep!r}")
                if owner[dep] != dag_id:
                    raise PipelineError(
                        f"task {t.job!r} of DAG {dag_id!r} depends on {dep!r} of DAG {owner[dep]!r}: depends_on "
                        "stays within one DAG; list a job of another DAG under needs")
            for need in t.needs:
                if need not in owner:
                    raise PipelineError(f"task {t.job!r} of DAG {dag_id!r} needs unknown task {need!r}")
                if owner[need] == dag_id:
                    raise PipelineError(
                        f"task {t.job!r} of DAG {dag_id!r} needs {need!r} of the same DAG: needs names jobs of "
                        "other DAGs; use depends_on")
    # One graph over all DAGs with depends_on + needs: what the local runner executes. A cycle
    # through needs would make that run impossible and the DAGs' outputs circular.
    merged = PipelineSet(dags=dags, default_args={}, spark_submit={}).merged()
    _, remaining = _kahn(merged.tasks)
    if remaining:
        raise PipelineError(_cycle_message(merged.tasks, remaining))
    if known_jobs is not None:
        known = set(known_jobs)
        missing = [job for job in owner if job not in known]
        if missing:
            raise PipelineError(f"task(s) {missing} have no job module jobs/<name>.py; "
                                f"available jobs: {sorted(known)}")


def load_pipelines(text: str | None = None,
                   known_jobs: Iterable[str] | None | JobCheck = JobCheck.AVAILABLE_JOBS) -> PipelineSet:
    """Parse and validate every DAG of the pipeline file.

    ``text`` defaults to the packaged ``conf/pipeline.yaml``; tests pass inline YAML instead.
    ``known_jobs`` are the job names a task may use: by default the modules under ``jobs/``
    (``cgov list``), so a typo fails here and not at 3 a.m. in the scheduler; ``None`` skips
    the check.
    """
    data = yaml.safe_load(_read_text() if text is None else text)
    if not isinstance(data, dict):
        raise PipelineError("the pipeline must be a YAML mapping at top level")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise PipelineError(f"unknown top-level key(s) {sorted(map(str, unknown))}; allowed: {sorted(_TOP_KEYS)} "
                            "(DAG settings and tasks go under dags: <dag_id>:)")
    missing = [k for k in _TOP_REQUIRED if k not in data]
    if missing:
        raise PipelineError(f"the pipeline is missing required key(s): {', '.join(missing)}")
    spark_submit = data["spark_submit"]
    if not isinstance(spark_submit, dict) or not all(
            isinstance(spark_submit.get(k), str) and spark_submit[k] for k in ("conn_id", "packages")):
        raise PipelineError("spark_submit must be a mapping with string 'conn_id' and 'packages'")
    default_args = data.get("default_args") or {}
    if not isinstance(default_args, dict):
        raise PipelineError(f"default_args must be a mapping, got {default_args!r}")
    raw_dags = data["dags"]
    if not isinstance(raw_dags, dict) or not raw_dags:
        raise PipelineError("'dags' must be a non-empty mapping of dag_id -> DAG")
    # yaml.safe_load keeps mapping order (dict insertion order): the declaration order of the DAGs.
    dags = {dag_id: _parse_dag(dag_id, raw, default_args, spark_submit) for dag_id, raw in raw_dags.items()}

    if known_jobs is JobCheck.AVAILABLE_JOBS:
        from libs.platform.cli import available_jobs  # late: cli imports this module at its top

        known_jobs = available_jobs()
    _validate(dags, known_jobs)
    return PipelineSet(dags=dags, default_args=dict(default_args), spark_submit=dict(spark_submit))


def job_arguments(task: Task, env: str, run_date: str) -> list[str]:
    """The job's own argv: the ``--run-date``/``--env`` pair every job takes, then the task's args.

    Shared by the local runner and spark-submit so a job sees identical arguments on both paths.
    """
    return ["--run-date", run_date, "--env", env, *task.args]


def spark_submit_command(task: Task, env: str, run_date: str, application_root: str,
                         packages: str | None, *, jars: str | None = None,
                         py_files: str | None = None) -> list[str]:
    """The exact spark-submit argv for ``task`` (what the Airflow task runs, minus the cluster
    options such as ``--master`` that the Spark connection supplies).

    Delta comes from ``packages`` (Maven coordinates) or ``jars`` (pre-resolved files, for a
    cluster that cannot reach Maven); ``py_files`` ships the project wheel. Options appear in the
    order Airflow's SparkSubmitHook emits them, and must precede the application path:
    everything after it goes to the job. ``run_date`` and ``env`` are checked here because a bad
    value would otherwise surface only as a job failure on the cluster.
    """
    if env not in KNOWN_ENVS:
        raise PipelineError(f"unknown environment {env!r}; expected one of {', '.join(KNOWN_ENVS)}")
    try:
        _parse_run_date(run_date)
    except Exception as exc:  # argparse.ArgumentTypeError carries the readable message
        raise PipelineError(str(exc)) from None
    if not packages and not jars:
        raise PipelineError("spark-submit needs Delta from packages or jars; both are empty")
    application = f"{application_root.rstrip('/')}/jobs/{task.job}.py"
    options: list[str] = []
    if py_files:
        options += ["--py-files", py_files]
    if jars:
        options += ["--jars", jars]
    if packages:
        options += ["--packages", packages]
    return [
        "spark-submit",
        *options,
        "--name", f"cgov-{task.job}",
        application,
        *job_arguments(task, env, run_date),
    ]
