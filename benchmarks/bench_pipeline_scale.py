"""Scale benchmark: the daily pipeline at several sizes -- per-stage wall time, rows, rows/s, peak
memory -- and the creator-signal aggregation in DuckDB as a single-node reference.

For each ``--sizes`` value (number of simulated creators) a lakehouse ``<root-base>/<size>`` is
built by running every stage (job) of the pipeline graph **as its own process**, exactly as
``cgov run <job> --run-date D --env local <the task's args>`` runs it, in the local runner's
topological order. The graph is ``--dags`` (default ``daily``: ``creator_governance_daily``)
merged, as ``cgov pipeline`` merges DAGs, with the jobs of other DAGs it *needs* (transitively):
for the daily DAG that adds ``creator_quality_model`` from the weekly retraining DAG, so the
scoring stage has a registered champion on a fresh lakehouse. ``--no-needs`` runs the selected
DAGs alone. The graph used is printed and stored.

Per stage:

* **wall s**: process start to exit -- Python imports, JVM and SparkSession start included,
  because that is what a scheduled task costs;
* **peak RSS**: the largest sum of resident memory over the stage's whole process tree (the
  ``cgov`` process, its JVM, Spark's Python workers), sampled every ``--sample-s`` seconds. Summing
  RSS counts pages shared between forked workers once per process: an upper bound, not PSS;
* **rows**: records in the data files the stage's commits added to its output tables (all the
  partitions it wrote, e.g. the 7 days of an event feed), read from the ``numRecords`` stats of
  those commits in the Delta log (:data:`OUTPUT_TABLES`) -- no Spark session per stage. A MERGE
  counts the rows of the files it rewrote. ``raw_landing_zone`` writes plain Parquet/JSON, not
  Delta: its rows are the raw feeds' counts the job prints (ground-truth tables excluded).
  ``graph_risk_model`` writes only to MLflow: no rows;
* **rows/s** = rows / wall s.

The DuckDB reference (:func:`signals_sql`) recomputes ``creator_signals`` for the run date -- every
feature column of :data:`schemas.creator_signals.SCHEMA` (:data:`SIGNAL_COLUMNS`), both windows --
in one SQL statement over the **same** Parquet files Spark read: the active files of the silver
Delta tables and of ``video_copies``, found by replaying the Delta log (:func:`active_files`) and
pruned on ``dt`` as ``jobs/creator_signals.py`` prunes. Its result is checked column by column
against the Spark table (keys matched, max abs difference, mismatching rows; doubles within 1e-9
relative) and timed best of ``--duck-repeats``; the comparison prints Spark's stage wall, the
job's own seconds (after its session started) and DuckDB's, with ratios. DuckDB runs in this
process with its default thread count (every core), the same cores Spark's ``local[*]`` uses.

Not a test: numbers depend on the machine. Results are printed as Markdown and merged, per size,
into ``<root-base>/scale_results.json``; with two or more sizes a scaling table gives each
stage's time and rows at every size and the ratios largest / smallest. ``--report`` prints the
tables of that file again without running anything.

    .venv/bin/python benchmarks/bench_pipeline_scale.py --sizes 10000,100000 --days 7
    .venv/bin/python benchmarks/bench_pipeline_scale.py --sizes 1000 --days 3 --root-base /tmp/scale
    .venv/bin/python benchmarks/bench_pipeline_scale.py --sizes 10000 --skip-existing --stages creator_signals
    .venv/bin/python benchmarks/bench_pipeline_scale.py --report --root-base /tmp/scale
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:          # run as a script from anywhere: the project's packages
    sys.path.insert(0, str(REPO))

from libs.platform.pipeline import Pipeline, PipelineSet, Task, job_arguments  # noqa: E402

CGOV = REPO / ".venv" / "bin" / "cgov"
MARKER = ".bench_pipeline_scale.json"   # written into each lakehouse this benchmark creates
RESULTS_FILE = "scale_results.json"
LANDING_JOB = "raw_landing_zone"
DEFAULT_SIZES = "10000,100000"

# Job -> the tables whose rows count as the stage's output (the tables each job's docstring says it
# writes). Audit/quarantine side tables are left out: they are bookkeeping, not the stage's product.
_FEEDS = ("creators", "users", "devices", "videos", "listings", "moderation", "engagement_events", "logins",
          "withdrawals", "complaints", "refunds")
OUTPUT_TABLES: dict[str, tuple[str, ...]] = {
    "bronze_feeds": tuple(f"bronze_{f}" for f in _FEEDS),
    "silver_feeds": tuple(f"silver_{f}" for f in _FEEDS),
    "graph_edges": ("graph_edges", "graph_vertices"),
    "traffic_quotas": ("traffic_quotas", "traffic_quota_report"),
    "creator_quality_model": ("model_evaluations", "creator_quality_holdout"),
    "ecosystem_value_model": ("model_evaluations",),
    "graph_risk_model": (),              # MLflow and ml.work_dir only
    "delta_maintenance": (),             # rewrites files; counting them as output would double count
}

# Day-windowed jobs: the ``--days`` of their pipeline args becomes the benchmark's --days.
DAYS_FLAG = "--days"
CREATORS_FLAG = "--creators"

# Delta reader features whose data files DuckDB reads correctly as plain Parquet. Anything else
# (column mapping renames physical columns, deletion vectors hide rows, v2 checkpoints move the
# log into sidecars, type widening changes physical types) is refused rather than misread.
_PLAIN_READER_FEATURES = frozenset({"timestampNtz", "vacuumProtocolCheck"})
_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10}))?\.parquet$")


class DeltaLogError(ValueError):
    """A Delta log this benchmark cannot replay faithfully (gap, unsupported feature)."""


# --------------------------------------------------------------------------------------------
# Delta log replay (pure file reading: no Spark)
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DeltaFile:
    """One active data file of a Delta table."""

    path: str                            # absolute local path
    partition_values: Mapping[str, str | None]
    size: int
    num_records: int | None              # from the add action's stats; None when stats are off


def _log_dir(table: str | os.PathLike) -> Path:
    return Path(table) / "_delta_log"


def commit_versions(table: str | os.PathLike) -> list[int]:
    """Versions of the JSON commit files present in the table's log, ascending (empty: no table)."""
    log = _log_dir(table)
    if not log.is_dir():
        return []
    return sorted(int(m.group(1)) for p in log.iterdir() if (m := _COMMIT.match(p.name)))


def latest_version(table: str | os.PathLike) -> int | None:
    """The table's newest committed version, or None when there is no table."""
    versions = commit_versions(table)
    return versions[-1] if versions else None


def _read_commit(table: str | os.PathLike, version: int) -> list[dict[str, Any]]:
    path = _log_dir(table) / f"{version:020d}.json"
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _resolve(table: str | os.PathLike, path: str) -> str:
    """An add/remove path (URL-encoded, relative to the table, or an absolute file URI) -> local path."""
    parsed = urllib.parse.urlparse(path)
    if parsed.scheme in ("", "file"):
        local = urllib.parse.unquote(parsed.path)
        return local if os.path.isabs(local) else str(Path(table) / local)
    raise DeltaLogError(f"{table}: data file {path!r} is not on the local file system")


def _num_records(stats: str | None) -> int | None:
    if not stats:
        return None
    value = json.loads(stats).get("numRecords")
    return None if value is None else int(value)


def _checkpoint_actions(table: str | os.PathLike, version: int) -> list[dict[str, Any]]:
    """The add/remove/metaData/protocol actions of the (classic, possibly multi-part) checkpoint."""
    import pyarrow.parquet as pq

    log = _log_dir(table)
    parts = sorted(p for p in log.iterdir() if (m := _CHECKPOINT.match(p.name)) and int(m.group(1)) == version)
    multi = [p for p in parts if _CHECKPOINT.match(p.name).group(2)]
    if multi:
        total = int(_CHECKPOINT.match(multi[0].name).group(3))
        if len(multi) != total:
            raise DeltaLogError(f"{table}: checkpoint {version} has {len(multi)} of its {total} parts")
        parts = multi
    actions: list[dict[str, Any]] = []
    for part in parts:
        table_ = pq.read_table(part)
        for row in table_.to_pylist():
            for kind in ("add", "remove", "metaData", "protocol"):
                action = row.get(kind)
                if action is None:
                    continue
                if kind == "add" and isinstance(action.get("partitionValues"), list):
                    action = {**action, "partitionValues": dict(action["partitionValues"])}  # map -> dict
                if kind == "metaData" and isinstance(action.get("configuration"), list):
                    action = {**action, "configuration": dict(action["configuration"])}
                actions.append({kind: action})
    return actions


def _replay_plan(table: str | os.PathLike) -> tuple[int | None, list[int]]:
    """(checkpoint version to start from or None, JSON commit versions to apply after it).

    A log holding every commit from 0 is replayed from its JSON alone. Once old commits were
    cleaned up, the newest classic checkpoint followed by an unbroken run of commits to the head is
    used. A gap anywhere, or a V2 (UUID-named) checkpoint, is an error, never a partial answer.
    """
    log = _log_dir(table)
    versions = commit_versions(table)
    if not versions:
        raise DeltaLogError(f"no Delta table at {table} (no _delta_log commits)")
    head = versions[-1]
    if any(".checkpoint." in p.name and not _CHECKPOINT.match(p.name) for p in log.iterdir()
           if not p.name.endswith(".crc")):
        raise DeltaLogError(f"{table}: V2 (UUID-named) checkpoints are not supported by this replay")
    if versions == list(range(head + 1)):
        return None, versions
    checkpoints = sorted({int(m.group(1)) for p in log.iterdir() if (m := _CHECKPOINT.match(p.name))}, reverse=True)
    present = set(versions)
    for cp in checkpoints:
        if cp <= head and all(v in present for v in range(cp + 1, head + 1)):
            return cp, list(range(cp + 1, head + 1))
    raise DeltaLogError(f"{table}: commits {versions[0]}..{head} have gaps and no checkpoint bridges them")


def active_files(table: str | os.PathLike, partition_filter: Any = None) -> list[DeltaFile]:
    """The table's current data files, by replaying its Delta log (adds minus removes, in order).

    ``partition_filter`` (``dict -> bool`` on the partition values) keeps only matching files, the
    way Spark prunes ``dt``. Refuses tables whose files are not plain Parquet to a reader that
    ignores the Delta protocol: column mapping, deletion vectors, unknown reader features.
    """
    checkpoint, commits = _replay_plan(table)
    actions: list[dict[str, Any]] = _checkpoint_actions(table, checkpoint) if checkpoint is not None else []
    for v in commits:
        actions.extend(_read_commit(table, v))
    live: dict[str, dict[str, Any]] = {}
    for action in actions:
        if "protocol" in action:
            unsupported = set(action["protocol"].get("readerFeatures") or ()) - _PLAIN_READER_FEATURES
            if unsupported:
                raise DeltaLogError(f"{table}: reader feature(s) {sorted(unsupported)} are not readable as plain Parquet")
        elif "metaData" in action:
            mode = (action["metaData"].get("configuration") or {}).get("delta.columnMapping.mode", "none")
            if mode != "none":
                raise DeltaLogError(f"{table}: column mapping mode {mode!r}: physical column names differ")
        elif "add" in action:
            live[action["add"]["path"]] = action["add"]
        elif "remove" in action:
            live.pop(action["remove"]["path"], None)
    out = []
    for add in live.values():
        if add.get("deletionVector"):
            raise DeltaLogError(f"{table}: {add['path']} has a deletion vector (rows hidden from plain Parquet)")
        values = dict(add.get("partitionValues") or {})
        if partition_filter is None or partition_filter(values):
            out.append(DeltaFile(_resolve(table, add["path"]), values, int(add.get("size") or 0),
                                 _num_records(add.get("stats"))))
    return sorted(out, key=lambda f: f.path)


def rows_added_since(table: str | os.PathLike, after_version: int | None) -> int | None:
    """Records in the files that commits newer than ``after_version`` added and that are still live.

    ``after_version`` None means "no table before": every commit counts. None when the table has no
    such commit (the stage did not write it) or the stats lack ``numRecords``.
    """
    versions = [v for v in commit_versions(table) if after_version is None or v > after_version]
    if not versions:
        return None
    added: dict[str, int | None] = {}
    for v in versions:
        for action in _read_commit(table, v):
            if "add" in action:
                added[action["add"]["path"]] = _num_records(action["add"].get("stats"))
            elif "remove" in action:
                added.pop(action["remove"]["path"], None)
    if any(n is None for n in added.values()):
        return None
    return sum(n for n in added.values() if n is not None)


# --------------------------------------------------------------------------------------------
# The stage graph and each stage's arguments
# --------------------------------------------------------------------------------------------

def stage_graph(pipelines: PipelineSet, dags: Sequence[str], with_needs: bool = True) -> tuple[Pipeline, str]:
    """The pipeline to benchmark and a one-line description of it.

    ``with_needs``: the selected DAGs plus, transitively, every job of another DAG they need --
    the ancestors of the selected jobs in the merged graph of *all* DAGs (where needs are edges) --
    so that a fresh lakehouse runs end to end. Without it: :meth:`PipelineSet.merged` of the
    selection alone (a need outside it then reads whatever that job last wrote).
    """
    selected = pipelines.select(dags)
    if not with_needs:
        graph = pipelines.merged(selected)
        return graph, f"{graph.dag_id} (needs outside the selection are not run)"
    everything = pipelines.merged()
    by_job = {t.job: t for t in everything.tasks}
    keep: set[str] = set()
    stack = [job for d in selected for job in pipelines.dag(d).jobs]
    while stack:
        job = stack.pop()
        if job not in keep:
            keep.add(job)
            stack.extend(by_job[job].depends_on)
    tasks = tuple(t for t in everything.tasks if t.job in keep)
    extra = [t.job for t in tasks if pipelines.dag_of(t.job) not in selected]
    graph = dataclasses.replace(everything, dag_id="+".join(selected), tasks=tasks,
                                description="benchmark: " + ", ".join(selected))
    needs = (" + needed jobs of other DAGs: " + ", ".join(f"{j} ({pipelines.dag_of(j)})" for j in extra)
             if extra else " (needs nothing outside)")
    return graph, ", ".join(selected) + needs


def _set_flag(args: list[str], flag: str, value: str, add_if_missing: bool) -> list[str]:
    """``args`` with every ``flag V`` / ``flag=V`` set to ``value`` (appended if absent and asked)."""
    out: list[str] = []
    found = False
    i = 0
    while i < len(args):
        a = args[i]
        if a == flag:
            if i + 1 >= len(args):
                raise ValueError(f"{flag} has no value in {args}")
            out += [flag, value]
            found = True
            i += 2
            continue
        if a.startswith(flag + "="):
            out.append(f"{flag}={value}")
            found = True
        else:
            out.append(a)
        i += 1
    if not found and add_if_missing:
        out += [flag, value]
    return out


def stage_arguments(task: Task, run_date: str, creators: int, days: int, env: str = "local") -> list[str]:
    """The job's argv for the benchmark: the pipeline's own (:func:`job_arguments`) with the size.

    ``raw_landing_zone`` gets ``--creators``/``--days`` set (added when the pipeline omits them);
    a job whose pipeline args carry ``--days`` (the day-windowed loaders) gets the benchmark's
    ``--days``; every other argument is passed through unchanged.
    """
    if creators < 1 or days < 1:
        raise ValueError(f"creators and days must be positive, got {creators} and {days}")
    args = job_arguments(task, env, run_date)
    landing = task.job == LANDING_JOB
    args = _set_flag(args, DAYS_FLAG, str(days), add_if_missing=landing)
    if landing:
        args = _set_flag(args, CREATORS_FLAG, str(creators), add_if_missing=True)
    return args


# --------------------------------------------------------------------------------------------
# Running one stage: wall time and peak memory of its process tree
# --------------------------------------------------------------------------------------------

def _tree_rss_psutil(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:       # exited between listing and reading
            pass
    return total


def _tree_rss_proc(pid: int) -> int:
    """Same as the psutil version, from /proc (ppid links, then statm resident pages)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    page = os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * page
        except OSError:
            pass
        stack.extend(children.get(p, ()))
    return total


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    try:
        import psutil  # noqa: F401
    except ImportError:
        return _tree_rss_proc(pid)
    return _tree_rss_psutil(pid)


class PeakSampler:
    """Background thread: the highest value of ``measure()`` seen every ``interval`` seconds."""

    def __init__(self, measure, interval: float) -> None:
        self._measure, self._interval = measure, interval
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._measure())
            self._stop.wait(self._interval)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._measure())


@dataclasses.dataclass
class StageRun:
    job: str
    argv: list[str]
    returncode: int
    wall_s: float
    peak_rss_bytes: int
    log: str


def run_stage(job: str, argv: list[str], env: Mapping[str, str], log_path: Path, sample_s: float) -> StageRun:
    """``cgov run <job> <argv>`` as a child process; output to ``log_path``; wall + peak tree RSS."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(CGOV), "run", job, *argv]
    with open(log_path, "w", encoding="utf-8") as log:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=REPO, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
        with PeakSampler(lambda: tree_rss(proc.pid), sample_s) as sampler:
            rc = proc.wait()
        wall = time.monotonic() - started
    return StageRun(job, argv, rc, wall, sampler.peak, log_path.read_text(encoding="utf-8", errors="replace"))


_LANDED = re.compile(r"^\[raw_landing_zone\] (raw_\w+): ([\d,]+) (?:rows|lines) ->", re.M)
_JOB_SECONDS = re.compile(r"^\[creator_signals\] .* in ([\d.]+)s ->", re.M)


def landing_rows(log: str) -> int | None:
    """Rows of the raw feeds ``raw_landing_zone`` printed (ground truth excluded); None if none printed."""
    counts = {name: int(n.replace(",", "")) for name, n in _LANDED.findall(log)}
    return sum(counts.values()) if counts else None


# --------------------------------------------------------------------------------------------
# DuckDB reference of creator_signals
# --------------------------------------------------------------------------------------------

# Source relations of the SQL and the columns (DuckDB types) it reads from each.
SOURCE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "silver_creators": (("creator_id", "VARCHAR"), ("market", "VARCHAR"), ("category", "VARCHAR"),
                        ("signup_date", "DATE")),
    "silver_videos": (("video_id", "VARCHAR"), ("creator_id", "VARCHAR"), ("published_at", "TIMESTAMP"),
                      ("product_id", "VARCHAR"), ("title", "VARCHAR"), ("static_frame_ratio", "DOUBLE"),
                      ("motion_score", "DOUBLE"), ("aesthetic_score", "DOUBLE"), ("blur", "DOUBLE"),
                      ("audio_reuse", "BOOLEAN")),
    "video_copies": (("copy_video_id", "VARCHAR"), ("copy_creator_id", "VARCHAR"), ("original_video_id", "VARCHAR"),
                     ("original_creator_id", "VARCHAR"), ("distance", "INTEGER"), ("same_creator", "BOOLEAN"),
                     ("copy_published_at", "TIMESTAMP")),
    "silver_engagement_events": (("creator_id", "VARCHAR"), ("user_key", "VARCHAR"), ("event_type", "VARCHAR"),
                                 ("gmv_usd", "DOUBLE"), ("ts", "TIMESTAMP")),
    "silver_complaints": (("creator_id", "VARCHAR"), ("reason", "VARCHAR"), ("ts", "TIMESTAMP")),
    "silver_refunds": (("creator_id", "VARCHAR"), ("amount_usd", "DOUBLE"), ("ts", "TIMESTAMP")),
    "silver_logins": (("creator_id", "VARCHAR"), ("device_id", "VARCHAR"), ("geo", "VARCHAR"), ("ts", "TIMESTAMP")),
}
# Snapshot sources are read at dt == run date; the others over the longest window's dt range.
SNAPSHOT_SOURCES = ("silver_creators", "video_copies")

KEY_COLUMNS = ("creator_id", "window_days")
# Every column of creator_signals but dt (the run date) and the keys; the comparison covers all.
SIGNAL_COLUMNS: tuple[str, ...] = (
    "market", "category", "account_age_days",
    "n_videos", "active_days", "videos_per_active_day", "static_frame_mean", "static_frame_share", "motion_mean",
    "aesthetic_mean", "aesthetic_p10", "aesthetic_p50", "low_aesthetic_share", "blur_mean", "audio_reuse_share",
    "title_dup_share", "title_caps_share", "product_video_share", "product_repeat_ratio", "gap_cv",
    "min_gap_minutes", "copied_video_share", "self_repost_share", "copy_sources", "copy_min_distance",
    "times_copied", "views", "interactions", "follows", "purchases", "gmv_usd", "distinct_users",
    "interaction_rate", "conversion_rate", "top_user_share", "events_per_user", "complaints",
    "copyright_complaints", "refunds", "refund_usd", "complaint_rate", "refund_rate", "logins", "login_devices",
    "login_geos",
)
_TEXT_COLUMNS = ("market", "category")


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def source_view_sql(name: str, files: Sequence[str]) -> str:
    """``CREATE TEMP VIEW <name>`` over exactly ``files`` (typed, empty when there are none).

    ``hive_partitioning=false``: the partition column is not needed (pruning happened on the file
    list) and DuckDB must not re-type ``dt=...`` directories. Timestamps: Spark writes INT96/UTC,
    which DuckDB reads as a naive UTC TIMESTAMP -- the same instant Spark's UTC session sees.
    """
    cols = SOURCE_COLUMNS[name]
    select = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in cols)
    if files:
        listing = "[" + ", ".join(_sql_str(f) for f in files) + "]"
        body = f"SELECT {select} FROM read_parquet({listing}, hive_partitioning = false, union_by_name = true)"
    else:
        body = "SELECT " + ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in cols) + " WHERE false"
    return f"CREATE OR REPLACE TEMP VIEW {name} AS {body}"


def signals_sql(run_date: dt.date, windows: Sequence[int]) -> str:
    """One DuckDB statement computing :data:`SIGNAL_COLUMNS` per ``(creator_id, window_days)``.

    A transcription of :func:`libs.quality.signals.creator_signals` (same thresholds, imported from
    it): a dated row belongs to window ``w`` when ``0 <= run_date - date < w`` (UTC date); every
    creator of the ``silver_creators`` view gets one row per window; counts of inactive creators
    are 0, rates with a zero denominator null. ``videos_copies``'s full outer joins of the Spark
    version are left joins here: the final left join onto the creators drops the same rows.
    Reads the views of :func:`source_view_sql`.
    """
    from libs.quality import signals as spark_signals   # the thresholds: one definition, no drift

    ws = sorted({int(w) for w in windows})
    if not ws or ws[0] < 1:
        raise ValueError(f"windows must be positive day counts, got {list(windows)}")
    run = f"DATE '{run_date.isoformat()}'"
    static = float(spark_signals.STATIC_FRAME_THRESHOLD)
    low = float(spark_signals.LOW_AESTHETIC_THRESHOLD)
    interactions = ", ".join(_sql_str(i) for i in spark_signals.INTERACTIONS)
    wins = ", ".join(f"({w})" for w in ws)

    def windowed(source: str, ts: str) -> str:
        # DATE - DATE is whole days in DuckDB (Spark's datediff); NULL dates join no window.
        return (f"SELECT s.*, w.window_days FROM {source} s JOIN wins w "
                f"ON {run} - CAST(s.{ts} AS DATE) >= 0 AND {run} - CAST(s.{ts} AS DATE) < w.window_days")

    # Casts to DOUBLE are explicit throughout: a DuckDB literal like 60.0 is a DECIMAL, and an
    # integer sum is a HUGEINT -- neither is what Spark computes.
    return f"""
WITH wins(window_days) AS (VALUES {wins}),
v AS ({windowed('silver_videos', 'published_at')}),
v_letters AS (
  SELECT *, regexp_replace(coalesce(title, ''), '[^A-Za-z]', '', 'g') AS letters FROM v),
v_feat AS (
  SELECT *,
    CASE WHEN length(letters) > 0
         THEN CAST(length(regexp_replace(letters, '[^A-Z]', '', 'g')) AS DOUBLE) / length(letters) END AS caps_share,
    CAST(epoch_us(published_at) // 1000000
         - lag(epoch_us(published_at) // 1000000) OVER (
             PARTITION BY creator_id, window_days ORDER BY published_at, video_id) AS DOUBLE) / 60.0::DOUBLE AS gap_min
  FROM v_letters),
video_agg AS (
  SELECT creator_id, window_days,
    count(*) AS n_videos,
    count(DISTINCT CAST(published_at AS DATE)) AS active_days,
    avg(static_frame_ratio) AS static_frame_mean,
    avg(CAST(static_frame_ratio >= {static!r}::DOUBLE AS DOUBLE)) AS static_frame_share,
    avg(motion_score) AS motion_mean,
    avg(aesthetic_score) AS aesthetic_mean,
    quantile_cont(aesthetic_score, 0.1) AS aesthetic_p10,
    quantile_cont(aesthetic_score, 0.5) AS aesthetic_p50,
    avg(CAST(aesthetic_score < {low!r}::DOUBLE AS DOUBLE)) AS low_aesthetic_share,
    avg(blur) AS blur_mean,
    avg(CAST(audio_reuse AS DOUBLE)) AS audio_reuse_share,
    1.0::DOUBLE - CAST(count(DISTINCT title) AS DOUBLE) / count(*) AS title_dup_share,
    avg(caps_share) AS title_caps_share,
    CAST(count(product_id) AS DOUBLE) / count(*) AS product_video_share,
    CASE WHEN count(product_id) > 0
         THEN 1.0::DOUBLE - CAST(count(DISTINCT product_id) AS DOUBLE) / count(product_id) END AS product_repeat_ratio,
    CASE WHEN count(gap_min) >= 2 THEN stddev_pop(gap_min) / nullif(avg(gap_min), 0.0::DOUBLE) END AS gap_cv,
    min(gap_min) AS min_gap_minutes
  FROM v_feat GROUP BY creator_id, window_days),
c AS ({windowed('video_copies', 'copy_published_at')}),
copier AS (
  SELECT copy_creator_id AS creator_id, window_days,
    count(DISTINCT CASE WHEN NOT same_creator THEN copy_video_id END) AS cross_copies,
    count(DISTINCT CASE WHEN same_creator THEN copy_video_id END) AS self_reposts,
    count(DISTINCT CASE WHEN NOT same_creator THEN original_creator_id END) AS copy_sources,
    min(CASE WHEN NOT same_creator THEN distance END) AS copy_min_distance
  FROM c GROUP BY 1, 2),
victim AS (
  SELECT original_creator_id AS creator_id, window_days, count(DISTINCT original_video_id) AS times_copied
  FROM c WHERE NOT same_creator GROUP BY 1, 2),
e AS ({windowed('silver_engagement_events', 'ts')}),
per_user AS (
  SELECT creator_id, window_days, user_key,
    count(*) AS n,
    sum(CAST(event_type = 'view' AS BIGINT)) AS views,
    sum(CAST(event_type IN ({interactions}) AS BIGINT)) AS interactions,
    sum(CAST(event_type = 'follow' AS BIGINT)) AS follows,
    sum(CAST(event_type = 'purchase' AS BIGINT)) AS purchases,
    sum(CASE WHEN event_type = 'purchase' THEN gmv_usd END) AS gmv_usd
  FROM e GROUP BY creator_id, window_days, user_key),
eng AS (
  SELECT creator_id, window_days,
    CAST(sum(views) AS BIGINT) AS views, CAST(sum(interactions) AS BIGINT) AS interactions,
    CAST(sum(follows) AS BIGINT) AS follows, CAST(sum(purchases) AS BIGINT) AS purchases,
    coalesce(sum(gmv_usd), 0.0::DOUBLE) AS gmv_usd,
    count(*) AS distinct_users,
    CAST(sum(n) AS BIGINT) AS events,
    max(n) AS top_user_events
  FROM per_user GROUP BY 1, 2),
compl AS (
  SELECT creator_id, window_days, count(*) AS complaints,
    CAST(sum(CAST(reason = 'copyright' AS BIGINT)) AS BIGINT) AS copyright_complaints
  FROM ({windowed('silver_complaints', 'ts')}) GROUP BY 1, 2),
refu AS (
  SELECT creator_id, window_days, count(*) AS refunds, sum(amount_usd) AS refund_usd
  FROM ({windowed('silver_refunds', 'ts')}) GROUP BY 1, 2),
logi AS (
  SELECT creator_id, window_days, count(*) AS logins, count(DISTINCT device_id) AS login_devices,
    count(DISTINCT geo) AS login_geos
  FROM ({windowed('silver_logins', 'ts')}) GROUP BY 1, 2),
base AS (
  SELECT cr.creator_id, w.window_days, cr.market, cr.category,
    CAST({run} - cr.signup_date AS INTEGER) AS account_age_days
  FROM silver_creators cr CROSS JOIN wins w),
joined AS (
  SELECT b.*,
    coalesce(va.n_videos, 0) AS n_videos, coalesce(va.active_days, 0) AS active_days,
    CASE WHEN va.active_days > 0 THEN CAST(va.n_videos AS DOUBLE) / va.active_days END AS videos_per_active_day,
    va.static_frame_mean, va.static_frame_share, va.motion_mean, va.aesthetic_mean, va.aesthetic_p10,
    va.aesthetic_p50, va.low_aesthetic_share, va.blur_mean, va.audio_reuse_share, va.title_dup_share,
    va.title_caps_share, va.product_video_share, va.product_repeat_ratio, va.gap_cv, va.min_gap_minutes,
    CASE WHEN va.n_videos > 0 THEN CAST(coalesce(cp.cross_copies, 0) AS DOUBLE) / va.n_videos END AS copied_video_share,
    CASE WHEN va.n_videos > 0 THEN CAST(coalesce(cp.self_reposts, 0) AS DOUBLE) / va.n_videos END AS self_repost_share,
    coalesce(cp.copy_sources, 0) AS copy_sources,
    CAST(cp.copy_min_distance AS INTEGER) AS copy_min_distance,
    coalesce(vi.times_copied, 0) AS times_copied,
    coalesce(en.views, 0) AS views, coalesce(en.interactions, 0) AS interactions,
    coalesce(en.follows, 0) AS follows, coalesce(en.purchases, 0) AS purchases,
    coalesce(en.gmv_usd, 0.0::DOUBLE) AS gmv_usd, coalesce(en.distinct_users, 0) AS distinct_users,
    CASE WHEN en.views > 0 THEN CAST(en.interactions AS DOUBLE) / en.views END AS interaction_rate,
    CASE WHEN en.views > 0 THEN CAST(en.purchases AS DOUBLE) / en.views END AS conversion_rate,
    CASE WHEN en.events > 0 THEN CAST(en.top_user_events AS DOUBLE) / en.events END AS top_user_share,
    CASE WHEN en.distinct_users > 0 THEN CAST(en.events AS DOUBLE) / en.distinct_users END AS events_per_user,
    coalesce(co.complaints, 0) AS complaints, coalesce(co.copyright_complaints, 0) AS copyright_complaints,
    coalesce(rf.refunds, 0) AS refunds, coalesce(rf.refund_usd, 0.0::DOUBLE) AS refund_usd,
    coalesce(lg.logins, 0) AS logins, coalesce(lg.login_devices, 0) AS login_devices,
    coalesce(lg.login_geos, 0) AS login_geos
  FROM base b
  LEFT JOIN video_agg va USING (creator_id, window_days)
  LEFT JOIN copier cp USING (creator_id, window_days)
  LEFT JOIN victim vi USING (creator_id, window_days)
  LEFT JOIN eng en USING (creator_id, window_days)
  LEFT JOIN compl co USING (creator_id, window_days)
  LEFT JOIN refu rf USING (creator_id, window_days)
  LEFT JOIN logi lg USING (creator_id, window_days))
SELECT creator_id, window_days, {', '.join(c for c in SIGNAL_COLUMNS if c not in ('complaint_rate', 'refund_rate'))},
  CASE WHEN purchases > 0 THEN CAST(complaints AS DOUBLE) / purchases END AS complaint_rate,
  CASE WHEN purchases > 0 THEN CAST(refunds AS DOUBLE) / purchases END AS refund_rate
FROM joined
"""


def duckdb_signals(con: Any, sources: Mapping[str, Sequence[str]], run_date: dt.date, windows: Sequence[int],
                   into: str = "duck_signals") -> int:
    """Create the views over ``sources`` (table -> Parquet files) and materialise the signals into
    the temp table ``into``; returns its row count. Every source of :data:`SOURCE_COLUMNS` is required."""
    missing = set(SOURCE_COLUMNS) - set(sources)
    if missing:
        raise ValueError(f"no file list for source(s) {sorted(missing)}")
    for name in SOURCE_COLUMNS:
        con.execute(source_view_sql(name, list(sources[name])))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {into} AS {signals_sql(run_date, windows)}")
    return int(con.execute(f"SELECT count(*) FROM {into}").fetchone()[0])


def source_files(tables: Mapping[str, str], run_date: dt.date, windows: Sequence[int]) -> dict[str, list[DeltaFile]]:
    """The Delta files ``jobs/creator_signals.py`` reads: snapshots at ``dt == run date``, the rest
    over the ``dt`` range of the longest window (string comparison, as Spark's pushed filter)."""
    day = run_date.isoformat()
    first = (run_date - dt.timedelta(days=max(windows) - 1)).isoformat()
    out = {}
    for name in SOURCE_COLUMNS:
        if name in SNAPSHOT_SOURCES:
            keep = lambda pv: pv.get("dt") == day                      # noqa: E731
        else:
            keep = lambda pv: pv.get("dt") is not None and first <= pv["dt"] <= day   # noqa: E731
        out[name] = active_files(tables[name], keep)
    return out


def compare_signals(con: Any, duck: str, spark_files: Sequence[str]) -> dict[str, Any]:
    """Column-by-column comparison of DuckDB's ``duck`` table with Spark's creator_signals files.

    Keys are matched on ``(creator_id, window_days)``; per column: rows that differ (null on one
    side only, text not equal, or numbers further apart than 1e-9 relative: sums in another order
    round differently in the last bits) and the max abs difference.
    """
    if not spark_files:
        raise ValueError("Spark's creator_signals has no file for the run date")
    listing = "[" + ", ".join(_sql_str(f) for f in spark_files) + "]"
    con.execute(f"CREATE OR REPLACE TEMP VIEW spark_signals AS SELECT * FROM read_parquet({listing}, "
                "hive_partitioning = false, union_by_name = true)")
    counts = con.execute(f"""
        SELECT count(*) FILTER (WHERE d.creator_id IS NOT NULL AND s.creator_id IS NOT NULL),
               count(*) FILTER (WHERE s.creator_id IS NULL),
               count(*) FILTER (WHERE d.creator_id IS NULL)
        FROM {duck} d FULL JOIN spark_signals s USING (creator_id, window_days)""").fetchone()
    parts = []
    for col in SIGNAL_COLUMNS:
        if col in _TEXT_COLUMNS:
            bad = f"d.{col} IS DISTINCT FROM s.{col}"
            diff = "NULL::DOUBLE"
        else:
            a, b = f"CAST(d.{col} AS DOUBLE)", f"CAST(s.{col} AS DOUBLE)"
            bad = (f"NOT ((({a}) IS NULL AND ({b}) IS NULL) OR (abs({a} - {b}) <= "
                   f"1e-9 * greatest(1.0, abs({a}), abs({b}))))")
            diff = f"max(abs({a} - {b}))"
        parts.append(f"count(*) FILTER (WHERE {bad}), {diff}")
    row = con.execute(f"SELECT {', '.join(parts)} FROM {duck} d JOIN spark_signals s "
                      f"USING (creator_id, window_days)").fetchone()
    columns = {col: {"mismatched_rows": int(row[2 * i]), "max_abs_diff": row[2 * i + 1]}
               for i, col in enumerate(SIGNAL_COLUMNS)}
    return {"rows_matched": int(counts[0]), "only_duckdb": int(counts[1]), "only_spark": int(counts[2]),
            "columns": columns,
            "agree": counts[1] == 0 and counts[2] == 0 and all(c["mismatched_rows"] == 0 for c in columns.values())}


def duckdb_reference(tables: Mapping[str, str], run_date: dt.date, windows: Sequence[int], repeats: int,
                     sample_s: float) -> dict[str, Any]:
    """Log replay + best-of-``repeats`` DuckDB aggregation + comparison with Spark's table."""
    import duckdb

    t0 = time.monotonic()
    files = source_files(tables, run_date, windows)
    spark_files = [f.path for f in active_files(tables["creator_signals"],
                                                lambda pv: pv.get("dt") == run_date.isoformat())]
    replay_s = time.monotonic() - t0
    input_rows = sum(f.num_records or 0 for fs in files.values() for f in fs)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")   # only matters for TIMESTAMPTZ inputs; Spark's session is UTC
    times = []
    with PeakSampler(lambda: tree_rss(os.getpid()), sample_s) as sampler:
        for _ in range(repeats):
            t = time.monotonic()
            rows = duckdb_signals(con, {k: [f.path for f in v] for k, v in files.items()}, run_date, windows)
            times.append(time.monotonic() - t)
    check = compare_signals(con, "duck_signals", spark_files)
    threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
    con.close()
    return {"duckdb_version": duckdb.__version__, "threads": threads, "replay_s": replay_s, "times_s": times,
            "best_s": min(times), "rows": rows, "input_rows": input_rows,
            "input_files": {k: len(v) for k, v in files.items()}, "peak_rss_bytes": sampler.peak, "check": check}


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------

def _prepare_root(root: Path, creators: int, days: int, seed: int, run_date: str, skip_existing: bool) -> bool:
    """Make ``root`` ready; True when its landing zone is reused (``--skip-existing``)."""
    marker = root / MARKER
    landing = {"creators": creators, "days": days, "seed": seed, "run_date": run_date}
    raw = root / "raw" / "creators"
    if skip_existing and raw.is_dir() and any(raw.rglob("*.parquet")):
        if marker.exists():
            made = json.loads(marker.read_text())
            if made != landing:
                raise SystemExit(f"{root}: its landing zone was made with {made}, not {landing}; "
                                 "drop --skip-existing or use another --root-base")
        return True
    if root.exists() and any(root.iterdir()):
        if not marker.exists():
            raise SystemExit(f"{root} exists and was not made by this benchmark: refusing to delete it")
        shutil.rmtree(root)             # ours, and not reusable: start from an empty lakehouse
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(landing))
    return False


def _fmt_int(n: int | None) -> str:
    return "n/a" if n is None else f"{n:,}"


def _fmt_rate(rows: int | None, seconds: float) -> str:
    return "n/a" if rows is None or seconds <= 0 else f"{rows / seconds:,.0f}"


def stage_table(size: int, stages: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: one row per stage and a total row."""
    lines = [f"### {size:,} creators", "", "| stage | wall s | rows | rows/s | peak RSS MB |",
             "|---|---:|---:|---:|---:|"]
    for s in stages:
        if s.get("skipped"):
            lines.append(f"| {s['job']} | (skipped: {s['skipped']}) | | | |")
            continue
        lines.append(f"| {s['job']}{'' if s['returncode'] == 0 else ' **FAILED**'} | {s['wall_s']:.1f} | "
                     f"{_fmt_int(s['rows'])} | {_fmt_rate(s['rows'], s['wall_s'])} | "
                     f"{s['peak_rss_bytes'] / 2**20:,.0f} |")
    ran = [s for s in stages if not s.get("skipped")]
    total_s = sum(s["wall_s"] for s in ran)
    total_rows = sum(s["rows"] or 0 for s in ran)
    peak = max((s["peak_rss_bytes"] for s in ran), default=0)
    lines.append(f"| **total** | **{total_s:.1f}** | {total_rows:,} | {_fmt_rate(total_rows, total_s)} | "
                 f"max {peak / 2**20:,.0f} |")
    return "\n".join(lines)


def scaling_table(results: Mapping[str, Mapping[str, Any]], sizes: Sequence[int]) -> str:
    """Markdown: each stage's wall time and rows at every size, and the ratios largest / smallest size.

    Why: a stage whose time grows much slower than its rows is paying fixed costs (JVM start,
    planning, commits) at the small size; one that grows faster than its rows is a scaling
    problem (shuffle spill, a quadratic join) to look at before the next size. Stages that did
    not run at both ends show ``n/a`` ratios.
    """
    sizes = sorted(sizes)
    lo, hi = str(sizes[0]), str(sizes[-1])
    by_size = {str(n): {st["job"]: st for st in results[str(n)]["stages"] if not st.get("skipped")} for n in sizes}
    jobs: list[str] = []
    for n in sizes:
        jobs += [st["job"] for st in results[str(n)]["stages"] if st["job"] not in jobs]
    head = " | ".join(f"{n:,} s | {n:,} rows" for n in sizes)
    lines = [f"### Scaling {sizes[0]:,} → {sizes[-1]:,} creators ({sizes[-1] / sizes[0]:g}x)", "",
             f"| stage | {head} | time ratio | rows ratio |", "|---|" + "---:|---:|" * len(sizes) + "---:|---:|"]

    def cells(job: str) -> list[str]:
        out = []
        for n in sizes:
            st = by_size[str(n)].get(job)
            out += [f"{st['wall_s']:.1f}", _fmt_int(st["rows"])] if st else ["n/a", "n/a"]
        return out

    def ratio(a: float | None, b: float | None) -> str:
        return "n/a" if a is None or b is None or a <= 0 else f"{b / a:.1f}x"

    for job in jobs:
        a, b = by_size[lo].get(job), by_size[hi].get(job)
        lines.append(f"| {job} | {' | '.join(cells(job))} | {ratio(a and a['wall_s'], b and b['wall_s'])} | "
                     f"{ratio(a and a['rows'], b and b['rows'])} |")
    totals = {n: sum(st["wall_s"] for st in by_size[str(n)].values()) for n in sizes}
    rows = {n: sum(st["rows"] or 0 for st in by_size[str(n)].values()) for n in sizes}
    tot_cells = " | ".join(f"**{totals[n]:.1f}** | {rows[n]:,}" for n in sizes)
    lines.append(f"| **total** | {tot_cells} | {ratio(totals[sizes[0]], totals[sizes[-1]])} | "
                 f"{ratio(rows[sizes[0]], rows[sizes[-1]])} |")
    return "\n".join(lines)


def duck_table(size: int, spark_stage: Mapping[str, Any] | None, duck: Mapping[str, Any]) -> str:
    """Markdown: Spark's creator_signals vs DuckDB, with ratios, then the check."""
    lines = [f"#### creator_signals: Spark vs DuckDB ({size:,} creators, {duck['rows']:,} rows, "
             f"{duck['input_rows']:,} input rows)", "",
             "| engine | what is timed | s | input rows/s | peak RSS MB | Spark / DuckDB |", "|---|---|---:|---:|---:|---:|"]
    best = duck["best_s"]
    if spark_stage and not spark_stage.get("skipped"):
        wall = spark_stage["wall_s"]
        lines.append(f"| Spark (local[*]) | stage process (JVM start + read + write Delta + checks) | {wall:.2f} | "
                     f"{_fmt_rate(duck['input_rows'], wall)} | {spark_stage['peak_rss_bytes'] / 2**20:,.0f} | "
                     f"{wall / best:.1f}x |")
        job_s = spark_stage.get("job_seconds")
        if job_s is not None:
            lines.append(f"| Spark (local[*]) | job after session start (read + write Delta + checks) | {job_s:.2f} | "
                         f"{_fmt_rate(duck['input_rows'], job_s)} | | {job_s / best:.1f}x |")
    lines.append(f"| DuckDB {duck['duckdb_version']} ({duck['threads']} threads) | query into a temp table, best of "
                 f"{len(duck['times_s'])} | {best:.2f} | {_fmt_rate(duck['input_rows'], best)} | "
                 f"{duck['peak_rss_bytes'] / 2**20:,.0f} (this process) | 1.0x |")
    lines.append(f"| DuckDB | + Delta log replay ({duck['replay_s']:.2f} s) | {best + duck['replay_s']:.2f} | | | |")
    chk = duck["check"]
    bad = {c: v for c, v in chk["columns"].items() if v["mismatched_rows"]}
    worst = max((v["max_abs_diff"] or 0.0 for v in chk["columns"].values()), default=0.0)
    lines += ["", f"Check vs Spark's table: {chk['rows_matched']:,} rows matched, {chk['only_duckdb']} only in DuckDB, "
                  f"{chk['only_spark']} only in Spark; {len(SIGNAL_COLUMNS)} columns, largest abs difference "
                  f"{worst:.3g}; " + ("**all agree**" if chk["agree"] else f"**DIFFER**: {bad}")]
    return "\n".join(lines)


def _merge_results(path: Path, update: Mapping[str, Any]) -> None:
    """Merge this run's sizes into the results file (one benchmark run per size is common)."""
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except ValueError:
            data = {}
    data.setdefault("sizes", {}).update(update["sizes"])
    data["last_run"] = {k: v for k, v in update.items() if k != "sizes"}
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))


def bench_size(size: int, args: argparse.Namespace, graph: Pipeline, description: str) -> dict[str, Any]:
    """Run every stage for one size; the size's results (stages, DuckDB reference, errors)."""
    from libs.platform.config import load_settings

    root = Path(args.root_base).resolve() / str(size)
    reuse = _prepare_root(root, size, args.days, args.seed, args.run_date, args.skip_existing)
    env = {**os.environ, "CGOV__LAKEHOUSE_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
    settings = load_settings("local", environ=env)
    tables = dict(settings.data["tables"])
    wanted = {s.strip() for s in args.stages.split(",") if s.strip()} or None
    order = graph.topological_order()
    if wanted and wanted - {t.job for t in order}:
        raise SystemExit(f"--stages: not in the graph: {sorted(wanted - {t.job for t in order})}")
    print(f"\n[bench] {size:,} creators x {args.days} days -> {root}; graph: {description}", flush=True)
    result: dict[str, Any] = {"root": str(root), "creators": size, "days": args.days, "run_date": args.run_date,
                              "graph": description,
                              "order": [t.job for t in order], "stages": [], "error": None}
    for i, task in enumerate(order, start=1):
        if wanted is not None and task.job not in wanted:
            result["stages"].append({"job": task.job, "skipped": "not in --stages"})
            continue
        if task.job == LANDING_JOB and reuse:
            result["stages"].append({"job": task.job, "skipped": "landing zone reused"})
            continue
        argv = stage_arguments(task, args.run_date, size, args.days)
        outputs = OUTPUT_TABLES.get(task.job, (task.job,) if task.job in tables else ())
        before = {t: latest_version(tables[t]) for t in outputs}
        print(f"[bench]   ({i}/{len(order)}) {task.job} {' '.join(argv)}", flush=True)
        run = run_stage(task.job, argv, env, root / "_bench_logs" / f"{task.job}.log", args.sample_s)
        if task.job == LANDING_JOB:
            rows: int | None = landing_rows(run.log)
            per_table: dict[str, int | None] = {}
        else:
            per_table = {t: rows_added_since(tables[t], before[t]) for t in outputs}
            counted = [n for n in per_table.values() if n is not None]
            rows = sum(counted) if counted else None
        stage = {"job": task.job, "argv": argv, "returncode": run.returncode, "wall_s": run.wall_s,
                 "peak_rss_bytes": run.peak_rss_bytes, "rows": rows, "rows_per_table": per_table}
        if task.job == "creator_signals" and (m := _JOB_SECONDS.search(run.log)):
            stage["job_seconds"] = float(m.group(1))
        result["stages"].append(stage)
        print(f"[bench]       {run.wall_s:.1f}s, rows {_fmt_int(rows)}, peak RSS {run.peak_rss_bytes / 2**20:,.0f} MB"
              f"{'' if run.returncode == 0 else f', EXIT {run.returncode}'}", flush=True)
        if run.returncode != 0:
            tail = "\n".join(run.log.splitlines()[-40:])
            result["error"] = f"{task.job} exited {run.returncode} (log: {root / '_bench_logs' / (task.job + '.log')})"
            print(f"[bench] {result['error']}; last lines:\n{tail}", file=sys.stderr, flush=True)
            return result
    if latest_version(tables["creator_signals"]) is not None and not args.no_duckdb:
        windows = [int(w) for w in settings.section("quality")["signal_windows"]]
        spark_stage = next((s for s in result["stages"] if s["job"] == "creator_signals"), None)
        result["duckdb"] = duckdb_reference(tables, dt.date.fromisoformat(args.run_date), windows,
                                            args.duck_repeats, args.sample_s)
        result["duckdb"]["windows"] = windows
        result["duckdb"]["spark_stage"] = spark_stage
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=None,
                        help=f"comma-separated creator counts (default {DEFAULT_SIZES}; with --report: all saved)")
    parser.add_argument("--days", type=int, default=7, help="simulated days (landing zone and day-windowed jobs)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--run-date", default="2026-11-01")
    parser.add_argument("--root-base", default="/tmp/scale", help="one lakehouse per size: <root-base>/<size>")
    parser.add_argument("--dags", default="daily", help="DAG ids or suffixes (comma-separated)")
    parser.add_argument("--no-needs", action="store_true",
                        help="run the selected DAGs only, not the jobs of other DAGs they need")
    parser.add_argument("--skip-existing", action="store_true",
                        help="reuse a size's lakehouse when its landing zone exists (the simulation is not re-run)")
    parser.add_argument("--stages", default="", help="comma-separated subset of the graph's jobs to run")
    parser.add_argument("--sample-s", type=float, default=0.5, help="memory sampling interval")
    parser.add_argument("--duck-repeats", type=int, default=3)
    parser.add_argument("--no-duckdb", action="store_true", help="skip the DuckDB reference")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: print the tables of <root-base>/scale_results.json again "
                             "(the sizes given with --sizes, or all it holds)")
    args = parser.parse_args(argv)
    raw_sizes = args.sizes if args.sizes is not None else ("" if args.report else DEFAULT_SIZES)
    sizes = [int(s.replace("_", "")) for s in raw_sizes.split(",") if s.strip()]
    if (args.sizes is not None or not args.report) and (not sizes or min(sizes) < 1):
        parser.error(f"--sizes must be positive integers, got {raw_sizes!r}")
    if args.report:
        return report_saved(Path(args.root_base).resolve() / RESULTS_FILE, sizes or None)
    dt.date.fromisoformat(args.run_date)
    if not CGOV.exists():
        parser.error(f"{CGOV} not found: install the project into .venv first (make install)")

    from libs.platform.pipeline import load_pipelines

    graph, description = stage_graph(load_pipelines(), args.dags.split(","), with_needs=not args.no_needs)
    base = Path(args.root_base).resolve()
    base.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for size in sizes:
        res = bench_size(size, args, graph, description)
        results[str(size)] = res
        _merge_results(base / RESULTS_FILE, {"sizes": {str(size): res}, "argv": sys.argv[1:], "graph": description,
                                             "cpus": os.cpu_count(), "finished": dt.datetime.now().isoformat()})
    return report(results, sizes, description, args.run_date, args.days, os.cpu_count(), base / RESULTS_FILE)


def report(results: Mapping[str, Mapping[str, Any]], sizes: Sequence[int], description: str, run_date: str,
           days: int, cpus: int | None, path: Path) -> int:
    """Print every size's tables (stages, DuckDB reference) and the scaling table; 1 if anything failed."""
    print(f"\n## Pipeline scale benchmark ({description}; run date {run_date}, {days} days, {cpus} CPUs)\n")
    for size in sizes:
        res = results[str(size)]
        print(stage_table(size, res["stages"]))
        if res["error"]:
            print(f"\n**stopped**: {res['error']}")
        if "duckdb" in res:
            print()
            print(duck_table(size, res["duckdb"]["spark_stage"], res["duckdb"]))
        print()
    if len(sizes) > 1:
        print(scaling_table(results, sizes))
        print()
    print(f"results: {path}")
    failed = any(results[str(n)]["error"] is not None for n in sizes)
    return 1 if failed or any(not results[str(n)].get("duckdb", {}).get("check", {"agree": True})["agree"]
                              for n in sizes) else 0


def report_saved(path: Path, sizes: Sequence[int] | None) -> int:
    """``--report``: print the tables of a results file again (all its sizes, or ``sizes``), running nothing."""
    if not path.exists():
        raise SystemExit(f"{path}: no results file (run the benchmark first)")
    data = json.loads(path.read_text())
    saved = sorted(int(n) for n in data.get("sizes", {}))
    chosen = sorted(sizes) if sizes else saved
    if missing := [n for n in chosen if n not in saved]:
        raise SystemExit(f"{path}: no results for size(s) {missing}; it has {saved}")
    first = data["sizes"][str(chosen[0])]
    run_date = first.get("run_date") or next(
        (st["argv"][st["argv"].index("--run-date") + 1] for st in first["stages"] if "--run-date" in st.get("argv", [])),
        "?")   # results written before run_date was recorded: the stages' own argument
    return report(data["sizes"], chosen, first["graph"], run_date, first["days"], data.get("last_run", {}).get("cpus"),
                  path)

if __name__ == "__main__":
    sys.exit(main())
