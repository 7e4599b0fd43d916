"""``creator_signals``: per-creator features over rolling windows, one snapshot per run date (gold).

One row per ``(dt, window_days, creator_id)`` for every creator of the run date's
``silver_creators`` snapshot -- a creator with no activity in a window still has a row (counts 0,
rates null), so a model or a dashboard never mistakes "no row" for "no risk". Rates are null when
their denominator is 0 (no videos, no views, no purchases): 0 would claim a measurement.

Written by ``jobs/creator_signals.py`` (pure transforms in :mod:`libs.quality.signals`).
"""
from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, StructField, StructType

KEYS = ["dt", "window_days", "creator_id"]
PARTITION_COLS = ["dt"]
ZORDER_COLS = ["creator_id"]

# name -> (type, description); the description is the data dictionary policy teams read.
_FEATURES: list[tuple[str, object, str]] = [
    # --- content (silver_videos) ---
    ("n_videos", LongType(), "videos published in the window"),
    ("active_days", LongType(), "distinct days with at least one video"),
    ("videos_per_active_day", DoubleType(), "n_videos / active_days"),
    ("static_frame_mean", DoubleType(), "mean static_frame_ratio"),
    ("static_frame_share", DoubleType(), "share of videos with static_frame_ratio >= 0.6 (slideshow-like)"),
    ("motion_mean", DoubleType(), "mean motion_score"),
    ("aesthetic_mean", DoubleType(), "mean aesthetic_score"),
    ("aesthetic_p10", DoubleType(), "10th percentile of aesthetic_score (the creator's worst videos)"),
    ("aesthetic_p50", DoubleType(), "median aesthetic_score"),
    ("low_aesthetic_share", DoubleType(), "share of videos with aesthetic_score < 0.4"),
    ("blur_mean", DoubleType(), "mean blur"),
    ("audio_reuse_share", DoubleType(), "share of videos whose soundtrack is reused audio"),
    ("title_dup_share", DoubleType(), "1 - distinct titles / videos (same caption over and over)"),
    ("title_caps_share", DoubleType(), "mean share of upper-case letters in titles (shouting sales copy)"),
    ("product_video_share", DoubleType(), "share of videos with a product attached"),
    ("product_repeat_ratio", DoubleType(), "1 - distinct products / videos with a product (one product pushed repeatedly)"),
    # --- posting rhythm ---
    ("gap_cv", DoubleType(), "coefficient of variation of the gaps between consecutive videos (null under 3 videos)"),
    ("min_gap_minutes", DoubleType(), "shortest gap between two consecutive videos"),
    # --- copies (video_copies of this run) ---
    ("copied_video_share", DoubleType(), "share of the creator's videos that copy another creator's earlier video"),
    ("self_repost_share", DoubleType(), "share of the creator's videos that repost its own earlier video"),
    ("copy_sources", LongType(), "distinct creators whose videos this creator copied"),
    ("copy_min_distance", IntegerType(), "smallest fingerprint distance (bits of 256) to a copied original"),
    ("times_copied", LongType(), "the creator's videos copied by other creators (victim side)"),
    # --- engagement (silver_engagement_events) ---
    ("views", LongType(), "view events"),
    ("interactions", LongType(), "likes + comments + shares"),
    ("follows", LongType(), "follow events"),
    ("purchases", LongType(), "purchase events"),
    ("gmv_usd", DoubleType(), "purchase value in USD"),
    ("distinct_users", LongType(), "distinct users with any event"),
    ("interaction_rate", DoubleType(), "interactions / views"),
    ("conversion_rate", DoubleType(), "purchases / views"),
    ("top_user_share", DoubleType(), "share of all events coming from the single most active user"),
    ("events_per_user", DoubleType(), "events / distinct users (bought engagement repeats the same accounts)"),
    # --- after-sale (silver_complaints, silver_refunds) ---
    ("complaints", LongType(), "user complaints"),
    ("copyright_complaints", LongType(), "complaints with reason copyright"),
    ("refunds", LongType(), "refunds"),
    ("refund_usd", DoubleType(), "refunded amount in USD"),
    ("complaint_rate", DoubleType(), "complaints / purchases"),
    ("refund_rate", DoubleType(), "refunds / purchases"),
    # --- account (silver_logins) ---
    ("logins", LongType(), "logins in the window"),
    ("login_devices", LongType(), "distinct devices logged in from"),
    ("login_geos", LongType(), "distinct geos logged in from"),
]

FEATURE_NAMES: list[str] = [name for name, _, _ in _FEATURES]
DESCRIPTIONS: dict[str, str] = {name: text for name, _, text in _FEATURES}

SCHEMA = StructType(
    [
        StructField("dt", StringType(), False),             # run date (snapshot)
        StructField("window_days", IntegerType(), False),   # 7 or 28 (settings quality.signal_windows)
        StructField("creator_id", StringType(), False),
        StructField("market", StringType(), True),
        StructField("category", StringType(), True),
        StructField("account_age_days", IntegerType(), True),
    ]
    + [StructField(name, dtype, True) for name, dtype, _ in _FEATURES]
)
