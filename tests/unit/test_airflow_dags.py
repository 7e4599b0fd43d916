"""The Airflow DAG folder parses into exactly the DAGs of ``conf/pipeline.yaml``, and a DAG really runs.

Parsed with Airflow's own DagBag (what the dag-processor does), so an import error here is an
import error in production; parsing needs no Spark and no metadata DB. One test then executes a
one-task DAG built by the same builder with ``dag.test()``: a real spark-submit of
``smoke_graph_metrics`` on ``local[1]`` against a temporary lakehouse.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from libs.platform.pipeline import PipelineSet, load_pipelines, spark_submit_command

REPO_ROOT = Path(__file__).resolve().parents[2]
DAG_FOLDER = REPO_ROOT / "airflow_dags"
APPLICATION_ROOT = "/opt/creatorgov"
SPARK_MASTER = "spark://spark-master:7077"
DAG_IDS = ("creator_governance_daily", "creator_governance_weekly_retraining", "creator_governance_maintenance")
RUN_DATE_TEMPLATE = "{{ data_interval_end.subtract(days=1) | ds }}"


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory):
    # AIRFLOW_HOME must be set before airflow is first imported: Airflow reads it at import and
    # creates its home (logs/, the sqlite metadata DB of the dag.test() test) there, which must
    # never be the repo or ~/airflow.
    home = tmp_path_factory.mktemp("airflow_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_HOME", str(home))
        mp.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAG_FOLDER))
        mp.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        mp.setenv("CGOV_APPLICATION_ROOT", APPLICATION_ROOT)
        for knob in ("CGOV_ENV", "CGOV_PY_FILES", "CGOV_SPARK_JARS"):
            mp.delenv(knob, raising=False)  # exercise the defaults: prod, no py-files, --packages
        # The Spark connection, from the environment (no metadata DB); only the parity test uses it.
        conn_id = load_pipelines(known_jobs=None).spark_submit["conn_id"]
        mp.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", SPARK_MASTER)
        yield home


@pytest.fixture(scope="module")
def dagbag(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    # Airflow 3.3's DagBag has no include_examples parameter any more (example DAGs come from a
    # dag bundle); parsing one folder never picks them up.
    return DagBag(dag_folder=str(DAG_FOLDER))


@pytest.fixture(scope="module")
def pipelines() -> PipelineSet:
    return load_pipelines()


def all_tasks(pipelines: PipelineSet):
    return [(dag_id, task) for dag_id, p in pipelines.dags.items() for task in p.tasks]


def get_dag(dagbag, dag_id: str):
    if dag_id not in dagbag.dags:
        pytest.fail(f"DAG {dag_id} did not parse: {dagbag.import_errors}")
    return dagbag.dags[dag_id]


def render(op, data_interval_end):
    """A copy of ``op`` with its templates rendered for a run whose data interval ends at ``data_interval_end``."""
    op = copy.deepcopy(op)  # rendering mutates the operator in place
    op.render_template_fields({"data_interval_end": data_interval_end})
    return op


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}


def test_exactly_the_three_dags(dagbag, pipelines) -> None:
    assert sorted(dagbag.dag_ids) == sorted(DAG_IDS)
    assert pipelines.dag_ids == DAG_IDS


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_dag_settings_come_from_the_pipeline(dagbag, pipelines, dag_id: str) -> None:
    dag, p = get_dag(dagbag, dag_id), pipelines.dag(dag_id)
    assert dag.description == p.description
    assert dag.catchup is p.catchup
    assert dag.max_active_runs == p.max_active_runs
    assert dag.start_date.date() == p.start_date
    assert dag.start_date.utcoffset().total_seconds() == 0
    assert set(dag.tags) == {"creator-governance", "spark"}


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_tasks_and_edges_equal_the_definition(dagbag, pipelines, dag_id: str) -> None:
    dag = get_dag(dagbag, dag_id)
    assert {t: dag.get_task(t).upstream_task_ids for t in dag.task_ids} == {
        t.job: set(t.depends_on) for t in pipelines.dag(dag_id).tasks}


def test_edges_written_out(dagbag) -> None:
    """A few edges by hand: scoring waits for signals only (the model comes from the weekly DAG)."""
    daily = get_dag(dagbag, "creator_governance_daily")
    assert daily.get_task("creator_quality_scores").upstream_task_ids == {"creator_signals"}
    assert daily.get_task("traffic_quotas").upstream_task_ids == {"creator_quality_scores", "entity_risk"}
    assert "creator_quality_model" not in daily.task_ids and "delta_maintenance" not in daily.task_ids
    weekly = get_dag(dagbag, "creator_governance_weekly_retraining")
    assert {t: weekly.get_task(t).upstream_task_ids for t in weekly.task_ids} == {
        "creator_quality_model": set(), "graph_risk_model": set(), "ecosystem_value_model": set()}
    maintenance = get_dag(dagbag, "creator_governance_maintenance")
    assert {t: maintenance.get_task(t).upstream_task_ids for t in maintenance.task_ids} == {
        "delta_maintenance": set(), "smoke_graph_metrics": set()}


def test_operators_are_spark_submit_with_pipeline_settings(dagbag, pipelines) -> None:
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    for dag_id, task in all_tasks(pipelines):
        op = get_dag(dagbag, dag_id).get_task(task.job)
        assert isinstance(op, SparkSubmitOperator)
        assert op.application == f"{APPLICATION_ROOT}/jobs/{task.job}.py"
        assert op._conn_id == pipelines.spark_submit["conn_id"]
        assert op.packages == pipelines.spark_submit["packages"]
        assert op.jars is None and op.py_files is None
        assert op.name == f"cgov-{task.job}"
        assert op.retries == pipelines.default_args["retries"]
        assert op.retry_delay.total_seconds() == 60 * pipelines.default_args["retry_delay_minutes"]
        assert op.owner == pipelines.default_args["owner"]
        # The raw, templated arguments: the run date comes from the DAG run, never the clock.
        assert op.application_args == ["--run-date", RUN_DATE_TEMPLATE, "--env", "prod", *task.args]


def test_needs_are_rendered_into_the_task_docs(dagbag) -> None:
    scores = get_dag(dagbag, "creator_governance_daily").get_task("creator_quality_scores")
    assert "**Needs**" in scores.doc_md
    assert "* `creator_quality_model` (DAG `creator_governance_weekly_retraining`)" in scores.doc_md.splitlines()
    gnn = get_dag(dagbag, "creator_governance_weekly_retraining").get_task("graph_risk_model")
    assert {line for line in gnn.doc_md.splitlines() if line.startswith("* ")} == {
        "* `graph_edges` (DAG `creator_governance_daily`)", "* `creator_signals` (DAG `creator_governance_daily`)",
        "* `silver_feeds` (DAG `creator_governance_daily`)"}
    smoke = get_dag(dagbag, "creator_governance_maintenance").get_task("smoke_graph_metrics")
    assert "Needs" not in smoke.doc_md
    assert smoke.doc_md.startswith("Runs `jobs/smoke_graph_metrics.py --run-date <day> --env <env>`")


def test_airflow_runs_the_same_spark_submit_as_spark_submit_command(dagbag, pipelines) -> None:
    """The command Airflow's hook builds is ``spark_submit_command`` plus the connection's master.

    Uses the hook's private command builder (the provider is pinned in requirements.txt) because
    it is the only way to see the argv without running spark-submit.
    """
    import pendulum

    for dag_id, task in all_tasks(pipelines):
        op = render(get_dag(dagbag, dag_id).get_task(task.job), pendulum.datetime(2026, 11, 2, 1, tz="UTC"))
        argv = op._get_hook()._build_spark_submit_command(op.application)
        assert argv[1:3] == ["--master", SPARK_MASTER]
        assert [argv[0], *argv[3:]] == spark_submit_command(
            task, env="prod", run_date="2026-11-01", application_root=APPLICATION_ROOT,
            packages=pipelines.spark_submit["packages"]), task.job


def scheduler_timetable(dag):
    """The timetable the scheduler uses: the DAG after serialization (what the dag-processor stores)."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag)).timetable


@pytest.mark.parametrize("dag_id, cron, prev_end, next_run_after, run_date", [
    # Daily 01:00: the run starting 2026-11-02 01:00 UTC computes 2026-11-01 (= its ds).
    ("creator_governance_daily", "0 1 * * *", (2026, 11, 1, 1), (2026, 11, 2, 1), "2026-11-01"),
    # Mondays 03:00: the run starting Monday 2026-11-09 covers the week from Monday 11-02 and
    # computes Sunday 2026-11-08, the last finished day -- not 11-02, the start of the week.
    ("creator_governance_weekly_retraining", "0 3 * * 1", (2026, 11, 2, 3), (2026, 11, 9, 3), "2026-11-08"),
    ("creator_governance_maintenance", "0 6 * * *", (2026, 11, 1, 6), (2026, 11, 2, 6), "2026-11-01"),
])
def test_schedule_is_a_data_interval_cron_and_the_run_date_is_the_finished_day(
        dagbag, dag_id, cron, prev_end, next_run_after, run_date) -> None:
    import pendulum
    from airflow.timetables.base import DataInterval, TimeRestriction
    from airflow.timetables.interval import CronDataIntervalTimetable

    dag = get_dag(dagbag, dag_id)
    timetable = scheduler_timetable(dag)
    assert timetable == CronDataIntervalTimetable(cron, timezone="UTC")
    end = pendulum.datetime(*prev_end, tz="UTC")
    period = pendulum.duration(weeks=1) if dag_id.endswith("weekly_retraining") else pendulum.duration(days=1)
    nxt = timetable.next_dagrun_info(
        last_automated_data_interval=DataInterval(end - period, end),
        restriction=TimeRestriction(earliest=pendulum.datetime(2026, 11, 1, tz="UTC"), latest=None, catchup=True),
    )
    assert nxt.data_interval.start == end
    assert nxt.run_after == nxt.data_interval.end == pendulum.datetime(*next_run_after, tz="UTC")
    op = render(dag.tasks[0], nxt.data_interval.end)
    assert op.application_args[:2] == ["--run-date", run_date]


TWO_DAGS = textwrap.dedent("""\
    default_args: {owner: tests, retries: 3, retry_delay_minutes: 1}
    spark_submit: {conn_id: spark_default, packages: "g:a:1"}
    dags:
      diamond:
        description: diamond
        schedule: "0 6 * * *"
        start_date: "2026-11-01"
        tasks:
          - {job: d, depends_on: [b, c]}
          - {job: b, depends_on: [a], args: ["--window-days", "28"]}
          - {job: c, depends_on: [a]}
          - {job: a}
      later:
        schedule: null
        start_date: "2026-11-01"
        tasks:
          - {job: e, needs: [d]}
    """)


def test_dag_file_follows_the_pipeline_file(dagbag, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another pipeline file gives other DAGs, edges and args, with no edit to the DAG file."""
    import pendulum
    from airflow.dag_processing.dagbag import DagBag

    import libs.platform.cli
    import libs.platform.pipeline

    monkeypatch.setattr(libs.platform.pipeline, "_read_text", lambda: TWO_DAGS)
    monkeypatch.setattr(libs.platform.cli, "available_jobs", lambda: ["a", "b", "c", "d", "e"])
    bag = DagBag(dag_folder=str(DAG_FOLDER))
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == ["diamond", "later"]
    dag = bag.dags["diamond"]
    assert {t: dag.get_task(t).upstream_task_ids for t in dag.task_ids} == {
        "a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"}}
    op = render(dag.get_task("b"), pendulum.datetime(2026, 11, 2, 6, tz="UTC"))
    assert op.application_args == ["--run-date", "2026-11-01", "--env", "prod", "--window-days", "28"]
    assert (op.retries, op.retry_delay.total_seconds(), op.owner) == (3, 60.0, "tests")
    later = bag.dags["later"]
    assert type(later.timetable).__name__ == "NullTimetable"  # schedule: null -> triggered by hand only
    assert later.get_task("e").upstream_task_ids == set()
    assert "* `d` (DAG `diamond`)" in later.get_task("e").doc_md.splitlines()


def test_spark_jars_knob_replaces_packages(airflow_home, pipelines) -> None:
    """``CGOV_SPARK_JARS``: Delta from local jar files (``--jars``), no Maven download at run time."""
    import pendulum

    from libs.platform.airflow_dags import Deployment, build_dags

    jars = "/opt/jars/delta-spark_4.0_2.13-4.4.0.jar,/opt/jars/delta-storage-4.4.0.jar"
    deployment = Deployment.from_environ("/unused", environ={
        "CGOV_ENV": "dev", "CGOV_APPLICATION_ROOT": "/srv/cg/", "CGOV_SPARK_JARS": jars, "CGOV_PY_FILES": "/srv/cg.zip"})
    assert deployment == Deployment(env="dev", application_root="/srv/cg", py_files="/srv/cg.zip", jars=jars)
    dags = build_dags(pipelines, deployment)
    task = pipelines.dag("creator_governance_daily").task("bronze_feeds")
    op = render(dags["creator_governance_daily"].get_task("bronze_feeds"), pendulum.datetime(2026, 11, 2, 1, tz="UTC"))
    assert (op.packages, op.jars, op.py_files) == (None, jars, "/srv/cg.zip")
    argv = op._get_hook()._build_spark_submit_command(op.application)
    assert [argv[0], *argv[3:]] == spark_submit_command(task, env="dev", run_date="2026-11-01",
                                                       application_root="/srv/cg", packages=None, jars=jars,
                                                       py_files="/srv/cg.zip")
    with pytest.raises(ValueError, match="CGOV_ENV='staging' is not one of local, dev, prod"):
        Deployment.from_environ("/r", environ={"CGOV_ENV": "staging"})


# -- one DAG really executed ----------------------------------------------------------------------

SMOKE_PIPELINE = textwrap.dedent("""\
    default_args: {owner: tests, retries: 0}
    spark_submit: {conn_id: spark_default, packages: "io.delta:delta-spark_4.0_2.13:4.4.0"}
    dags:
      cgov_dag_test_smoke:
        description: dag.test() of one spark-submitted job
        schedule: "0 6 * * *"
        start_date: "2026-11-01"
        tasks:
          - {job: smoke_graph_metrics}
    """)
# The DAG file of the test: the same two calls as airflow_dags/creator_governance.py, on inline text.
SMOKE_DAG_FILE = f'''\
from libs.platform.airflow_dags import Deployment, build_dags
from libs.platform.pipeline import load_pipelines

globals().update(build_dags(load_pipelines({SMOKE_PIPELINE!r}),
                            Deployment.from_environ(default_application_root={str(REPO_ROOT)!r})))
'''


def spark_submit_dir() -> Path | None:
    """The folder of pyspark's ``spark-submit`` launcher: the venv's bin, else pyspark/bin."""
    import pyspark

    for folder in (Path(sys.executable).parent, Path(pyspark.__file__).parent / "bin"):
        if (folder / "spark-submit").is_file():
            return folder
    return None


def delta_live_rows(table: Path) -> list[dict]:
    """Rows of the Delta table's current snapshot, read from its log without Spark.

    Replays ``_delta_log/*.json`` (add minus remove), reads the live Parquet files with pyarrow and
    puts the partition values back. Enough for a two-commit table without deletion vectors,
    which is asserted, not assumed.
    """
    import pyarrow.parquet as pq

    live: dict[str, dict] = {}
    for commit in sorted((table / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                assert action["add"].get("deletionVector") is None, "deletion vectors: read the table with Spark"
                live[action["add"]["path"]] = action["add"]["partitionValues"]
            elif "remove" in action:
                live.pop(action["remove"]["path"], None)
    rows = []
    for path, partition in live.items():
        for row in pq.read_table(table / path).to_pylist():
            rows.append({**row, **partition})
    return rows


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None and not os.environ.get("JAVA_HOME"),
                    reason="dag.test() spark-submits a real job: needs Java (java on PATH or JAVA_HOME)")
@pytest.mark.skipif(spark_submit_dir() is None, reason="dag.test() needs pyspark's spark-submit launcher")
def test_dag_test_runs_the_smoke_job_through_spark_submit(airflow_home, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``dag.test()`` of a one-task DAG from the builder: a real spark-submit on local[1], Delta from ``.jars/``."""
    import pendulum
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.db import initdb
    from airflow.utils.state import DagRunState, TaskInstanceState

    from libs.platform.config import load_settings
    from libs.platform.session import local_jars

    dags_dir, lakehouse = tmp_path / "dags", tmp_path / "lakehouse"
    dags_dir.mkdir()
    (dags_dir / "cgov_dag_test_smoke.py").write_text(SMOKE_DAG_FILE)
    # dag.test() syncs the DAG's bundle into the metadata DB: a bundle holding only this file.
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([{
        "name": "cgov-dag-test", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(dags_dir)}}]))
    # The connection: spark-submit --master local[1] (one core: the box is shared).
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", json.dumps({"conn_type": "spark", "host": "local[1]"}))
    monkeypatch.setenv("PATH", f"{spark_submit_dir()}{os.pathsep}{os.environ['PATH']}")
    # spark-submit's PythonRunner starts the driver with PYSPARK_PYTHON: this venv (project installed).
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    monkeypatch.setenv("CGOV_ENV", "local")
    monkeypatch.setenv("CGOV_APPLICATION_ROOT", str(REPO_ROOT))
    monkeypatch.setenv("CGOV_SPARK_JARS", ",".join(local_jars()))  # no Maven download at run time
    monkeypatch.setenv("CGOV__LAKEHOUSE_ROOT", str(lakehouse))

    bag = DagBag(dag_folder=str(dags_dir))
    assert bag.import_errors == {}
    dag = bag.dags["cgov_dag_test_smoke"]
    op = dag.get_task("smoke_graph_metrics")
    assert (op.packages, op.jars) == (None, ",".join(local_jars()))

    initdb()  # sqlite metadata DB under the module's AIRFLOW_HOME
    # A manual run at 2026-11-02 06:00 UTC covers [11-01 06:00, 11-02 06:00): run date 2026-11-01.
    dag_run = dag.test(logical_date=pendulum.datetime(2026, 11, 2, 6, tz="UTC"))

    ti = dag_run.get_task_instance("smoke_graph_metrics")
    assert (dag_run.state, ti.state) == (DagRunState.SUCCESS, TaskInstanceState.SUCCESS)
    table = Path(load_settings("local", environ={"CGOV__LAKEHOUSE_ROOT": str(lakehouse)}).table("smoke_graph_metrics"))
    rows = delta_live_rows(table)
    # The smoke graph (libs.smoke.graph_metrics): 15 vertices per run date; 4 components once the
    # late edge feed is merged -- the job's second MERGE really ran.
    assert {r["run_date"] for r in rows} == {"2026-11-01"}
    assert len(rows) == len({r["id"] for r in rows}) == 15
    assert len({r["component"] for r in rows}) == 4
