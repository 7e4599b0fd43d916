"""Record-level validation and conforming (libs.ingest.validate) on hand-written raw lines.

Each line below is written to break exactly one rule (or none), and the expected verdict is
spelled out beside it, so a rule that stops firing -- or fires on a good record -- fails here.
"""
from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from libs.ingest import validate
from libs.ingest.bronze import schema_issues, to_bronze
from libs.ingest.feeds import feed
from schemas import raw_withdrawals

RUN = dt.date(2026, 11, 1)
DAY = "2026-11-01"
SALT = "a-test-salt-of-sufficient-length"


def _bronze(spark, lines: list[str], day: str = DAY, issue: str | None = None):
    records = spark.createDataFrame(
        [(line, f"file:/landing/part-{i}.json", issue) for i, line in enumerate(lines)],
        "_record string, _source_file string, _schema_issue string")
    return to_bronze(records, day, RUN)


def _w(**over) -> str:
    """A valid withdrawal line with ``over`` replacing fields (value ``...`` drops the field)."""
    rec = {"withdrawal_id": '"w1"', "creator_id": '"c1"', "payment_account_id": '"p1"', "amount": "12.5",
           "currency": '"MYR"', "requested_at": '"2026-11-01T08:00:00.000Z"'}
    rec.update(over)
    return "{" + ",".join(f'"{k}":{v}' for k, v in rec.items() if v is not ...) + "}"


def _verdicts(spark, lines, name="withdrawals", **kw):
    flagged = validate.flag(_bronze(spark, lines, **kw), feed(name), skew_minutes=10)
    return {r["_record"]: r[validate.REASON] for r in flagged.select("_record", validate.REASON).collect()}


def test_each_rule_fires_on_its_own_defect_and_good_records_pass(spark):
    cases = {
        _w(): None,
        _w(withdrawal_id='"w2"', amount="3"): None,                                  # int literal for a double: fine
        '{"withdrawal_id": "w3", "creator_id": ': "malformed_json",                  # truncated line
        "[1, 2, 3]": "malformed_json",                                               # JSON, but not an object
        _w(withdrawal_id='"w4"', creator_id=...): "missing_field:creator_id",
        _w(withdrawal_id='"w5"', creator_id="null"): "null_field:creator_id",
        _w(withdrawal_id='"w6"', amount='"N/A"'): "wrong_type:amount",
        _w(withdrawal_id='"w7"', amount="-4.0"): "negative_amount:amount",
        _w(withdrawal_id='"w8"', currency='"XXX"'): "unknown_currency:currency",
        _w(withdrawal_id='"w9"', currency='"myr"'): "unknown_currency:currency",     # codes compare exactly
        # 23:59 + 9 min skew is tolerated; a day later is not.
        _w(withdrawal_id='"w10"', requested_at='"2026-11-02T00:09:00.000Z"'): None,
        _w(withdrawal_id='"w11"', requested_at='"2026-11-02T00:11:00.000Z"'): "future_timestamp:requested_at",
    }
    assert _verdicts(spark, list(cases)) == cases


def test_all_failed_rules_are_listed_and_the_first_is_the_reason(spark):
    line = _w(creator_id=..., amount="-1", currency='"XXX"')
    row = validate.flag(_bronze(spark, [line]), feed("withdrawals")).first()
    assert row[validate.REASONS] == ["missing_field:creator_id", "negative_amount:amount",
                                     "unknown_currency:currency"]
    assert row[validate.REASON] == "missing_field:creator_id"


def test_duplicates_keep_the_earliest_valid_copy(spark):
    early = _w(requested_at='"2026-11-01T01:00:00.000Z"', payment_account_id='"p-early"')
    late = _w(requested_at='"2026-11-01T02:00:00.000Z"', payment_account_id='"p-late"')
    broken_earliest = _w(requested_at='"2026-11-01T00:00:00.000Z"', amount='"?"')
    verdicts = _verdicts(spark, [late, early, broken_earliest])
    # The broken copy is earlier than both, but must not take the key from a valid one.
    assert verdicts == {early: None, late: "duplicate_key:withdrawal_id", broken_earliest: "wrong_type:amount"}


def test_same_key_on_different_dates_is_not_a_duplicate(spark):
    a = _bronze(spark, [_w()], day="2026-11-01")
    b = _bronze(spark, [_w(requested_at='"2026-11-02T08:00:00.000Z"')], day="2026-11-02")
    flagged = validate.flag(a.unionByName(b), feed("withdrawals"))
    assert [r[0] for r in flagged.select(validate.REASON).collect()] == [None, None]


def test_enumerations_and_markets_are_checked(spark):
    ev = ('{"event_id":"e%d","event_type":%s,"user_id":"u1","creator_id":"c1","scenario":%s,'
          '"market":%s,"ts":"2026-11-01T10:00:00.000Z"}')
    cases = {
        ev % (1, '"view"', '"content"', '"UK"'): None,
        ev % (2, '"poke"', '"content"', '"UK"'): "not_allowed:event_type",
        ev % (3, '"view"', '"stage"', '"UK"'): "not_allowed:scenario",
        ev % (4, '"view"', '"content"', '"GB"'): "unknown_market:market",   # upstream sends UK; GB is silver's
        ev % (5, '"view"', '"content"', '"FR"'): "unknown_market:market",
    }
    assert _verdicts(spark, list(cases), name="engagement_events") == cases


def test_schema_type_change_reported_by_bronze_quarantines_every_row(spark):
    from pyspark.sql.types import StringType, StructField, StructType

    found = StructType([StructField("withdrawal_id", StringType()), StructField("amount", StringType()),
                        StructField("new_col", StringType())])
    issues = schema_issues(StructType(feed("withdrawals").data_fields), found)
    assert issues == ["amount: declared double, found string"]     # additive new_col is not an issue
    verdicts = _verdicts(spark, [_w(amount='"12.5"')], issue="; ".join(issues))
    assert list(verdicts.values()) == ["schema_type_change:amount"]


def test_conform_iso_markets_usd_local_date_and_pseudonyms(spark):
    line = ('{"event_id":"e1","event_type":"purchase","user_id":"u-42","creator_id":"c1","scenario":"shelf",'
            '"market":"UK","ts":"2026-10-31T23:30:00.000Z","quantity":2,"gmv":8.0,"currency":"GBP"}')
    ev = feed("engagement_events")
    salt = validate.salt_frame(spark, SALT)
    out = validate.conform(validate.flag(_bronze(spark, [line], day="2026-10-31"), ev), ev, salt)
    row = out.first()
    assert row["market"] == "GB"
    assert row["gmv_usd"] == pytest.approx(10.0)                      # 8 GBP at 0.8 GBP/USD
    assert row["local_date"] == dt.date(2026, 10, 31)                 # 23:30 UTC is 23:30 GMT in London
    assert row["user_key"] != "u-42" and len(row["user_key"]) == 64
    # Same id, same salt -> same key (joins across loads); another salt -> another key.
    again = validate.conform(validate.flag(_bronze(spark, [line], day="2026-10-31"), ev), ev, salt).first()
    other = validate.conform(validate.flag(_bronze(spark, [line], day="2026-10-31"), ev), ev,
                             validate.salt_frame(spark, "another-salt-of-enough-length")).first()
    assert again["user_key"] == row["user_key"] != other["user_key"]
    assert "user_id" not in out.columns


def test_local_date_follows_the_market_time_zone(spark):
    line = ('{"event_id":"e1","event_type":"view","user_id":"u1","creator_id":"c1","scenario":"content",'
            '"market":"ID","ts":"2026-10-31T20:00:00.000Z"}')
    ev = feed("engagement_events")
    row = validate.conform(validate.flag(_bronze(spark, [line], day="2026-10-31"), ev), ev,
                           validate.salt_frame(spark, SALT)).first()
    assert row["local_date"] == dt.date(2026, 11, 1)                  # Jakarta is UTC+7


def test_salt_never_appears_in_the_query_plan(spark):
    ev = feed("engagement_events")
    line = ('{"event_id":"e1","event_type":"view","user_id":"u1","creator_id":"c1","scenario":"content",'
            '"market":"US","ts":"2026-10-31T20:00:00.000Z"}')
    out = validate.conform(validate.flag(_bronze(spark, [line], day="2026-10-31"), ev), ev,
                           validate.salt_frame(spark, SALT))
    plan = out._jdf.queryExecution().toString()
    assert "sha2" in plan.lower() and SALT not in plan


def test_short_or_missing_salt_is_refused(spark):
    with pytest.raises(ValueError, match="at least 16"):
        validate.salt_frame(spark, "short")
    with pytest.raises(ValueError):
        validate.salt_frame(spark, "")


def test_counts_reconcile_and_quarantine_rows_carry_reason_and_source(spark):
    lines = [_w(), _w(), _w(withdrawal_id='"w2"', amount="-1"), "not json"]
    ev = feed("withdrawals")
    staged = validate.conform(validate.flag(_bronze(spark, lines), ev), ev, validate.salt_frame(spark, SALT))
    counts = validate.count_by(staged).first()
    assert (counts["records"], counts["accepted"], counts["quarantined"]) == (4, 1, 3)
    assert counts["reasons"] == {"duplicate_key:withdrawal_id": 1, "negative_amount:amount": 1,
                                 "malformed_json": 1}
    q = validate.quarantine_rows(staged, ev).select("reason", "_record", "feed", "dt")
    expected = spark.createDataFrame(
        [("duplicate_key:withdrawal_id", _w(), "withdrawals", DAY),
         ("negative_amount:amount", _w(withdrawal_id='"w2"', amount="-1"), "withdrawals", DAY),
         ("malformed_json", "not json", "withdrawals", DAY)],
        "reason string, _record string, feed string, dt string")
    assertDataFrameEqual(q, expected)
    assert validate.quarantine_rows(staged, ev).where(F.col("_source_file").isNull()).count() == 0


def test_additive_column_is_carried_into_silver_rows(spark):
    ev = feed("withdrawals")
    line = _w()[:-1] + ',"fee":0.25}'
    staged = validate.conform(validate.flag(_bronze(spark, [line]), ev), ev, validate.salt_frame(spark, SALT))
    assert staged.select(F.explode("_extra_keys")).first()[0] == "fee"
    rows = validate.silver_rows(staged, ev, ["fee"])
    assert rows.columns[-1] == "fee" and rows.first()["fee"] == "0.25"
    assert rows.first()["amount_usd"] == pytest.approx(12.5 / 4.5)
    assert [f.name for f in raw_withdrawals.SCHEMA.fields if f.name != "dt"] == rows.columns[:6]
