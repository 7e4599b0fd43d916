"""The pipeline graph: loading, validation and run order, on inline YAML and on the real file."""
from __future__ import annotations

import textwrap

import pytest

from libs.platform.cli import available_jobs
from libs.platform.pipeline import Pipeline, PipelineError, Task, load_pipeline, spark_submit_command

HEADER = textwrap.dedent("""\
    dag_id: test_dag
    description: inline pipeline
    schedule: "@daily"
    start_date: "2026-11-01"
    catchup: false
    max_active_runs: 1
    default_args: {owner: tests, retries: 1, retry_delay_minutes: 5}
    spark_submit: {conn_id: spark_default, packages: "g:a:1"}
    tasks:
    """)


def pipeline_text(tasks: str) -> str:
    return HEADER + textwrap.indent(textwrap.dedent(tasks), "  ")


def load_inline(tasks: str, known_jobs=None) -> Pipeline:
    return load_pipeline(pipeline_text(tasks), known_jobs=known_jobs)


def order(p: Pipeline) -> list[str]:
    return [t.job for t in p.topological_order()]


def test_inline_pipeline_fields() -> None:
    p = load_inline("""\
        - job: a
        - job: b
          depends_on: [a]
          args: ["--window-days", "28"]
        """)
    assert p.dag_id == "test_dag"
    assert p.schedule == "@daily"
    assert p.start_date.isoformat() == "2026-11-01"
    assert p.catchup is False and p.max_active_runs == 1
    assert p.default_args == {"owner": "tests", "retries": 1, "retry_delay_minutes": 5}
    assert p.spark_submit == {"conn_id": "spark_default", "packages": "g:a:1"}
    assert p.tasks == (Task("a", (), ()), Task("b", ("a",), ("--window-days", "28")))


def test_diamond_order_is_deterministic_and_follows_declaration_order() -> None:
    # d depends on b and c, which both depend on a; c is declared before b, so it runs first.
    tasks = """\
        - {job: d, depends_on: [b, c]}
        - {job: c, depends_on: [a]}
        - {job: b, depends_on: [a]}
        - {job: a}
        """
    assert order(load_inline(tasks)) == ["a", "c", "b", "d"]
    assert all(order(load_inline(tasks)) == ["a", "c", "b", "d"] for _ in range(5))


def test_ties_are_broken_by_declaration_order_not_by_name() -> None:
    p = load_inline("""\
        - {job: zeta}
        - {job: alpha}
        - {job: mid, depends_on: [zeta]}
        - {job: beta}
        """)
    assert order(p) == ["zeta", "alpha", "mid", "beta"]


def test_cycle_is_an_error_naming_the_cycle() -> None:
    with pytest.raises(PipelineError, match=r"dependency cycle: a -> c -> b -> a"):
        load_inline("""\
            - {job: root}
            - {job: a, depends_on: [root, b]}
            - {job: b, depends_on: [c]}
            - {job: c, depends_on: [a]}
            """)


def test_self_dependency_is_a_cycle() -> None:
    with pytest.raises(PipelineError, match=r"dependency cycle: a -> a"):
        load_inline("- {job: a, depends_on: [a]}\n")


def test_unknown_dependency_is_an_error() -> None:
    with pytest.raises(PipelineError, match=r"task 'b' depends on unknown task 'nope'"):
        load_inline("""\
            - {job: a}
            - {job: b, depends_on: [nope]}
            """)


def test_duplicate_task_is_an_error() -> None:
    with pytest.raises(PipelineError, match=r"duplicate task 'a'"):
        load_inline("""\
            - {job: a}
            - {job: b}
            - {job: a, depends_on: [b]}
            """)


def test_job_without_module_is_an_error_when_known_jobs_given() -> None:
    tasks = "- {job: a}\n- {job: b}\n"
    with pytest.raises(PipelineError, match=r"\['b'\] have no job module"):
        load_inline(tasks, known_jobs=["a"])
    assert load_inline(tasks, known_jobs=["a", "b", "c"]).jobs == ("a", "b")


def test_default_checks_jobs_against_available_jobs() -> None:
    with pytest.raises(PipelineError, match="no_such_job_module"):
        load_pipeline(pipeline_text("- {job: no_such_job_module}\n"))


@pytest.mark.parametrize("bad, message", [
    ("- {job: a, args: [--x, 3]}\n", "args must be a list of strings"),
    ("- {job: a, after: [b]}\n", "unknown key"),
    ("- {job: 'not-a-module'}\n", "'job' must be a module name"),
])
def test_malformed_tasks_are_rejected(bad: str, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        load_inline(bad)


def test_missing_top_level_key_is_rejected() -> None:
    with pytest.raises(PipelineError, match="missing required key"):
        load_pipeline("dag_id: x\ntasks: [{job: a}]\n", known_jobs=None)


def test_real_pipeline_loads_and_every_job_exists() -> None:
    p = load_pipeline()  # validates against available_jobs() itself
    assert p.dag_id == "creator_governance"
    assert p.tasks, "conf/pipeline.yaml declares no tasks"
    assert set(p.jobs) <= set(available_jobs())
    ordered = order(p)
    assert sorted(ordered) == sorted(p.jobs)
    for t in p.tasks:
        assert all(ordered.index(dep) < ordered.index(t.job) for dep in t.depends_on)


def test_spark_submit_command_exact_argv() -> None:
    task = Task("creator_quality_scores", depends_on=("x",), args=("--window-days", "28"))
    argv = spark_submit_command(task, env="prod", run_date="2026-11-01",
                                application_root="/opt/creatorgov/",
                                packages="io.delta:delta-spark_4.0_2.13:4.4.0")
    assert argv == [
        "spark-submit",
        "--packages", "io.delta:delta-spark_4.0_2.13:4.4.0",
        "--name", "cgov-creator_quality_scores",
        "/opt/creatorgov/jobs/creator_quality_scores.py",
        "--run-date", "2026-11-01",
        "--env", "prod",
        "--window-days", "28",
    ]


@pytest.mark.parametrize("env, run_date", [("staging", "2026-11-01"), ("prod", "2026-11-1"), ("prod", "{{ ds }}")])
def test_spark_submit_command_rejects_bad_env_or_date(env: str, run_date: str) -> None:
    with pytest.raises(PipelineError):
        spark_submit_command(Task("a"), env=env, run_date=run_date, application_root="/r", packages="p")
