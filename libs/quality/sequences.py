"""Each creator's ordered activity as a fixed-size numeric sequence, and its moderation labels.

Why a sequence and not only the window aggregates of :mod:`libs.quality.signals`: the abuse
types of issue 6 are *patterns in time* -- a burst of near-identical slideshow posts, reposts that
follow another creator's uploads by hours, a device switch followed by a change of what is sold
-- which averages over 28 days blur away.

Token kinds (one row each, all with the same feature vector, :data:`FEATURES`):

* ``video``: the upstream content signals, whether it has a product, title shouting, and whether
  this run's ``video_copies`` found it copying another creator's video or reposting its own (and
  how close the fingerprint match was);
* ``listing``: a product put on the creator's shelf (log price, category differs from the
  creator's declared category -- a bought account switching niche);
* ``engagement_day``: one per creator and day with events (volume, distinct users, the single most
  active user's share, purchases) -- per-event tokens would drown the content in views;
* ``device_change``: a login from a different device than the previous login (new geo flag).

Every token also carries its kind (one-hot), the log gap to the previous token, the hour of
day (sin/cos) and the account's age at that moment (log days since sign-up: farms and sybils are
young, a bought account is old but behaves new). The newest ``max_len`` tokens are kept, oldest first, flattened row-major into one
``array<float>`` of ``max_len * n_features`` (zero-padded) plus ``seq_len`` -- the Parquet
contract of :mod:`libs.ml.petastorm_io` -- so the whole build is Spark SQL (no Python UDF) and
Petastorm reads it as fixed-shape tensors.

Labels come from the moderation history: a creator is positive for an abuse type when a decision
that was not overturned on appeal cites the matching reason code. Everyone else is 0 -- unlabelled,
not known-clean (positive-unlabelled data: most bad actors were never caught), which is why the
evaluation reports ranking metrics against the simulator's hidden truth as well.
"""
from __future__ import annotations

import datetime as dt
import math

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

KINDS = ("video", "listing", "engagement_day", "device_change")
# Feature vector of every token, in order. Kind-specific features are 0 on other kinds' tokens.
FEATURES: tuple[str, ...] = (
    "is_video", "is_listing", "is_engagement_day", "is_device_change",
    "log_gap_hours", "hour_sin", "hour_cos",
    "static_frame_ratio", "motion_score", "aesthetic_score", "blur", "audio_reuse", "has_product",
    "title_caps_share", "is_cross_copy", "is_self_repost", "copy_closeness",
    "log_price_usd", "category_switch",
    "log_events", "log_users", "top_user_share", "log_purchases",
    "new_geo",
    "log_account_age_days",
)
# Label names and the moderation reason codes that make a creator positive for them.
LABELS: tuple[str, ...] = ("low_effort", "piracy", "matrix")
REASONS_OF_LABEL: dict[str, tuple[str, ...]] = {
    "low_effort": ("low_quality_selling",),
    "piracy": ("copyright",),
    "matrix": ("account_farm",),
}
HOLDOUT_BUCKETS = 5          # 1 in 5 creators (by id hash) is held out from training


def _token(df: DataFrame, kind: str, ts: Column, **features: Column) -> DataFrame:
    """Rows of one token kind: ``creator_id``, ``ts``, ``kind``, then every name of :data:`FEATURES`."""
    unknown = set(features) - set(FEATURES)
    if unknown:
        raise ValueError(f"unknown token features {sorted(unknown)}")
    cols = [F.lit(1.0 if name == f"is_{kind}" else 0.0) if name.startswith("is_") and name[3:] in KINDS
            else features.get(name, F.lit(0.0)) for name in FEATURES]
    return df.select("creator_id", ts.alias("ts"), F.lit(kind).alias("kind"),
                     *[F.coalesce(c.cast("float"), F.lit(0.0).cast("float")).alias(n) for c, n in zip(cols, FEATURES)])


def video_tokens(videos: DataFrame, copies: DataFrame) -> DataFrame:
    """One token per video, flagged with what ``video_copies`` found about it (copy side)."""
    per_copy = copies.groupBy(F.col("copy_video_id").alias("video_id")).agg(
        F.max((~F.col("same_creator")).cast("int")).alias("cross"),
        F.max(F.col("same_creator").cast("int")).alias("self"),
        F.min("distance").alias("distance"))
    letters = F.regexp_replace(F.coalesce(F.col("title"), F.lit("")), "[^A-Za-z]", "")
    caps = F.when(F.length(letters) > 0, F.length(F.regexp_replace(letters, "[^A-Z]", "")) / F.length(letters))
    v = videos.join(per_copy, "video_id", "left")
    return _token(
        v, "video", F.col("published_at"),
        static_frame_ratio=F.col("static_frame_ratio"), motion_score=F.col("motion_score"),
        aesthetic_score=F.col("aesthetic_score"), blur=F.col("blur"),
        audio_reuse=F.col("audio_reuse").cast("double"), has_product=F.col("product_id").isNotNull().cast("double"),
        title_caps_share=caps, is_cross_copy=F.col("cross"), is_self_repost=F.col("self"),
        # 1 for an exact copy, falling to 0 at 64 bits (beyond any match threshold), 0 when no copy.
        copy_closeness=F.when(F.col("distance").isNotNull(), F.greatest(F.lit(0.0), 1 - F.col("distance") / 64.0)),
    )


def listing_tokens(listings: DataFrame, creators: DataFrame) -> DataFrame:
    """One token per listing: log price and whether its category differs from the creator's."""
    lst = listings.join(creators.select("creator_id", F.col("category").alias("creator_category")), "creator_id", "left")
    return _token(lst, "listing", F.col("listed_at"), log_price_usd=F.log1p("price_usd"),
                  category_switch=(F.col("category") != F.col("creator_category")).cast("double"))


def engagement_tokens(events: DataFrame) -> DataFrame:
    """One token per creator and UTC day with engagement, stamped at the day's last event."""
    per_user = events.groupBy("creator_id", F.to_date("ts").alias("d"), "user_key").agg(
        F.count(F.lit(1)).alias("n"), F.max("ts").alias("ts"),
        F.sum((F.col("event_type") == "purchase").cast("long")).alias("purchases"))
    day = per_user.groupBy("creator_id", "d").agg(
        F.sum("n").alias("events"), F.count(F.lit(1)).alias("users"), F.max("n").alias("top"),
        F.max("ts").alias("ts"), F.sum("purchases").alias("purchases"))
    return _token(day, "engagement_day", F.col("ts"), log_events=F.log1p("events"), log_users=F.log1p("users"),
                  top_user_share=F.col("top") / F.col("events"), log_purchases=F.log1p("purchases"))


def device_change_tokens(logins: DataFrame) -> DataFrame:
    """One token per login whose device differs from the creator's previous login's device."""
    w = Window.partitionBy("creator_id").orderBy("ts", "login_id")
    lg = logins.select("creator_id", "login_id", "ts", "device_id", "geo",
                       F.lag("device_id").over(w).alias("prev_device"), F.lag("geo").over(w).alias("prev_geo"))
    changed = lg.where(F.col("prev_device").isNotNull() & (F.col("device_id") != F.col("prev_device")))
    return _token(changed, "device_change", F.col("ts"), new_geo=(F.col("geo") != F.col("prev_geo")).cast("double"))


def all_tokens(videos: DataFrame, copies: DataFrame, listings: DataFrame, creators: DataFrame,
               events: DataFrame, logins: DataFrame) -> DataFrame:
    """Every token kind of every creator, one frame (``unionByName``: column order cannot drift)."""
    parts = [video_tokens(videos, copies), listing_tokens(listings, creators), engagement_tokens(events),
             device_change_tokens(logins)]
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    age_days = F.greatest(F.lit(0.0), (F.col("ts").cast("long") - F.col("signup_date").cast("timestamp").cast("long"))
                          / 86400.0)
    return (out.join(creators.select("creator_id", "signup_date"), "creator_id", "left")
            .withColumn("log_account_age_days", F.coalesce(F.log1p(age_days), F.lit(0.0)).cast("float"))
            .drop("signup_date"))


def sequences(tokens: DataFrame, max_len: int) -> DataFrame:
    """``creator_id``, ``seq`` (array<float> of ``max_len * len(FEATURES)``), ``seq_len``.

    Keeps each creator's newest ``max_len`` tokens, oldest first; the gap to the previous token is
    computed before truncation, so the first kept token still knows how long the pause before it was.
    Ties on ``ts`` are ordered by kind then by the features' hash -- deterministic across runs.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    n_f = len(FEATURES)
    order = [F.col("ts"), F.col("kind"), F.xxhash64(*FEATURES)]
    w = Window.partitionBy("creator_id").orderBy(*order)
    hour = (F.hour("ts") + F.minute("ts") / 60.0) * (2 * math.pi / 24)
    t = (tokens
         .withColumn("log_gap_hours", F.coalesce(F.log1p((F.col("ts").cast("long") - F.lag(F.col("ts").cast("long"))
                                                          .over(w)) / 3600.0), F.lit(0.0)).cast("float"))
         .withColumn("hour_sin", F.sin(hour).cast("float")).withColumn("hour_cos", F.cos(hour).cast("float"))
         .withColumn("newest", F.row_number().over(Window.partitionBy("creator_id").orderBy(*[c.desc() for c in order])))
         .where(F.col("newest") <= max_len))
    packed = t.groupBy("creator_id").agg(
        F.array_sort(F.collect_list(F.struct((-F.col("newest")).alias("k"), F.array(*FEATURES).alias("f"))))
        .alias("toks"))
    flat = F.flatten(F.transform("toks", lambda s: s["f"]))
    return packed.select(
        "creator_id",
        F.concat(flat, F.array_repeat(F.lit(0.0).cast("float"), F.lit(max_len * n_f) - F.size(flat))).alias("seq"),
        F.size("toks").cast("int").alias("seq_len"))


def labels(moderation: DataFrame, run_date: dt.date) -> DataFrame:
    """``creator_id``, ``labels`` (array<float> in :data:`LABELS` order) of creators with a standing decision.

    Only decisions up to ``run_date`` that were not overturned count; creators without one are
    absent (the caller fills zeros: unlabelled).
    """
    standing = moderation.where(~F.col("overturned") & (F.to_date("decided_at") <= F.lit(run_date)))
    per = standing.groupBy("creator_id").agg(
        *[F.max(F.col("reason").isin(*REASONS_OF_LABEL[name]).cast("float")).alias(name) for name in LABELS])
    return per.select("creator_id", F.array(*LABELS).alias("labels"))


def holdout(creator_id: Column) -> Column:
    """True for the held-out creators: a stable hash split, so a creator never moves between train
    and hold-out from one run to the next (re-training would otherwise evaluate on its training data)."""
    return F.pmod(F.xxhash64(F.lit("holdout-v1"), creator_id), F.lit(HOLDOUT_BUCKETS)) == 0


def training_rows(creators: DataFrame, seqs: DataFrame, labelled: DataFrame, max_len: int) -> DataFrame:
    """One row per creator of the snapshot: ``creator_id``, ``market``, ``seq``, ``seq_len``,
    ``labels``, ``holdout``. Creators without any activity get one all-zero token (``seq_len`` 1):
    the model must still score them, and an empty sequence has no defined encoding."""
    zeros = F.array_repeat(F.lit(0.0).cast("float"), max_len * len(FEATURES))
    return (creators.select("creator_id", "market")
            .join(seqs, "creator_id", "left").join(labelled, "creator_id", "left")
            .select("creator_id", "market",
                    F.coalesce("seq", zeros).alias("seq"),
                    F.coalesce("seq_len", F.lit(1)).cast("int").alias("seq_len"),
                    F.coalesce("labels", F.array(*[F.lit(0.0).cast("float")] * len(LABELS))).alias("labels"),
                    holdout(F.col("creator_id")).alias("holdout")))
