"""Users and engagement events (views, likes, comments, shares, follows, purchases) with planted abuse.

Why: fake-engagement rings, sybil clusters, bought followers and scenario-migrated shelf sellers
are only visible in *who engages with whom, when*. This module plants them beside honest traffic
(including the honest look-alike of a big creator's viral burst) and tags every event with the
hidden ``truth_kind`` / ``truth_ring_id`` that generated it.

Users (:func:`users`)
    * **Organic users** ``uidx = 0 .. n_organic_users - 1``, id ``us_ + hex64(hash(seed, "user",
      uidx))``. Their market is ``markets[uidx mod M]`` -- uniform over markets, and *invertible*:
      an event can draw "a user of market m" as ``m + M * j`` without a join. The last
      ``FRESH_USER_SHARE`` of the range signed up in the ``FRESH_SIGNUP_DAYS`` before the window;
      bought followers come from that pool. The ids are hashed, so the layout is not observable.
    * **Ring members**: ``n_rings`` rings of ``ring_size_min..ring_size_max`` accounts, registered
      in a batch (one ring-level sign-up date, a per-member spread that grows with camouflage),
      mostly in the ring's market.
    * **Creator personas**: the user account of every creator (``acc.user_id``).

    Every user signed up before the window, except sybil personas whose creator signed up inside
    it; their events are only generated at or after the sign-up.

Events (:func:`engagement_events`), one row each, all hash-derived from the row's own key:

1. **Organic** traffic per video: ``n ~ floor(lambda + U)`` with ``lambda = events_per_video *
   popularity(creator) * factor(video)`` (both log-normal, mean 1; sybil creators get
   ``SYBIL_POPULARITY``). ``VIRAL_P`` of honest creators' videos get ``VIRAL_MIN..VIRAL_MAX`` times
   the events, spread over hours (``truth_kind = 'burst'``); honest lambdas are divided by the
   viral mean so an honest video still averages ``events_per_video``. One ``explode`` of
   ``sequence(0, n - 1)`` per video, ``n`` capped at ``MAX_EVENTS_PER_VIDEO`` (bounds the explode:
   a per-video row count is what one task must hold; the cap only touches the far tail, see the
   constant). Users: ``SAME_MARKET_P`` from the creator's market, else any market.
2. **Rings**: every video of a ring customer is engaged by each ring member with probability
   ``0.9 - 0.4 * camouflage`` (like; comment, share and, when camouflaged, view at fixed rates),
   plus one follow per (member, customer) on the customer's first video of the window -- all
   inside a lockstep window: a ring-level delay after publication, a per-member jitter that
   grows with camouflage, and a short per-action offset. Customer videos are joined to the small
   ring-membership frame on ``ring_id``. Ring members also engage organically-looking with
   popular honest videos (``ring_camouflage``), volume growing with camouflage.
3. **Sybil clusters**: personas of one cluster engage each other's videos densely
   (``SYBIL_PAIR_P`` per persona-video) and follow each other once; the only attack edges are a
   few engagements of popular honest videos per persona.
4. **Bought followers**: a traded account gets a burst of follows from a consecutive block of the
   fresh-user pool (a bot batch) within ``BOUGHT_BURST_S`` of a hashed onset after ``trade_date``;
   its size grows with popularity. These follows come from the profile page (``scenario
   'profile'``, no video).
5. **Purchases**: content purchases name the video's ``product_id`` (a purchase draw on a video
   without a purchasable listing becomes a view); shelf purchases are ``SHELF_SLOTS`` hash
   Bernoullis per listing-day (scenario ``'shelf'``, no video); scenario-migrated farm accounts
   sell ``SHELF_MIGRATED_FACTOR`` times more on the shelf. ``gmv = price * quantity`` in the
   listing's currency; a listing must be listed before the purchase, and a removed listing (a
   traded account's seller goods) only sells before the trade.

Banned creators get no events and their personas do not engage. Events falling after the end of
``run_date`` are dropped (they belong to a later feed). Popular-video picks (camouflage, attack
edges) use a bucket join: popular videos hash into ``n_popular_buckets(cfg)`` buckets (from the
config, never from data), a pick slot draws a bucket and keeps each video there with probability
``1 / POPULAR_PER_BUCKET`` -- about one video per slot, no aggregation, equi-join only.

Popular videos are those of honest creators with popularity >= ``POPULAR_MIN_POP`` that are not
ring customers (a member's camouflage must not duplicate its ring engagement).

Ids: ``event_id = "ev_" + hex64(hash(seed, <branch salt>, <generating key>))``; branch salts
differ, so ids of different branches are independent.

Known simplifications: "once per creator" follows (rings, sybils) are once per *window* (the
first video of the window), so overlapping windows each carry one; an organic user may, rarely,
follow or like the same video twice (draws are independent per event), as may a ring member whose
two camouflage slots pick the same video.
"""
from __future__ import annotations

import datetime as dt
import math

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from libs.sim import rand
from libs.sim.config import SimConfig
from libs.sim.creators import (MIGRATION_SCENARIO, ROLE_HONEST, ROLE_SYBIL, ROLE_TRADED, STATUS_ACTIVE, ring_id,
                               window_start)

# --- vocabulary -------------------------------------------------------------------------------
VIEW, LIKE, COMMENT, SHARE, FOLLOW, PURCHASE = "view", "like", "comment", "share", "follow", "purchase"
EVENT_TYPES = (VIEW, LIKE, COMMENT, SHARE, FOLLOW, PURCHASE)
SCENARIO_CONTENT = "content"   # on a video or live stream
SCENARIO_SHELF = "shelf"       # product-page purchase, no video
SCENARIO_PROFILE = "profile"   # follow from the profile page, no video (bought followers)
SCENARIOS = (SCENARIO_CONTENT, SCENARIO_SHELF, SCENARIO_PROFILE)
KIND_ORGANIC = "organic"
KIND_BURST = "burst"
KIND_RING = "ring"
KIND_RING_CAMOUFLAGE = "ring_camouflage"
KIND_SYBIL = "sybil"
KIND_BOUGHT = "bought_followers"
TRUTH_KINDS = (KIND_ORGANIC, KIND_RING, KIND_RING_CAMOUFLAGE, KIND_SYBIL, KIND_BURST, KIND_BOUGHT)

# --- users ------------------------------------------------------------------------------------
FRESH_USER_SHARE = 0.1        # tail of organic ids that signed up just before the window: the bot pool
FRESH_SIGNUP_DAYS = 30        # "fresh": registered at most this many days before the window
USER_SIGNUP_MAX_DAYS = 1500   # other organic users: up to ~4 years back, like honest creators
RING_SIGNUP_BACK_MIN = 20     # a ring's batch registration: 20..240 days before the window
RING_SIGNUP_BACK_MAX = 240    # (fresh-ish: older than the sybils, younger than most users)
RING_SIGNUP_SPREAD_DAYS = 60  # per-member spread of the batch at camouflage 1 (1 + 60c days)
RING_FOREIGN_P = 0.05         # ring members outside the ring's market at camouflage 0 ...
RING_FOREIGN_CAMO_P = 0.35    # ... plus this * camouflage (camouflaged rings recruit abroad)

# --- organic traffic --------------------------------------------------------------------------
POPULARITY_SIGMA = 1.0        # creator popularity log-normal sd: a few creators get most traffic
VIDEO_SIGMA = 0.5             # per-video log-normal factor: hits and flops within one creator
SYBIL_POPULARITY = 0.1        # fresh sybil accounts have almost no real audience
POPULAR_MIN_POP = 2.0         # "popular" honest creator: popularity >= 2x the mean (~12% of them)
VIRAL_P = 0.005               # share of honest creators' videos that go viral (big-creator burst)
VIRAL_MIN, VIRAL_MAX = 20, 50  # a viral video's event multiplier
BURST_ONSET_MAX_S = 6 * 3600  # a viral video takes off up to 6 h after publication ...
BURST_DECAY_MEAN_S = 2 * 3600  # ... and its events spread over hours (exponential, mean 2 h)
ORGANIC_DECAY_MEAN_S = 6 * 3600  # organic delay after publication: exponential, mean 6 h
# Explode bound per video: lambda reaches it only for a viral video of a creator ~5x the mean
# popularity (or a ~100x non-viral outlier); the cap trims that far tail, it keeps one video's
# rows a task-sized array.
MAX_EVENTS_PER_VIDEO = 2000
SAME_MARKET_P = 0.8           # organic engagers come from the creator's own market
# Type mix of organic events (view, like, comment, share, follow, purchase): views dominate,
# live streams sell more. A purchase draw on a video without a purchasable product is a view.
AUDIENCE_SIGMA = 0.6          # per-creator spread of the audience's interaction (non-view) share
TYPE_WEIGHTS_VIDEO = (0.815, 0.10, 0.03, 0.02, 0.01, 0.025)
TYPE_WEIGHTS_LIVE = (0.80, 0.10, 0.03, 0.02, 0.01, 0.04)
QUANTITIES = (1, 2, 3)
QUANTITY_WEIGHTS = (0.75, 0.18, 0.07)  # most orders are a single item

# --- fake-engagement rings --------------------------------------------------------------------
RING_ENGAGE_P = 0.9           # a member engages a customer video with 0.9 - 0.4 * camouflage ...
RING_ENGAGE_CAMO = 0.4        # ... (camouflaged rings skip videos to look less perfect)
RING_COMMENT_P = 0.4          # of engaging members: comment
RING_SHARE_P = 0.25           # of engaging members: share (likes are always given)
RING_FOLLOW_P = 0.95          # each member follows each customer once (on its first window video)
RING_DELAY_MIN_S = 60         # the ring is dispatched 1..30 min after publication
RING_DELAY_MAX_S = 1800
RING_JITTER_BASE_S = 90       # member start jitter: 0..(90 + 1500 * camouflage) s after dispatch
RING_JITTER_CAMO_S = 1500
RING_ACTION_SPREAD_S = 120    # each action of a member lands within 2 min of the member's start
RING_CAMO_PER_DAY = 8.0       # organic-looking engagements per member per day at camouflage 1

# --- sybil clusters ---------------------------------------------------------------------------
SYBIL_PAIR_P = 0.6            # a persona engages a cluster sibling's video with this probability
SYBIL_VIEW_P = 0.5            # of engaging personas: also a view
SYBIL_COMMENT_P = 0.4         # of engaging personas: also a comment
SYBIL_FOLLOW_P = 0.9          # each persona follows each sibling once (on its first window video)
SYBIL_DELAY_MEAN_S = 3 * 3600  # one operator cycling personas: hours, not lockstep minutes
SYBIL_ACTION_SPREAD_S = 300   # a persona's actions on one video within 5 min
SYBIL_ATTACK_PER_DAY = 0.25   # attack edges: engagements of popular honest videos per persona-day

# --- bought followers -------------------------------------------------------------------------
BOUGHT_FOLLOWERS_BASE = 80    # followers bought for an account of mean popularity ...
BOUGHT_FOLLOWERS_MIN = 20     # ... clamped to 20..600 (bigger accounts buy bigger packages)
BOUGHT_FOLLOWERS_MAX = 600
BOUGHT_ONSET_MAX_S = 12 * 3600  # the buyer places the order within 12 h of the trade
BOUGHT_BURST_S = 24 * 3600    # and the package is delivered within a day

# --- shelf ------------------------------------------------------------------------------------
SHELF_PER_DAY = 0.03          # shelf purchases per active listing-day for a mean-popularity creator
SHELF_MIGRATED_FACTOR = 20.0  # scenario-migrated farm accounts sell mainly on the shelf
SHELF_SLOTS = 4               # Bernoulli slots per listing-day (at most 4 shelf orders a day)

POPULAR_PER_BUCKET = 4        # popular videos per pick bucket (a pick keeps each with 1/4)

_EPOCH = dt.date(1970, 1, 1)


# --- small helpers ----------------------------------------------------------------------------

def _epoch_day(d: dt.date) -> int:
    return (d - _EPOCH).days


def _day_sec(date_col: Column) -> Column:
    """Seconds of a date's midnight UTC, independent of the session time zone."""
    return F.datediff(date_col, F.lit(_EPOCH)).cast("long") * F.lit(86400)


def _ts_sec(ts_col: Column) -> Column:
    """Whole seconds of a timestamp, rounded up (an event never precedes the instant it follows)."""
    return F.ceil(F.unix_micros(ts_col) / F.lit(1_000_000)).cast("long")


def _exp_delay(mean_s: float, seed: int, salt: str, *keys) -> Column:
    """Exponential delay in whole seconds (1 - U lies in (0, 1]: the log is finite)."""
    return F.floor(-F.log(F.lit(1.0) - rand.uniform(seed, salt, *keys)) * F.lit(float(mean_s))).cast("long")


def _str(x) -> Column:
    return F.lit(x).cast("string")


def _null(type_: str) -> Column:
    return F.lit(None).cast(type_)


def _event_id(seed: int, salt: str, *keys) -> Column:
    return F.concat(F.lit("ev_"), rand.hex64(rand.hash64(seed, salt, *keys)))


def n_fresh_users(cfg: SimConfig) -> int:
    """Size of the fresh-user pool (the tail of the organic id range)."""
    return max(1, int(round(cfg.n_organic_users * FRESH_USER_SHARE)))


def organic_user_id(seed: int, uidx: Column) -> Column:
    return F.concat(F.lit("us_"), rand.hex64(rand.hash64(seed, "user", uidx.cast("long"))))


def _sql_list(values) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


def organic_user_market(cfg: SimConfig, uidx: str) -> Column:
    """``markets[uidx mod M]`` (``uidx``: a column name). Static lookups are SQL strings: one
    expression built in the JVM instead of one py4j round trip per node."""
    return F.expr(f"element_at(array({_sql_list(cfg.markets)}), CAST(pmod(CAST(`{uidx}` AS BIGINT), "
                  f"{len(cfg.markets)}) + 1 AS INT))")


def _organic_uidx(cfg: SimConfig, market: str, salt: str, *keys) -> Column:
    """An organic user: with ``SAME_MARKET_P`` one of ``market`` (ids ``m, m + M, ...``: there are
    ``floor((N - 1 - m) / M) + 1`` of them), else any. ``market``: a column name."""
    s, n, m = cfg.seed, cfg.n_organic_users, len(cfg.markets)
    mi = F.expr(f"array_position(array({_sql_list(cfg.markets)}), `{market}`) - 1")   # -1: unknown market
    cnt = F.floor((F.lit(n - 1) - mi) / F.lit(m)) + F.lit(1)
    local = (mi >= F.lit(0)) & (mi < F.lit(n)) & rand.bernoulli(SAME_MARKET_P, s, salt + "_local", *keys)
    return F.when(local, mi + F.lit(m) * rand.randint(s, salt + "_lu", 0, cnt - F.lit(1), *keys)
                  ).otherwise(rand.randint(s, salt + "_gu", 0, n - 1, *keys)).cast("long")


def popularity(cfg: SimConfig, idx: Column, role: Column) -> Column:
    """Creator popularity: log-normal with mean 1 (``exp(N(0, s^2) - s^2 / 2)``); sybils x0.1."""
    sig = POPULARITY_SIGMA
    base = F.exp(rand.normal(cfg.seed, "popularity", idx, sd=sig) - F.lit(sig * sig / 2))
    return F.when(role == ROLE_SYBIL, base * F.lit(SYBIL_POPULARITY)).otherwise(base)


def n_popular_buckets(cfg: SimConfig) -> int:
    """Pick buckets over popular honest videos, from the config only (deterministic).

    Expected popular videos = creators * honest share * P(popularity >= POPULAR_MIN_POP) * days *
    videos_per_day; P(exp(sZ - s^2/2) >= t) = P(Z >= (ln t + s^2/2) / s).
    """
    honest = max(0.0, 1.0 - cfg.low_effort - cfg.pirate - cfg.licensed_repost - cfg.account_trading
                 - cfg.matrix_farm - cfg.sybil - cfg.family_shared_device)
    sig = POPULARITY_SIGMA
    p_pop = 0.5 * math.erfc((math.log(POPULAR_MIN_POP) + sig * sig / 2) / sig / math.sqrt(2))
    expected = cfg.n_creators * honest * p_pop * cfg.days * cfg.videos_per_day
    return max(1, int(round(expected / POPULAR_PER_BUCKET)))


def _ring_members(spark: SparkSession, cfg: SimConfig, start: dt.date) -> DataFrame:
    """ring_id, user_id, market, signup_date of every ring member (small: n_rings * <= ring_size_max)."""
    s, c = cfg.seed, cfg.camouflage
    ring, member = F.col("ring"), F.col("member")
    size = rand.randint(s, "ring_size", cfg.ring_size_min, cfg.ring_size_max, ring)
    foreign = rand.bernoulli(RING_FOREIGN_P + RING_FOREIGN_CAMO_P * c, s, "ring_foreign", ring, member)
    market = F.when(foreign, rand.choice(cfg.markets, rand.uniform(s, "ring_member_market", ring, member))
                    ).otherwise(rand.choice(cfg.markets, rand.uniform(s, "ring_market", ring)))
    spread = 1 + int(round(RING_SIGNUP_SPREAD_DAYS * c))
    back = (rand.randint(s, "ring_signup", RING_SIGNUP_BACK_MIN, RING_SIGNUP_BACK_MAX, ring)
            + rand.randint(s, "ring_member_signup", 0, spread, ring, member))
    return (
        spark.range(cfg.n_rings).withColumnRenamed("id", "ring")
        .withColumn("member", F.explode(F.sequence(F.lit(0).cast("long"), size - F.lit(1))))
        .select(ring_id(ring).alias("ring_id"),
                F.concat(F.lit("us_"), rand.hex64(rand.hash64(s, "ring_user", ring, member))).alias("user_id"),
                market.alias("market"),
                F.date_sub(F.lit(start), back.cast("int")).alias("signup_date"))
    )


# --- users ------------------------------------------------------------------------------------

def users(acc: DataFrame, cfg: SimConfig, run_date: dt.date) -> DataFrame:
    """Users snapshot as of ``run_date``: organic users, ring members and creator personas.

    Columns: ``user_id, market, signup_date, creator_id`` (null unless the account is a creator's),
    ``dt``, ``truth_ring_id`` (ring members), ``truth_sybil_cluster_id`` (sybil personas).
    """
    spark = acc.sparkSession
    s, n = cfg.seed, cfg.n_organic_users
    start = window_start(cfg, run_date)
    uidx = F.col("id")
    fresh = uidx >= F.lit(n - n_fresh_users(cfg))
    back = F.when(fresh, rand.randint(s, "fresh_signup", 1, FRESH_SIGNUP_DAYS, uidx)).otherwise(
        rand.randint(s, "user_signup", 1, USER_SIGNUP_MAX_DAYS, uidx))
    organic = spark.range(n).select(
        organic_user_id(s, uidx).alias("user_id"), organic_user_market(cfg, "id").alias("market"),
        F.date_sub(F.lit(start), back.cast("int")).alias("signup_date"), _null("string").alias("creator_id"),
        _null("string").alias("truth_ring_id"), _null("string").alias("truth_sybil_cluster_id"))
    ring = _ring_members(spark, cfg, start).select(
        "user_id", "market", "signup_date", _null("string").alias("creator_id"),
        F.col("ring_id").alias("truth_ring_id"), _null("string").alias("truth_sybil_cluster_id"))
    personas = acc.select("user_id", "market", "signup_date", "creator_id", _null("string").alias("truth_ring_id"),
                          F.col("sybil_cluster_id").alias("truth_sybil_cluster_id"))
    return organic.unionByName(ring).unionByName(personas).select(
        "user_id", "market", "signup_date", "creator_id", F.lit(run_date.isoformat()).alias("dt"),
        "truth_ring_id", "truth_sybil_cluster_id")


# --- events -----------------------------------------------------------------------------------

def engagement_events(acc: DataFrame, cfg: SimConfig, videos: DataFrame, listings: DataFrame,
                      run_date: dt.date) -> DataFrame:
    """All engagement events in the window ``[run_date - days + 1, run_date]`` (see module doc).

    ``acc``: :func:`libs.sim.creators.accounts`; ``videos``: :func:`libs.sim.videos.videos`
    (needs ``product_id``); ``listings``: :func:`libs.sim.commerce.listings`. Eager: the joined
    video-level frame is checkpointed (needs the session's checkpoint dir; see below).
    """
    spark = acc.sparkSession
    s = cfg.seed
    start = window_start(cfg, run_date)
    end_sec = (_epoch_day(run_date) + 1) * 86400 - 1
    members = _ring_members(spark, cfg, start)
    cr = _creators(acc, cfg)
    active = cr.where(F.col("status") == STATUS_ACTIVE)
    vx = _video_frame(cfg, videos, listings, active)
    nb = n_popular_buckets(cfg)
    # Popular honest videos (not of ring customers: a ring member's camouflage must not double its
    # ring engagement) are the targets of camouflage and sybil attack edges.
    popular = (vx.where((F.col("role") == ROLE_HONEST) & (F.col("pop") >= F.lit(POPULAR_MIN_POP))
                        & F.col("ring_id").isNull())
               .select(F.pmod(rand.hash64(s, "popular_bucket", "video_id"), F.lit(nb)).alias("bucket"),
                       F.col("video_id").alias("t_video_id"), F.col("creator_id").alias("t_creator_id"),
                       F.col("pub_sec").alias("t_pub_sec")))
    parts = [
        _organic(cfg, vx),
        _ring(cfg, vx, members),
        _ring_camouflage(cfg, members, popular, nb),
        _sybil(cfg, vx, active),
        _sybil_attack(cfg, active, popular, nb),
        _bought_followers(cfg, active),
        _shelf(cfg, listings, active, start, run_date),
    ]
    ev = parts[0]
    for p in parts[1:]:
        ev = ev.unionByName(p)
    ts = F.col("ts_sec")
    return ev.where(ts <= F.lit(end_sec)).select(
        "event_id", "event_type", "user_id", "creator_id", "video_id", "product_id", "scenario", "market",
        F.timestamp_seconds(ts).alias("ts"), "quantity", "gmv", "currency",
        F.date_add(F.lit(_EPOCH), F.floor(ts / F.lit(86400)).cast("int")).cast("string").alias("dt"),
        "truth_ring_id", "truth_kind")


def _creators(acc: DataFrame, cfg: SimConfig) -> DataFrame:
    migrated_scenario = F.coalesce((F.col("migration_kind") == MIGRATION_SCENARIO) & ~F.col("old_account"),
                                   F.lit(False))
    return acc.select(
        "creator_id", "idx", "user_id", "market", "role", "status", "ring_id", "sybil_cluster_id",
        _day_sec(F.col("signup_date")).alias("signup_sec"), _day_sec(F.col("trade_date")).alias("trade_sec"),
        migrated_scenario.alias("migrated_scenario"), popularity(cfg, F.col("idx"), F.col("role")).alias("pop"))


def _video_frame(cfg: SimConfig, videos: DataFrame, listings: DataFrame, active: DataFrame) -> DataFrame:
    """One row per video of an active creator, with creator, listing and organic-count columns.

    Checkpointed: every branch reads it (organic, ring, sybil, the popular pool), so without a
    cut the videos lineage (its own joins and windows) would be recomputed four times; and the
    creator hash trees would be substituted into every branch's projection, growing generated
    methods toward the JVM's 64 KB limit. A reliable checkpoint of one row per video is small next
    to the events; values (not row order) are all that is used downstream.
    """
    s = cfg.seed
    # (product_id, creator_id) is unique in the listings feed (a product id hashes its owner and
    # showcase slot), so the left join adds columns without multiplying videos.
    lst = listings.select("product_id", "creator_id", "price", "currency",
                          _ts_sec(F.col("listed_at")).alias("listed_sec"),
                          (F.col("listing_status") == "active").alias("listing_active"))
    v = (videos.select("video_id", "creator_id", "published_at", "scenario", "product_id")
         .join(active, "creator_id")
         .join(lst, ["product_id", "creator_id"], "left")
         .withColumn("pub_sec", _ts_sec(F.col("published_at"))))
    # The creator's first video of the window (where members follow). An unordered window
    # aggregate over a total order (time, id): independent of partitioning.
    first = F.min(F.struct("pub_sec", "video_id")).over(Window.partitionBy("creator_id"))["video_id"]
    honest = F.col("role") == ROLE_HONEST
    viral = honest & rand.bernoulli(VIRAL_P, s, "viral", "video_id")
    mult = F.when(viral, F.lit(float(VIRAL_MIN))
                  + F.lit(float(VIRAL_MAX - VIRAL_MIN)) * rand.uniform(s, "viral_x", "video_id")).otherwise(F.lit(1.0))
    norm = F.when(honest, F.lit(1.0 + VIRAL_P * ((VIRAL_MIN + VIRAL_MAX) / 2 - 1))).otherwise(F.lit(1.0))
    vf = F.exp(rand.normal(s, "video_pop", "video_id", sd=VIDEO_SIGMA) - F.lit(VIDEO_SIGMA ** 2 / 2))
    lam = F.lit(cfg.events_per_video) * F.col("pop") * vf * mult / norm
    n = F.least(F.floor(lam + rand.uniform(s, "n_events", "video_id")), F.lit(MAX_EVENTS_PER_VIDEO)).cast("int")
    return (v
            .select("video_id", "creator_id", "market", "role", "ring_id", "sybil_cluster_id", "trade_sec",
                    "pop", "pub_sec", (F.col("scenario") == "live").alias("live"), "product_id", "price", "currency",
                    "listed_sec", "listing_active", (F.col("video_id") == first).alias("is_first"),
                    viral.alias("viral"), n.alias("n_org"))
            # Every branch below *explodes* these rows ~events_per_video-fold; spread them so one
            # task holds ~VIDEOS_PER_PARTITION videos (a few hundred thousand events) instead of
            # whatever the upstream partitioning was -- two partitions of 5M events each ran the
            # 100k-creator run out of heap. The count comes from the config, never from the data.
            .repartition(_n_partitions(v.sparkSession, cfg), "video_id")
            .checkpoint(eager=True))


VIDEOS_PER_PARTITION = 20_000   # video rows per task before the event explosion


def _n_partitions(spark: SparkSession, cfg: SimConfig) -> int:
    expected_videos = cfg.n_creators * cfg.days * cfg.videos_per_day * 1.5   # role factors push it above the base
    return max(int(spark.conf.get("spark.sql.shuffle.partitions")), math.ceil(expected_videos / VIDEOS_PER_PARTITION))


def _organic_type(u: Column, live: Column) -> Column:
    """Organic event type: TYPE_WEIGHTS_VIDEO / TYPE_WEIGHTS_LIVE differ only in view vs purchase, so
    one CASE over cumulative thresholds, the first (and thereby the purchase remainder) set by ``live``."""
    wv, wl = TYPE_WEIGHTS_VIDEO, TYPE_WEIGHTS_LIVE
    assert wv[1:5] == wl[1:5] and abs(sum(wv) - 1) < 1e-9 and abs(sum(wl) - 1) < 1e-9
    cum = F.when(live, F.lit(wl[0])).otherwise(F.lit(wv[0]))
    expr = F.when(u < cum, F.lit(VIEW))
    for name, w in zip(EVENT_TYPES[1:5], wv[1:5]):
        cum = cum + F.lit(w)
        expr = expr.when(u < cum, F.lit(name))
    return expr.otherwise(F.lit(PURCHASE))


def _organic(cfg: SimConfig, vx: DataFrame) -> DataFrame:
    s = cfg.seed
    k = ("video_id", "e")
    delay = F.when(F.col("viral"), rand.randint(s, "burst_onset", 0, BURST_ONSET_MAX_S, "video_id")
                   + _exp_delay(BURST_DECAY_MEAN_S, s, "burst_delay", *k)
                   ).otherwise(_exp_delay(ORGANIC_DECAY_MEAN_S, s, "org_delay", *k))
    ts = F.col("ts_sec")
    can_buy = F.coalesce(F.col("price").isNotNull() & (ts >= F.col("listed_sec"))
                         & (F.col("listing_active") | (ts < F.col("trade_sec"))), F.lit(False))
    # Audiences differ: a creator's non-view share is scaled by a log-normal factor (clipped to
    # 0.3..4), so a highly engaged honest audience looks like a ring on the like/view ratio alone.
    # The view probability shrinks to 1 - (1 - w_view) * g and the other types keep their mix.
    g = F.least(F.greatest(F.exp(rand.normal(s, "audience_engagement", "creator_id", sd=AUDIENCE_SIGMA)),
                           F.lit(0.3)), F.lit(4.0))
    w_view = F.when(F.col("live"), F.lit(TYPE_WEIGHTS_LIVE[0])).otherwise(F.lit(TYPE_WEIGHTS_VIDEO[0]))
    u = rand.uniform(s, "org_type", *k)
    view_thr = F.greatest(F.lit(1.0) - (F.lit(1.0) - w_view) * g, F.lit(0.0))
    u_mix = F.when(u < view_thr, F.lit(0.0)).otherwise(
        F.least(w_view + (u - view_thr) / g, F.lit(1.0 - 1e-12)))
    drawn = _organic_type(u_mix, F.col("live"))
    typ = F.when((drawn == PURCHASE) & ~can_buy, F.lit(VIEW)).otherwise(drawn)
    buy = F.col("event_type") == PURCHASE
    qty = rand.choice(QUANTITIES, rand.uniform(s, "org_qty", *k), QUANTITY_WEIGHTS).cast("int")
    return (
        vx.where(F.col("n_org") > 0)
        .withColumn("e", F.explode(F.sequence(F.lit(0), F.col("n_org") - F.lit(1))))
        .withColumn("ts_sec", F.col("pub_sec") + delay)
        .withColumn("uidx", _organic_uidx(cfg, "market", "org_user", *k))
        .withColumn("event_type", typ)
        .withColumn("quantity", F.when(buy, qty))
        .select(_event_id(s, "ev_organic", *k).alias("event_id"), "event_type",
                organic_user_id(s, F.col("uidx")).alias("user_id"), "creator_id", "video_id",
                F.when(buy, F.col("product_id")).alias("product_id"), _str(SCENARIO_CONTENT).alias("scenario"),
                organic_user_market(cfg, "uidx").alias("market"), "ts_sec", "quantity",
                F.when(buy, F.round(F.col("price") * F.col("quantity"), 2)).alias("gmv"),
                F.when(buy, F.col("currency")).alias("currency"), _null("string").alias("truth_ring_id"),
                F.when(F.col("viral"), F.lit(KIND_BURST)).otherwise(F.lit(KIND_ORGANIC)).alias("truth_kind"))
    )


def _actions(*pairs: tuple[Column, str]) -> Column:
    """Array of the action names whose condition holds (explode it for one row per action)."""
    return F.filter(F.array(*[F.when(cond, F.lit(name)) for cond, name in pairs]), lambda x: x.isNotNull())


def _content_rows(s: int, salt: str, kind: Column, ring: Column,
                  keys: tuple[str, ...] = ("video_id", "e_user", "event_type")) -> list[Column]:
    """Common projection of non-purchase events on a video (columns ``ts_sec``, ``event_type``,
    ``e_user``, ``e_market``, ``creator_id``, ``video_id``); ``keys`` identify the event."""
    return [_event_id(s, salt, *keys).alias("event_id"), "event_type",
            F.col("e_user").alias("user_id"), "creator_id", "video_id", _null("string").alias("product_id"),
            _str(SCENARIO_CONTENT).alias("scenario"), F.col("e_market").alias("market"), "ts_sec",
            _null("int").alias("quantity"), _null("double").alias("gmv"), _null("string").alias("currency"),
            ring.alias("truth_ring_id"), kind.alias("truth_kind")]


def _ring(cfg: SimConfig, vx: DataFrame, members: DataFrame) -> DataFrame:
    s, c = cfg.seed, cfg.camouflage
    k = ("video_id", "e_user")
    engage = rand.bernoulli(RING_ENGAGE_P - RING_ENGAGE_CAMO * c, s, "ring_engage", *k)
    acts = _actions((engage & rand.bernoulli(c, s, "ring_view", *k), VIEW), (engage, LIKE),
                    (engage & rand.bernoulli(RING_COMMENT_P, s, "ring_comment", *k), COMMENT),
                    (engage & rand.bernoulli(RING_SHARE_P, s, "ring_share", *k), SHARE),
                    (F.col("is_first") & rand.bernoulli(RING_FOLLOW_P, s, "ring_follow", *k), FOLLOW))
    jitter = int(round(RING_JITTER_BASE_S + RING_JITTER_CAMO_S * c))
    ts = (F.col("pub_sec") + rand.randint(s, "ring_delay", RING_DELAY_MIN_S, RING_DELAY_MAX_S, "ring_id", "video_id")
          + rand.randint(s, "ring_jitter", 0, jitter, *k)
          + rand.randint(s, "ring_action", 0, RING_ACTION_SPREAD_S, *k, "event_type"))
    return (
        vx.where(F.col("ring_id").isNotNull())
        .select("video_id", "creator_id", "ring_id", "pub_sec", "is_first")
        .join(members.select("ring_id", F.col("user_id").alias("e_user"), F.col("market").alias("e_market")), "ring_id")
        .withColumn("event_type", F.explode(acts))
        .withColumn("ts_sec", ts)
        .select(*_content_rows(s, "ev_ring", F.lit(KIND_RING), F.col("ring_id")))
    )


def _popular_pick(cfg: SimConfig, slots: DataFrame, popular: DataFrame, nb: int, salt: str) -> DataFrame:
    """Join pick slots (``e_user``, ``slot``) to popular videos of a hashed bucket; keep ~1 per slot."""
    s = cfg.seed
    return (
        slots.withColumn("bucket", rand.randint(s, salt + "_bucket", 0, nb - 1, "e_user", "slot"))
        .join(popular, "bucket")
        .where(rand.bernoulli(1.0 / POPULAR_PER_BUCKET, s, salt + "_pick", "e_user", "slot", "t_video_id"))
        .withColumnRenamed("t_video_id", "video_id").withColumnRenamed("t_creator_id", "creator_id")
    )


def _slots(df: DataFrame, n: int) -> DataFrame:
    return df.withColumn("slot", F.explode(F.sequence(F.lit(0), F.lit(n - 1))))


_CAMO_TYPES = (VIEW, LIKE, COMMENT, SHARE, FOLLOW)


def _ring_camouflage(cfg: SimConfig, members: DataFrame, popular: DataFrame, nb: int) -> DataFrame:
    s = cfg.seed
    n = int(round(cfg.days * RING_CAMO_PER_DAY * cfg.camouflage))
    base = members.select("ring_id", F.col("user_id").alias("e_user"), F.col("market").alias("e_market"))
    if n == 0:
        base = base.where(F.lit(False))
        n = 1
    k = ("e_user", "slot", "video_id")
    picked = _popular_pick(cfg, _slots(base, n), popular, nb, "camo")
    return (
        picked.withColumn("event_type",
                          rand.choice(_CAMO_TYPES, rand.uniform(s, "camo_type", *k), TYPE_WEIGHTS_VIDEO[:5]))
        .withColumn("ts_sec", F.col("t_pub_sec") + _exp_delay(ORGANIC_DECAY_MEAN_S, s, "camo_delay", *k))
        .select(*_content_rows(s, "ev_camo", F.lit(KIND_RING_CAMOUFLAGE), F.col("ring_id"), k + ("event_type",)))
    )


def _personas(active: DataFrame) -> DataFrame:
    return active.where(F.col("sybil_cluster_id").isNotNull()).select(
        "sybil_cluster_id", F.col("user_id").alias("e_user"), F.col("creator_id").alias("e_creator"),
        F.col("market").alias("e_market"), F.col("signup_sec").alias("e_signup_sec"))


def _sybil(cfg: SimConfig, vx: DataFrame, active: DataFrame) -> DataFrame:
    s = cfg.seed
    k = ("video_id", "e_user")
    engage = rand.bernoulli(SYBIL_PAIR_P, s, "sybil_engage", *k)
    acts = _actions((engage & rand.bernoulli(SYBIL_VIEW_P, s, "sybil_view", *k), VIEW), (engage, LIKE),
                    (engage & rand.bernoulli(SYBIL_COMMENT_P, s, "sybil_comment", *k), COMMENT),
                    (F.col("is_first") & rand.bernoulli(SYBIL_FOLLOW_P, s, "sybil_follow", *k), FOLLOW))
    ts = (F.col("pub_sec") + _exp_delay(SYBIL_DELAY_MEAN_S, s, "sybil_delay", *k)
          + rand.randint(s, "sybil_action", 0, SYBIL_ACTION_SPREAD_S, *k, "event_type"))
    return (
        vx.where(F.col("sybil_cluster_id").isNotNull())
        .select("video_id", "creator_id", "sybil_cluster_id", "pub_sec", "is_first")
        .join(_personas(active), "sybil_cluster_id")
        .where(F.col("e_creator") != F.col("creator_id"))
        .withColumn("event_type", F.explode(acts))
        .withColumn("ts_sec", ts)
        .where(F.col("ts_sec") >= F.col("e_signup_sec"))   # a persona cannot act before it exists
        .select(*_content_rows(s, "ev_sybil", F.lit(KIND_SYBIL), _null("string")))
    )


_ATTACK_TYPES = (VIEW, LIKE, COMMENT, FOLLOW)
_ATTACK_WEIGHTS = (0.4, 0.4, 0.15, 0.05)


def _sybil_attack(cfg: SimConfig, active: DataFrame, popular: DataFrame, nb: int) -> DataFrame:
    s = cfg.seed
    n = max(1, int(round(cfg.days * SYBIL_ATTACK_PER_DAY)))
    k = ("e_user", "slot", "video_id")
    picked = _popular_pick(cfg, _slots(_personas(active), n), popular, nb, "attack")
    return (
        picked.withColumn("event_type", rand.choice(_ATTACK_TYPES, rand.uniform(s, "attack_type", *k), _ATTACK_WEIGHTS))
        .withColumn("ts_sec", F.col("t_pub_sec") + _exp_delay(ORGANIC_DECAY_MEAN_S, s, "attack_delay", *k))
        .where(F.col("ts_sec") >= F.col("e_signup_sec"))
        .select(*_content_rows(s, "ev_attack", F.lit(KIND_SYBIL), _null("string"), k + ("event_type",)))
    )


def _bought_followers(cfg: SimConfig, active: DataFrame) -> DataFrame:
    s, n = cfg.seed, cfg.n_organic_users
    nf = n_fresh_users(cfg)
    size = F.least(F.greatest(F.round(F.lit(float(BOUGHT_FOLLOWERS_BASE)) * F.col("pop")), F.lit(BOUGHT_FOLLOWERS_MIN)),
                   F.lit(min(BOUGHT_FOLLOWERS_MAX, nf))).cast("int")
    # A consecutive block of the fresh pool (wrapping): distinct followers, one bot batch.
    offset = rand.randint(s, "bought_offset", 0, nf - 1, "creator_id")
    uidx = F.lit(n - nf) + F.pmod(offset + F.col("j"), F.lit(nf))
    ts = (F.col("trade_sec") + rand.randint(s, "bought_onset", 0, BOUGHT_ONSET_MAX_S, "creator_id")
          + rand.randint(s, "bought_ts", 0, BOUGHT_BURST_S, "creator_id", "j"))
    return (
        active.where((F.col("role") == ROLE_TRADED) & F.col("trade_sec").isNotNull())
        .withColumn("j", F.explode(F.sequence(F.lit(0), size - F.lit(1))))
        .withColumn("uidx", uidx)
        .select(_event_id(s, "ev_bought", "creator_id", "j").alias("event_id"), _str(FOLLOW).alias("event_type"),
                organic_user_id(s, F.col("uidx")).alias("user_id"), "creator_id", _null("string").alias("video_id"),
                _null("string").alias("product_id"), _str(SCENARIO_PROFILE).alias("scenario"),
                organic_user_market(cfg, "uidx").alias("market"), ts.alias("ts_sec"),
                _null("int").alias("quantity"), _null("double").alias("gmv"), _null("string").alias("currency"),
                _null("string").alias("truth_ring_id"), _str(KIND_BOUGHT).alias("truth_kind"))
    )


def _shelf(cfg: SimConfig, listings: DataFrame, active: DataFrame, start: dt.date, run_date: dt.date) -> DataFrame:
    s = cfg.seed
    rate = (F.lit(SHELF_PER_DAY) * F.col("pop")
            * F.when(F.col("migrated_scenario"), F.lit(SHELF_MIGRATED_FACTOR)).otherwise(F.lit(1.0)))
    p = F.least(rate / F.lit(float(SHELF_SLOTS)), F.lit(1.0))
    k = ("creator_id", "product_id", "day", "slot")
    ts = F.col("ts_sec")
    qty = rand.choice(QUANTITIES, rand.uniform(s, "shelf_qty", *k), QUANTITY_WEIGHTS).cast("int")

    def sold(slot: Column) -> Column:   # one Bernoulli per (listing, day, slot)
        return rand.bernoulli(F.col("p"), s, "shelf", "creator_id", "product_id", "day", slot)

    return (
        listings.select("product_id", "creator_id", "price", "currency",
                        _ts_sec(F.col("listed_at")).alias("listed_sec"),
                        (F.col("listing_status") == "active").alias("listing_active"))
        .join(active.select("creator_id", "market", "pop", "migrated_scenario", "trade_sec"), "creator_id")
        .withColumn("day", F.explode(F.sequence(F.lit(_epoch_day(start)), F.lit(_epoch_day(run_date)))))
        .withColumn("p", p)
        .withColumn("slot", F.explode(F.filter(F.sequence(F.lit(0), F.lit(SHELF_SLOTS - 1)), sold)))
        .withColumn("ts_sec", F.col("day").cast("long") * F.lit(86400) + rand.randint(s, "shelf_ts", 0, 86399, *k))
        .where((ts >= F.col("listed_sec"))
               & (F.col("listing_active") | F.coalesce(ts < F.col("trade_sec"), F.lit(False))))
        .withColumn("uidx", _organic_uidx(cfg, "market", "shelf_user", *k))
        .withColumn("quantity", qty)
        .select(_event_id(s, "ev_shelf", *k).alias("event_id"), _str(PURCHASE).alias("event_type"),
                organic_user_id(s, F.col("uidx")).alias("user_id"), "creator_id", _null("string").alias("video_id"),
                "product_id", _str(SCENARIO_SHELF).alias("scenario"),
                organic_user_market(cfg, "uidx").alias("market"), "ts_sec", "quantity",
                F.round(F.col("price") * F.col("quantity"), 2).alias("gmv"), "currency",
                _null("string").alias("truth_ring_id"), _str(KIND_ORGANIC).alias("truth_kind"))
    )
