"""End to end: simulated landing zone -> bronze_feeds -> silver_feeds, judged against the truth.

The simulator plants defects and records each in ``truth_defects`` (feed, kind, line hash);
ingestion never sees that table. These tests check that every planted defect, and nothing else,
lands in quarantine with the matching reason; that counts reconcile per feed and date; that a
re-run changes no data; that a broken contract, a drifted schema and a killed writer all leave
readers on a consistent version.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

import jobs.silver_feeds as silver_job
from libs.ingest.feeds import FEEDS
from libs.platform import delta_io
from libs.sim.defects import INGEST_REASON
from schemas.raw_users import SCHEMA as RAW_USERS
from schemas.raw_videos import SCHEMA as RAW_VIDEOS
from schemas.truth_defects import SCHEMA as TRUTH_DEFECTS
from tests.e2e.conftest import LANDING, ingest

pytestmark = pytest.mark.slow
RUN = LANDING["run_date"]
DAYS = LANDING["days"]


def _extra_parquet(spark, df, directory: str, name: str) -> Path:
    """Write ``df`` as one more Parquet file ``name`` into a landing-zone partition directory."""
    tmp = f"{directory}/../_tmp_{name}"
    df.coalesce(1).write.mode("overwrite").parquet(tmp)
    part = next(Path(tmp).glob("part-*.parquet"))
    target = Path(directory) / name
    shutil.move(str(part), target)
    shutil.rmtree(tmp)
    return target


def _audit(spark, settings):
    return delta_io.read_version(spark, settings.table("ingest_audit"))


def test_every_planted_defect_and_nothing_else_is_quarantined(spark, settings, ingested):
    assert {r["feed"] for r in ingested} == {f.name for f in FEEDS}
    audit = _audit(spark, settings).where(F.col("run_date") == RUN)
    rows = audit.collect()
    assert len(rows) == sum(1 if f.snapshot else DAYS for f in FEEDS)   # a quiet day too
    for r in rows:   # raw = bronze = accepted + quarantined, per feed and date, and published
        assert r["raw_records"] == r["bronze_records"] == r["accepted"] + r["quarantined"], r
        assert r["status"] == "published" and r["gate_success"], r

    truth = (spark.read.schema(TRUTH_DEFECTS).parquet(settings.table("truth_defects"))
             .where(F.col("seed") == LANDING["seed"]).collect())
    quarantine = delta_io.read_version(spark, settings.table("ingest_quarantine")).collect()
    assert len(quarantine) == len(truth) > 50
    assert sum(r["quarantined"] for r in rows) == len(truth)
    by_hash = {(q["feed"], q["_line_hash"]): q["reason"].split(":")[0] for q in quarantine}
    dup_keys = {(q["feed"], q["dt"]) for q in quarantine if q["reason"].startswith("duplicate_key")}
    for t in truth:
        feed = t["feed"].removeprefix("raw_")
        if t["defect"] == "duplicate_event_id":
            # Two identical copies: which one is "the duplicate" is a tie; the key's date must have one.
            assert (feed, t["dt"]) in dup_keys, t
        else:
            assert by_hash.get((feed, t["line_hash"])) == INGEST_REASON[t["defect"]], t
    # Every feed's silver keys are unique per date.
    for f in FEEDS:
        silver = delta_io.read_version(spark, settings.table(f.silver_table))
        keys = list(f.silver.KEYS)
        assert silver.groupBy(*keys).count().where("count > 1").count() == 0, f.name


def _snapshot(spark, settings, table: str) -> list[tuple]:
    return sorted(map(tuple, delta_io.read_version(spark, settings.table(table)).collect()))


def test_rerun_is_a_no_op_on_the_data(spark, settings, ingested):
    tables = ["silver_videos", "silver_engagement_events", "silver_creators", "ingest_quarantine"]
    before = {t: _snapshot(spark, settings, t) for t in tables}
    audit_rows = _audit(spark, settings).count()
    version = delta_io.latest_version(spark, settings.table("silver_videos"))
    ingest("creators,videos,engagement_events")
    for t in tables:
        assert _snapshot(spark, settings, t) == before[t], t
    assert _audit(spark, settings).count() == audit_rows                   # upserted, not appended
    assert delta_io.latest_version(spark, settings.table("silver_videos")) == version + 1   # a new, identical commit


def test_failed_contract_publishes_nothing_and_says_why(spark, settings, ingested):
    """A record can pass every row rule and still break the table's contract (a score out of range)."""
    path = settings.table("silver_videos")
    version = delta_io.latest_version(spark, path)
    before = _snapshot(spark, settings, "silver_videos")
    part = f"{settings.table('raw_videos')}/dt={RUN.isoformat()}"
    good = spark.read.schema(RAW_VIDEOS).parquet(settings.table("raw_videos")).where(F.col("dt") == RUN.isoformat())
    bad = good.limit(1).withColumn("video_id", F.lit("v-out-of-range")).withColumn("static_frame_ratio", F.lit(1.5))
    extra = _extra_parquet(spark, bad.drop("dt"), part, "zz-out-of-range.parquet")
    try:
        with pytest.raises(silver_job.LoadFailed) as failed:
            ingest("videos")
        message = str(failed.value)
        assert "silver_videos" in message and "static_frame_ratio" in message and "FAILED" in message
        assert delta_io.latest_version(spark, path) == version                  # nothing committed
        assert _snapshot(spark, settings, "silver_videos") == before
        audit = _audit(spark, settings).where((F.col("feed") == "videos") & (F.col("dt") == RUN.isoformat())).first()
        assert audit["status"] == "gate_failed" and not audit["gate_success"]
        assert "static_frame_ratio" in audit["gate_summary"]
        assert Path(settings.section("ingest")["data_docs_dir"], "index.html").exists()
    finally:
        extra.unlink()
    ingest("videos")                                                             # fixed upstream: publishes
    assert _snapshot(spark, settings, "silver_videos") == before


def test_schema_drift_additive_columns_evolve_type_changes_quarantine(spark, settings, ingested):
    day = RUN.isoformat()
    # Additive: one producer starts sending caption_lang on some videos.
    videos_part = f"{settings.table('raw_videos')}/dt={day}"
    videos = spark.read.schema(RAW_VIDEOS).parquet(settings.table("raw_videos")).where(F.col("dt") == day)
    n_videos = videos.count()
    new = (videos.limit(2).withColumn("video_id", F.concat(F.lit("v-lang-"), F.col("video_id")))
           .withColumn("caption_lang", F.lit("th")).drop("dt"))
    # Type change: a users producer sends signup_date as text.
    users_part = f"{settings.table('raw_users')}/dt={day}"
    users = spark.read.schema(RAW_USERS).parquet(settings.table("raw_users")).where(F.col("dt") == day)
    retyped = (users.limit(3).withColumn("user_id", F.concat(F.lit("u-retyped-"), F.col("user_id")))
               .withColumn("signup_date", F.col("signup_date").cast("string")).drop("dt"))
    extras = [_extra_parquet(spark, new, videos_part, "zz-additive.parquet"),
              _extra_parquet(spark, retyped, users_part, "zz-retyped.parquet")]
    try:
        ingest("users,videos")
        silver_videos = delta_io.read_version(spark, settings.table("silver_videos")).where(F.col("dt") == day)
        assert "caption_lang" in silver_videos.columns
        assert silver_videos.count() == n_videos + 2
        assert sorted(r[0] for r in silver_videos.where(F.col("caption_lang").isNotNull())
                      .select("caption_lang").collect()) == ["th", "th"]
        audit = {r["feed"]: r for r in _audit(spark, settings).where(F.col("dt") == day).collect()}
        assert audit["videos"]["new_columns"] == ["caption_lang"]
        q = (delta_io.read_version(spark, settings.table("ingest_quarantine"))
             .where((F.col("feed") == "users") & (F.col("dt") == day)).collect())
        assert [r["reason"] for r in q] == ["schema_type_change:signup_date"] * 3
        assert all(r["_source_file"].endswith("zz-retyped.parquet") for r in q)
        assert audit["users"]["accepted"] == users.count() and audit["users"]["quarantined"] == 3
    finally:
        for e in extras:
            e.unlink()
    ingest("users,videos")                          # the drifted files withdrawn: back to the original rows
    assert delta_io.read_version(spark, settings.table("silver_videos")).where(F.col("dt") == day).count() == n_videos


KILL_SCRIPT = textwrap.dedent('''
    """Run silver_feeds for one feed with its publish write slowed down, so it can be killed mid-write."""
    import sys, time
    import datetime as dt
    import pandas as pd
    import jobs.silver_feeds as job
    from libs.platform import delta_io

    original = delta_io.replace_partitions

    def slow(df, path, *args, **kwargs):
        if "/silver/" in path:   # the publish commit (not quarantine, not staging)
            def stall(batches):
                for i, b in enumerate(batches):
                    yield b
                # The last task stalls after the others have written their files.
                import pyspark
                if pyspark.TaskContext.get().partitionId() == 1:
                    time.sleep(600)
            df = df.repartition(2).mapInPandas(stall, df.schema)
        return original(df, path, *args, **kwargs)

    job.delta_io.replace_partitions = slow
    print("STARTED", flush=True)
    job.main(run_date=dt.date.fromisoformat(sys.argv[1]), env="local", feeds="withdrawals", days=int(sys.argv[2]))
''')


def test_job_killed_mid_write_leaves_the_previous_version(spark, settings, ingested, tmp_path):
    path = settings.table("silver_withdrawals")
    version = delta_io.latest_version(spark, path)
    before = _snapshot(spark, settings, "silver_withdrawals")
    script = tmp_path / "slow_publish.py"
    script.write_text(KILL_SCRIPT)
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root), CGOV__SPARK__MASTER="local[2]")
    started = time.time()
    proc = subprocess.Popen([sys.executable, str(script), RUN.isoformat(), str(DAYS)], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = started + 300
        written = []
        while time.time() < deadline and proc.poll() is None and not written:
            # A data file of the new load exists: the write is under way, its commit is not.
            written = [p for p in Path(path).rglob("*.parquet") if p.stat().st_mtime > started]
            time.sleep(0.5)
        assert written, f"the slowed write never started: {proc.poll()} {proc.stdout.read().decode()[-3000:] if proc.poll() is not None else ''}"
        os.killpg(proc.pid, signal.SIGKILL)     # the driver and its JVM, like a lost node
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert delta_io.latest_version(spark, path) == version
    assert _snapshot(spark, settings, "silver_withdrawals") == before
    # The orphaned files are invisible to readers; a re-run converges.
    ingest("withdrawals")
    assert _snapshot(spark, settings, "silver_withdrawals") == before
