"""The project as it is deployed: its wheel, spark-submitted to a real Spark standalone cluster.

A master and ONE worker are started on 127.0.0.1 (free ports, web UIs included) with the pyspark
package's own ``spark-class`` launcher; the project's wheel is built with pip and shipped with
``--py-files``; ``jobs/smoke_graph_metrics.py`` runs in client mode with the Delta jars from
``.jars/``. The test checks the job's exit code and output, that project code runs on the
executors *from the shipped wheel* (not from the source checkout), and the Delta table the job
wrote. Every process it started is stopped on teardown, also on failure or timeout.

Run just this test (it is marked ``cluster`` and slow: several JVMs start, ~3-5 min on 2 cores):

    .venv/bin/python -m pytest -m cluster tests/integration/test_standalone_cluster.py

What this test encodes:

* **A ``.whl`` in ``--py-files`` is NOT put on the executors' Python path.** pyspark only treats
  ``.zip``/``.egg``/``.jar`` as Python includes (``SparkContext.PACKAGE_EXTENSIONS`` and the
  ``spark.submit.pyFiles`` loop in ``pyspark/core/context.py``): any other file is shipped to the
  executors as a plain file and ignored by the worker's ``sys.path`` set-up
  (``pyspark/worker_util.py::setup_spark_files``); a UDF then fails with ``ModuleNotFoundError:
  No module named 'libs'``. The driver (client mode) does see it, because spark-submit's
  PythonRunner puts every py-file on the driver's PYTHONPATH, which hides the problem until
  project code runs on an executor. A pure-Python wheel *is* a zip archive with the packages at
  its root, so it is shipped under a ``.zip`` name.
* **The developer venv has the project installed in editable mode** (``pip install -e .``), so any
  Python process using the venv's interpreter can import ``libs`` from the source checkout, and a
  run that merely succeeded would prove nothing about what was shipped. Every Python process of
  the submitted apps (driver, executor daemons and workers) therefore starts with a
  ``sitecustomize`` that removes the editable-install finder and reports, on stderr, where
  ``libs`` is imported from; the test asserts that this is the shipped archive.
* **The smoke job runs no project Python on the executors** (its graph engine is DataFrame code;
  the executors only run pyspark's own row unpickling), so a tiny probe app is submitted after it
  with the same archive and settings, and imports the project on the executors.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# method="signal": on timeout pytest-timeout raises inside the test, so the fixture teardown below
# still stops the cluster (the "thread" method would exit the interpreter and leak the JVMs).
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600, method="signal")]

REPO_ROOT = Path(__file__).resolve().parents[2]
JARS_DIR = REPO_ROOT / ".jars"
JOB = REPO_ROOT / "jobs" / "smoke_graph_metrics.py"
RUN_DATE = "2026-11-01"
# The venv's interpreter (the test runs under it); driver and executors use it as well.
PYTHON = sys.executable

# Generous but finite (a busy 2-core box is slow to start JVMs); pytest-timeout's 600 s caps
# the whole test, setup and teardown included.
CLUSTER_START_TIMEOUT_S = 90
WHEEL_BUILD_TIMEOUT_S = 120
JOB_TIMEOUT_S = 400
STOP_TIMEOUT_S = 20
PORT_RELEASE_TIMEOUT_S = 15

ISOLATION_MARKER = "cgov-cluster-test:"
# Loaded by every Python process of the submitted job via PYTHONPATH (driver) and
# spark.executorEnv.PYTHONPATH (executors); see the module docstring.
SITECUSTOMIZE = f'''\
import os
import sys
from importlib.machinery import PathFinder


def _editable(hook):
    names = (getattr(hook, "__module__", None), type(hook).__module__)
    return any(str(n or "").startswith("__editable__") for n in names)


sys.meta_path[:] = [f for f in sys.meta_path if not _editable(f)]
sys.path_hooks[:] = [h for h in sys.path_hooks if not _editable(h)]
sys.path_importer_cache.clear()
# The checkout root itself would expose libs/ too (the venv's site-packages may live under it).
sys.path[:] = [p for p in sys.path if p != {str(REPO_ROOT)!r} and not p.startswith("__editable__")]


class _ReportProjectImport:
    """Says where the project's top-level package comes from; imports nothing itself."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname != "libs":
            return None
        spec = PathFinder.find_spec(fullname, path)
        print("{ISOLATION_MARKER} pid %d imports libs from %s" % (os.getpid(), spec and spec.origin),
              file=sys.stderr, flush=True)
        return spec


sys.meta_path.insert(0, _ReportProjectImport)
'''


@dataclass
class StandaloneCluster:
    master_url: str
    ports: dict[str, int]
    work_dir: Path
    log_dir: Path
    conf_dir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def executor_stderr_logs(self) -> list[Path]:
        # <work-dir>/<app-id>/<executor-id>/stderr, written by the worker's ExecutorRunner.
        return sorted(self.work_dir.glob("app-*/*/stderr"))


# ----------------------------------------------------------------------------- helpers


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _free_ports(count: int) -> list[int]:
    """Distinct free ports on 127.0.0.1 (all sockets held open together, then released)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        return f"<{path}: {exc}>"
    return "\n".join(text[-lines:])


def _logs_report(*paths: Path, lines: int = 40) -> str:
    return "\n".join(f"----- {p} (last {lines} lines) -----\n{_tail(p, lines)}" for p in paths)


def _base_env() -> dict[str, str]:
    """The caller's environment minus anything that could steer Spark or the job elsewhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CGOV__", "SPARK_", "PYSPARK_")) and k not in ("PYTHONPATH", "PYTHONHOME")
    }
    env["SPARK_HOME"] = str(_spark_home())
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    return env


def _die_with_parent() -> None:
    """Child-side (pre-exec): get SIGKILL if the test process dies without running teardown."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux/glibc: teardown is the only guard
        pass


def _spawn(argv: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    # Own session => own process group: the whole tree (launcher, JVM, executors, Python daemons)
    # can be signalled with os.killpg, and the session id finds stragglers afterwards.
    with open(log, "wb") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
            start_new_session=True, preexec_fn=_die_with_parent,
        )


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, wait, then SIGKILL whatever of the group is left, and reap."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(proc.pid, signal.SIGKILL)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass


def _session_members(session_ids: set[int]) -> list[int]:
    """PIDs of live processes in any of the given sessions (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp session ...
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[3]) in session_ids:
            members.append(int(entry.name))
    return members


def _kill_leftovers(session_ids: set[int]) -> list[int]:
    """SIGKILL anything still alive in our sessions (e.g. a child that escaped its group)."""
    found = _session_members(session_ids)
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _session_members(session_ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def _wait_for_worker(cluster: StandaloneCluster) -> dict:
    url = f"http://127.0.0.1:{cluster.ports['master_ui']}/json/"
    logs = [cluster.log_dir / "master.out", cluster.log_dir / "worker.out"]
    deadline = time.monotonic() + CLUSTER_START_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        for name, proc in cluster.processes.items():
            if proc.poll() is not None:
                pytest.fail(f"Spark {name} exited early with code {proc.returncode}\n{_logs_report(*logs)}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                state = json.load(resp)
            last = f"aliveworkers={state.get('aliveworkers')} status={state.get('status')}"
            if state.get("status") == "ALIVE" and int(state.get("aliveworkers", 0)) >= 1:
                return state
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(1)
    pytest.fail(
        f"no worker registered with the master at {cluster.master_url} within "
        f"{CLUSTER_START_TIMEOUT_S}s (last {url}: {last})\n{_logs_report(*logs)}"
    )


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def standalone_cluster(tmp_path: Path):
    """A master + one worker (2 cores, 2 GiB) on 127.0.0.1; everything stopped on teardown."""
    spark_class = str(_spark_home() / "bin" / "spark-class")
    names = ["master", "master_ui", "worker", "worker_ui"]
    ports = dict(zip(names, _free_ports(len(names))))
    root = tmp_path / "cluster"
    cluster = StandaloneCluster(
        master_url=f"spark://127.0.0.1:{ports['master']}",
        ports=ports,
        work_dir=root / "work",
        log_dir=root / "logs",
        conf_dir=root / "conf",  # empty: no spark-defaults/spark-env from the host
    )
    for d in (cluster.work_dir, cluster.log_dir, cluster.conf_dir):
        d.mkdir(parents=True)
    env = _base_env()
    env.update(
        SPARK_CONF_DIR=str(cluster.conf_dir),
        SPARK_LOG_DIR=str(cluster.log_dir),
        SPARK_WORKER_DIR=str(cluster.work_dir),
        # The REST submission server would take another port (6066); nothing here uses it.
        SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false",
    )
    try:
        cluster.processes["master"] = _spawn(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(ports["master"]), "--webui-port", str(ports["master_ui"])],
            cluster.log_dir / "master.out", env, root,
        )
        cluster.processes["worker"] = _spawn(
            [spark_class, "org.apache.spark.deploy.worker.Worker", cluster.master_url,
             "--host", "127.0.0.1", "--port", str(ports["worker"]), "--webui-port", str(ports["worker_ui"]),
             "--cores", "2", "--memory", "2g", "--work-dir", str(cluster.work_dir)],
            cluster.log_dir / "worker.out", env, root,
        )
        state = _wait_for_worker(cluster)
        workers = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]
        assert [(w["host"], w["cores"]) for w in workers] == [("127.0.0.1", 2)], workers
        yield cluster
    finally:
        # Worker first (it stops its executors), then the master, then anything left over.
        for name in ("worker", "master"):
            if name in cluster.processes:
                _stop(cluster.processes[name])
        sessions = {p.pid for p in cluster.processes.values()}
        leftovers = _kill_leftovers(sessions)
        deadline = time.monotonic() + PORT_RELEASE_TIMEOUT_S
        busy = [n for n, p in ports.items() if _listening(p)]
        while busy and time.monotonic() < deadline:
            time.sleep(0.5)
            busy = [n for n, p in ports.items() if _listening(p)]
        assert not _session_members(sessions), "cluster processes survived SIGKILL"
        assert not busy, f"still listening after teardown: {[(n, ports[n]) for n in busy]}"
        if leftovers:
            print(f"killed leftover cluster processes: {leftovers}")


@pytest.fixture
def shipped_wheel(tmp_path: Path) -> Path:
    """The project's wheel, built from this checkout, under the name executors will import."""
    dist = tmp_path / "dist"
    cmd = [PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
           "--disable-pip-version-check", "-w", str(dist), str(REPO_ROOT)]
    try:
        built = subprocess.run(cmd, capture_output=True, text=True, timeout=WHEEL_BUILD_TIMEOUT_S,
                               env=_base_env(), cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pip wheel did not finish within {WHEEL_BUILD_TIMEOUT_S}s")
    assert built.returncode == 0, f"pip wheel failed:\n{built.stdout[-4000:]}\n{built.stderr[-4000:]}"
    wheels = sorted(dist.glob("creatorgov-*.whl"))
    assert len(wheels) == 1, wheels
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    expected = {"libs/__init__.py", "libs/platform/session.py", "conf/__init__.py", "conf/local.yaml",
                "jobs/__init__.py", f"jobs/{JOB.name}", "schemas/__init__.py", "libs/smoke/graph_metrics.py"}
    assert expected <= names, f"wheel lacks {sorted(expected - names)}"
    # setuptools builds in <repo>/build/lib and never prunes it: a module deleted from the checkout
    # would still be shipped (and importable on the cluster) from a stale build folder.
    stale = sorted(n for n in names if n.endswith(".py") and not (REPO_ROOT / n).is_file())
    assert not stale, f"wheel ships modules that are not in the checkout (stale {REPO_ROOT / 'build'}?): {stale}"
    # pyspark puts only .zip/.egg/.jar py-files on the executors' sys.path (see module docstring);
    # a pure-Python wheel is a zip with the packages at its root, so ship it under a .zip name.
    shipped = wheels[0].with_suffix(".zip")
    shutil.copyfile(wheels[0], shipped)
    return shipped


# ----------------------------------------------------------------------------- the test

# The smoke job runs no *project* Python on the executors: its graph engine is pure DataFrame
# code, and the only Python the executors run is pyspark's own (unpickling createDataFrame's local
# rows). So a second, tiny app on the same cluster, with the same shipped archive and isolation,
# imports the project on the executors; without it a broken shipping step would go unnoticed.
EXECUTOR_PROBE = """\
from pyspark.sql import SparkSession


def probe(_):
    import libs.smoke.graph_metrics as gm  # on the executor: only the shipped archive has it
    from schemas.smoke_graph_metrics import SCHEMA

    yield (gm.__file__, len(gm.CREATORS) + len(gm.DEVICES), len(SCHEMA.fields))


spark = SparkSession.builder.appName("cgov-executor-probe").getOrCreate()
for row in spark.sparkContext.parallelize(range(2), 2).mapPartitions(probe).collect():
    print("PROBE", *row, flush=True)
spark.stop()
"""


@dataclass
class Submitted:
    rc: int
    log: Path
    elapsed_s: float
    executor_logs: list[Path]

    def report(self, lines: int = 80) -> str:
        return _logs_report(self.log, *self.executor_logs, lines=lines)


def _submit(cluster: StandaloneCluster, name: str, app: list[str], options: list[str],
            env: dict[str, str], tmp_path: Path) -> Submitted:
    """spark-submit ``app`` in client mode to ``cluster``; its executor logs are the new ones."""
    before = set(cluster.executor_stderr_logs())
    cwd = tmp_path / name  # driver cwd: spark-warehouse / derby.log never land in the repo
    cwd.mkdir()
    log = tmp_path / f"{name}.out"
    argv = [str(_spark_home() / "bin" / "spark-submit"), "--master", cluster.master_url,
            "--deploy-mode", "client", "--name", f"cgov-cluster-test-{name}", *options, *app]
    started = time.monotonic()
    proc = _spawn(argv, log, env, cwd)
    try:
        try:
            rc = proc.wait(JOB_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"spark-submit {name} did not finish within {JOB_TIMEOUT_S}s\n"
                        f"{_logs_report(log, *cluster.executor_stderr_logs())}")
    finally:
        _stop(proc)
        _kill_leftovers({proc.pid})
    new_logs = [p for p in cluster.executor_stderr_logs() if p not in before]
    return Submitted(rc, log, time.monotonic() - started, new_logs)


def _libs_origins(text: str) -> list[str]:
    return [line.split(" imports libs from ", 1)[1].strip()
            for line in text.splitlines() if line.startswith(ISOLATION_MARKER) and " imports libs from " in line]


def test_smoke_job_on_standalone_cluster(spark, standalone_cluster: StandaloneCluster,
                                         shipped_wheel: Path, tmp_path: Path) -> None:
    assert JOB.is_file(), f"{JOB} is missing"
    jars = sorted(str(p) for p in JARS_DIR.glob("*.jar"))
    assert any(Path(j).name.startswith("delta-spark_") for j in jars), f"no Delta jars in {JARS_DIR} (make jars)"

    lakehouse = tmp_path / "lakehouse"
    isolation = tmp_path / "isolation"
    isolation.mkdir()
    (isolation / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    env = _base_env()
    env.update(
        SPARK_CONF_DIR=str(standalone_cluster.conf_dir),
        PYTHONPATH=str(isolation),  # driver: the isolation sitecustomize (py-files come first)
        CGOV__LAKEHOUSE_ROOT=str(lakehouse),  # CGOV__SPARK__MASTER stays unset: the launcher owns it
    )
    options = [
        "--py-files", str(shipped_wheel),
        "--conf", f"spark.pyspark.python={PYTHON}",
        "--conf", "spark.executor.memory=1g",
        "--conf", "spark.cores.max=2",
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", "spark.driver.bindAddress=127.0.0.1",
        "--conf", "spark.ui.enabled=false",
        "--conf", f"spark.executorEnv.PYTHONPATH={isolation}",
    ]
    shipped_libs = f"{shipped_wheel.name}{os.sep}libs{os.sep}__init__.py"

    # 1. The job, launched exactly as Airflow's SparkSubmitOperator would.
    job = _submit(standalone_cluster, "smoke_graph_metrics",
                  [str(JOB), "--run-date", RUN_DATE, "--env", "local"],
                  ["--jars", ",".join(jars), *options], env, tmp_path)
    assert job.rc == 0, f"the job exited with {job.rc} after {job.elapsed_s:.0f}s\n{job.report()}"
    print(f"smoke_graph_metrics on the standalone cluster: {job.elapsed_s:.1f}s")
    assert job.executor_logs, f"the job got no executor on the cluster\n{job.report()}"
    driver_text = job.log.read_text(errors="replace")
    # The driver ran the wheel's code (and read conf/local.yaml from it), not the checkout's.
    assert _libs_origins(driver_text) and all(shipped_libs in o for o in _libs_origins(driver_text)), job.report()
    assert "base: delta version 0, 15 vertices, 5 components" in driver_text, job.report()
    assert "with_late_edges: delta version 1, 15 vertices, 4 components" in driver_text, job.report()

    # 2. Project code on the executors, from their own copy of the shipped archive.
    probe_py = tmp_path / "executor_probe.py"
    probe_py.write_text(EXECUTOR_PROBE, encoding="utf-8")
    probe = _submit(standalone_cluster, "executor_probe", [str(probe_py)], options, env, tmp_path)
    assert probe.rc == 0, f"the executor probe exited with {probe.rc}\n{probe.report()}"
    assert probe.executor_logs, f"the probe got no executor on the cluster\n{probe.report()}"
    probe_rows = [line.split()[1:] for line in probe.log.read_text(errors="replace").splitlines()
                  if line.startswith("PROBE ")]
    assert len(probe_rows) == 2 and all(r[1:] == ["15", "5"] for r in probe_rows), probe.report()
    origins = _libs_origins("\n".join(p.read_text(errors="replace") for p in probe.executor_logs))
    assert origins, f"no executor Python worker imported libs\n{probe.report()}"
    # Relative to the executor's work dir: its fetched copy, not the driver-side file or the checkout.
    assert all(shipped_libs in o and not o.startswith((str(shipped_wheel.parent), str(REPO_ROOT)))
               for o in origins), origins
    for run in (job, probe):
        text = "\n".join(p.read_text(errors="replace") for p in run.executor_logs)
        for problem in ("ModuleNotFoundError", "No module named", "ImportError"):
            assert problem not in text, f"{problem} on an executor\n{run.report()}"

    # 3. What the job wrote, read back with an ordinary local session. Expected numbers from the
    #    job's docstring: 15 vertices per run date; 5 components before the late feed, 4 after.
    table = str(lakehouse / "smoke" / "graph_metrics")
    latest = spark.read.format("delta").load(table)
    assert latest.inputFiles() and all(f"run_date={RUN_DATE}" in f for f in latest.inputFiles())
    day = latest.where(f"run_date = '{RUN_DATE}'")
    assert day.count() == 15
    assert day.select("component").distinct().count() == 4
    assert day.select("id").distinct().count() == 15
    before_late = spark.read.format("delta").option("versionAsOf", 0).load(table).where(f"run_date = '{RUN_DATE}'")
    assert before_late.count() == 15
    assert before_late.select("component").distinct().count() == 5
