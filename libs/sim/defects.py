"""Turn a clean generated feed into the JSON-lines an upstream system would drop, with known defects.

Why: the ingestion layer (parse, validate, quarantine) is only trustworthy if it has been run
against *realistic broken input* -- truncated writes, dropped fields, sign errors, replayed events,
garbage market codes, clock skew, numbers sent as strings. Real feeds contain all of these, but
never with a label saying which record is broken. This module plants them at a configured rate and
returns a hidden **ground truth** beside the lines, so ingestion tests can reconcile *exactly*:
every raw line is either accepted or quarantined (``raw = accepted + quarantined``), and every
quarantined line is quarantined for the defect that was planted in it.

Design:

* **Deterministic and partition-independent.** Every draw is a pure function of
  ``xxhash64(seed, salt, key)`` (:mod:`libs.sim.rand`); salts include ``FeedSpec.name`` so two
  feeds with overlapping keys get independent defects. The same seed gives the same multiset of
  lines and the same truth on a laptop or on a cluster, with any partitioning.
* **Column expressions only** (no UDFs, no collect, no shuffle): a few projections and one
  ``explode`` (for the duplicated rows), so it is a map-only pass that scales with the feed.
* **Serialization is pinned** (:data:`JSON_OPTIONS`): ``to_json`` would otherwise format
  timestamps in the *session* time zone, so the same instant would be written as different bytes
  depending on ``spark.sql.session.timeZone`` of whoever ran the job (and, without an offset in the
  pattern, would even be ambiguous). We write every timestamp in UTC with an explicit zone
  designator (``...Z``), microsecond precision (lossless for Spark timestamps), dates as
  ``yyyy-MM-dd``, and nulls as explicit ``null`` (``ignoreNullFields=false``) -- the default drops
  null fields, which would make a clean row with a null field indistinguishable from a
  ``missing_field`` defect (a field that is *absent*).
* ``partition_col`` is **not** serialized into ``value``: it is the directory partition of the raw
  zone (``dt=...``), kept as a real column. ``truth_*`` columns are never serialized either.

Defects (one per defective row; the kind is uniform over :func:`applicable`):

* ``malformed_json``: the line is truncated to a hashed length in ``[1, len - 1]`` characters. Any
  proper prefix of a JSON object is invalid JSON (the closing ``}`` is gone), and the line is never
  empty (line-based readers silently skip blank lines, which would break reconciliation).
* ``missing_field``: one hashed field of ``required`` (never the key) is absent from the object.
* ``negative_price``: ``money`` becomes ``-abs(money)``, or ``-1`` when it was 0 or null (clean
  amounts are assumed non-negative: the feed's contract, which is what makes this a defect).
* ``duplicate_event_id``: the row is emitted twice: the clean line, then a replayed copy with the
  same key whose ``ts`` (when the feed has one) is a few seconds later -- or earlier, if later would
  cross the end of ``run_date`` (a replay must not also look like a ``future_timestamp``).
* ``unknown_market``: ``market`` is replaced by one of :data:`BAD_MARKETS`.
* ``future_timestamp``: ``ts`` is moved to a hashed instant 1..365 days after ``run_date``, at
  least :data:`_FUTURE_MIN_S` (one hour) after the end of ``run_date`` in UTC: a few minutes past
  midnight is a producer's clock skew, which ingestion tolerates (``ingest.clock_skew_minutes``),
  not a record from the future.
* ``wrong_type``: one hashed ``numeric`` field (never the key) is written as a JSON string that
  is not a number (``"12.5 usd"``, ``"N/A"``, ``"true"``, ``""``, ``"1,234"``).

The truth frame has one row per defect: ``seed, feed, key, defect, field, <partition_col>,
line_hash`` -- ``field`` is the column the defect touched (null for ``malformed_json`` and
``duplicate_event_id``, which affect the line as a whole), ``line_hash`` identifies the defective
line (:func:`line_hash`; for duplicates, the replayed second copy), which is the only way to tie a
malformed line, whose key may have been cut off, back to its record.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, NumericType, StringType, TimestampType

import schemas
from libs.platform.hashing import line_hash  # noqa: F401  (public here too: tests match truth by it)
from libs.sim import rand
from libs.sim.truth import TRUTH_PREFIX

DEFECT_KINDS: tuple[str, ...] = ("malformed_json", "missing_field", "negative_price", "duplicate_event_id",
                                 "unknown_market", "future_timestamp", "wrong_type")
# The quarantine reason kind (``libs.ingest.validate``, text before ":") each defect must earn:
# how tests and benchmarks score ingestion against this truth.
INGEST_REASON: dict[str, str] = {"malformed_json": "malformed_json", "missing_field": "missing_field",
                                 "negative_price": "negative_amount", "duplicate_event_id": "duplicate_key",
                                 "unknown_market": "unknown_market", "future_timestamp": "future_timestamp",
                                 "wrong_type": "wrong_type"}

MAX_RATE = 0.5

# Pinned to_json options (the landing zone's wire format, shared with ingestion); see the module
# docstring for why each one is set explicitly.
JSON_OPTIONS = schemas.JSON_OPTIONS

# None is a valid market code: "XX"/"ZZ" are ISO 3166 user-assigned codes no real market uses; the
# rest are malformed (case, padding, punctuation, length) the way hand-typed upstream codes are.
# Ingestion must compare codes exactly: one that trims/upper-cases would "repair" "us " into "US"
# and accept a line the truth says is defective.
BAD_MARKETS: tuple[str, ...] = ("XX", "ZZ", "us ", " US", "GB-", "U.S.", "usa", "??", "")

# wrong_type tokens; "{v}" stands for the field's own value. None of them parses as a number in a
# JSON reader -- deliberately no "NaN"/"Infinity", which Spark's JSON reader accepts for doubles.
_WRONG_TYPE_TOKENS: tuple[str, ...] = ("{v} usd", "N/A", "true", "", "1,234")

_REPLAY_SHIFT_MAX_S = 30
_FUTURE_DAYS_MAX = 365
_FUTURE_MIN_S = 3600          # a future timestamp lies at least this far past the end of the run date
_US_PER_S = 1_000_000
_US_PER_DAY = 86_400 * _US_PER_S

# Working columns; names nobody's feed will use.
_KIND, _COPY, _KEY, _JSON, _FIELD = "__dfx_kind", "__dfx_copy", "__dfx_key", "__dfx_json", "__dfx_field"
_PICK_MISSING, _PICK_WRONG, _BAD = "__dfx_pick_missing", "__dfx_pick_wrong", "__dfx_bad"


@dataclass(frozen=True)
class FeedSpec:
    """What a feed looks like, so the injector knows which defects make sense for it.

    ``name`` also salts the draws: two feeds never share defective keys by construction.
    ``required``: fields a consumer requires (``missing_field`` removes one of them, never ``key``).
    ``ts`` (a TimestampType column), ``money`` (numeric), ``market`` (string) and ``numeric``
    (numeric columns) enable the corresponding defects when given.
    """

    name: str
    key: str
    required: tuple[str, ...]
    ts: str | None = None
    money: str | None = None
    market: str | None = None
    numeric: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Accept lists for convenience but store tuples: the spec stays hashable and immutable.
        object.__setattr__(self, "required", tuple(self.required))
        object.__setattr__(self, "numeric", tuple(self.numeric))
        problems = []
        if not self.name:
            problems.append("name must be non-empty")
        if not self.key:
            problems.append("key must be non-empty")
        for role in ("ts", "money", "market"):
            if getattr(self, role) is not None and getattr(self, role) == self.key:
                problems.append(f"{role} must not be the key column {self.key!r}")
        for label, cols in (("required", self.required), ("numeric", self.numeric)):
            if len(set(cols)) != len(cols):
                problems.append(f"{label} has duplicates: {cols!r}")
        if problems:
            raise ValueError(f"invalid FeedSpec {self.name!r}: " + "; ".join(problems))

    @property
    def droppable(self) -> tuple[str, ...]:
        """Required fields ``missing_field`` may remove: all but the key (a record without its key
        cannot be reconciled at all -- that is ``malformed_json``'s job)."""
        return tuple(c for c in self.required if c != self.key)

    @property
    def retypable(self) -> tuple[str, ...]:
        """Numeric fields ``wrong_type`` may stringify: all but the key, for the same reason."""
        return tuple(c for c in self.numeric if c != self.key)


def applicable(spec: FeedSpec) -> tuple[str, ...]:
    """Defect kinds that make sense for ``spec``, in :data:`DEFECT_KINDS` order.

    A feed without a money column cannot have a negative price, etc.; drawing an inapplicable kind
    would plant a "defect" that changes nothing and poison the truth.
    """
    ok = {
        "malformed_json": True,
        "missing_field": bool(spec.droppable),
        "negative_price": spec.money is not None,
        "duplicate_event_id": True,
        "unknown_market": spec.market is not None,
        "future_timestamp": spec.ts is not None,
        "wrong_type": bool(spec.retypable),
    }
    return tuple(k for k in DEFECT_KINDS if ok[k])


def _c(name: str) -> Column:
    """Column by exact name (backticks: names with dots or spaces are not parsed as paths)."""
    return F.col("`" + name.replace("`", "``") + "`")


def _validate(df: DataFrame, spec: FeedSpec, rate: float, run_date: dt.date, partition_col: str) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or math.isnan(rate) or not 0 <= rate <= MAX_RATE:
        raise ValueError(f"rate must be a number in [0, {MAX_RATE}] (a feed more than half broken is an "
                         f"outage, not a defect rate), got {rate!r}")
    if isinstance(run_date, dt.datetime) or not isinstance(run_date, dt.date):
        raise ValueError(f"run_date must be a datetime.date (not a datetime), got {run_date!r}")
    types: dict[str, DataType] = {f.name: f.dataType for f in df.schema.fields}
    problems = []
    if partition_col not in types:
        problems.append(f"partition column {partition_col!r} is not in the frame")
    named = [spec.key, *spec.required, *spec.numeric] + [c for c in (spec.ts, spec.money, spec.market) if c]
    for col in dict.fromkeys(named):
        if col not in types:
            problems.append(f"column {col!r} is not in the frame")
        elif col == partition_col:
            problems.append(f"column {col!r} is the partition column, which is not serialized")
        elif col.startswith(TRUTH_PREFIX):
            problems.append(f"column {col!r} is a truth column, which is never serialized")
    if spec.ts in types and not isinstance(types[spec.ts], TimestampType):
        problems.append(f"ts column {spec.ts!r} must be TimestampType, is {types[spec.ts].simpleString()}")
    if spec.money in types and not isinstance(types[spec.money], NumericType):
        problems.append(f"money column {spec.money!r} must be numeric, is {types[spec.money].simpleString()}")
    if spec.market in types and not isinstance(types[spec.market], StringType):
        problems.append(f"market column {spec.market!r} must be a string, is {types[spec.market].simpleString()}")
    for col in spec.numeric:
        if col in types and not isinstance(types[col], NumericType):
            problems.append(f"numeric column {col!r} must be numeric, is {types[col].simpleString()}")
    if problems:
        raise ValueError(f"FeedSpec {spec.name!r} does not fit the frame: " + "; ".join(problems))


def inject(df: DataFrame, spec: FeedSpec, seed: int, rate: float, run_date: dt.date,
           partition_col: str = "dt") -> tuple[DataFrame, DataFrame]:
    """``(lines, truth)`` of :func:`annotate` (see there); both are projections of one frame."""
    out = annotate(df, spec, seed, rate, run_date, partition_col)
    return lines_of(out, partition_col), truth_of(out, spec, seed, partition_col)


def lines_of(annotated: DataFrame, partition_col: str = "dt") -> DataFrame:
    """The landed lines of an :func:`annotate` frame: ``value`` and ``partition_col``."""
    return annotated.select("value", partition_col)


def truth_of(annotated: DataFrame, spec: FeedSpec, seed: int, partition_col: str = "dt") -> DataFrame:
    """The defect truth of an :func:`annotate` frame (one row per planted defect)."""
    k = F.col(_KIND)
    return (annotated.where(k.isNotNull() & ((k != "duplicate_event_id") | (F.col(_COPY) == 1)))
            .select(F.lit(int(seed)).cast("long").alias("seed"), F.lit(spec.name).alias("feed"),
                    F.col(_KEY).alias("key"), k.alias("defect"), F.col(_FIELD).alias("field"),
                    F.col(partition_col), line_hash("value").alias("line_hash")))


def annotate(df: DataFrame, spec: FeedSpec, seed: int, rate: float, run_date: dt.date,
             partition_col: str = "dt") -> DataFrame:
    """One frame holding every line *and* its defect annotations (working columns ``__dfx_*``).

    A caller that lands both the lines and the truth persists this frame once and projects it
    with :func:`lines_of` / :func:`truth_of`, instead of serializing the feed twice.

    It serializes ``df`` to JSON lines with defects planted at ``rate``. Projected:

    ``lines``: ``value`` (string, one JSON object per row, or a broken line) and ``partition_col``
    (the directory partition, not inside ``value``). Duplicated rows contribute two lines, so
    ``lines`` has ``df.count() + #duplicate_event_id`` rows.

    ``truth``: one row per planted defect -- ``seed`` (long), ``feed``, ``key`` (the record's key
    as a string), ``defect``, ``field`` (touched column or null), ``partition_col`` and
    ``line_hash`` (see the module docstring). Empty when ``rate`` is 0, in which case ``lines`` is
    exactly the clean serialization.

    ``key`` must be unique in ``df`` (a business key); the defect draws are keyed on it.
    """
    _validate(df, spec, rate, run_date, partition_col)
    seed = int(seed)
    salt = f"defects:{spec.name}:"
    kinds = applicable(spec)
    data_cols = [c for c in df.columns if c != partition_col and not c.startswith(TRUTH_PREFIX)]
    types = {f.name: f.dataType for f in df.schema.fields}

    key = _c(spec.key).cast("string")
    defective = rand.bernoulli(float(rate), seed, salt + "defective", key)
    kind = rand.choice(kinds, rand.uniform(seed, salt + "kind", key))
    base = (df.withColumn(_KEY, key)
            .withColumn(_KIND, F.when(defective, kind))
            .withColumn(_COPY, F.explode(F.when(F.col(_KIND) == "duplicate_event_id", F.array(F.lit(0), F.lit(1)))
                                         .otherwise(F.array(F.lit(0))))))
    k = F.col(_KIND)

    end_us = ((run_date - dt.date(1970, 1, 1)).days + 1) * _US_PER_DAY   # end of run_date, UTC

    # Stage 1: value-level defects replace their column in place (type unchanged), and the per-row
    # field picks become columns. Stage 2 then only *references* columns: the JSON CASE below has
    # one branch per candidate field, and inlining the defect expressions into every branch would
    # multiply the plan size (Spark does not collapse the two projections for that very reason).
    staged: dict[str, Column] = {}
    kcol = F.col(_KEY)
    if spec.money is not None:
        money = _c(spec.money)
        neg = -F.abs(money)
        staged[spec.money] = F.when(k == "negative_price", F.when(neg < 0, neg).otherwise(
            F.lit(-1).cast(types[spec.money]))).otherwise(money)
    if spec.market is not None:
        bad_market = rand.choice(BAD_MARKETS, rand.uniform(seed, salt + "bad_market", kcol))
        staged[spec.market] = F.when(k == "unknown_market", bad_market).otherwise(_c(spec.market))
    if spec.ts is not None:
        days = rand.randint(seed, salt + "future_day", 1, _FUTURE_DAYS_MAX, kcol)
        secs = rand.randint(seed, salt + "future_sec", _FUTURE_MIN_S - 1, 86_399, kcol)
        # (end of run_date) + (days - 1) days + (secs + 1) s: at least an hour after the end of run_date.
        future = F.timestamp_micros(F.lit(end_us) + (days - 1) * F.lit(_US_PER_DAY) + (secs + 1) * F.lit(_US_PER_S))
        shift = rand.randint(seed, salt + "replay_shift", 1, _REPLAY_SHIFT_MAX_S, kcol) * F.lit(_US_PER_S)
        us = F.unix_micros(_c(spec.ts))
        replay = F.timestamp_micros(F.when(us + shift < F.lit(end_us), us + shift).otherwise(us - shift))
        staged[spec.ts] = (F.when(k == "future_timestamp", future)
                           .when((k == "duplicate_event_id") & (F.col(_COPY) == 1), replay)
                           .otherwise(_c(spec.ts)))
    if spec.droppable:
        staged[_PICK_MISSING] = rand.randint(seed, salt + "missing_field", 0, len(spec.droppable) - 1, kcol)
    if spec.retypable:
        pick = rand.randint(seed, salt + "wrong_type", 0, len(spec.retypable) - 1, kcol)
        picked = F.lit(None).cast("string")
        for i, col in enumerate(spec.retypable):
            picked = F.when(pick == i, _c(col).cast("string")).otherwise(picked)
        token = rand.choice(_WRONG_TYPE_TOKENS, rand.uniform(seed, salt + "wrong_token", kcol))
        staged[_PICK_WRONG] = pick
        staged[_BAD] = F.when(token == "{v} usd", F.coalesce(F.concat(picked, F.lit(" usd")), F.lit("N/A"))
                              ).otherwise(token)
    stage1 = base.withColumns(staged)

    # Stage 2: serialize. Removing or retyping a field changes the struct's *shape*, which one
    # struct expression cannot do per row; a CASE with one branch per candidate field can, and CASE
    # evaluates only the branch taken, so the cost per row stays one to_json.
    def to_json(cols: dict[str, Column]) -> Column:
        return F.to_json(F.struct(*cols.values()), JSON_OPTIONS)

    fields = {c: _c(c) for c in data_cols}
    branches: list[tuple[Column, Column, str]] = []
    for i, col in enumerate(spec.droppable):
        branches.append(((k == "missing_field") & (F.col(_PICK_MISSING) == i),
                         to_json({c: e for c, e in fields.items() if c != col}), col))
    for i, col in enumerate(spec.retypable):
        branches.append(((k == "wrong_type") & (F.col(_PICK_WRONG) == i),
                         to_json({**fields, col: F.col(_BAD).alias(col)}), col))
    full = to_json(fields)
    json_expr = full
    if branches:
        json_expr = F.when(branches[0][0], branches[0][1])
        for cond, js, _ in branches[1:]:
            json_expr = json_expr.when(cond, js)
        json_expr = json_expr.otherwise(full)

    # The column each defect touched (truth's ``field``); null for whole-line defects.
    value_kinds = [(k == kd, col) for kd, col in (("negative_price", spec.money), ("unknown_market", spec.market),
                                                  ("future_timestamp", spec.ts)) if col is not None]
    touched = F.lit(None).cast("string")
    for cond, col in [*value_kinds, *((cond, col) for cond, _, col in branches)]:
        touched = F.when(cond, F.lit(col)).otherwise(touched)

    out = stage1.withColumn(_JSON, json_expr).withColumn(_FIELD, touched)
    j = F.col(_JSON)
    # Cut to 1 + floor(u * (len - 1)) characters: in [1, len - 1], never empty, never complete.
    cut = (F.lit(1) + F.floor(rand.uniform(seed, salt + "cut", F.col(_KEY)) * (F.length(j) - F.lit(1)))).cast("int")
    out = out.withColumn("value", F.when(k == "malformed_json", j.substr(F.lit(1), cut)).otherwise(j))

    return out
