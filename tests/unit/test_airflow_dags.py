"""The Airflow DAG folder parses into exactly the pipeline of ``conf/pipeline.yaml``.

Parsed with Airflow's own DagBag (what the dag-processor does), so an import error here is an
import error in production. No Spark, no metadata DB: parsing must not need either.
"""
from __future__ import annotations

import copy
import textwrap
from pathlib import Path

import pytest

from libs.platform.pipeline import load_pipeline, spark_submit_command

REPO_ROOT = Path(__file__).resolve().parents[2]
DAG_FOLDER = REPO_ROOT / "airflow_dags"
APPLICATION_ROOT = "/opt/creatorgov"
SPARK_MASTER = "spark://spark-master:7077"


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory):
    # AIRFLOW_HOME must be set before airflow is first imported: Airflow reads it at import and
    # creates its home (logs/, ...) there, which must never be the repo or ~/airflow.
    home = tmp_path_factory.mktemp("airflow_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_HOME", str(home))
        mp.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAG_FOLDER))
        mp.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        mp.setenv("CGOV_APPLICATION_ROOT", APPLICATION_ROOT)
        mp.delenv("CGOV_ENV", raising=False)  # exercise the default: prod
        # The Spark connection, from the environment (no metadata DB); only the parity test uses it.
        conn_id = load_pipeline(known_jobs=None).spark_submit["conn_id"]
        mp.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", SPARK_MASTER)
        from airflow.dag_processing.dagbag import DagBag

        # Airflow 3.3's DagBag has no include_examples parameter any more (example DAGs come
        # from a dag bundle); parsing one folder never picks them up.
        yield DagBag(dag_folder=str(DAG_FOLDER))


@pytest.fixture(scope="module")
def pipeline():
    return load_pipeline()


@pytest.fixture(scope="module")
def dag(dagbag):
    if "creator_governance" not in dagbag.dags:
        pytest.fail(f"DAG creator_governance did not parse: {dagbag.import_errors}")
    return dagbag.dags["creator_governance"]


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}


def test_exactly_one_dag(dagbag) -> None:
    assert set(dagbag.dag_ids) == {"creator_governance"}


def test_dag_settings_come_from_the_pipeline(dag, pipeline) -> None:
    assert dag.description == pipeline.description
    assert dag.catchup is pipeline.catchup
    assert dag.max_active_runs == pipeline.max_active_runs
    assert dag.start_date.date() == pipeline.start_date
    assert dag.start_date.utcoffset().total_seconds() == 0


def test_tasks_are_the_pipeline_jobs(dag, pipeline) -> None:
    assert set(dag.task_ids) == set(pipeline.jobs)
    assert len(dag.task_ids) == len(pipeline.jobs)


def test_dependencies_match_depends_on(dag, pipeline) -> None:
    for task in pipeline.tasks:
        assert dag.get_task(task.job).upstream_task_ids == set(task.depends_on), task.job


def test_operators_are_spark_submit_with_pipeline_settings(dag, pipeline) -> None:
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    for task in pipeline.tasks:
        op = dag.get_task(task.job)
        assert isinstance(op, SparkSubmitOperator)
        assert op.application == f"{APPLICATION_ROOT}/jobs/{task.job}.py"
        assert op._conn_id == pipeline.spark_submit["conn_id"]
        assert op.packages == pipeline.spark_submit["packages"]
        assert op.name == f"cgov-{task.job}"
        assert op.retries == pipeline.default_args["retries"]
        assert op.retry_delay.total_seconds() == 60 * pipeline.default_args["retry_delay_minutes"]
        assert op.owner == pipeline.default_args["owner"]
        # The raw, templated arguments: the run date is the DAG run's logical date, never the clock.
        assert op.application_args == ["--run-date", "{{ ds }}", "--env", "prod", *task.args]


def test_rendered_application_args_carry_the_logical_date(dag, pipeline) -> None:
    for task in pipeline.tasks:
        op = copy.deepcopy(dag.get_task(task.job))  # rendering mutates the operator in place
        op.render_template_fields({"ds": "2026-11-01"})
        assert op.application_args == ["--run-date", "2026-11-01", "--env", "prod", *task.args]
        assert op.application == f"{APPLICATION_ROOT}/jobs/{task.job}.py"


def test_airflow_runs_the_same_spark_submit_as_spark_submit_command(dag, pipeline) -> None:
    """The command Airflow's hook builds is ``spark_submit_command`` plus the connection's master.

    Uses the hook's private command builder (the provider is pinned in requirements.txt) because
    it is the only way to see the argv without running spark-submit.
    """
    for task in pipeline.tasks:
        op = copy.deepcopy(dag.get_task(task.job))
        op.render_template_fields({"ds": "2026-11-01"})
        argv = op._get_hook()._build_spark_submit_command(op.application)
        assert argv[1:3] == ["--master", SPARK_MASTER]
        assert [argv[0], *argv[3:]] == spark_submit_command(
            task, env="prod", run_date="2026-11-01", application_root=APPLICATION_ROOT,
            packages=pipeline.spark_submit["packages"])


DIAMOND = textwrap.dedent("""\
    dag_id: creator_governance
    description: diamond
    schedule: "0 6 * * *"
    start_date: "2026-11-01"
    catchup: false
    max_active_runs: 1
    default_args: {owner: tests, retries: 3, retry_delay_minutes: 1}
    spark_submit: {conn_id: spark_default, packages: "g:a:1"}
    tasks:
      - {job: d, depends_on: [b, c]}
      - {job: b, depends_on: [a], args: ["--window-days", "28"]}
      - {job: c, depends_on: [a]}
      - {job: a}
    """)


def test_dag_file_follows_a_bigger_pipeline(dagbag, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real pipeline may be a single task; a diamond exercises dependencies and extra args."""
    import libs.platform.cli
    import libs.platform.pipeline
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setattr(libs.platform.pipeline, "_read_text", lambda: DIAMOND)
    monkeypatch.setattr(libs.platform.cli, "available_jobs", lambda: ["a", "b", "c", "d"])
    bag = DagBag(dag_folder=str(DAG_FOLDER))
    assert bag.import_errors == {}
    dag = bag.dags["creator_governance"]
    assert {t: dag.get_task(t).upstream_task_ids for t in dag.task_ids} == {
        "a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"}}
    op = copy.deepcopy(dag.get_task("b"))
    op.render_template_fields({"ds": "2026-11-01"})
    assert op.application_args == ["--run-date", "2026-11-01", "--env", "prod", "--window-days", "28"]
    assert (op.retries, op.retry_delay.total_seconds(), op.owner) == (3, 60.0, "tests")


def test_run_date_is_the_finished_day(dag) -> None:
    """The run starting 2026-11-02 00:00 UTC must compute 2026-11-01 (data-interval semantics)."""
    import pendulum
    from airflow.timetables.base import DataInterval, TimeRestriction

    prev = DataInterval(pendulum.datetime(2026, 10, 31, tz="UTC"), pendulum.datetime(2026, 11, 1, tz="UTC"))
    nxt = dag.timetable.next_dagrun_info(
        last_automated_data_interval=prev,
        restriction=TimeRestriction(earliest=pendulum.datetime(2026, 11, 1, tz="UTC"), latest=None, catchup=True),
    )
    assert nxt.data_interval.start == pendulum.datetime(2026, 11, 1, tz="UTC")
    assert nxt.run_after == pendulum.datetime(2026, 11, 2, tz="UTC")
