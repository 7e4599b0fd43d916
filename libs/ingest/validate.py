"""Bronze -> silver candidates: parse each record, check it against its feed's rules, conform it.

Every bronze record comes out exactly once, either accepted (``reason`` null) or refused with
the first failed rule in ``reason`` and all failed rules in ``reasons`` -- so counts reconcile
by construction (``bronze = accepted + quarantined``) and the job checks they do.

How a record is read, and why twice: one ``from_json`` with the declared types and one with
every field as a string. Spark's permissive JSON parser turns a value it cannot convert into
null, so a null typed value is ambiguous (sent as ``null``? sent as ``"N/A"``?); the all-string
parse disambiguates: present as text but null when typed is a ``wrong_type``. Which fields are
*present* comes from ``json_object_keys``, which is also null for anything that is not a JSON
object: that is ``malformed_json``, and a present-but-null required field (``null_field``) is
told apart from an absent one (``missing_field``).

Codes are compared exactly (``"us "`` is not ``"US"``): repairing them here would hide an
upstream bug and accept records the producer's own contract calls broken.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from libs import reference
from libs.ingest.feeds import Feed
from schemas import JSON_OPTIONS
from schemas._silver import pseudonym_column

# Reader options for the landing zone's JSON: the writers' format (see schemas.JSON_OPTIONS);
# PERMISSIVE so one bad value nulls that field instead of failing the load.
READ_OPTIONS = {k: v for k, v in JSON_OPTIONS.items() if k != "ignoreNullFields"} | {"mode": "PERMISSIVE"}
_TYPED, _TEXT, _KEYS = "__typed", "__text", "__keys"
# Verdict columns; underscored because feeds have data columns called "reason" (complaints...).
REASON, REASONS = "_reason", "_reasons"


def _rules(feed: Feed, skew_minutes: int) -> list[tuple[str, Column]]:
    """(reason, "this record fails") pairs in evaluation order; the first failure is ``reason``."""
    typed = lambda c: F.col(f"{_TYPED}.`{c}`")   # noqa: E731 - tiny local accessors
    text = lambda c: F.col(f"{_TEXT}.`{c}`")     # noqa: E731
    rules: list[tuple[str, Column]] = []
    for f in feed.data_fields:
        rules.append((f"schema_type_change:{f.name}",
                      F.coalesce(F.col("_schema_issue").contains(f"{f.name}: declared"), F.lit(False))))
    for c in feed.required:
        present = F.array_contains(F.col(_KEYS), c)
        rules.append((f"missing_field:{c}", ~present))
        rules.append((f"null_field:{c}", present & text(c).isNull()))
    for f in feed.data_fields:
        if not isinstance(f.dataType, StringType):
            rules.append((f"wrong_type:{f.name}", text(f.name).isNotNull() & typed(f.name).isNull()))
    if feed.amount:
        rules.append((f"negative_amount:{feed.amount}", typed(feed.amount) < 0))
    for c in feed.markets:
        rules.append((f"unknown_market:{c}", typed(c).isNotNull() & ~typed(c).isin(*reference.MARKETS)))
    if feed.currency:
        c = feed.currency
        rules.append((f"unknown_currency:{c}", typed(c).isNotNull() & ~typed(c).isin(*reference.CURRENCIES)))
    for c, values in feed.allowed.items():
        rules.append((f"not_allowed:{c}", typed(c).isNotNull() & ~typed(c).isin(*values)))
    # A record of date partition D cannot have happened after D ends (plus the clock skew we
    # tolerate between producers); a snapshot taken on D cannot describe later events either.
    day_end = F.to_timestamp(F.col("dt")) + F.expr(f"INTERVAL 1 DAY") + F.expr(f"INTERVAL {int(skew_minutes)} MINUTES")
    for c in feed.not_after_day:
        rules.append((f"future_timestamp:{c}", typed(c) >= day_end))
    return rules


def flag(bronze: DataFrame, feed: Feed, skew_minutes: int = 10) -> DataFrame:
    """Bronze rows plus ``__typed`` (parsed record), ``_reasons`` and ``_reason`` (null: accepted).

    Duplicates of a business key within a date are judged last and only among otherwise valid
    records (a broken copy must not take the key from a good one): the earliest ``order_by``
    (then the line hash, for a stable choice) is kept, every other copy is ``duplicate_key``.
    """
    typed_schema = StructType([StructField(f.name, f.dataType, True) for f in feed.data_fields])
    text_schema = StructType([StructField(f.name, StringType(), True) for f in feed.data_fields])
    parsed = bronze.select(
        "*",
        F.json_object_keys("_record").alias(_KEYS),
        F.from_json("_record", typed_schema, READ_OPTIONS).alias(_TYPED),
        F.from_json("_record", text_schema, READ_OPTIONS).alias(_TEXT),
    )
    malformed = F.col(_KEYS).isNull()
    checks = [F.when(malformed, F.lit("malformed_json"))]
    checks += [F.when(~malformed & F.coalesce(cond, F.lit(False)), F.lit(reason))
               for reason, cond in _rules(feed, skew_minutes)]
    flagged = parsed.withColumn(REASONS, F.filter(F.array(*checks), lambda r: r.isNotNull()))

    order = [F.col(f"{_TYPED}.`{feed.order_by}`").asc_nulls_last()] if feed.order_by else []
    valid = F.size(REASONS) == 0
    # Window partitioned by validity too, so invalid rows never compete for a key.
    w = Window.partitionBy(valid.alias("__valid"), "dt", *[F.col(f"{_TYPED}.`{k}`") for k in feed.keys]) \
        .orderBy(*order, F.col("_line_hash"))
    dup = valid & (F.row_number().over(w) > 1)
    dup_reason = "duplicate_key:" + ",".join(feed.keys)
    out = flagged.withColumn(
        REASONS, F.when(dup, F.array(F.lit(dup_reason))).otherwise(F.col(REASONS)))
    return out.withColumn(REASON, F.get(F.col(REASONS), 0)).drop(_TEXT)   # get: null when empty


def extra_keys(flagged: DataFrame, feed: Feed) -> Column:
    """Keys of a record the declared schema does not have (additive schema evolution)."""
    declared = F.array(*[F.lit(f.name) for f in feed.data_fields])
    return F.array_except(F.col(_KEYS), declared)


def pseudonymise(value: Column, salt: Column) -> Column:
    """Salted SHA-256 (64 hex) of an id: stable across loads for joins, not reversible without the salt.

    The salt is a column (see :func:`salt_frame`), not a literal: literals are printed in query
    plans, and plans end up in logs, the Spark UI and event logs.
    """
    return F.when(value.isNotNull(), F.sha2(F.concat(salt, F.lit("\u0000"), value), 256))


def salt_frame(spark: SparkSession, salt: str) -> DataFrame:
    """One-row frame carrying the salt, to be cross-joined (broadcast) into the rows to pseudonymise."""
    if not salt or len(salt) < 16:
        raise ValueError("the pseudonymisation salt must be at least 16 characters "
                         "(settings key pseudonymisation.salt, env CGOV__PSEUDONYMISATION__SALT)")
    return spark.createDataFrame([(salt,)], "__salt string")


def conform(flagged: DataFrame, feed: Feed, salt: DataFrame) -> DataFrame:
    """Silver's columns for every flagged row (meaningful for accepted rows), plus the flags.

    Markets become ISO 3166 codes, amounts gain a USD value at the reference rate, UTC
    timestamps gain the market's local calendar day, user ids become salted pseudonyms.
    """
    silver = feed.silver
    typed = {f.name: F.col(f"{_TYPED}.`{f.name}`") for f in feed.data_fields}
    cols: dict[str, Column] = {}
    for name, col in typed.items():
        if name in silver.PSEUDONYMISE:
            cols[pseudonym_column(name)] = pseudonymise(col, F.col("__salt"))
        elif name in feed.markets:
            cols[name] = F.coalesce(reference.lookup(col, {c: m.iso for c, m in reference.MARKETS.items()}), col)
        else:
            cols[name] = col
    if feed.amount:
        cols[f"{feed.amount}_usd"] = typed[feed.amount] / reference.fx_per_usd(typed[feed.currency])
    if silver.LOCAL_DATE_OF:
        tz = reference.lookup(typed[feed.market_of_day], {c: m.tz for c, m in reference.MARKETS.items()})
        cols["local_date"] = F.to_date(F.from_utc_timestamp(typed[silver.LOCAL_DATE_OF], tz))
    data = [cols[f.name].alias(f.name) for f in silver.SCHEMA.fields if f.name in cols]
    lineage = ["_source_file", "_line_hash", "_ingest_run_date", "dt"]
    return (flagged.crossJoin(F.broadcast(salt))
            .select(*data, *lineage, REASON, REASONS, "_record", extra_keys(flagged, feed).alias("_extra_keys")))


def silver_rows(staged: DataFrame, feed: Feed, new_columns: list[str]) -> DataFrame:
    """Accepted staged rows in silver's column order, plus additive columns (as JSON text)."""
    names = [f.name for f in feed.silver.SCHEMA.fields]
    extra = [F.get_json_object("_record", f"$.{c}").alias(c) for c in new_columns]
    return staged.where(F.col(REASON).isNull()).select(*[F.col(n) for n in names], *extra)


def quarantine_rows(staged: DataFrame, feed: Feed) -> DataFrame:
    """Refused staged rows in the quarantine table's shape."""
    return staged.where(F.col(REASON).isNotNull()).select(
        F.col(REASON).alias("reason"), F.col(REASONS).alias("reasons"), "_record", "_source_file", "_line_hash",
        "_ingest_run_date", F.lit(feed.name).alias("feed"), "dt")


def count_by(staged: DataFrame) -> DataFrame:
    """Per date: staged records, accepted, quarantined, and quarantined per reason kind (small)."""
    per_reason = (staged.where(F.col(REASON).isNotNull()).groupBy("dt", REASON).count()
                  .groupBy("dt").agg(F.map_from_entries(F.collect_list(F.struct(REASON, "count"))).alias("reasons")))
    totals = staged.groupBy("dt").agg(
        F.count(F.lit(1)).alias("records"),
        F.sum(F.col(REASON).isNull().cast("long")).alias("accepted"),
        F.sum(F.col(REASON).isNotNull().cast("long")).alias("quarantined"))
    return totals.join(per_reason, "dt", "left")
