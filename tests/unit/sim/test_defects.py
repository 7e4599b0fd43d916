"""Defect injection into JSON-lines feeds: clean round trip, rates, each defect real, determinism.

Defects are verified independently of the injector's code paths: lines are parsed with Python's
``json`` module and compared field by field with the clean (rate 0) serialization of the same
record; timestamps are parsed with ``datetime.fromisoformat``. Tolerances are binomial 4-sigma
bands written out where they are used.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter

import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import (DateType, DoubleType, IntegerType, LongType, StringType, StructField, StructType,
                               TimestampType)
from pyspark.testing import assertDataFrameEqual

from libs.sim.defects import DEFECT_KINDS, INGEST_REASON, FeedSpec, applicable, inject

RUN = dt.date(2026, 11, 1)
UTC = dt.timezone.utc
END_OF_RUN = dt.datetime(2026, 11, 2, tzinfo=UTC)     # end of RUN in UTC
N = 5000
RATE = 0.2
SEED = 21
VALID_MARKETS = {"US", "UK", "ID", "MY", "TH", "VN", "PH", "SG"}

DATA_SCHEMA = StructType([
    StructField("event_id", StringType(), False),
    StructField("creator_id", LongType(), False),
    StructField("market", StringType(), False),
    StructField("event_ts", TimestampType(), False),
    StructField("price", DoubleType(), False),
    StructField("watch_seconds", IntegerType(), False),
    StructField("note", StringType(), True),
    StructField("signup_date", DateType(), False),
])
SCHEMA = StructType([*DATA_SCHEMA.fields,
                     StructField("truth_bot", StringType(), False),
                     StructField("dt", StringType(), False)])
DATA_COLS = [f.name for f in DATA_SCHEMA.fields]

SPEC = FeedSpec(name="engagement_events", key="event_id",
                required=("event_id", "creator_id", "market", "event_ts", "price"),
                ts="event_ts", money="price", market="market", numeric=("price", "watch_seconds"))


def _row(i: int) -> tuple:
    # Timestamps spread over the whole run day, some within 30 s of its end (replay clamping), with
    # microseconds; every 10th price is 0 (negative_price must then give -1.0); notes hold quotes,
    # non-ASCII and nulls to exercise escaping and explicit nulls.
    ts = dt.datetime(2026, 11, 1, tzinfo=UTC) + dt.timedelta(seconds=(i * 7919) % 86_400, microseconds=(i * 37) % 10**6)
    return (f"ev-{i:06d}", i % 97, sorted(VALID_MARKETS)[i % 8], ts,
            0.0 if i % 10 == 0 else round((i * 0.37) % 500, 2), i % 600,
            None if i % 3 == 0 else f'caf\u00e9 "{i}"', dt.date(2024, 1, 1) + dt.timedelta(days=i % 700),
            f"SECRET-{i}", "2026-11-01")


@pytest.fixture(scope="module")
def feed(spark):
    df = spark.createDataFrame([_row(i) for i in range(N)], SCHEMA).cache()   # read by every test
    yield df
    df.unpersist()


@pytest.fixture(scope="module")
def clean_frames(feed):
    return inject(feed, SPEC, seed=SEED, rate=0.0, run_date=RUN)


@pytest.fixture(scope="module")
def clean(clean_frames):
    """event_id -> clean line (rate 0)."""
    return {json.loads(v)["event_id"]: v for v in (r.value for r in clean_frames[0].collect())}


@pytest.fixture(scope="module")
def dirty(feed):
    lines, truth = inject(feed, SPEC, seed=SEED, rate=RATE, run_date=RUN)
    with_hash = lines.select("value", "dt", F.lower(F.lpad(F.hex(F.xxhash64("value")), 16, "0")).alias("h"))
    # Line hashes recomputed here from their definition (hex of xxhash64 of the line), to find the
    # line each truth row points at.
    return {"lines": [tuple(r) for r in with_hash.collect()], "truth": [r.asDict() for r in truth.collect()]}


def _parse(line: str):
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


# --- spec and arguments ------------------------------------------------------------------------

def test_applicable_follows_the_spec():
    assert applicable(SPEC) == DEFECT_KINDS
    bare = FeedSpec(name="f", key="id", required=("id",))
    assert applicable(bare) == ("malformed_json", "duplicate_event_id")
    no_money = FeedSpec(name="f", key="id", required=("id", "a"), ts="t", market="m", numeric=("id",))
    # numeric=("id",) only holds the key, which is never retyped: no wrong_type either.
    assert applicable(no_money) == ("malformed_json", "missing_field", "duplicate_event_id", "unknown_market",
                                    "future_timestamp")


@pytest.mark.parametrize("rate", [-0.01, 0.51, 1.0, float("nan")])
def test_invalid_rate_is_a_clear_error(feed, rate):
    with pytest.raises(ValueError, match=r"rate must be a number in \[0, 0.5\]"):
        inject(feed, SPEC, seed=1, rate=rate, run_date=RUN)


def test_spec_that_does_not_fit_the_frame_is_a_clear_error(feed):
    bad = FeedSpec(name="f", key="event_id", required=("event_id", "nope"), money="market")
    with pytest.raises(ValueError) as err:
        inject(feed, bad, seed=1, rate=0.1, run_date=RUN)
    assert "'nope' is not in the frame" in str(err.value)
    assert "money column 'market' must be numeric" in str(err.value)


# --- clean serialization -----------------------------------------------------------------------

def test_rate_zero_is_the_clean_serialization_and_round_trips(feed, clean_frames, clean):
    lines, truth = clean_frames
    assert truth.count() == 0
    assert lines.columns == ["value", "dt"]
    # Parsed back with the input schema (default reader options), rows equal the input rows.
    parsed = lines.select(F.from_json("value", DATA_SCHEMA).alias("r"), "dt").select("r.*", "dt")
    assertDataFrameEqual(parsed, feed.drop("truth_bot"))
    # One line written out by hand: UTC with 'Z', microseconds, explicit null, dt not serialized.
    assert clean["ev-000000"] == ('{"event_id":"ev-000000","creator_id":0,"market":"ID",'
                                  '"event_ts":"2026-11-01T00:00:00.000000Z","price":0.0,"watch_seconds":0,'
                                  '"note":null,"signup_date":"2024-01-01"}')
    assert len(clean) == N


def test_serialization_does_not_depend_on_session_time_zone(spark, feed, clean):
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "Asia/Jakarta")
    try:
        lines, _ = inject(feed, SPEC, seed=SEED, rate=0.0, run_date=RUN)
        again = sorted(r.value for r in lines.collect())
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)
    assert again == sorted(clean.values())


# --- rates -------------------------------------------------------------------------------------

def test_defect_rate_and_kinds(dirty):
    kinds = Counter(t["defect"] for t in dirty["truth"])
    total = sum(kinds.values())
    # Each row defective with p = 0.2: Binomial(5000, 0.2), mean 1000, sd sqrt(5000*0.2*0.8) = 28.3.
    assert abs(total - RATE * N) < 4 * math.sqrt(N * RATE * (1 - RATE)), total
    # Each of the 7 kinds: Binomial(5000, 0.2/7), mean 142.9, sd 11.8 -> 4 sd = 47.
    p = RATE / len(DEFECT_KINDS)
    for kind in DEFECT_KINDS:
        assert abs(kinds[kind] - p * N) < 4 * math.sqrt(N * p * (1 - p)), (kind, kinds[kind])
    # One truth row per defective record; lines = records + one replayed copy per duplicate.
    assert len({t["key"] for t in dirty["truth"]}) == total
    assert len(dirty["lines"]) == N + kinds["duplicate_event_id"]
    assert all(t["seed"] == SEED and t["feed"] == "engagement_events" and t["dt"] == "2026-11-01"
               for t in dirty["truth"])


def test_inapplicable_kinds_are_never_drawn(spark, feed):
    spec = FeedSpec(name="no_money", key="event_id", required=("event_id", "creator_id"), ts="event_ts")
    lines, truth = inject(feed, spec, seed=3, rate=0.5, run_date=RUN)
    kinds = Counter(r.defect for r in truth.collect())
    assert set(kinds) == {"malformed_json", "missing_field", "duplicate_event_id", "future_timestamp"}
    # Nothing else was touched: every parseable line keeps a non-negative price and a valid market.
    objs = [o for o in (_parse(r.value) for r in lines.collect()) if o is not None]
    assert objs and all(o["price"] >= 0 and o["market"] in VALID_MARKETS and isinstance(o["watch_seconds"], int)
                        for o in objs)


# --- each defect is really that defect ---------------------------------------------------------

def _same_except(obj: dict, ref: dict, field: str | None) -> bool:
    return {k: v for k, v in obj.items() if k != field} == {k: v for k, v in ref.items() if k != field}


def test_each_defect_is_what_the_truth_says(dirty, clean):
    by_hash = {h: v for v, _, h in dirty["lines"]}
    parsed_by_key: dict[str, list[dict]] = {}
    unparseable = 0
    for value, _, _ in dirty["lines"]:
        obj = _parse(value)
        if obj is None:
            unparseable += 1
        else:
            parsed_by_key.setdefault(obj["event_id"], []).append(obj)
    truth_by_key = {t["key"]: t for t in dirty["truth"]}
    zero_price_cases = 0
    assert unparseable == sum(t["defect"] == "malformed_json" for t in dirty["truth"])

    for key, t in truth_by_key.items():
        line, ref = by_hash[t["line_hash"]], json.loads(clean[key])
        obj, field = _parse(line), t["field"]
        kind = t["defect"]
        if kind == "malformed_json":
            assert obj is None and line and clean[key].startswith(line) and len(line) < len(clean[key])
            assert key not in parsed_by_key
            continue
        assert obj is not None, (kind, line)
        if kind == "missing_field":
            assert field in SPEC.required and field != SPEC.key
            assert set(ref) - set(obj) == {field} and set(obj) <= set(ref)
        elif kind == "negative_price":
            assert field == "price" and obj["price"] < 0
            assert obj["price"] == (-1.0 if ref["price"] == 0 else -ref["price"])
            zero_price_cases += ref["price"] == 0
        elif kind == "duplicate_event_id":
            copies = parsed_by_key[key]
            assert len(copies) == 2 and ref in copies
            replay = obj
            shift = (dt.datetime.fromisoformat(replay["event_ts"]) - dt.datetime.fromisoformat(ref["event_ts"]))
            assert 1 <= abs(shift.total_seconds()) <= 30
            assert dt.datetime.fromisoformat(replay["event_ts"]) < END_OF_RUN
            field = "event_ts"
        elif kind == "unknown_market":
            assert field == "market" and obj["market"] not in VALID_MARKETS
        elif kind == "future_timestamp":
            ts = dt.datetime.fromisoformat(obj["event_ts"])
            # Beyond any tolerated clock skew: at least an hour past the end of the run date.
            assert field == "event_ts" and END_OF_RUN + dt.timedelta(hours=1) <= ts <= END_OF_RUN + dt.timedelta(days=365)
        elif kind == "wrong_type":
            assert field in SPEC.numeric and isinstance(obj[field], str)
            with pytest.raises(ValueError):
                float(obj[field])
        else:
            raise AssertionError(kind)
        if kind != "duplicate_event_id":
            assert len(parsed_by_key[key]) == 1
        assert _same_except(obj, ref, field), (kind, obj, ref)

    # Every 10th price is 0: ~143 / 10 = 14 negative_price rows hit the "-1.0 for zero" rule.
    assert zero_price_cases >= 1

    # Every record without a defect is exactly one line, byte-identical to its clean serialization
    # (which parses back to the original row: test_rate_zero_is_the_clean_serialization...).
    defective = set(truth_by_key)
    clean_lines = [v for v, _, _ in dirty["lines"] if (o := _parse(v)) is not None and o["event_id"] not in defective]
    assert sorted(clean_lines) == sorted(v for k, v in clean.items() if k not in defective)


def test_replayed_copy_never_crosses_the_end_of_run_date(spark):
    """Events 10 s before the end of the run day: a replay shifted 10..30 s later would land
    tomorrow and look like a future_timestamp too, so such copies must be shifted earlier."""
    late = dt.datetime(2026, 11, 1, 23, 59, 50, tzinfo=UTC)
    df = spark.createDataFrame([(f"e{i}", late, "2026-11-01") for i in range(400)],
                               "event_id string, ts timestamp, dt string")
    spec = FeedSpec(name="late", key="event_id", required=("event_id", "ts"), ts="ts")
    lines, truth = inject(df, spec, seed=4, rate=0.5, run_date=RUN)
    dup_keys = {r.key for r in truth.where("defect = 'duplicate_event_id'").collect()}
    objs = [o for o in (_parse(r.value) for r in lines.collect()) if o is not None]
    copies = [dt.datetime.fromisoformat(o["ts"]) for o in objs if o["event_id"] in dup_keys]
    # 400 rows * 0.5 / 4 kinds (malformed, missing, duplicate, future) ~ 50 duplicates.
    assert len(copies) == 2 * len(dup_keys) and len(dup_keys) > 20
    replays = [c for c in copies if c != late]
    assert len(replays) == len(dup_keys)
    assert all(1 <= abs((c - late).total_seconds()) <= 30 and c < END_OF_RUN for c in replays)
    # Shifts are uniform on 1..30 s: 9 of 30 fit before midnight, 21 must go back (~15 vs ~35).
    assert any(c > late for c in replays) and any(c < late for c in replays)


def test_no_truth_content_in_any_line(dirty):
    assert not any("truth_" in v or "SECRET" in v for v, _, _ in dirty["lines"])


# --- determinism -------------------------------------------------------------------------------

def test_same_seed_same_lines_and_truth_regardless_of_partitioning(feed, dirty):
    lines, truth = inject(feed.repartition(7), SPEC, seed=SEED, rate=RATE, run_date=RUN)
    assert sorted(tuple(r) for r in lines.collect()) == sorted((v, d) for v, d, _ in dirty["lines"])
    assert sorted(tuple(r) for r in truth.collect()) == sorted(tuple(t.values()) for t in dirty["truth"])


def test_different_seed_or_feed_name_different_defects(feed, dirty):
    ours = {t["key"] for t in dirty["truth"]}
    for seed, name in ((SEED + 1, SPEC.name), (SEED, "other_feed")):
        spec = FeedSpec(**{**SPEC.__dict__, "name": name})
        _, truth = inject(feed, spec, seed=seed, rate=RATE, run_date=RUN)
        theirs = {r.key for r in truth.collect()}
        # Independent draws: overlap ~ N * 0.2 * 0.2 = 200 (sd ~13), far below ~1000 if they agreed.
        assert len(ours & theirs) < 300, (seed, name, len(ours & theirs))


def test_every_defect_kind_names_the_quarantine_reason_it_must_earn():
    # A new defect kind without a reason would make the ingestion tests and benchmark KeyError late.
    assert set(INGEST_REASON) == set(DEFECT_KINDS)
    assert INGEST_REASON["negative_price"] == "negative_amount"
    assert INGEST_REASON["duplicate_event_id"] == "duplicate_key"
