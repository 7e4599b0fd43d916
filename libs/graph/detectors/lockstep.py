"""Lockstep detector: fake-engagement rings as users who act on the same videos at the same time.

A ring sells engagement: when a customer publishes, the operator dispatches every member account,
and they all like/comment/share the new video within minutes of each other -- then do it again on
the next video, and on the videos of the ring's other customers. Timing *across several
creators* is what an honest audience cannot fake by accident (CopyCatch, Beutel et al. WWW 2013;
SynchroTrap, Cao et al. CCS 2014):

* a **viral burst** puts many users on one video in a short time, but a different crowd each
  time: no *pair* of users repeats the coincidence on many videos;
* a big creator's **loyal fans** are the same users on many videos, but of *one* creator and
  spread over hours: they rarely meet inside one window, and never across several creators;
* a ring pair meets inside the window on many videos of several creators.

Algorithm (every step a join or an aggregate; no cross join, no collect of data):

1. **First touch** per (user, video): the earliest event of any kind (a member's first action
   is what the operator's dispatch times; later actions only repeat it). Events without a video
   (profile follows, shelf purchases) carry no publication clock and are ignored.
2. **Time buckets** of ``window_s``: two touches at most ``window_s`` apart lie in the same or
   in adjacent buckets, so an equi-join on ``(video, bucket)`` against the right side duplicated
   into its own and the previous bucket finds every candidate pair exactly once (see
   :func:`_lockstep_pairs`); an exact ``|t_a - t_b| <= window_s`` filter follows.
3. **Crowded buckets** (more than ``max_bucket_users`` users on one video in one bucket: a viral
   moment) are left out of the join -- otherwise one viral video would produce ~n^2 / 2 pairs on
   its own. A ring is at most a few dozen accounts, so a cap well above the largest plausible
   ring loses no ring video unless the ring hides inside a viral crowd; :func:`crowded_buckets`
   lists the groups that were left out, for monitoring.
4. **Pair strength**: distinct videos and distinct creators each user pair shared in lockstep;
   **strong pairs** need ``min_shared_videos`` videos of at least ``min_shared_creators``
   creators.
5. **Rings**: connected components of the strong-pair graph
   (:func:`libs.graph.components.connected_components`) with at least ``min_ring_size`` users.
6. **Customers**: creators on whose videos at least ``min_customer_share`` of a ring's members
   were in lockstep with a ring partner.

Scores (detector scale, higher = worse): a member's score is the number of distinct videos on
which it was synchronised with at least one strong ring partner; a customer's score is the share
of ring members synchronised on its videos; the ring's score is its number of distinct lockstep
videos.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampNTZType, TimestampType

from libs.graph.components import connected_components
from libs.graph.materialize import RoundStore
from schemas.syndicates import DETECTOR_COLUMNS

PREFIX = "lockstep:"
ROLE_MEMBER = "member"
ROLE_CUSTOMER = "customer"
# Pairs are counted per *video*, so a ring pair needs this many videos over ``min_shared_creators``
# creators: a camouflaged ring (members skip ~30% of videos) serving 3 customers still shares
# ~6 videos per pair in a week, while chance meetings of organic users stay at 1 (see the eval
# script for the measured trade-off).
DEFAULT_MIN_SHARED_VIDEOS = 4
# Larger than any plausible ring (the simulator's rings have at most 40 members) plus the organic
# audience a small customer draws in 15 minutes; a (video, bucket) above it is a viral moment.
DEFAULT_MAX_BUCKET_USERS = 200

_RESULT_DDL = ("syndicate_id string, entity_type string, entity_id string, role string, score double, "
               "syndicate_size long, syndicate_score double, evidence string")
_REQUIRED = {"user_id": "string", "creator_id": "string", "video_id": "string", "ts": "timestamp"}


def _check_engagements(engagements: DataFrame) -> None:
    """Clear errors for a frame that is not the engagements contract (instead of wrong rings)."""
    types = {f.name: f.dataType for f in engagements.schema.fields}
    missing = sorted(set(_REQUIRED) - set(types))
    if missing:
        raise ValueError(f"engagements lack columns {missing}; got {sorted(types)}")
    for name, kind in _REQUIRED.items():
        dtype = types[name]
        ok = isinstance(dtype, (TimestampType, TimestampNTZType)) if kind == "timestamp" else dtype.simpleString() == kind
        if not ok:
            raise ValueError(f"engagements.{name} must be {kind}, got {dtype.simpleString()}")


def _check_params(window_s: int, max_bucket_users: int) -> None:
    if not isinstance(window_s, int) or isinstance(window_s, bool) or window_s <= 0:
        raise ValueError(f"window_s must be a positive whole number of seconds, got {window_s!r}")
    if not isinstance(max_bucket_users, int) or isinstance(max_bucket_users, bool) or max_bucket_users < 2:
        raise ValueError(f"max_bucket_users must be an int >= 2 (a pair needs two users), got {max_bucket_users!r}")


def _window_text(window_s: int) -> str:
    return f"{window_s // 60} min" if window_s % 60 == 0 else f"{window_s} s"


def _touches(engagements: DataFrame, window_s: int) -> DataFrame:
    """``user_id, video_id, creator_id, t`` (first touch, microseconds), ``bucket``, ``bucket_users``."""
    window_us = window_s * 1_000_000
    first = (
        engagements.where(F.col("video_id").isNotNull() & F.col("user_id").isNotNull()
                          & F.col("creator_id").isNotNull() & F.col("ts").isNotNull())
        .groupBy("user_id", "video_id", "creator_id")
        .agg(F.min(F.unix_micros(F.col("ts").cast("timestamp"))).alias("t"))
        .withColumn("bucket", F.floor(F.col("t") / F.lit(window_us)).cast("long"))
    )
    sizes = first.groupBy("video_id", "bucket").agg(F.count(F.lit(1)).alias("bucket_users"))
    return first.join(sizes, ["video_id", "bucket"])


def crowded_buckets(engagements: DataFrame, window_s: int = 900,
                    max_bucket_users: int = DEFAULT_MAX_BUCKET_USERS) -> DataFrame:
    """The (video, time bucket) groups :func:`lockstep_rings` leaves out as too crowded.

    Columns ``video_id, creator_id, bucket_start`` (timestamp), ``users`` (distinct users whose
    first touch of the video fell in the bucket). Viral bursts are expected here; a ring video
    here was not compared, so a sudden rise of this list is worth a look.
    """
    _check_engagements(engagements)
    _check_params(window_s, max_bucket_users)
    return (
        _touches(engagements, window_s).where(F.col("bucket_users") > max_bucket_users)
        .groupBy("video_id", "creator_id", "bucket")
        .agg(F.count(F.lit(1)).alias("users"))
        .select("video_id", "creator_id",
                F.timestamp_micros(F.col("bucket") * F.lit(window_s * 1_000_000)).alias("bucket_start"), "users")
    )


def _lockstep_pairs(touches: DataFrame, window_s: int) -> DataFrame:
    """``a < b, video_id, creator_id``: users whose first touches of the video are <= window_s apart.

    Left rows keep their bucket ``b``; right rows are offered under their own bucket (offset 0)
    and the previous one (offset 1), so a left row meets its own and the *next* bucket. A pair in
    one bucket therefore meets twice (both orientations; ``a < b`` keeps one) and a pair across
    adjacent buckets once (earlier bucket on the left) -- one row per (video, pair), no distinct.
    """
    left = touches.select("video_id", "bucket", F.col("user_id").alias("u"), F.col("t").alias("tu"), "creator_id")
    right = touches.select(
        "video_id", F.col("user_id").alias("v"), F.col("t").alias("tv"),
        F.explode(F.array(F.lit(0), F.lit(1))).alias("offset"), "bucket",
    ).select("video_id", (F.col("bucket") - F.col("offset")).alias("bucket"), "v", "tv", "offset")
    same_bucket_once = (F.col("offset") == 1) | (F.col("u") < F.col("v"))
    return (
        left.join(right, ["video_id", "bucket"])   # equi-join on (video, bucket): never a cross join
        .where(same_bucket_once & (F.col("u") != F.col("v"))
               & (F.abs(F.col("tu") - F.col("tv")) <= F.lit(window_s * 1_000_000)))
        .select(F.least("u", "v").alias("a"), F.greatest("u", "v").alias("b"), "video_id", "creator_id")
    )


def lockstep_rings(engagements: DataFrame, window_s: int = 900, min_shared_creators: int = 3,
                   min_shared_videos: int = DEFAULT_MIN_SHARED_VIDEOS, min_ring_size: int = 3,
                   max_bucket_users: int = DEFAULT_MAX_BUCKET_USERS,
                   min_customer_share: float = 0.5) -> DataFrame:
    """Fake-engagement rings (members and customers) as rows of ``DETECTOR_COLUMNS``.

    ``engagements``: ``user_id, creator_id, video_id, kind, ts`` (one row per user x video x
    kind, ``ts`` its first time; rows without a video are ignored).

    * ``window_s`` (900): two first touches of one video at most this far apart are "in lockstep";
      a ring's members start within ~15 min of one another (dispatch jitter plus action spread).
    * ``min_shared_creators`` (3) / ``min_shared_videos`` (4): a strong pair was in lockstep on
      at least this many distinct creators' videos / distinct videos. Several creators is what
      separates a ring from two fans of one creator.
    * ``min_ring_size`` (3): smaller components of strong pairs are not reported (a pair of
      friends who watch the same channels live is not a ring).
    * ``max_bucket_users`` (200): (video, bucket) groups above it are not compared (see
      :func:`crowded_buckets`).
    * ``min_customer_share`` (0.5): a creator is a ring customer when at least this share of the
      ring's members were in lockstep with a ring partner on its videos (camouflage videos of
      popular creators draw one or two members at organic times, far below half the ring).

    ``syndicate_id`` is ``lockstep:<smallest member user id>``; ``syndicate_size`` counts members
    and customers. Materialises its intermediates (needs the session's checkpoint dir); the
    result is read back from Parquet that outlives the call.
    """
    _check_engagements(engagements)
    _check_params(window_s, max_bucket_users)
    for name, value, low in (("min_shared_creators", min_shared_creators, 1),
                             ("min_shared_videos", min_shared_videos, 1), ("min_ring_size", min_ring_size, 2)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if min_shared_videos < min_shared_creators:
        raise ValueError(f"min_shared_videos ({min_shared_videos}) < min_shared_creators ({min_shared_creators}) "
                         "cannot bind: every shared creator contributes at least one shared video")
    if not 0.0 < float(min_customer_share) <= 1.0:
        raise ValueError(f"min_customer_share must be in (0, 1], got {min_customer_share!r}")

    spark: SparkSession = engagements.sparkSession
    with RoundStore(spark, "lockstep") as store:
        touches = store.put(_touches(engagements, window_s), "touches")
        calm = touches.where(F.col("bucket_users") <= max_bucket_users)
        pair_videos = store.put(_lockstep_pairs(calm, window_s), "pair-videos")
        # One row per (pair, video): counting per (pair, creator) first gives both distinct counts
        # with plain sums (no countDistinct, which Spark expands into extra shuffled rows).
        strong = store.put(
            pair_videos.groupBy("a", "b", "creator_id").agg(F.count(F.lit(1)).alias("n"))
            .groupBy("a", "b").agg(F.sum("n").alias("videos"), F.count(F.lit(1)).alias("creators"))
            .where((F.col("videos") >= min_shared_videos) & (F.col("creators") >= min_shared_creators))
            .select("a", "b"),
            "strong-pairs",
        )
        if strong.isEmpty():   # nothing in lockstep: skip the component rounds
            return RoundStore(spark, "lockstep-result", keep=True).put(
                spark.createDataFrame([], _RESULT_DDL), "syndicates")
        users = strong.select(F.col("a").alias("id")).unionByName(strong.select(F.col("b").alias("id"))).distinct()
        components = connected_components(spark, users, strong.select(F.col("a").alias("src"), F.col("b").alias("dst")))
        sizes = components.groupBy("component").agg(F.count(F.lit(1)).alias("members"))
        rings = store.put(
            components.join(sizes.where(F.col("members") >= min_ring_size), "component")
            .select(F.col("id").alias("user_id"), F.col("component").alias("ring"), "members"),
            "rings",
        )
        # Lockstep (pair, video) rows of strong pairs, seen from each endpoint: both ends of a
        # strong pair lie in one component by construction.
        strong_videos = pair_videos.join(strong, ["a", "b"], "left_semi")
        ends = strong_videos.select(F.col("a").alias("user_id"), F.col("b").alias("partner"), "video_id", "creator_id") \
            .unionByName(strong_videos.select(F.col("b").alias("user_id"), F.col("a").alias("partner"),
                                              "video_id", "creator_id"))
        acts = store.put(ends.join(rings, "user_id"), "ring-acts")

        # Distinct counts as two-level aggregates: (member, video) rows first, then sums.
        member_videos = store.put(acts.groupBy("ring", "members", "user_id", "creator_id", "video_id").count()
                                  .drop("count"), "member-videos")
        partners = acts.groupBy("user_id", "partner").count().groupBy("user_id").agg(
            F.count(F.lit(1)).alias("partners"))
        member_stats = (
            member_videos.groupBy("ring", "members", "user_id", "creator_id").agg(F.count(F.lit(1)).alias("n"))
            .groupBy("ring", "members", "user_id").agg(F.sum("n").alias("videos"), F.count(F.lit(1)).alias("creators"))
            .join(partners, "user_id")
        )
        ring_stats = member_videos.groupBy("ring", "video_id").count().groupBy("ring").agg(
            F.count(F.lit(1)).alias("ring_videos"))
        customers = (
            member_videos.groupBy("ring", "members", "creator_id")
            # member_videos is one row per (member, video) and small: plain countDistinct is fine.
            .agg(F.countDistinct("user_id").alias("engaged"), F.countDistinct("video_id").alias("videos"))
            .where(F.col("engaged") >= F.col("members") * F.lit(float(min_customer_share)))
        )
        n_customers = customers.groupBy("ring").agg(F.count(F.lit(1)).alias("n_customers"))
        ring_info = ring_stats.join(n_customers, "ring", "left").select(
            "ring", "ring_videos", F.coalesce("n_customers", F.lit(0)).alias("n_customers"))

        within = _window_text(window_s)
        member_rows = member_stats.join(ring_info, "ring").select(
            F.concat(F.lit(PREFIX), F.col("ring")).alias("syndicate_id"),
            F.lit("user").alias("entity_type"), F.col("user_id").alias("entity_id"),
            F.lit(ROLE_MEMBER).alias("role"), F.col("videos").cast("double").alias("score"),
            (F.col("members") + F.col("n_customers")).cast("long").alias("syndicate_size"),
            F.col("ring_videos").cast("double").alias("syndicate_score"),
            F.format_string(f"synchronised with %d ring members on %d videos of %d creators within {within}",
                            F.col("partners"), F.col("videos"), F.col("creators")).alias("evidence"),
        )
        customer_rows = customers.join(ring_info, "ring").select(
            F.concat(F.lit(PREFIX), F.col("ring")).alias("syndicate_id"),
            F.lit("creator").alias("entity_type"), F.col("creator_id").alias("entity_id"),
            F.lit(ROLE_CUSTOMER).alias("role"), (F.col("engaged") / F.col("members")).alias("score"),
            (F.col("members") + F.col("n_customers")).cast("long").alias("syndicate_size"),
            F.col("ring_videos").cast("double").alias("syndicate_score"),
            F.format_string(f"%d of %d ring members engaged %d of its videos in lockstep within {within}",
                            F.col("engaged"), F.col("members"), F.col("videos")).alias("evidence"),
        )
        # The working folders are deleted on exit; the answer lives in a store the caller owns.
        result = RoundStore(spark, "lockstep-result", keep=True).put(
            member_rows.unionByName(customer_rows).select(*DETECTOR_COLUMNS), "syndicates")
    return result
