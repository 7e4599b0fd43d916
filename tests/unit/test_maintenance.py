"""OPTIMIZE, Z-order, VACUUM retention and the maintenance job, on the real Delta engine.

VACUUM only deletes files removed longer ago than the retention (a week at least), so the tests
back-date removals instead of waiting: they rewrite ``remove.deletionTimestamp`` in the JSON
commits and the removed files' modification times (VACUUM requires both to be old), drop the
checksum sidecars that would reject the edited commits, and clear the cached table state.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import sys
import time
import types
from pathlib import Path
from urllib.parse import unquote

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from libs.platform import delta_io
from libs.platform.config import ConfigError
from libs.platform.maintenance import (LISTING_PARALLELISM_CONF, SAFE_MIN_RETAIN_HOURS, interval_hours, maintain,
                                       optimize, set_retention, vacuum, zorder_cols)

SCHEMA = "dt string, creator_id string, n long"


def _append(spark, path: Path, rows: list[tuple], mode: str = "append") -> None:
    # One file per write: the file counts below are then exact.
    (spark.createDataFrame(rows, SCHEMA).coalesce(1).write.format("delta").mode(mode)
     .partitionBy("dt").save(str(path)))


def _data_files(path: Path) -> set[str]:
    """Parquet files on disk, relative to the table root (live and removed alike)."""
    return {str(p.relative_to(path)) for p in path.rglob("*.parquet") if "_delta_log" not in p.parts}


def _live_files(spark, path: Path) -> int:
    return DeltaTable.forPath(spark, str(path)).detail().first()["numFiles"]


def _properties(spark, path: Path) -> dict[str, str]:
    return DeltaTable.forPath(spark, str(path)).detail().first()["properties"]


def _backdate_removes(spark, path: Path, versions: list[int], days: float) -> set[str]:
    """Make the files removed by commits ``versions`` look removed ``days`` ago; returns their paths."""
    stamp = time.time() - days * 86400
    log = path / "_delta_log"
    removed: set[str] = set()
    for version in versions:
        commit = log / f"{version:020d}.json"
        actions = [json.loads(line) for line in commit.read_text().splitlines() if line.strip()]
        for action in actions:
            if "remove" in action:
                action["remove"]["deletionTimestamp"] = int(stamp * 1000)
                removed.add(unquote(action["remove"]["path"]))
        commit.write_text("".join(json.dumps(a) + "\n" for a in actions))
    for rel in removed:
        os.utime(path / rel, (stamp, stamp))
    # Hadoop's .<name>.crc sidecars would reject the edited commits; Delta's <version>.crc files
    # summarise table state; both are optional and rebuilt from the commits.
    for crc in log.glob("*.crc"):  # pathlib's glob matches dot-files too
        crc.unlink()
    # The session caches each table's state (tombstones included) and only reads newer commits.
    spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
    return removed


def test_optimize_compacts_small_files_and_keeps_the_data(spark, tmp_path):
    path = tmp_path / "t"
    for i in range(4):
        _append(spark, path, [("d0", f"c{i}{j}", i * 10 + j) for j in range(3)])
    assert _live_files(spark, path) == 4
    before = delta_io.latest_version(spark, str(path))

    metrics = optimize(spark, str(path), None)

    assert (metrics["files_removed"], metrics["files_added"], metrics["zorder_by"]) == (4, 1, [])
    assert _live_files(spark, path) == 1
    assertDataFrameEqual(delta_io.read_version(spark, str(path)),
                         delta_io.read_version(spark, str(path), before))
    # Compaction is incremental: nothing left to do, nothing committed.
    assert optimize(spark, str(path), [])["files_removed"] == 0


def test_zorder_with_partition_filter_rewrites_only_that_partition(spark, tmp_path):
    path = tmp_path / "t"
    # One write, two files per partition: two tasks, each holding rows of both dates.
    (spark.range(0, 8, 1, numPartitions=2)
     .select(F.when(F.col("id") % 2 == 0, "d0").otherwise("d1").alias("dt"),
             F.concat(F.lit("c"), (F.col("id") % 3).cast("string")).alias("creator_id"), F.col("id").alias("n"))
     .write.format("delta").partitionBy("dt").save(str(path)))
    assert _live_files(spark, path) == 4
    before = delta_io.latest_version(spark, str(path))

    metrics = optimize(spark, str(path), ["creator_id"], partition_filter="dt = 'd0'")

    assert (metrics["files_removed"], metrics["files_added"], metrics["partitions_optimized"]) == (2, 1, 1)
    assert metrics["zorder_by"] == ["creator_id"]
    assert _live_files(spark, path) == 3  # d1's two files untouched
    assertDataFrameEqual(delta_io.read_version(spark, str(path)),
                         delta_io.read_version(spark, str(path), before))


def test_zorder_cols_come_from_the_schema_module_minus_partition_columns(monkeypatch):
    assert zorder_cols("silver_videos") == ["creator_id"]
    demo = types.ModuleType("schemas.maintenance_demo")
    demo.PARTITION_COLS = ["dt"]
    demo.ZORDER_COLS = ["dt", "creator_id"]
    monkeypatch.setitem(sys.modules, "schemas.maintenance_demo", demo)
    assert zorder_cols("maintenance_demo") == ["creator_id"]
    assert zorder_cols("bronze_creators") == []  # shares schemas.bronze_feed: no module of its own
    assert zorder_cols("ingest_audit") == []     # declares ZORDER_COLS = []


@pytest.mark.parametrize("hours", [0, 24, SAFE_MIN_RETAIN_HOURS - 0.5, math.nan, math.inf, None])
def test_vacuum_refuses_retention_below_the_floor(spark, tmp_path, hours):
    with pytest.raises(ValueError, match="safety floor of 168 hours"):
        vacuum(spark, str(tmp_path / "never_touched"), hours)
    with pytest.raises(ValueError, match="safety floor"):
        maintain(spark, {"t": str(tmp_path / "never_touched")}, {}, hours)


def test_interval_hours_parses_delta_interval_properties():
    assert interval_hours("interval 30 days") == 720
    assert interval_hours("interval 1 week 2 hours") == 170
    assert interval_hours("INTERVAL 168 HOURS") == 168
    assert interval_hours("interval 2 months") is None
    assert interval_hours(None) is None


def test_vacuum_deletes_files_removed_before_the_retention_and_keeps_recent_ones(spark, tmp_path):
    path = tmp_path / "t"
    _append(spark, path, [("d0", "a", 1)])                   # v0: file A
    _append(spark, path, [("d0", "b", 2)], mode="overwrite")  # v1: removes A, adds B
    _append(spark, path, [("d0", "c", 3)], mode="overwrite")  # v2: removes B (just now), adds C
    old = _backdate_removes(spark, path, versions=[1], days=8)
    on_disk = _data_files(path)
    assert len(on_disk) == 3 and old < on_disk

    result = vacuum(spark, str(path), SAFE_MIN_RETAIN_HOURS)

    assert result["files_deleted"] == 1
    assert _data_files(path) == on_disk - old                   # A gone, B (removed now) and C kept
    assert _properties(spark, path)["delta.deletedFileRetentionDuration"] == "interval 168 hours"
    assertDataFrameEqual(delta_io.read_version(spark, str(path)), spark.createDataFrame([("d0", "c", 3)], SCHEMA))
    assertDataFrameEqual(delta_io.read_version(spark, str(path), 1), spark.createDataFrame([("d0", "b", 2)], SCHEMA))


def test_vacuum_honours_a_retention_longer_than_the_table_default(spark, tmp_path):
    """A bare ``VACUUM ... RETAIN 400 HOURS`` deletes files removed 10 days ago in Delta 4.4 (it
    uses the table's one-week default); :func:`vacuum` must keep them until 400 hours have passed."""
    path = tmp_path / "t"
    _append(spark, path, [("d0", "a", 1)])
    _append(spark, path, [("d0", "b", 2)], mode="overwrite")
    removed = _backdate_removes(spark, path, versions=[1], days=10)

    assert vacuum(spark, str(path), 400)["files_deleted"] == 0
    assert removed <= _data_files(path)
    assert _properties(spark, path)["delta.deletedFileRetentionDuration"] == "interval 400 hours"

    _backdate_removes(spark, path, versions=[1], days=17)   # 408 hours ago
    again = vacuum(spark, str(path), 400)
    assert (again["files_deleted"], again["properties_changed"]) == (1, {})  # no second metadata commit
    assert not removed & _data_files(path)

    # Beyond the 30-day log retention both properties move (Delta requires deleted <= log).
    assert set_retention(spark, str(path), 800) == {"delta.deletedFileRetentionDuration": "interval 800 hours",
                                                     "delta.logRetentionDuration": "interval 800 hours"}


def test_maintain_reports_missing_failed_and_ok_tables(spark, tmp_path):
    path = tmp_path / "t"
    for i in range(2):
        _append(spark, path, [("d0", f"c{i}", i)])
    tables = {"absent": str(tmp_path / "nope"), "broken": str(path), "fine": str(path)}

    report = maintain(spark, tables, {"broken": ["no_such_column"], "fine": ["creator_id"]}, SAFE_MIN_RETAIN_HOURS)

    assert [(r["table"], r["status"]) for r in report] == [("absent", "missing"), ("broken", "failed"), ("fine", "ok")]
    assert "no_such_column" in report[1]["error"]
    fine = report[2]
    assert (fine["files_removed"], fine["files_added"], fine["files_vacuumed"]) == (2, 1, 0)
    assert fine["zorder_by"] == ["creator_id"]
    assert all(r["seconds"] >= 0 for r in report)


def test_maintain_in_parallel_keeps_the_order_and_maintains_every_table(spark, tmp_path):
    tables = {}
    for t in range(5):
        path = tmp_path / f"t{t}"
        for i in range(t + 1):          # table t gets t+1 small files
            _append(spark, path, [("d0", f"c{i}", i)])
        tables[f"t{t}"] = str(path)
    tables["absent"] = str(tmp_path / "nope")
    assert spark.conf.get(LISTING_PARALLELISM_CONF, None) is None

    report = maintain(spark, tables, {"t3": ["creator_id"]}, SAFE_MIN_RETAIN_HOURS, parallelism=3)

    assert [r["table"] for r in report] == ["t0", "t1", "t2", "t3", "t4", "absent"]
    assert [r["status"] for r in report] == ["ok"] * 5 + ["missing"]
    # Compaction leaves a single file alone; Z-order (t3) rewrites whatever is in scope.
    assert [(r["files_removed"], r["files_added"]) for r in report[:5]] == [(0, 0), (2, 1), (3, 1), (4, 1), (5, 1)]
    for t in range(5):
        assert spark.read.format("delta").load(tables[f"t{t}"]).count() == t + 1
    # The listing parallelism was set for the batch only and unset again.
    assert spark.conf.get(LISTING_PARALLELISM_CONF, None) is None
    with pytest.raises(ValueError, match="parallelism"):
        maintain(spark, tables, {}, SAFE_MIN_RETAIN_HOURS, parallelism=0)


def test_job_maintains_declared_tables_and_skips_missing_ones(spark, tmp_path, monkeypatch, capsys):
    import jobs.delta_maintenance as job
    from libs.platform.config import load_settings

    monkeypatch.setenv("CGOV__LAKEHOUSE_ROOT", str(tmp_path))
    monkeypatch.setenv("CGOV__SPARK__MASTER", "local[2]")
    # The job's get_spark reuses the test session and would apply conf/local.yaml's options to it.
    monkeypatch.setenv("CGOV__SPARK__OPTIONS__SPARK.SQL.SHUFFLE.PARTITIONS", "2")
    monkeypatch.setenv("CGOV__SPARK__OPTIONS__SPARK.SQL.ADAPTIVE.ENABLED", "false")
    monkeypatch.setenv("CGOV__SPARK__OPTIONS__SPARK.DATABRICKS.DELTA.SNAPSHOTPARTITIONS", "1")
    settings = load_settings("local")
    videos = Path(settings.table("silver_videos"))
    for i in range(2):
        _append(spark, videos, [("2026-11-01", f"c{i}", i)])
        _append(spark, videos, [("2026-10-01", f"c{i}", i)])   # outside the run's window: left alone

    report = job.main(run_date=dt.date(2026, 11, 1), env="local", days=1)

    assert [r["table"] for r in report] == list(settings.data["tables"])
    by_table = {r["table"]: r for r in report}
    assert by_table["silver_videos"]["status"] == "ok"
    assert by_table["silver_videos"]["zorder_by"] == ["creator_id"]
    assert (by_table["silver_videos"]["files_removed"], by_table["silver_videos"]["files_added"]) == (2, 1)
    assert {r["status"] for t, r in by_table.items() if t != "silver_videos"} == {"missing"}
    out = capsys.readouterr().out
    assert "silver_videos: optimize (z-order by creator_id) 2 -> 1 files" in out
    assert "raw_creators: no Delta table at" in out


def test_job_arguments_narrow_the_tables_and_check_the_retention_first(tmp_path):
    import jobs.delta_maintenance as job
    from libs.platform.config import load_settings

    args = job.arg_parser().parse_args(["--run-date", "2026-11-01", "--tables", "silver_videos, silver_users",
                                        "--retain-hours", "200"])
    assert (args.tables, args.retain_hours) == ("silver_videos, silver_users", 200.0)
    settings = load_settings("local", environ={"CGOV__LAKEHOUSE_ROOT": str(tmp_path)})
    assert job.select_tables(settings, args.tables) == {"silver_videos": f"{tmp_path}/silver/videos",
                                                        "silver_users": f"{tmp_path}/silver/users"}
    with pytest.raises(ConfigError, match="no_such_table"):
        job.select_tables(settings, "silver_videos,no_such_table")
    # Refused before any Spark session is built.
    with pytest.raises(ValueError, match="safety floor"):
        job.main(run_date=dt.date(2026, 11, 1), env="local", retain_hours=1)
