"""The pipeline file: loading the DAG set, validation, run orders (per DAG and merged), the local runner.

Inline YAML for the rules (expected orders worked out by hand in the comments), then the real
``conf/pipeline.yaml``: its three DAGs, their job partition and the cross-DAG ``needs``.
"""
from __future__ import annotations

import datetime as dt
import textwrap

import pytest

from libs.platform import cli
from libs.platform.cli import available_jobs
from libs.platform.pipeline import (Pipeline, PipelineError, PipelineSet, Task, load_pipelines,
                                    spark_submit_command)

HEADER = textwrap.dedent("""\
    default_args: {owner: tests, retries: 1, retry_delay_minutes: 5}
    spark_submit: {conn_id: spark_default, packages: "g:a:1"}
    dags:
    """)


def dag_text(dag_id: str, tasks: str, schedule: str = '"@daily"') -> str:
    """One entry of ``dags:`` with ``tasks`` (a YAML list, dedented) under it."""
    body = textwrap.dedent(f"""\
        {dag_id}:
          description: inline {dag_id}
          schedule: {schedule}
          start_date: "2026-11-01"
          catchup: false
          max_active_runs: 1
          tasks:
        """) + textwrap.indent(textwrap.dedent(tasks), "    ")
    return textwrap.indent(body, "  ")


def load_set(*dags: str, known_jobs=None) -> PipelineSet:
    return load_pipelines(HEADER + "".join(dags), known_jobs=known_jobs)


def load_inline(tasks: str, known_jobs=None) -> Pipeline:
    """A set with the single DAG ``test_dag``."""
    return load_set(dag_text("test_dag", tasks), known_jobs=known_jobs).dag("test_dag")


def order(p: Pipeline) -> list[str]:
    return [t.job for t in p.topological_order()]


# -- loading -------------------------------------------------------------------------------------

def test_inline_set_fields() -> None:
    s = load_set(
        dag_text("etl", """\
            - job: a
            - job: b
              depends_on: [a]
              needs: [t]
              args: ["--window-days", "28"]
            """),
        dag_text("train", "- {job: t, needs: [a]}\n", schedule='"0 3 * * 1"'),
    )
    assert s.dag_ids == ("etl", "train")
    assert list(s.dags) == ["etl", "train"]
    assert s.default_args == {"owner": "tests", "retries": 1, "retry_delay_minutes": 5}
    assert s.spark_submit == {"conn_id": "spark_default", "packages": "g:a:1"}
    etl = s.dag("etl")
    assert etl.dag_id == "etl" and etl.description == "inline etl"
    assert etl.schedule == "@daily"
    assert etl.start_date == dt.date(2026, 11, 1)
    assert etl.catchup is False and etl.max_active_runs == 1
    # Every DAG carries the shared settings (Airflow builds one DAG from one Pipeline).
    assert etl.default_args == {"owner": "tests", "retries": 1, "retry_delay_minutes": 5}
    assert etl.spark_submit == {"conn_id": "spark_default", "packages": "g:a:1"}
    assert etl.tasks == (Task("a"), Task("b", depends_on=("a",), args=("--window-days", "28"), needs=("t",)))
    assert s.dag("train").schedule == "0 3 * * 1"
    assert s.dag("train").tasks == (Task("t", needs=("a",)),)
    assert s.dag_of("b") == "etl" and s.dag_of("t") == "train"
    with pytest.raises(PipelineError, match="no DAG 'nope'; declared: etl, train"):
        s.dag("nope")


def test_dag_settings_are_per_dag() -> None:
    s = load_set(dag_text("one", "- {job: a}\n", schedule='"0 1 * * *"'),
                 dag_text("two", "- {job: b}\n", schedule="null"))
    assert (s.dag("one").schedule, s.dag("two").schedule) == ("0 1 * * *", None)


# -- per-DAG order -------------------------------------------------------------------------------

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


# -- validation rules ----------------------------------------------------------------------------

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


def test_cycle_through_needs_across_dags_is_an_error() -> None:
    # Each DAG alone is acyclic, but y needs x, z depends on y and x needs z: x -> y -> z -> x.
    with pytest.raises(PipelineError, match=r"dependency cycle: x -> y -> z -> x"):
        load_set(dag_text("first", "- {job: x, needs: [z]}\n"),
                 dag_text("second", "- {job: y, needs: [x]}\n- {job: z, depends_on: [y]}\n"))


def test_unknown_dependency_is_an_error() -> None:
    with pytest.raises(PipelineError, match=r"task 'b' of DAG 'test_dag' depends on unknown task 'nope'"):
        load_inline("""\
            - {job: a}
            - {job: b, depends_on: [nope]}
            """)


def test_depends_on_a_job_of_another_dag_is_an_error() -> None:
    with pytest.raises(PipelineError, match=r"task 'b' of DAG 'second' depends on 'a' of DAG 'first': "
                                            r"depends_on stays within one DAG; list a job of another DAG under needs"):
        load_set(dag_text("first", "- {job: a}\n"), dag_text("second", "- {job: b, depends_on: [a]}\n"))


def test_needs_a_job_of_the_same_dag_is_an_error() -> None:
    with pytest.raises(PipelineError, match=r"task 'b' of DAG 'first' needs 'a' of the same DAG: .*use depends_on"):
        load_set(dag_text("first", "- {job: a}\n- {job: b, needs: [a]}\n"), dag_text("second", "- {job: c}\n"))


def test_needs_an_unknown_job_is_an_error() -> None:
    with pytest.raises(PipelineError, match=r"task 'b' of DAG 'first' needs unknown task 'ghost'"):
        load_set(dag_text("first", "- {job: b, needs: [ghost]}\n"), dag_text("second", "- {job: c}\n"))


def test_a_job_in_two_dags_is_an_error() -> None:
    with pytest.raises(PipelineError, match=r"job 'a' appears in DAG 'first' and in DAG 'second': a job belongs to one DAG"):
        load_set(dag_text("first", "- {job: a}\n"), dag_text("second", "- {job: b}\n- {job: a}\n"))


def test_duplicate_task_is_an_error() -> None:
    with pytest.raises(PipelineError, match=r"duplicate task 'a' in DAG 'test_dag'"):
        load_inline("""\
            - {job: a}
            - {job: b}
            - {job: a, depends_on: [b]}
            """)


def test_job_without_module_is_an_error_when_known_jobs_given() -> None:
    text = (dag_text("one", "- {job: a}\n"), dag_text("two", "- {job: b, needs: [a]}\n"))
    with pytest.raises(PipelineError, match=r"\['b'\] have no job module"):
        load_set(*text, known_jobs=["a"])
    assert load_set(*text, known_jobs=["a", "b", "c"]).dag_ids == ("one", "two")


def test_default_checks_jobs_against_available_jobs() -> None:
    with pytest.raises(PipelineError, match="no_such_job_module"):
        load_pipelines(HEADER + dag_text("d", "- {job: no_such_job_module}\n"))


@pytest.mark.parametrize("bad, message", [
    ("- {job: a, args: [--x, 3]}\n", "args must be a list of strings"),
    ("- {job: a, needs: b}\n", "needs must be a list of strings"),
    ("- {job: a, after: [b]}\n", r"DAG 'test_dag': tasks\[0\]: unknown key"),
    ("- {job: 'not-a-module'}\n", "'job' must be a module name"),
])
def test_malformed_tasks_are_rejected(bad: str, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        load_inline(bad)


@pytest.mark.parametrize("text, message", [
    ("spark_submit: {conn_id: c, packages: p}\n", "missing required key.*dags"),
    ("spark_submit: {conn_id: c, packages: p}\ndags: {}\n", "'dags' must be a non-empty mapping"),
    # The single-DAG layout of before: a clear pointer to dags:, not a KeyError.
    ("dag_id: x\nschedule: null\nstart_date: '2026-11-01'\nspark_submit: {conn_id: c, packages: p}\n"
     "tasks: [{job: a}]\n", r"unknown top-level key\(s\) \['dag_id', 'schedule', 'start_date', 'tasks'\]"),
    ("spark_submit: {conn_id: c, packages: p}\ndags: {d: {schedule: null, tasks: [{job: a}]}}\n",
     "DAG 'd' is missing required key.*start_date"),
    ("spark_submit: {conn_id: c, packages: p}\ndags: {'bad id': {schedule: null, start_date: '2026-11-01', "
     "tasks: [{job: a}]}}\n", "DAG id 'bad id' must be"),
    ("spark_submit: {conn_id: c, packages: p}\ndags: {d: {schedule: null, start_date: '2026-11-01', "
     "retries: 3, tasks: [{job: a}]}}\n", r"DAG 'd': unknown key\(s\) \['retries'\]"),
    ("spark_submit: {conn_id: c}\ndags: {d: {schedule: null, start_date: '2026-11-01', tasks: [{job: a}]}}\n",
     "spark_submit must be a mapping"),
])
def test_malformed_files_are_rejected(text: str, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        load_pipelines(text, known_jobs=None)


# -- the merged graph of the local runner ---------------------------------------------------------

THREE_DAGS = (
    dag_text("shop_ingest", """\
        - {job: land}
        - {job: clean, depends_on: [land]}
        - {job: score, depends_on: [clean], needs: [fit]}
        - {job: report, depends_on: [score]}
        """),
    dag_text("shop_weekly_train", "- {job: fit, needs: [clean]}\n"),
    dag_text("shop_upkeep", """\
        - {job: vacuum, needs: [report, fit]}
        - {job: smoke}
        """),
)


def test_merged_order_of_all_dags_exact() -> None:
    # Positions: land0 clean1 score2 report3 fit4 vacuum5 smoke6. Kahn, smallest ready position first:
    # ready {land, smoke} -> land; {clean, smoke} -> clean; score waits for fit: {fit, smoke} -> fit;
    # {score, smoke} -> score; {report, smoke} -> report; {vacuum, smoke} -> vacuum; smoke.
    merged = load_set(*THREE_DAGS).merged()
    assert [t.job for t in merged.topological_order()] == ["land", "clean", "fit", "score", "report", "vacuum", "smoke"]
    assert merged.dag_id == "shop_ingest+shop_weekly_train+shop_upkeep"
    assert merged.schedule is None
    # needs inside the run became edges (after the task's own depends_on), none left outside.
    assert merged.tasks == (
        Task("land"), Task("clean", depends_on=("land",)), Task("score", depends_on=("clean", "fit")),
        Task("report", depends_on=("score",)), Task("fit", depends_on=("clean",)),
        Task("vacuum", depends_on=("report", "fit")), Task("smoke"))


def test_merged_selection_keeps_needs_outside_the_run() -> None:
    # Without the training DAG, fit is not run: score and vacuum keep it as a need (they read the
    # last model), and score no longer waits: land, clean, score, report, vacuum, smoke.
    s = load_set(*THREE_DAGS)
    merged = s.merged(["upkeep", "ingest"])
    assert [t.job for t in merged.topological_order()] == ["land", "clean", "score", "report", "vacuum", "smoke"]
    assert merged.task("score") == Task("score", depends_on=("clean",), needs=("fit",))
    assert merged.task("vacuum") == Task("vacuum", depends_on=("report",), needs=("fit",))
    assert merged.dag_id == "shop_ingest+shop_upkeep"
    # One DAG alone: its own order (needs of report/vacuum outside).
    assert [t.job for t in s.merged(["shop_upkeep"]).topological_order()] == ["vacuum", "smoke"]


def test_merged_ties_follow_dag_declaration_order() -> None:
    # Two independent single-task DAGs: the one declared first runs first, whatever the names.
    s = load_set(dag_text("zz_late", "- {job: b}\n"), dag_text("aa_early", "- {job: a}\n"))
    assert [t.job for t in s.merged().topological_order()] == ["b", "a"]


def test_select_accepts_ids_and_suffixes_in_declaration_order() -> None:
    s = load_set(*THREE_DAGS)
    assert s.select(None) == s.select([]) == s.select([""]) == ("shop_ingest", "shop_weekly_train", "shop_upkeep")
    assert s.select(["upkeep", "shop_ingest", "ingest"]) == ("shop_ingest", "shop_upkeep")
    assert s.select(["train"]) == s.select(["weekly_train"]) == ("shop_weekly_train",)
    with pytest.raises(PipelineError, match="DAG selection 'nope' matches no DAG; declared: shop_ingest, "):
        s.select(["nope"])
    with pytest.raises(PipelineError, match="'ingest' matches no DAG"):  # a suffix ends at an underscore
        load_set(dag_text("reingest", "- {job: a}\n")).select(["ingest"])
    ambiguous = load_set(dag_text("eu_daily", "- {job: a}\n"), dag_text("us_daily", "- {job: b}\n"))
    with pytest.raises(PipelineError, match="DAG selection 'daily' is ambiguous: it fits eu_daily, us_daily"):
        ambiguous.select(["daily"])


# -- the real conf/pipeline.yaml ------------------------------------------------------------------

DAILY = {"raw_landing_zone", "bronze_feeds", "silver_feeds", "video_copies", "creator_signals",
         "creator_quality_scores", "graph_edges", "syndicates", "entity_risk", "migration_predictions",
         "traffic_quotas", "policy_index", "governance_explanations"}
WEEKLY = {"creator_quality_model", "graph_risk_model", "ecosystem_value_model"}
MAINTENANCE = {"delta_maintenance", "smoke_graph_metrics"}


def test_real_pipeline_has_the_three_dags_and_job_partition() -> None:
    s = load_pipelines()  # validates against available_jobs() itself
    assert s.dag_ids == ("creator_governance_daily", "creator_governance_weekly_retraining",
                         "creator_governance_maintenance")
    assert set(s.dag("creator_governance_daily").jobs) == DAILY
    assert set(s.dag("creator_governance_weekly_retraining").jobs) == WEEKLY
    assert set(s.dag("creator_governance_maintenance").jobs) == MAINTENANCE
    assert (DAILY | WEEKLY | MAINTENANCE) <= set(available_jobs())
    schedules = {d: (p.schedule, p.catchup, p.max_active_runs) for d, p in s.dags.items()}
    assert schedules == {"creator_governance_daily": ("0 1 * * *", False, 1),
                         "creator_governance_weekly_retraining": ("0 3 * * 1", False, 1),
                         "creator_governance_maintenance": ("0 6 * * *", False, 1)}


def test_real_pipeline_dependencies_and_needs() -> None:
    s = load_pipelines()
    daily = s.dag("creator_governance_daily")
    # Scoring no longer waits for training in the daily DAG; it reads the weekly DAG's champion.
    assert daily.task("creator_quality_scores").depends_on == ("creator_signals",)
    assert daily.task("creator_quality_scores").needs == ("creator_quality_model",)
    assert daily.task("traffic_quotas").depends_on == ("creator_quality_scores", "entity_risk")
    assert daily.task("raw_landing_zone").args == ("--seed", "7", "--creators", "2000", "--days", "7")
    weekly = s.dag("creator_governance_weekly_retraining")
    assert all(t.depends_on == () for t in weekly.tasks)  # independent trainers
    assert set(weekly.task("creator_quality_model").needs) >= {"creator_signals"}
    assert set(weekly.task("graph_risk_model").needs) == {"graph_edges", "creator_signals", "silver_feeds"}
    assert set(weekly.task("ecosystem_value_model").needs) == {"silver_feeds", "video_copies"}
    maintenance = s.dag("creator_governance_maintenance")
    assert maintenance.task("delta_maintenance").args == ("--days", "7")
    assert set(maintenance.task("delta_maintenance").needs) >= {"traffic_quotas", "governance_explanations"}


def test_real_merged_order_goes_end_to_end() -> None:
    ordered = [t.job for t in load_pipelines().merged().topological_order()]
    assert sorted(ordered) == sorted(DAILY | WEEKLY | MAINTENANCE)
    pos = ordered.index
    # ingest -> signals -> train -> score -> quotas -> explanations -> maintenance
    chain = ["raw_landing_zone", "silver_feeds", "creator_signals", "creator_quality_model",
             "creator_quality_scores", "traffic_quotas", "governance_explanations", "delta_maintenance"]
    assert [pos(j) for j in chain] == sorted(pos(j) for j in chain)
    assert pos("graph_edges") < pos("graph_risk_model")
    assert ordered[0] == "raw_landing_zone"


# -- spark-submit argv ---------------------------------------------------------------------------

def test_spark_submit_command_exact_argv() -> None:
    task = Task("creator_quality_scores", depends_on=("x",), args=("--window-days", "28"), needs=("m",))
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


def test_spark_submit_command_with_jars_and_py_files() -> None:
    argv = spark_submit_command(Task("a"), env="dev", run_date="2026-11-01", application_root="/r",
                                packages=None, jars="/j/delta.jar,/j/storage.jar", py_files="/d/cg.zip")
    assert argv == ["spark-submit", "--py-files", "/d/cg.zip", "--jars", "/j/delta.jar,/j/storage.jar",
                    "--name", "cgov-a", "/r/jobs/a.py", "--run-date", "2026-11-01", "--env", "dev"]
    with pytest.raises(PipelineError, match="packages or jars"):
        spark_submit_command(Task("a"), env="dev", run_date="2026-11-01", application_root="/r", packages=None)


@pytest.mark.parametrize("env, run_date", [("staging", "2026-11-01"), ("prod", "2026-11-1"), ("prod", "{{ ds }}")])
def test_spark_submit_command_rejects_bad_env_or_date(env: str, run_date: str) -> None:
    with pytest.raises(PipelineError):
        spark_submit_command(Task("a"), env=env, run_date=run_date, application_root="/r", packages="p")


# -- cgov pipeline -------------------------------------------------------------------------------

@pytest.fixture
def recorded_jobs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    calls: list[tuple[str, list[str]]] = []

    def fake_run(name: str, argv, progress: str = "") -> float:
        print(f"RUN {name}")
        calls.append((name, list(argv)))
        return float(len(calls))

    def fake_summary(run_date: str, env: str, timings: dict[str, float]) -> None:
        print(f"SUMMARY {run_date} {env} {timings}")

    monkeypatch.setattr(cli, "run_named_job", fake_run)
    monkeypatch.setattr(cli, "print_summary", fake_summary)
    return calls


def test_cgov_pipeline_runs_the_selected_dag_after_printing_the_order(recorded_jobs, capsys) -> None:
    assert cli.main(["pipeline", "--run-date", "2026-11-01", "--env", "local", "--dags", "maintenance"]) == 0
    assert recorded_jobs == [
        ("delta_maintenance", ["--run-date", "2026-11-01", "--env", "local", "--days", "7"]),
        ("smoke_graph_metrics", ["--run-date", "2026-11-01", "--env", "local"]),
    ]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "[cgov] pipeline creator_governance_maintenance for 2026-11-01 (env=local): 2 tasks"
    assert lines[1].startswith("[cgov]   1. delta_maintenance   (outside this run, reads the latest output of: ")
    assert lines[2:] == ["[cgov]   2. smoke_graph_metrics", "RUN delta_maintenance", "RUN smoke_graph_metrics",
                         "SUMMARY 2026-11-01 local {'delta_maintenance': 1.0, 'smoke_graph_metrics': 2.0}"]


def test_cgov_pipeline_default_is_every_dag_merged(recorded_jobs) -> None:
    assert cli.main(["pipeline", "--run-date", "2026-11-01"]) == 0
    run = [name for name, _ in recorded_jobs]
    assert run == [t.job for t in load_pipelines().merged().topological_order()]
    assert run.index("creator_quality_model") < run.index("creator_quality_scores")


def test_cgov_pipeline_unknown_dag_exits_2(recorded_jobs, capsys) -> None:
    assert cli.main(["pipeline", "--run-date", "2026-11-01", "--dags", "daily,hourly"]) == 2
    assert "DAG selection 'hourly' matches no DAG" in capsys.readouterr().err
    assert recorded_jobs == []
