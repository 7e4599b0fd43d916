"""The pure parts of ``benchmarks/bench_pipeline_scale.py``: Delta log replay, the stage graph and
arguments, and the DuckDB transcription of ``creator_signals`` on hand-made Parquet (no Spark).

Expected values are worked out by hand from the inputs written here (the arithmetic is in the
comments); none is computed by the code under test.
"""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from libs.platform.pipeline import Task, load_pipelines

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_pipeline_scale", REPO / "benchmarks" / "bench_pipeline_scale.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench      # dataclasses resolve string annotations through sys.modules
_spec.loader.exec_module(bench)

duckdb = pytest.importorskip("duckdb")


# --------------------------------------------------------------------------------------------
# Delta log replay
# --------------------------------------------------------------------------------------------

def _add(path: str, day: str, n: int | None, **extra) -> dict:
    stats = None if n is None else json.dumps({"numRecords": n, "minValues": {}})
    return {"add": {"path": path, "partitionValues": {"dt": day}, "size": 100, "modificationTime": 0,
                    "dataChange": True, "stats": stats, **extra}}


def _remove(path: str) -> dict:
    return {"remove": {"path": path, "deletionTimestamp": 0, "dataChange": True}}


_META = {"metaData": {"id": "t", "format": {"provider": "parquet", "options": {}}, "schemaString": "{}",
                      "partitionColumns": ["dt"], "configuration": {}}}
_PROTOCOL = {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}


def _commit(table: Path, version: int, actions: list[dict]) -> None:
    log = table / "_delta_log"
    log.mkdir(parents=True, exist_ok=True)
    (log / f"{version:020d}.json").write_text("\n".join(json.dumps(a) for a in actions) + "\n")


def _three_commits(table: Path) -> None:
    # v0 writes a (10 rows) and b (20) on 10-31; v1 replaces a by c (30) -- a replaceWhere;
    # v2 adds d (40) on 11-01, whose file name has a space (URL-encoded in the log).
    _commit(table, 0, [{"commitInfo": {"operation": "WRITE"}}, _PROTOCOL, _META,
                       _add("dt=2026-10-31/a.parquet", "2026-10-31", 10), _add("dt=2026-10-31/b.parquet", "2026-10-31", 20)])
    _commit(table, 1, [{"commitInfo": {"operation": "WRITE"}}, _remove("dt=2026-10-31/a.parquet"),
                       _add("dt=2026-10-31/c.parquet", "2026-10-31", 30)])
    _commit(table, 2, [{"commitInfo": {"operation": "WRITE"}}, _add("dt=2026-11-01/d%20x.parquet", "2026-11-01", 40)])


def test_active_files_replays_adds_and_removes_in_order(tmp_path):
    _three_commits(tmp_path)
    files = bench.active_files(tmp_path)
    assert [(Path(f.path).relative_to(tmp_path).as_posix(), f.num_records) for f in files] == [
        ("dt=2026-10-31/b.parquet", 20), ("dt=2026-10-31/c.parquet", 30), ("dt=2026-11-01/d x.parquet", 40)]
    assert files[2].partition_values == {"dt": "2026-11-01"}


def test_active_files_prunes_on_partition_values(tmp_path):
    _three_commits(tmp_path)
    files = bench.active_files(tmp_path, lambda pv: pv["dt"] == "2026-10-31")
    assert [Path(f.path).name for f in files] == ["b.parquet", "c.parquet"]


def test_a_file_removed_then_re_added_is_live(tmp_path):
    _commit(tmp_path, 0, [_PROTOCOL, _META, _add("x.parquet", "2026-11-01", 5)])
    _commit(tmp_path, 1, [_remove("x.parquet")])
    _commit(tmp_path, 2, [_add("x.parquet", "2026-11-01", 5)])
    assert [Path(f.path).name for f in bench.active_files(tmp_path)] == ["x.parquet"]
    _commit(tmp_path, 3, [_remove("x.parquet")])
    assert bench.active_files(tmp_path) == []


def test_rows_added_since_counts_only_the_newer_commits_live_files(tmp_path):
    _three_commits(tmp_path)
    assert bench.latest_version(tmp_path) == 2
    assert bench.rows_added_since(tmp_path, None) == 20 + 30 + 40     # a was removed by v1
    assert bench.rows_added_since(tmp_path, 0) == 30 + 40
    assert bench.rows_added_since(tmp_path, 1) == 40
    assert bench.rows_added_since(tmp_path, 2) is None                 # the stage wrote nothing
    _commit(tmp_path, 3, [_add("dt=2026-11-01/e.parquet", "2026-11-01", None)])
    assert bench.rows_added_since(tmp_path, 2) is None                 # no stats: unknown, not 0


def test_missing_table_and_log_gap_are_errors(tmp_path):
    with pytest.raises(bench.DeltaLogError, match="no Delta table"):
        bench.active_files(tmp_path / "nothing")
    _three_commits(tmp_path)
    (tmp_path / "_delta_log" / f"{1:020d}.json").unlink()
    with pytest.raises(bench.DeltaLogError, match="gaps"):
        bench.active_files(tmp_path)


def test_unreadable_tables_are_refused(tmp_path):
    dv = tmp_path / "dv"
    _commit(dv, 0, [_PROTOCOL, _META, _add("a.parquet", "2026-11-01", 3,
                                          deletionVector={"storageType": "u", "pathOrInlineDv": "x", "cardinality": 1})])
    with pytest.raises(bench.DeltaLogError, match="deletion vector"):
        bench.active_files(dv)
    cm = tmp_path / "cm"
    meta = json.loads(json.dumps(_META))
    meta["metaData"]["configuration"] = {"delta.columnMapping.mode": "name"}
    _commit(cm, 0, [_PROTOCOL, meta, _add("a.parquet", "2026-11-01", 3)])
    with pytest.raises(bench.DeltaLogError, match="column mapping"):
        bench.active_files(cm)
    feat = tmp_path / "feat"
    _commit(feat, 0, [{"protocol": {"minReaderVersion": 3, "minWriterVersion": 7,
                                    "readerFeatures": ["typeWidening"], "writerFeatures": []}},
                      _META, _add("a.parquet", "2026-11-01", 3)])
    with pytest.raises(bench.DeltaLogError, match="typeWidening"):
        bench.active_files(feat)


def test_checkpoint_then_later_commits(tmp_path):
    # Old JSON commits cleaned up: state = checkpoint at v1 (b, c live; a's tombstone) + commit 2.
    _three_commits(tmp_path)
    log = tmp_path / "_delta_log"
    for v in (0, 1):
        (log / f"{v:020d}.json").unlink()
    add_t = pa.struct([("path", pa.string()), ("partitionValues", pa.map_(pa.string(), pa.string())),
                       ("size", pa.int64()), ("modificationTime", pa.int64()), ("dataChange", pa.bool_()),
                       ("stats", pa.string())])
    remove_t = pa.struct([("path", pa.string()), ("deletionTimestamp", pa.int64()), ("dataChange", pa.bool_())])
    schema = pa.schema([("add", add_t), ("remove", remove_t)])
    rows = [
        {"add": {"path": "dt=2026-10-31/b.parquet", "partitionValues": [("dt", "2026-10-31")], "size": 1,
                 "modificationTime": 0, "dataChange": False, "stats": json.dumps({"numRecords": 20})}, "remove": None},
        {"add": {"path": "dt=2026-10-31/c.parquet", "partitionValues": [("dt", "2026-10-31")], "size": 1,
                 "modificationTime": 0, "dataChange": False, "stats": json.dumps({"numRecords": 30})}, "remove": None},
        {"add": None, "remove": {"path": "dt=2026-10-31/a.parquet", "deletionTimestamp": 0, "dataChange": True}},
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), log / f"{1:020d}.checkpoint.parquet")
    files = bench.active_files(tmp_path)
    assert [(Path(f.path).name, f.partition_values["dt"], f.num_records) for f in files] == [
        ("b.parquet", "2026-10-31", 20), ("c.parquet", "2026-10-31", 30), ("d x.parquet", "2026-11-01", 40)]


# --------------------------------------------------------------------------------------------
# Stage graph and arguments
# --------------------------------------------------------------------------------------------

def test_stage_arguments_substitute_the_size():
    landing = Task("raw_landing_zone", args=("--seed", "7", "--creators", "2000", "--days", "7"))
    assert bench.stage_arguments(landing, "2026-11-01", 1000, 3) == [
        "--run-date", "2026-11-01", "--env", "local", "--seed", "7", "--creators", "1000", "--days", "3"]
    bare = Task("raw_landing_zone", args=("--seed", "9"))
    assert bench.stage_arguments(bare, "2026-11-01", 50, 2) == [
        "--run-date", "2026-11-01", "--env", "local", "--seed", "9", "--days", "2", "--creators", "50"]
    windowed = Task("bronze_feeds", depends_on=("raw_landing_zone",), args=("--days", "7", "--feeds", "videos"))
    assert bench.stage_arguments(windowed, "2026-11-01", 1000, 3) == [
        "--run-date", "2026-11-01", "--env", "local", "--days", "3", "--feeds", "videos"]
    equals = Task("graph_edges", args=("--days=7",))
    assert bench.stage_arguments(equals, "2026-11-01", 1000, 5)[-1] == "--days=5"
    # A job without --days in its pipeline args gets none (it is not day-windowed), nor --creators.
    plain = Task("creator_signals", args=("--windows", "7,28"))
    assert bench.stage_arguments(plain, "2026-11-01", 1000, 3) == [
        "--run-date", "2026-11-01", "--env", "local", "--windows", "7,28"]
    with pytest.raises(ValueError):
        bench.stage_arguments(plain, "2026-11-01", 0, 3)


_YAML = """
spark_submit: {conn_id: spark_default, packages: "io.delta:x:1"}
dags:
  g_daily:
    schedule: "0 1 * * *"
    start_date: "2026-11-01"
    tasks:
      - {job: load, depends_on: []}
      - {job: features, depends_on: [load]}
      - {job: score, depends_on: [features], needs: [train]}
  g_weekly:
    schedule: "0 3 * * 1"
    start_date: "2026-11-01"
    tasks:
      - {job: train, depends_on: [], needs: [features]}
      - {job: other_model, depends_on: [], needs: [load]}
  g_maintenance:
    schedule: "0 6 * * *"
    start_date: "2026-11-01"
    tasks:
      - {job: optimize, depends_on: [], needs: [score]}
"""


def test_stage_graph_adds_only_the_needed_jobs_of_other_dags():
    pipelines = load_pipelines(_YAML, known_jobs=None)
    graph, text = bench.stage_graph(pipelines, ["daily"])
    # train is needed by score; other_model (weekly, not needed) and optimize (a dependent) are not run.
    assert [t.job for t in graph.topological_order()] == ["load", "features", "train", "score"]
    assert "train (g_weekly)" in text
    alone, text = bench.stage_graph(pipelines, ["daily"], with_needs=False)
    assert [t.job for t in alone.topological_order()] == ["load", "features", "score"]
    assert alone.task("score").needs == ("train",)


# --------------------------------------------------------------------------------------------
# DuckDB creator_signals on hand-made Parquet
# --------------------------------------------------------------------------------------------

RUN = dt.date(2026, 11, 1)
WINDOWS = (2, 7)      # 2 days: 10-31..11-01; 7 days: 10-26..11-01


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _write(path: Path, rows: list[dict], schema: pa.Schema) -> list[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return [str(path)]


TS = pa.timestamp("us")   # what DuckDB reads as TIMESTAMP: a naive UTC instant, as Spark's INT96


def _sources(tmp: Path) -> dict[str, list[str]]:
    creators = _write(tmp / "creators.parquet", [
        {"creator_id": "c1", "market": "US", "category": "beauty", "signup_date": dt.date(2026, 10, 1)},
        {"creator_id": "c2", "market": "GB", "category": "food", "signup_date": dt.date(2026, 10, 30)},
        {"creator_id": "c3", "market": "FR", "category": "toys", "signup_date": None},
    ], pa.schema([("creator_id", pa.string()), ("market", pa.string()), ("category", pa.string()),
                  ("signup_date", pa.date32())]))
    vschema = pa.schema([("video_id", pa.string()), ("creator_id", pa.string()), ("published_at", TS),
                         ("product_id", pa.string()), ("title", pa.string()), ("static_frame_ratio", pa.float64()),
                         ("motion_score", pa.float64()), ("aesthetic_score", pa.float64()), ("blur", pa.float64()),
                         ("audio_reuse", pa.bool_()), ("fingerprint", pa.string())])

    def video(vid, cr, ts, prod, title, st, mo, ae, bl, au):
        return {"video_id": vid, "creator_id": cr, "published_at": _ts(ts), "product_id": prod, "title": title,
                "static_frame_ratio": st, "motion_score": mo, "aesthetic_score": ae, "blur": bl, "audio_reuse": au,
                "fingerprint": "f"}
    videos = _write(tmp / "videos" / "a.parquet", [
        video("v1", "c1", "2026-11-01T10:00:00", "p1", "BUY NOW", 0.8, 0.1, 0.3, 0.2, True),
        video("v2", "c1", "2026-11-01T10:30:00", "p1", "BUY NOW", 0.2, 0.5, 0.5, 0.4, False),
        video("v3", "c1", "2026-10-29T09:00:00", None, "Hello", 0.6, 0.3, 0.9, 0.0, False),
        video("v4", "c2", "2026-10-31T12:00:00", "p2", "ok", 0.1, 0.9, 0.7, 0.1, False),
        video("v0", "c1", "2026-10-20T12:00:00", "p9", "old", 0.9, 0.9, 0.1, 0.9, True),    # 12 days ago: no window
        video("vf", "c1", "2026-11-02T01:00:00", "p9", "future", 0.9, 0.9, 0.1, 0.9, True),  # after the run date
    ], vschema) + _write(tmp / "videos" / "b.parquet", [
        video("v5", "cx", "2026-11-01T08:00:00", "p3", "orphan", 0.5, 0.5, 0.5, 0.5, False),  # not in the snapshot
    ], vschema)
    cschema = pa.schema([("copy_video_id", pa.string()), ("copy_creator_id", pa.string()),
                         ("original_video_id", pa.string()), ("original_creator_id", pa.string()),
                         ("distance", pa.int32()), ("same_creator", pa.bool_()), ("copy_published_at", TS)])
    copies = _write(tmp / "copies.parquet", [
        {"copy_video_id": "v2", "copy_creator_id": "c1", "original_video_id": "v1", "original_creator_id": "c1",
         "distance": 5, "same_creator": True, "copy_published_at": _ts("2026-11-01T10:30:00")},
        {"copy_video_id": "v1", "copy_creator_id": "c1", "original_video_id": "vo", "original_creator_id": "c2",
         "distance": 12, "same_creator": False, "copy_published_at": _ts("2026-11-01T10:00:00")},
        # v1 matches a second original of c2: still one copied video of c1, one more copied video of c2.
        {"copy_video_id": "v1", "copy_creator_id": "c1", "original_video_id": "vo4", "original_creator_id": "c2",
         "distance": 15, "same_creator": False, "copy_published_at": _ts("2026-11-01T10:00:00")},
        {"copy_video_id": "v3", "copy_creator_id": "c1", "original_video_id": "vo2", "original_creator_id": "c2",
         "distance": 20, "same_creator": False, "copy_published_at": _ts("2026-10-29T09:00:00")},
    ], cschema)
    eschema = pa.schema([("creator_id", pa.string()), ("user_key", pa.string()), ("event_type", pa.string()),
                         ("gmv_usd", pa.float64()), ("ts", TS)])

    def ev(user, kind, day, gmv=None, creator="c1"):
        return {"creator_id": creator, "user_key": user, "event_type": kind, "gmv_usd": gmv, "ts": _ts(day + "T12:00:00")}
    events = _write(tmp / "events.parquet", [
        ev("u1", "view", "2026-11-01"), ev("u1", "view", "2026-11-01"), ev("u1", "like", "2026-11-01"),
        ev("u2", "view", "2026-11-01"), ev("u2", "purchase", "2026-11-01", 10.0), ev("u2", "comment", "2026-10-31"),
        ev("u1", "purchase", "2026-10-28", 5.5), ev("u3", "follow", "2026-10-28"),
        ev("u9", "view", "2026-11-01", creator="cx"),
    ], eschema)
    complaints = _write(tmp / "complaints.parquet", [
        {"creator_id": "c1", "reason": "copyright", "ts": _ts("2026-11-01T01:00:00")},
        {"creator_id": "c1", "reason": "quality", "ts": _ts("2026-10-27T01:00:00")},
        {"creator_id": "c1", "reason": "quality", "ts": _ts("2026-10-26T23:59:59")},   # 6 days ago: 7-day window only
        {"creator_id": "c2", "reason": "fraud", "ts": _ts("2026-11-01T02:00:00")},
        {"creator_id": "c2", "reason": "fraud", "ts": _ts("2026-10-30T02:00:00")},     # 2 days ago: 7-day window only
    ], pa.schema([("creator_id", pa.string()), ("reason", pa.string()), ("ts", TS)]))
    refunds = _write(tmp / "refunds.parquet", [
        {"creator_id": "c1", "amount_usd": 7.25, "ts": _ts("2026-10-31T05:00:00")},
    ], pa.schema([("creator_id", pa.string()), ("amount_usd", pa.float64()), ("ts", TS)]))
    logins = _write(tmp / "logins.parquet", [
        {"creator_id": "c1", "device_id": "d1", "geo": "US", "ts": _ts("2026-11-01T06:00:00")},
        {"creator_id": "c1", "device_id": "d1", "geo": "US", "ts": _ts("2026-10-31T06:00:00")},
        {"creator_id": "c1", "device_id": "d2", "geo": "GB", "ts": _ts("2026-10-27T06:00:00")},
        {"creator_id": "c1", "device_id": "d3", "geo": "DE", "ts": _ts("2026-10-25T06:00:00")},   # 7 days ago: outside
        {"creator_id": "c3", "device_id": "d9", "geo": "FR", "ts": _ts("2026-10-20T06:00:00")},   # outside
    ], pa.schema([("creator_id", pa.string()), ("device_id", pa.string()), ("geo", pa.string()), ("ts", TS)]))
    return {"silver_creators": creators, "silver_videos": videos, "video_copies": copies,
            "silver_engagement_events": events, "silver_complaints": complaints, "silver_refunds": refunds,
            "silver_logins": logins}


# An inactive creator: counts and amounts 0, every mean/rate/share null.
_ZERO = dict.fromkeys(("n_videos", "active_days", "copy_sources", "times_copied", "views", "interactions", "follows",
                       "purchases", "distinct_users", "complaints", "copyright_complaints", "refunds", "logins",
                       "login_devices", "login_geos"), 0) | {"gmv_usd": 0.0, "refund_usd": 0.0}
_NULLS = {c: None for c in ("videos_per_active_day", "static_frame_mean", "static_frame_share", "motion_mean",
                            "aesthetic_mean", "aesthetic_p10", "aesthetic_p50", "low_aesthetic_share", "blur_mean",
                            "audio_reuse_share", "title_dup_share", "title_caps_share", "product_video_share",
                            "product_repeat_ratio", "gap_cv", "min_gap_minutes", "copied_video_share",
                            "self_repost_share", "copy_min_distance", "interaction_rate", "conversion_rate",
                            "top_user_share", "events_per_user", "complaint_rate", "refund_rate")}

EXPECTED = {
    # c1, 2 days: v1 and v2 (11-01 10:00, 10:30); u1 view view like, u2 view purchase(10) comment.
    ("c1", 2): {
        "market": "US", "category": "beauty", "account_age_days": 31,
        "n_videos": 2, "active_days": 1, "videos_per_active_day": 2.0,
        "static_frame_mean": 0.5, "static_frame_share": 0.5, "motion_mean": 0.3, "aesthetic_mean": 0.4,
        "aesthetic_p10": 0.32, "aesthetic_p50": 0.4,          # [0.3, 0.5]: 0.3 + 0.1 * 0.2; midpoint
        "low_aesthetic_share": 0.5, "blur_mean": 0.3, "audio_reuse_share": 0.5,
        "title_dup_share": 0.5, "title_caps_share": 1.0, "product_video_share": 1.0, "product_repeat_ratio": 0.5,
        "gap_cv": None, "min_gap_minutes": 30.0,               # one gap: no coefficient of variation
        "copied_video_share": 0.5, "self_repost_share": 0.5, "copy_sources": 1, "copy_min_distance": 12,
        "times_copied": 0,
        "views": 3, "interactions": 2, "follows": 0, "purchases": 1, "gmv_usd": 10.0, "distinct_users": 2,
        "interaction_rate": 2 / 3, "conversion_rate": 1 / 3, "top_user_share": 0.5, "events_per_user": 3.0,
        "complaints": 1, "copyright_complaints": 1, "refunds": 1, "refund_usd": 7.25,
        "complaint_rate": 1.0, "refund_rate": 1.0,
        "logins": 2, "login_devices": 1, "login_geos": 1},
    # c1, 7 days: + v3 (10-29 09:00, no product, "Hello"), + u1 purchase 5.5, u3 follow, 2 more complaints.
    ("c1", 7): {
        "market": "US", "category": "beauty", "account_age_days": 31,
        "n_videos": 3, "active_days": 2, "videos_per_active_day": 1.5,
        "static_frame_mean": 1.6 / 3, "static_frame_share": 2 / 3,     # 0.8 and 0.6 (>= 0.6) of 0.8, 0.2, 0.6
        "motion_mean": 0.3, "aesthetic_mean": 1.7 / 3,
        "aesthetic_p10": 0.34, "aesthetic_p50": 0.5,           # [0.3, 0.5, 0.9]: 0.3 + 0.2 * 0.2; middle
        "low_aesthetic_share": 1 / 3, "blur_mean": 0.2, "audio_reuse_share": 1 / 3,
        "title_dup_share": 1 / 3, "title_caps_share": 2.2 / 3,  # 1, 1, "Hello" 1/5
        "product_video_share": 2 / 3, "product_repeat_ratio": 0.5,
        "gap_cv": 2175 / 2205, "min_gap_minutes": 30.0,         # gaps 4380 (73 h) and 30 min: sd 2175, mean 2205
        "copied_video_share": 2 / 3, "self_repost_share": 1 / 3, "copy_sources": 1, "copy_min_distance": 12,
        "times_copied": 0,
        "views": 3, "interactions": 2, "follows": 1, "purchases": 2, "gmv_usd": 15.5, "distinct_users": 3,
        "interaction_rate": 2 / 3, "conversion_rate": 2 / 3, "top_user_share": 0.5, "events_per_user": 8 / 3,
        "complaints": 3, "copyright_complaints": 1, "refunds": 1, "refund_usd": 7.25,
        "complaint_rate": 1.5, "refund_rate": 0.5,
        "logins": 3, "login_devices": 2, "login_geos": 2},
    # c2: v4 (10-31) in both windows; its videos copied by c1: vo and vo4 (11-01), vo2 (10-29, 7 days only);
    # complaints on 11-01 and 10-30 (7 days only); no purchases.
    **{("c2", w): _NULLS | _ZERO | {
        "market": "GB", "category": "food", "account_age_days": 2,
        "n_videos": 1, "active_days": 1, "videos_per_active_day": 1.0,
        "static_frame_mean": 0.1, "static_frame_share": 0.0, "motion_mean": 0.9, "aesthetic_mean": 0.7,
        "aesthetic_p10": 0.7, "aesthetic_p50": 0.7, "low_aesthetic_share": 0.0, "blur_mean": 0.1,
        "audio_reuse_share": 0.0, "title_dup_share": 0.0, "title_caps_share": 0.0, "product_video_share": 1.0,
        "product_repeat_ratio": 0.0, "copied_video_share": 0.0, "self_repost_share": 0.0,
        "times_copied": copied, "complaints": complaints} for w, copied, complaints in ((2, 2, 1), (7, 3, 2))},
    # c3: nothing in either window (its only login is 12 days old); no signup date.
    **{("c3", w): _NULLS | _ZERO | {"market": "FR", "category": "toys", "account_age_days": None} for w in (2, 7)},
}


def _rows(con, table: str) -> dict[tuple[str, int], dict]:
    cur = con.execute(f"SELECT * FROM {table}")
    names = [d[0] for d in cur.description]
    return {(r[0], r[1]): dict(zip(names[2:], r[2:])) for r in (tuple(x) for x in cur.fetchall())}


def test_duckdb_signals_match_the_hand_computed_features(tmp_path):
    con = duckdb.connect()
    n = bench.duckdb_signals(con, _sources(tmp_path), RUN, WINDOWS)
    assert n == 6                                   # 3 creators x 2 windows; cx (not in the snapshot) dropped
    got = _rows(con, "duck_signals")
    assert set(got) == set(EXPECTED)
    for key, expected in EXPECTED.items():
        assert set(got[key]) == set(bench.SIGNAL_COLUMNS)
        for col in bench.SIGNAL_COLUMNS:
            want = expected[col]
            if isinstance(want, float):
                assert got[key][col] == pytest.approx(want, rel=1e-12), (key, col)
            else:
                assert got[key][col] == want, (key, col)


def test_duckdb_signals_with_empty_sources_give_zero_counts(tmp_path):
    sources = {name: [] for name in bench.SOURCE_COLUMNS}
    sources["silver_creators"] = _sources(tmp_path)["silver_creators"]
    con = duckdb.connect()
    assert bench.duckdb_signals(con, sources, RUN, WINDOWS) == 6
    got = _rows(con, "duck_signals")
    assert got[("c1", 7)] == _NULLS | _ZERO | {"market": "US", "category": "beauty", "account_age_days": 31}
    with pytest.raises(ValueError, match="no file list"):
        bench.duckdb_signals(con, {"silver_creators": []}, RUN, WINDOWS)


def test_compare_signals_reports_a_differing_column(tmp_path):
    con = duckdb.connect()
    bench.duckdb_signals(con, _sources(tmp_path), RUN, WINDOWS)
    # "Spark's" table: the same rows with one value changed and one row missing.
    spark = tmp_path / "spark.parquet"
    con.execute(f"COPY (SELECT * REPLACE (CASE WHEN creator_id = 'c1' AND window_days = 7 THEN views + 1 "
                f"ELSE views END AS views) FROM duck_signals WHERE NOT (creator_id = 'c3' AND window_days = 2)) "
                f"TO '{spark}' (FORMAT parquet)")
    check = bench.compare_signals(con, "duck_signals", [str(spark)])
    assert (check["rows_matched"], check["only_duckdb"], check["only_spark"]) == (5, 1, 0)
    assert check["columns"]["views"] == {"mismatched_rows": 1, "max_abs_diff": 1.0}
    assert check["columns"]["gmv_usd"]["mismatched_rows"] == 0
    assert not check["agree"]


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------

def _stage(job: str, wall: float, rows: int | None) -> dict:
    return {"job": job, "argv": ["--run-date", "2026-11-01", "--env", "local"], "returncode": 0, "wall_s": wall,
            "peak_rss_bytes": 2**30, "rows": rows, "rows_per_table": {}}


def _results() -> dict:
    small = {"creators": 10, "days": 3, "graph": "g_daily", "error": None,
             "stages": [_stage("load", 10.0, 100), _stage("score", 4.0, None), {"job": "extra", "skipped": "x"}]}
    big = {"creators": 1000, "days": 3, "graph": "g_daily", "error": None,
           "stages": [_stage("load", 25.0, 10_000), _stage("score", 40.0, 50), _stage("extra", 3.0, 7)]}
    return {"10": small, "1000": big}


def test_scaling_table_gives_each_stage_at_every_size_and_the_ratios():
    lines = bench.scaling_table(_results(), [1000, 10]).splitlines()
    assert lines[0] == "### Scaling 10 → 1,000 creators (100x)"
    assert lines[2] == "| stage | 10 s | 10 rows | 1,000 s | 1,000 rows | time ratio | rows ratio |"
    assert lines[4] == "| load | 10.0 | 100 | 25.0 | 10,000 | 2.5x | 100.0x |"
    assert lines[5] == "| score | 4.0 | n/a | 40.0 | 50 | 10.0x | n/a |"      # rows unknown at 10
    assert lines[6] == "| extra | n/a | n/a | 3.0 | 7 | n/a | n/a |"         # skipped at 10
    assert lines[7] == "| **total** | **14.0** | 100 | **68.0** | 10,057 | 4.9x | 100.6x |"


def test_report_reprints_a_saved_results_file(tmp_path, capsys):
    path = tmp_path / bench.RESULTS_FILE
    path.write_text(json.dumps({"sizes": _results(), "last_run": {"cpus": 2}}))

    assert bench.main(["--report", "--root-base", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "## Pipeline scale benchmark (g_daily; run date 2026-11-01, 3 days, 2 CPUs)" in out
    assert "### 10 creators" in out and "### 1,000 creators" in out
    assert "| **total** | **14.0** | 100 | **68.0** | 10,057 | 4.9x | 100.6x |" in out

    assert bench.main(["--report", "--root-base", str(tmp_path), "--sizes", "1000"]) == 0
    out = capsys.readouterr().out
    assert "### 10 creators" not in out and "### Scaling" not in out
    with pytest.raises(SystemExit, match="no results for size"):
        bench.main(["--report", "--root-base", str(tmp_path), "--sizes", "5"])
    with pytest.raises(SystemExit, match="no results file"):
        bench.main(["--report", "--root-base", str(tmp_path / "elsewhere")])
