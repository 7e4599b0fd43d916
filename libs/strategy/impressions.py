"""(creator, item, context) impression samples for the multi-task value model, built in Spark.

Why impressions: the value model of :mod:`libs.strategy.multitask` answers "what is one more
exposure of this creator's video to this user worth" on several outcomes at once -- will it
convert, how much GMV, will the user engage, will the user complain, will the creator turn out to
be a violator. The unit that has all of these outcomes is the *impression*: one ``view`` event of
``silver_engagement_events`` whose ``dt`` lies in ``[label_start, label_end]``. Each impression
row carries a numeric vector ``x_num`` (:data:`NUMERIC_FEATURES`), a categorical index vector
``x_cat`` (:data:`CATEGORICAL_FEATURES`, indices from a :class:`Vocab`) and one label column per
task of :data:`TASKS` -- the Parquet contract of :mod:`libs.ml.petastorm_io`
(``x_num``/``x_cat`` + task columns) that the MMoE/PLE trainers read.

**Shelf traffic is out of scope.** Shelf purchases (scenario ``shelf``, product page, no video)
have no preceding view in the feed -- the simulator draws them as hash Bernoullis per
listing-day with no exposure event (:mod:`libs.sim.engagement`, "Purchases"), and the tracking
schema has no shelf-impression event type. Without an exposure there is no impression and no
negative, so shelf traffic yields no rows. A shelf purchase *does* count as a conversion of a
content view when the same user bought from the same creator later that day (below).

**Labels** (float32; NaN = undefined, which the trainer masks out per task):

* ``conversion`` -- 1.0 when the viewer (``user_key``) made at least one purchase (any scenario)
  from the viewed video's creator on the view's UTC day (``dt``) with ``ts >= `` the view's ``ts``;
  else 0.0. Never NaN.
* ``gmv`` -- ``log1p(sum gmv_usd)`` of exactly those purchases (a purchase with null ``gmv_usd``,
  an unconvertible currency, adds 0 but still converts); 0.0 without any. Never NaN.
* ``engagement`` -- 1.0 when the viewer liked, commented on or shared *the viewed video*, or
  followed *the creator* (any scenario: a profile-page follow counts), on the view's day with
  ``ts >= `` the view's ``ts``; else 0.0. Never NaN. A like of another video of the same creator
  does not count (it is another exposure's outcome).
* ``complaint`` -- 1.0 when the viewer filed a complaint about the creator with ``ts >=`` the
  view's ``ts`` and filing day (``dt``) ``<= view day + complaint_horizon_days``; 0.0 otherwise;
  **NaN when ``view day + complaint_horizon_days > label_end``**: the horizon would reach past the
  labelled period, and a 0 there would claim "no complaint" for days nobody looked at. Every
  row has the same horizon, so the label's base rate does not drift with the view's day.
* ``risk`` -- 1.0 when the creator's first *standing* (not overturned) ``ban`` or ``strike`` was
  decided after the view (``decided_at > ts``, timestamp precision: a decision later on the view's
  day is a positive, not a silent 0) and on or before ``label_end`` (UTC day of ``decided_at``);
  else 0.0. **Never NaN**: the interval ``(view, label_end]`` lies inside the labelled period by
  construction, and ``moderation`` is required to be a snapshot dated ``>= label_end`` (checked:
  an older snapshot cannot know the window's decisions and raises ValueError). Its horizon shrinks
  for later views -- a view on ``label_end`` can only be positive through a same-day decision --
  so evaluate ``risk`` per ``dt`` or keep label windows short. Warnings are not enforcement.
  "0" means "not enforced in the window" (positive-unlabelled, as in :mod:`libs.quality.sequences`).
* **Excluded**: impressions of a creator whose first standing ban/strike was decided at or before
  the view's ``ts`` -- an enforced creator gets no traffic, so such rows say nothing about the
  value of traffic (they are simulator/late-feed artefacts), and their ``risk`` would be
  already-known.

Same-day labels end at the UTC day boundary (a view at 23:59 has one minute to convert): the
``dt`` partitioning of the feed, the same cut everywhere. Repeated views of one video by one user
are separate impressions and each sees the later outcomes of that day.

**Features** (``x_num``, float32, never NaN: the model rejects NaN):

* creator -- :data:`CREATOR_FEATURE_GROUPS`, columns of ``creator_signals``, taken from the
  caller's ``creator_features`` frame. **Contract: ``creator_features`` is computed strictly
  before ``label_start``** (e.g. one ``window_days`` of the ``creator_signals`` snapshot dated
  ``label_start - 1``, whose windows end with that day), one row per ``creator_id``; if it has a
  ``dt`` column, any ``dt >= label_start`` raises ValueError, and so does a duplicated
  ``creator_id`` (two windows or two snapshots would multiply the impressions). Count-like columns
  enter as ``log1p(max(x, 0))``, rates and shares as is, null/NaN as 0, plus one
  ``missing_<group>`` flag per group: 1.0 when every rate of the group is null (its denominator
  was 0: "not measured", which a 0 would hide), or, for a group without rates, every column is
  null; a creator without a feature row has all flags 1.
* item -- ``has_product`` (the video names a product), ``log1p_price_usd`` of that product's
  listing (0 when unknown), ``price_missing`` (a product without a listing).
* context -- hour of day and weekday (sin/cos, the viewer's *local* time: the market's zone from
  :data:`libs.reference.MARKETS`, UTC for an unknown market), ``log1p`` days since the video was
  published (0 when the video is unknown, with ``video_missing``), and ``cross_market`` (viewer's
  market differs from the creator's).

Creators and listings are daily snapshots; a creator's (market, category) and a listing's (price,
category) come from the latest snapshot dated before ``label_start`` -- never a later one, which
could carry a post-window change -- falling back to the earliest snapshot inside the window for a
creator or listing that first appears there (declared at sign-up/listing, so known when served).

**Categoricals** (``x_cat``, int32): viewer market, creator category, product category and the
video's scenario (``video``/``live``); index ``i + 1`` for the i-th value of the sorted vocabulary,
0 for null or unseen. Without a ``vocab`` one is built from the dimension frames (distinct values of
the snapshots used, a few small aggregates collected to the driver -- never the impressions); pass
the training run's :class:`Vocab` (``to_dict``/``from_dict``) when building scoring samples.

**Sampling**: impressions are down-sampled deterministically by ``u = pmod(xxhash64(seed,
event_id), 2^30) / 2^30 < sample_rate`` (never ``rand()``: a re-run must give the same rows).
Impressions positive on a task of ``always_keep`` (default conversion and complaint -- the rare
ones) are all kept with ``weight`` 1.0; every other kept row has ``weight = 1 / sample_rate``, so
weighted metrics and losses are unbiased for the full impression population.

**Plan**: labels are computed from outcome tables first aggregated to the join keys -- purchases
and follows to ``(user_key, creator_id, day)`` (purchase ``(ts, gmv_usd)`` pairs as a short array,
so "at/after the view" stays exact), video interactions to ``(user_key, video_id, day)`` (latest
``ts``), complaints to ``(user_key, creator_id)`` (their ``(ts, day)`` pairs) -- so each join adds
at most one row per impression and no ``groupBy`` of impressions is needed. Sampling happens right
after the labels, before the feature joins, so those joins touch only the kept rows.

``holdout`` is the stable 1-in-5 creator hash of :func:`libs.quality.sequences.holdout`: all of a
creator's impressions are on one side of the split, in every run.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from libs.platform.frames import require_columns
from libs.quality.sequences import holdout as quality_holdout
from libs.reference import MARKETS, lookup

# --- tasks ------------------------------------------------------------------------------------
TASKS: dict[str, str] = {
    "conversion": "binary",
    "gmv": "regression",       # log1p(USD): heavy-tailed amounts on a scale MSE can fit
    "engagement": "binary",
    "complaint": "binary",
    "risk": "binary",
}

# --- creator features: columns of schemas.creator_signals, grouped for the missing flags ------
_LOG, _RATE = "log1p", "rate"   # transform: log1p(max(x, 0)) for count-like / amount columns, identity for rates
CREATOR_FEATURE_GROUPS: dict[str, tuple[tuple[str, str], ...]] = {
    "content": (("n_videos", _LOG), ("active_days", _LOG), ("videos_per_active_day", _LOG),
                ("static_frame_mean", _RATE), ("static_frame_share", _RATE), ("motion_mean", _RATE),
                ("aesthetic_mean", _RATE), ("aesthetic_p10", _RATE), ("aesthetic_p50", _RATE),
                ("low_aesthetic_share", _RATE), ("blur_mean", _RATE), ("audio_reuse_share", _RATE),
                ("title_dup_share", _RATE), ("title_caps_share", _RATE), ("product_video_share", _RATE),
                ("product_repeat_ratio", _RATE), ("gap_cv", _RATE), ("min_gap_minutes", _LOG)),
    "copies": (("copied_video_share", _RATE), ("self_repost_share", _RATE), ("copy_sources", _LOG),
               ("copy_min_distance", _LOG), ("times_copied", _LOG)),
    "engagement": (("views", _LOG), ("interactions", _LOG), ("follows", _LOG), ("purchases", _LOG),
                   ("gmv_usd", _LOG), ("distinct_users", _LOG), ("interaction_rate", _RATE),
                   ("conversion_rate", _RATE), ("top_user_share", _RATE), ("events_per_user", _LOG)),
    "after_sale": (("complaints", _LOG), ("copyright_complaints", _LOG), ("refunds", _LOG), ("refund_usd", _LOG),
                   ("complaint_rate", _RATE), ("refund_rate", _RATE)),
    "account": (("logins", _LOG), ("login_devices", _LOG), ("login_geos", _LOG), ("account_age_days", _LOG)),
}
CREATOR_FEATURES: tuple[str, ...] = tuple(n for cols in CREATOR_FEATURE_GROUPS.values() for n, _ in cols)
ITEM_FEATURES: tuple[str, ...] = ("has_product", "log1p_price_usd", "price_missing")
CONTEXT_FEATURES: tuple[str, ...] = ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos", "log1p_video_age_days",
                                     "video_missing", "cross_market")


def _creator_feature_name(name: str, transform: str) -> str:
    return f"log1p_{name}" if transform == _LOG else name


NUMERIC_FEATURES: tuple[str, ...] = (
    tuple(_creator_feature_name(n, t) for cols in CREATOR_FEATURE_GROUPS.values() for n, t in cols)
    + tuple(f"missing_{g}" for g in CREATOR_FEATURE_GROUPS)
    + ITEM_FEATURES + CONTEXT_FEATURES
)
CATEGORICAL_FEATURES: tuple[str, ...] = ("market", "creator_category", "product_category", "scenario")
OUTPUT_COLUMNS: tuple[str, ...] = ("event_id", "creator_id", "market", "dt", "x_num", "x_cat", *TASKS, "weight",
                                   "holdout")

DEFAULT_SAMPLE_RATE = 0.1       # views are ~80 % of events; 1 in 10 negatives is plenty next to all positives
DEFAULT_ALWAYS_KEEP: tuple[str, ...] = ("conversion", "complaint")   # the rare binary tasks: keep every positive
_HASH_BUCKETS = 1 << 30         # low 30 bits of xxhash64 -> a uniform in [0, 1) at ~1e-9 resolution
ENFORCEMENT_ACTIONS = ("ban", "strike")   # what takes a creator's traffic away (warnings do not)
_SECONDS_PER_DAY = 86400.0
_TZ_OF_MARKET: dict[str, str] = {m.iso: m.tz for m in MARKETS.values()}   # silver carries ISO market codes


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Vocab:
    """Known values per categorical column of :data:`CATEGORICAL_FEATURES`; value ``values[c][i]``
    has index ``i + 1``, index 0 is null/unseen. Saved with the model (``to_dict``) and reused at
    scoring time, so an index means the same category in training and serving."""

    values: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        if set(self.values) != set(CATEGORICAL_FEATURES):
            raise ValueError(f"vocab must have exactly the columns {CATEGORICAL_FEATURES}, got {sorted(self.values)}")
        clean: dict[str, tuple[str, ...]] = {}
        for name in CATEGORICAL_FEATURES:
            vals = tuple(self.values[name])
            if not all(isinstance(v, str) for v in vals):
                raise ValueError(f"vocab column {name!r}: values must be strings, got {list(vals)[:5]}")
            if len(set(vals)) != len(vals):
                raise ValueError(f"vocab column {name!r} has duplicate values")
            clean[name] = vals
        object.__setattr__(self, "values", clean)

    def index(self, name: str, value: str | None) -> int:
        """Index of ``value`` in column ``name`` (0 for null or unseen)."""
        vals = self.values[name]
        return vals.index(value) + 1 if value in vals else 0

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Known values per column, in :data:`CATEGORICAL_FEATURES` order (indices ``0..c``)."""
        return tuple(len(self.values[c]) for c in CATEGORICAL_FEATURES)

    def column(self, name: str, value: Column) -> Column:
        """Spark expression: the index of ``value`` (int, 0 for null/unseen) -- one literal map lookup."""
        vals = self.values[name]
        if not vals:
            return F.lit(0).cast("int")
        return lookup(value, {v: i + 1 for i, v in enumerate(vals)}, 0).cast("int")

    def to_dict(self) -> dict[str, list[str]]:
        return {name: list(self.values[name]) for name in CATEGORICAL_FEATURES}

    @classmethod
    def from_dict(cls, d: Mapping[str, Sequence[str]]) -> "Vocab":
        return cls({name: tuple(vals) for name, vals in d.items()})


def model_spec(vocab: Vocab) -> dict[str, Any]:
    """The :meth:`libs.strategy.multitask.MultiTaskSpec.from_dict` payload for these samples.

    A column with no known value still gets cardinality 1 (an embedding needs a row besides 0).
    Plain dict, so building samples never imports torch.
    """
    return {"num_features": len(NUMERIC_FEATURES),
            "categorical_cardinalities": [max(1, c) for c in vocab.cardinalities],
            "tasks": [{"name": name, "kind": kind, "weight": 1.0} for name, kind in TASKS.items()]}


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

def _check_creator_features(creator_features: DataFrame, label_start: dt.date) -> None:
    """Leakage and uniqueness guard (one small aggregate job): see the module doc's contract."""
    require_columns(creator_features, ("creator_id", *CREATOR_FEATURES), "creator_features")
    by_name = {f.name: f.dataType for f in creator_features.schema.fields}
    not_numeric = [c for c in CREATOR_FEATURES if not isinstance(by_name[c], T.NumericType)]
    if not_numeric:
        raise ValueError(f"creator_features columns {not_numeric} must be numeric")
    has_dt = "dt" in creator_features.columns
    latest = F.max(F.to_date(F.col("dt"))) if has_dt else F.lit(None).cast("date")
    row = (creator_features.groupBy("creator_id").agg(F.count(F.lit(1)).alias("n"), latest.alias("latest"))
           .agg(F.max("n").alias("n"), F.max("latest").alias("latest")).first())
    if row is not None and row["latest"] is not None and row["latest"] >= label_start:
        raise ValueError(f"creator_features has dt {row['latest']} >= label_start {label_start}: features must be "
                         "computed strictly before the label window, or labels leak into them")
    if row is not None and row["n"] is not None and row["n"] > 1:
        raise ValueError("creator_features has several rows per creator_id (several windows or snapshots?); "
                         "pass exactly one row per creator")


def _first_enforcement(moderation: DataFrame, label_end: dt.date) -> DataFrame:
    """``creator_id, enforced_at``: the earliest standing ban/strike of each creator that has one.

    Several snapshots of ``silver_moderation`` collapse to each case's latest row (a later snapshot
    knows more appeals). The newest snapshot must be dated ``>= label_end`` (one small job).
    """
    require_columns(moderation, ("case_id", "creator_id", "action", "decided_at", "overturned", "dt"), "moderation")
    newest = moderation.agg(F.max(F.to_date(F.col("dt"))).alias("d")).first()["d"]
    if newest is None or newest < label_end:
        raise ValueError(f"moderation snapshot {newest} does not cover label_end {label_end}: "
                         "the risk label needs every decision up to label_end")
    cols = ["creator_id", "action", "decided_at", "overturned"]
    cases = moderation.groupBy("case_id").agg(
        F.max_by(F.struct(*cols), F.to_date(F.col("dt"))).alias("c")).select("c.*")
    standing = cases.where(~F.coalesce(F.col("overturned"), F.lit(False))
                           & F.col("action").isin(*ENFORCEMENT_ACTIONS))
    return standing.groupBy("creator_id").agg(F.min("decided_at").alias("enforced_at"))


def _as_of(df: DataFrame, keys: Sequence[str], cols: Sequence[str], label_start: dt.date,
           label_end: dt.date) -> DataFrame:
    """One row per ``keys`` from a daily snapshot table: the latest snapshot dated before
    ``label_start``, else the earliest inside ``[label_start, label_end]`` (never a later one).

    ``min_by`` over ``(inside, distance to label_start)``: ``False < True`` puts pre-window
    snapshots first, the distance picks the closest one on either side.
    """
    d = F.to_date(F.col("dt"))
    order = F.struct((d >= F.lit(label_start)).alias("inside"),
                     F.abs(F.datediff(d, F.lit(label_start))).alias("distance"))
    return (df.where(d <= F.lit(label_end))
            .groupBy(*keys).agg(F.min_by(F.struct(*cols), order).alias("v"))
            .select(*keys, *[F.col(f"v.{c}").alias(c) for c in cols]))


def build_vocab(creators_asof: DataFrame, listings_asof: DataFrame, videos: DataFrame) -> Vocab:
    """Sorted distinct values of every categorical column from the dimension frames (one small job)."""
    parts = [creators_asof.select(F.lit("market").alias("k"), F.col("creator_market").alias("v")),
             creators_asof.select(F.lit("creator_category").alias("k"), F.col("creator_category").alias("v")),
             listings_asof.select(F.lit("product_category").alias("k"), F.col("product_category").alias("v")),
             videos.select(F.lit("scenario").alias("k"), F.col("scenario").alias("v"))]
    u = parts[0]
    for p in parts[1:]:
        u = u.unionByName(p)
    rows = u.where(F.col("v").isNotNull()).distinct().collect()   # distinct category values: a handful per column
    found: dict[str, set[str]] = {c: set() for c in CATEGORICAL_FEATURES}
    for r in rows:
        found[r["k"]].add(str(r["v"]))
    return Vocab({c: tuple(sorted(found[c])) for c in CATEGORICAL_FEATURES})


# --------------------------------------------------------------------------------------------
# Labels, sampling, features
# --------------------------------------------------------------------------------------------

def _in_window(start: dt.date, end: dt.date) -> Column:
    return F.to_date(F.col("dt")).between(F.lit(start), F.lit(end))


def labelled_views(events: DataFrame, complaints: DataFrame, enforced: DataFrame, label_start: dt.date,
                   label_end: dt.date, complaint_horizon_days: int) -> DataFrame:
    """Impressions of the window (minus enforced creators) with their five label columns (float32).

    Columns: ``event_id, user_key, creator_id, video_id, market, dt, view_ts, day`` + :data:`TASKS`.
    """
    require_columns(events, ("event_id", "event_type", "user_key", "creator_id", "video_id", "market", "ts",
                             "gmv_usd", "dt"), "events")
    require_columns(complaints, ("user_key", "creator_id", "ts", "dt"), "complaints")
    ev = events.where(_in_window(label_start, label_end)).withColumn("day", F.to_date(F.col("dt")))
    views = (ev.where(F.col("event_type") == "view")
             .select("event_id", "user_key", "creator_id", "video_id", "market", F.col("dt").cast("string").alias("dt"),
                     F.col("ts").alias("view_ts"), "day"))
    # An enforced creator gets no traffic: drop views at or after its first standing ban/strike.
    views = (views.join(enforced, "creator_id", "left")
             .where(F.col("enforced_at").isNull() | (F.col("enforced_at") > F.col("view_ts"))))
    # Purchases and follows share the key (viewer, creator, day): one aggregate, one join.
    buy, follow = F.col("event_type") == "purchase", F.col("event_type") == "follow"
    per_creator = (ev.where(buy | follow)
                   .groupBy("user_key", "creator_id", "day")
                   .agg(F.collect_list(F.when(buy, F.struct(F.col("ts").alias("ts"),
                                                            F.col("gmv_usd").alias("gmv_usd")))).alias("buys"),
                        F.max(F.when(follow, F.col("ts"))).alias("last_follow")))
    per_video = (ev.where(F.col("event_type").isin("like", "comment", "share") & F.col("video_id").isNotNull())
                 .groupBy("user_key", "video_id", "day").agg(F.max("ts").alias("last_act")))
    # Complaints up to label_end only: a later one cannot be in a defined horizon (those rows are NaN).
    filed = (complaints.where(_in_window(label_start, label_end))
             .groupBy("user_key", "creator_id")
             .agg(F.collect_list(F.struct(F.col("ts").alias("ts"),
                                          F.to_date(F.col("dt")).alias("day"))).alias("filed")))
    j = (views.join(per_creator, ["user_key", "creator_id", "day"], "left")
         .join(per_video, ["user_key", "video_id", "day"], "left")
         .join(filed, ["user_key", "creator_id"], "left"))
    after = F.filter(F.coalesce(F.col("buys"), F.array()), lambda b: b["ts"] >= F.col("view_ts"))
    gmv = F.aggregate(after, F.lit(0.0), lambda acc, b: acc + F.coalesce(b["gmv_usd"], F.lit(0.0)))
    horizon_end = F.date_add(F.col("day"), complaint_horizon_days)
    complained = F.exists(F.coalesce(F.col("filed"), F.array()),
                          lambda c: (c["ts"] >= F.col("view_ts")) & (c["day"] <= horizon_end))
    engaged = (F.coalesce(F.col("last_act") >= F.col("view_ts"), F.lit(False))
               | F.coalesce(F.col("last_follow") >= F.col("view_ts"), F.lit(False)))
    risk = F.coalesce(F.to_date(F.col("enforced_at")) <= F.lit(label_end), F.lit(False))
    nan = F.lit(float("nan"))
    return j.select(
        "event_id", "user_key", "creator_id", "video_id", "market", "dt", "view_ts", "day",
        (F.size(after) > 0).cast("float").alias("conversion"),
        F.log1p(gmv).cast("float").alias("gmv"),
        engaged.cast("float").alias("engagement"),
        F.when(horizon_end > F.lit(label_end), nan).otherwise(complained.cast("double"))
        .cast("float").alias("complaint"),
        risk.cast("float").alias("risk"),
    )


def sample(labelled: DataFrame, sample_rate: float, seed: int, always_keep: Sequence[str]) -> DataFrame:
    """Deterministic down-sampling with a ``weight`` column (see the module doc)."""
    h = F.xxhash64(F.lit(int(seed)).cast("long"), F.col("event_id"))
    u = F.pmod(h, F.lit(_HASH_BUCKETS)) / float(_HASH_BUCKETS)
    positive = F.lit(False)
    for task in always_keep:
        positive = positive | F.coalesce(F.col(task) == 1.0, F.lit(False))   # NaN == 1.0 is false: not a positive
    return (labelled.where(positive | (u < F.lit(float(sample_rate))))
            .withColumn("weight", F.when(positive, F.lit(1.0)).otherwise(F.lit(1.0 / sample_rate)).cast("float")))


def _num(c: Column) -> Column:
    """Double, with NaN turned into null (the model rejects NaN; nulls become 0 below)."""
    d = c.cast("double")
    return F.when(~F.isnan(d), d)


def _creator_vectors(creator_features: DataFrame) -> DataFrame:
    """``creator_id, cf`` (array<float>): the creator block of :data:`NUMERIC_FEATURES` incl. missing flags."""
    values, flags = [], []
    for cols in CREATOR_FEATURE_GROUPS.values():
        for name, transform in cols:
            x = _num(F.col(name))
            values.append(F.log1p(F.greatest(x, F.lit(0.0))) if transform == _LOG else x)
        # "Not measured": every rate null (denominator 0); a group without rates: every column null.
        probes = [_num(F.col(n)) for n, t in cols if t == _RATE] or [_num(F.col(n)) for n, _ in cols]
        flags.append(F.when(F.coalesce(*probes).isNull(), F.lit(1.0)).otherwise(F.lit(0.0)))
    return creator_features.select("creator_id", F.array(*[F.coalesce(v, F.lit(0.0)).cast("float")
                                                            for v in values + flags]).alias("cf"))


def _hour_sin_cos(ts: Column) -> tuple[Column, Column]:
    angle = (F.hour(ts) + F.minute(ts) / 60.0) * (2 * math.pi / 24)
    return F.sin(angle), F.cos(angle)


def impression_samples(events: DataFrame, videos: DataFrame, listings: DataFrame, creators: DataFrame,
                       complaints: DataFrame, moderation: DataFrame, creator_features: DataFrame,
                       label_start: dt.date, label_end: dt.date, *, sample_rate: float = DEFAULT_SAMPLE_RATE,
                       seed: int = 0, complaint_horizon_days: int = 7, vocab: Vocab | None = None,
                       always_keep: Sequence[str] = DEFAULT_ALWAYS_KEEP) -> tuple[DataFrame, Vocab]:
    """Impression samples of ``[label_start, label_end]`` and the vocabulary their ``x_cat`` uses.

    Inputs are silver tables (``silver_engagement_events``, ``silver_videos``, ``silver_listings``,
    ``silver_creators``, ``silver_complaints``, one or more ``silver_moderation`` snapshots, the
    newest dated ``>= label_end``) -- only the columns named in the ``require_columns`` checks are
    read -- and ``creator_features`` (one row per creator, computed before ``label_start``).
    Returns columns :data:`OUTPUT_COLUMNS`; see the module doc for every definition. Runs at most
    three small driver-side jobs (the feature guard, the moderation coverage check and, without
    ``vocab``, the vocabulary); the result itself is lazy.
    """
    if not isinstance(label_start, dt.date) or not isinstance(label_end, dt.date) or label_end < label_start:
        raise ValueError(f"need dates label_start <= label_end, got {label_start!r}, {label_end!r}")
    if not (isinstance(sample_rate, (int, float)) and 0.0 < float(sample_rate) <= 1.0):
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate!r}")
    if isinstance(complaint_horizon_days, bool) or not isinstance(complaint_horizon_days, int) \
            or complaint_horizon_days < 0:
        raise ValueError(f"complaint_horizon_days must be an integer >= 0, got {complaint_horizon_days!r}")
    unknown = [t for t in always_keep if TASKS.get(t) != "binary"]
    if unknown:
        raise ValueError(f"always_keep names {unknown}, which are not binary tasks of {list(TASKS)}")
    require_columns(videos, ("video_id", "published_at", "scenario", "product_id"), "videos")
    require_columns(listings, ("product_id", "creator_id", "category", "price_usd", "dt"), "listings")
    require_columns(creators, ("creator_id", "market", "category", "dt"), "creators")
    _check_creator_features(creator_features, label_start)
    enforced = _first_enforcement(moderation, label_end)

    creators_asof = _as_of(creators.select("creator_id", F.col("market").alias("creator_market"),
                                           F.col("category").alias("creator_category"), "dt"),
                           ["creator_id"], ["creator_market", "creator_category"], label_start, label_end)
    listings_asof = _as_of(listings.select("creator_id", "product_id", F.col("category").alias("product_category"),
                                           "price_usd", "dt"),
                           ["creator_id", "product_id"], ["product_category", "price_usd"], label_start, label_end)
    if vocab is None:
        vocab = build_vocab(creators_asof, listings_asof, videos)

    labelled = labelled_views(events, complaints, enforced, label_start, label_end, complaint_horizon_days)
    kept = sample(labelled, float(sample_rate), seed, always_keep)

    vids = videos.select("video_id", "published_at", F.col("scenario").alias("video_scenario"),
                         F.col("product_id").alias("video_product_id"), F.lit(True).alias("video_known"))
    j = (kept.join(vids, "video_id", "left")
         .join(creators_asof, "creator_id", "left")
         .join(listings_asof.withColumnRenamed("product_id", "video_product_id"),
               ["creator_id", "video_product_id"], "left")
         .join(_creator_vectors(creator_features), "creator_id", "left"))

    n_creator = len(CREATOR_FEATURES) + len(CREATOR_FEATURE_GROUPS)
    # A creator without a feature row: every value 0, every missing flag 1.
    absent = F.array(*([F.lit(0.0).cast("float")] * len(CREATOR_FEATURES)
                       + [F.lit(1.0).cast("float")] * len(CREATOR_FEATURE_GROUPS)))
    has_product = F.col("video_product_id").isNotNull()
    price = _num(F.col("price_usd"))
    local = F.from_utc_timestamp(F.col("view_ts"), lookup(F.col("market"), _TZ_OF_MARKET, "UTC"))
    h_sin, h_cos = _hour_sin_cos(local)
    weekday = F.pmod(F.dayofweek(local) + F.lit(5), F.lit(7))   # Spark: 1 = Sunday; here 0 = Monday .. 6 = Sunday
    w_angle = weekday * (2 * math.pi / 7)
    age_days = (F.col("view_ts").cast("long") - F.col("published_at").cast("long")) / _SECONDS_PER_DAY
    known = F.coalesce(F.col("video_known"), F.lit(False))
    item_context = [
        has_product.cast("double"),
        F.when(has_product, F.log1p(F.greatest(price, F.lit(0.0)))),
        (has_product & price.isNull()).cast("double"),
        h_sin, h_cos, F.sin(w_angle), F.cos(w_angle),
        F.when(known, F.log1p(F.greatest(age_days, F.lit(0.0)))),
        (~known).cast("double"),
        F.coalesce((F.col("market") != F.col("creator_market")).cast("double"), F.lit(0.0)),
    ]
    x_num = F.concat(F.coalesce(F.col("cf"), absent),
                     F.array(*[F.coalesce(c, F.lit(0.0)).cast("float") for c in item_context]))
    x_cat = F.array(vocab.column("market", F.col("market")),
                    vocab.column("creator_category", F.col("creator_category")),
                    vocab.column("product_category", F.col("product_category")),
                    vocab.column("scenario", F.col("video_scenario")))
    assert n_creator + len(item_context) == len(NUMERIC_FEATURES)   # the name list and the vector agree
    out = j.select("event_id", "creator_id", "market", "dt", x_num.alias("x_num"), x_cat.alias("x_cat"),
                   *TASKS, "weight", quality_holdout(F.col("creator_id")).alias("holdout"))
    return out, vocab
