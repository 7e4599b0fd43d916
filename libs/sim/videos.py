"""Videos over the simulated window, with content signals as upstream models would emit them.

Generation, all by partition from the creators frame (no driver loops, no UDFs):

1. **Slots.** Each creator has ``SLOTS_PER_DAY`` candidate slots per day; a slot holds a video
   with probability ``rate / SLOTS_PER_DAY`` where ``rate`` is ``videos_per_day`` times a
   per-creator activity (log-normal, mean 1) times a role factor (low-effort sellers spam more).
   Slots are keyed by the *calendar* day (days since epoch), so two runs whose windows overlap
   agree on which videos exist on the shared days.
2. **Own content.** A video's 256-bit fingerprint is four independent 64-bit hashes of its key.
3. **Matrix farms.** The operator posts content ``(operator, day, slot)`` and each of its accounts
   reposts it with probability ``FARM_REPOST_P``, minutes after the operator's time. The earliest
   post keeps the master fingerprint; later ones flip ``0..farm_bits_max`` bits and record the
   earliest as ``truth_original_video_id`` (``farm_duplicate``). Found with a window over the
   farm's videos only.
4. **Pirate and licensed copies** (a join, chosen over hash-picking the original because a
   creator's video count is random: picking "the j-th video of creator c" by hash would need
   retries for slots that turned out empty). Copy slots draw a bucket; honest originals are
   hashed into the same ``n_buckets``; a copy takes, among originals of its bucket published
   strictly *earlier*, the one with the smallest pick hash (a total order, so the choice does not
   depend on partitioning). Its fingerprint is the original's XOR a mask of exactly ``k`` bits.
   A copy slot with no earlier original in its bucket (only possible very early in the window)
   stays the pirate's own content: buckets hold ~50 originals, so this affects ~2% of copy slots.
5. **Signals** are drawn per video from overlapping distributions; for low-effort sellers the
   shift is scaled by ``separation = 0.15 + 0.85 * (1 - camouflage)``, so even at camouflage 1
   a faint signal remains, and honest creators make static slideshows and spammy titles too.

The k-bit mask uses an affine permutation of bit positions, ``pos_j = (a*j + b) mod 256`` with
``a`` odd: a bijection on 0..255, so ``j = 0..k-1`` gives exactly ``k`` *distinct* bits and the
Hamming distance to the original is exactly ``k`` -- cheaper than ranking 256 random keys.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from libs.sim import commerce, rand
from libs.sim.config import SimConfig
from libs.sim.creators import (MIGRATION_SCENARIO, ROLE_AGENCY, ROLE_FAMILY, ROLE_FARM, ROLE_HONEST, ROLE_LICENSED,
                               ROLE_LOW_EFFORT, ROLE_PIRATE, STATUS_ACTIVE, window_start)

SLOTS_PER_DAY = 8
FARM_REPOST_P = 0.7
ORIGINALS_PER_BUCKET = 50
ROLE_FACTOR = {ROLE_LOW_EFFORT: 2.0, ROLE_FARM: 1.5, ROLE_PIRATE: 1.2}
SLIDESHOW_STYLE_P = 0.08          # honest creators whose format is the slideshow ...
SLIDESHOW_STYLE_RATE = 0.5         # ... and how much more often their videos are one
TRADED_RATE_FACTOR = 2.5           # a bought account is worked harder than its seller did
SHELF_MIGRANT_RATE_FACTOR = 0.3    # operators that moved to the product shelf post few videos
COPY_KIND_PIRACY = "piracy"
COPY_KIND_FARM = "farm_duplicate"
COPY_KIND_LICENSED = "licensed"
_KEYS = ("idx", "day", "slot")
_WORDS = ("w0", "w1", "w2", "w3")

PRODUCTS = ("lip tint", "phone case", "air fryer", "sneakers", "serum", "earbuds", "yoga mat", "snack box",
            "hoodie", "power bank", "lego set", "face mask")
OPENERS = ("Trying the", "My honest review of the", "Day in my life with the", "How I style the",
           "Unboxing the", "3 ways to use the", "Is the", "Testing the")
CLOSERS = ("worth it?", "", "- part 2", "for beginners", "after one month", "vs the cheap one")
SPAM = ("BEST DEAL", "HOT SALE", "LIMITED STOCK", "FLASH SALE", "MEGA PROMO")


def _epoch_day(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def n_buckets(cfg: SimConfig) -> int:
    """Join buckets for copy -> original, from the config only (never from data: deterministic)."""
    expected_originals = cfg.n_creators * cfg.days * cfg.videos_per_day
    return max(1, int(expected_originals // ORIGINALS_PER_BUCKET))


def _mask_word(word: int, k_max: int) -> Column:
    """Bits of word ``word`` (0..3) set by the k-bit mask in columns ``_k``, ``_a``, ``_b``."""
    return F.expr(
        f"aggregate(sequence(0, {max(k_max, 1) - 1}), 0L, (acc, j) -> acc | "
        f"IF(j < _k AND pmod(_a * j + _b, 256) div 64 = {word}, shiftleft(1L, pmod(_a * j + _b, 64)), 0L))"
    )


def _with_flipped_bits(df: DataFrame, seed: int, salt: str, k: Column, k_max: int, key: Column) -> DataFrame:
    """XOR words ``w0..w3`` with a mask of exactly ``k`` distinct bits (see module docstring)."""
    # One withColumns per step: each withColumn re-analyses the plan, which dominates small runs.
    df = df.withColumns({"_k": k.cast("int"),
                         "_a": (rand.randint(seed, salt + "_a", 0, 127, key) * 2 + 1).cast("int"),
                         "_b": rand.randint(seed, salt + "_b", 0, 255, key).cast("int")})
    df = df.withColumns({w: F.col(w).bitwiseXOR(_mask_word(i, k_max)) for i, w in enumerate(_WORDS)})
    return df.drop("_k", "_a", "_b")


def _own_words(seed: int, *keys: str) -> list[Column]:
    return [rand.hash64(seed, f"fp{i}", *keys).alias(w) for i, w in enumerate(_WORDS)]


def _slots(cfg: SimConfig, acc: DataFrame, run_date: dt.date) -> DataFrame:
    """Every (creator, day, slot) that holds a video, with role, publication time and product."""
    s, M = cfg.seed, SLOTS_PER_DAY
    start = _epoch_day(window_start(cfg, run_date))
    idx, day, slot = F.col("idx"), F.col("day"), F.col("slot")
    role = F.col("role")
    factor = F.lit(1.0)
    for r, f in ROLE_FACTOR.items():
        factor = F.when(role == r, F.lit(f)).otherwise(factor)
    after_trade = F.coalesce(day >= F.col("trade_day"), F.lit(False))
    # Buyers of an account post far more than the seller did; an operator that moved to the shelf
    # after a content ban posts few videos.
    factor = (factor * F.when(after_trade, F.lit(TRADED_RATE_FACTOR)).otherwise(F.lit(1.0))
              * F.when(F.col("migration_kind") == MIGRATION_SCENARIO, F.lit(SHELF_MIGRANT_RATE_FACTOR))
              .otherwise(F.lit(1.0)))
    # Log-normal activity with mean 1: exp(N(0, .5^2) - .5^2 / 2).
    activity = F.exp(rand.normal(s, "activity", idx, sd=0.5) - F.lit(0.125))
    rate = F.lit(cfg.videos_per_day) * activity * factor
    is_farm = role == ROLE_FARM
    op = F.col("operator_id")
    op_p = F.least(rate / F.lit(M * FARM_REPOST_P), F.lit(1.0))
    active = F.when(is_farm, rand.bernoulli(op_p, s, "op_slot", op, day, slot)
                    & rand.bernoulli(FARM_REPOST_P, s, "farm_repost", idx, day, slot)
                    ).otherwise(rand.bernoulli(F.least(rate / F.lit(M), F.lit(1.0)), s, "slot", idx, day, slot))
    # Farm accounts post the operator's content within 1 + 5*camouflage hours of the operator.
    farm_sec = (rand.randint(s, "op_time", 0, 86399, op, day, slot)
                + rand.randint(s, "farm_delay", 60, int(3600 * (1 + 5 * cfg.camouflage)), idx, day, slot))
    # Everyone else has a posting rhythm: a personal peak hour, +-2.5 h. A traded account's buyer
    # brings their own rhythm (a new peak hour from the trade on).
    peak = F.when(after_trade, rand.randint(s, "buyer_peak", 0, 23, idx)).otherwise(rand.randint(s, "peak", 0, 23, idx))
    own_sec = F.pmod((peak * F.lit(3600) + rand.normal(s, "time", idx, day, slot, sd=2.5 * 3600)).cast("long"),
                     F.lit(86400))
    sec = F.when(is_farm, F.least(farm_sec, F.lit(86399))).otherwise(own_sec)
    # The product a video features: farms' reposts feature the operator's product of the content.
    content_key = F.when(is_farm, F.concat_ws("/", op, day.cast("string"), slot.cast("string"))).otherwise(
        F.concat_ws("/", F.col("creator_id"), day.cast("string"), slot.cast("string")))
    owner = commerce.owner_key(role, op, F.col("creator_id"), after_trade)
    features = rand.bernoulli(F.when(role.isin(ROLE_LOW_EFFORT, ROLE_FARM), F.lit(0.95)).otherwise(F.lit(0.6)),
                              s, "features_product", content_key)
    product = F.when(features, commerce.product_id(
        cfg, owner, rand.randint(s, "video_product", 0, commerce.showcase_size(cfg, owner) - F.lit(1), content_key)))
    people = acc.where(F.col("status") == STATUS_ACTIVE).select(
        "idx", "creator_id", "category", "role", "operator_id", "migration_kind",
        F.datediff(F.col("signup_date"), F.lit("1970-01-01")).alias("signup_day"),
        F.datediff(F.col("trade_date"), F.lit("1970-01-01")).alias("trade_day"))
    return (
        people
        .withColumn("i", F.explode(F.sequence(F.lit(0), F.lit(cfg.days * M - 1))))
        .withColumn("day", (F.lit(start) + F.floor(F.col("i") / F.lit(M))).cast("int"))
        .withColumn("slot", F.pmod(F.col("i"), F.lit(M)).cast("int"))
        .drop("i")
        .where((day >= F.col("signup_day")) & active)
        .withColumn("published_at", F.timestamp_seconds(day.cast("long") * F.lit(86400) + sec))
        .withColumn("video_id", F.concat(F.lit("vd_"), rand.hex64(rand.hash64(s, "video_id", *_KEYS))))
        .withColumn("product_id", product)
        .drop("signup_day", "trade_day", "migration_kind")
    )


def videos(acc: DataFrame, cfg: SimConfig, run_date: dt.date) -> DataFrame:
    """One row per video published in ``[run_date - days + 1, run_date]``, plus ``truth_*`` columns.

    ``acc`` is :func:`libs.sim.creators.accounts` (checkpointed: the optimizer barrier that keeps
    the generated code below the JVM's method-size limit). Banned accounts post nothing; nobody
    posts before signing up.
    """
    s = cfg.seed
    slots = _slots(cfg, acc, run_date)
    role = F.col("role")
    is_copy_slot = (
        ((role == ROLE_PIRATE) & rand.bernoulli(cfg.pirate_copy_share, s, "copy", *_KEYS))
        | ((role == ROLE_LICENSED) & rand.bernoulli(cfg.licensed_copy_share, s, "copy", *_KEYS))
    )
    slots = slots.withColumn("copy_slot", is_copy_slot)
    nb = n_buckets(cfg)

    # --- matrix farms: same content across the operator's accounts ---
    farm = slots.where(role == ROLE_FARM).select("*", *[
        rand.hash64(s, f"fp{i}", "operator_id", "day", "slot").alias(w) for i, w in enumerate(_WORDS)])
    content = F.struct("operator_id", "day", "slot")
    # Unordered window aggregate: the earliest (time, id) is a total order, independent of partitioning.
    first = F.min(F.struct("published_at", "video_id")).over(
        Window.partitionBy(content))
    farm = farm.withColumn("_first", first["video_id"])
    is_dup = F.col("_first") != F.col("video_id")
    farm = _farm_select(farm, slots.columns, is_dup, s, cfg)

    # --- own content of everyone else ---
    own = slots.where((role != ROLE_FARM)).select("*", *_own_words(s, *_KEYS))

    # --- pirate / licensed copies of earlier honest originals (bucket join) ---
    originals = (own.where(role.isin(ROLE_HONEST, ROLE_FAMILY, ROLE_LICENSED, ROLE_AGENCY) & ~F.col("copy_slot"))
                 .select(F.pmod(rand.hash64(s, "orig_bucket", "video_id"), F.lit(nb)).alias("bucket"),
                         F.col("video_id").alias("o_id"), F.col("published_at").alias("o_at"),
                         *[F.col(w).alias("o_" + w) for w in _WORDS]))
    copies = own.where(F.col("copy_slot")).select(
        "video_id", "published_at", rand.randint(s, "copy_bucket", 0, nb - 1, "video_id").alias("bucket"))
    matches = (
        copies.join(originals, "bucket")
        .where(F.col("o_at") < F.col("published_at"))
        .groupBy("video_id")
        .agg(F.min(F.struct(rand.hash64(s, "pick", "video_id", "o_id").alias("h"), "o_id",
                            *[F.col("o_" + w) for w in _WORDS])).alias("m"))
        .select("video_id", "m.o_id", *[F.col("m.o_" + w).alias("o_" + w) for w in _WORDS])
    )
    copied = own.where(F.col("copy_slot")).join(matches, "video_id", "left")
    matched = F.col("o_id").isNotNull()
    kind = F.when(matched, F.when(role == ROLE_PIRATE, F.lit(COPY_KIND_PIRACY)).otherwise(F.lit(COPY_KIND_LICENSED)))
    bits = F.when(role == ROLE_PIRATE, rand.randint(s, "pirate_bits", cfg.pirate_bits_min, cfg.pirate_bits_max, "video_id")
                  ).otherwise(rand.randint(s, "licensed_bits", cfg.licensed_bits_min, cfg.licensed_bits_max, "video_id"))
    copied = copied.withColumn("_bits", F.when(matched, bits))
    for w in _WORDS:
        copied = copied.withColumn(w, F.when(matched, F.col("o_" + w)).otherwise(F.col(w)))
    copied = _with_flipped_bits(copied, s, "copy_mask", F.coalesce(F.col("_bits"), F.lit(0)),
                                max(cfg.pirate_bits_max, cfg.licensed_bits_max), F.col("video_id"))
    copied = copied.select(*slots.columns, *_WORDS, F.col("o_id").alias("truth_original_video_id"),
                           kind.alias("truth_copy_kind"), F.col("_bits").cast("int").alias("truth_copy_bits"))
    plain = own.where(~F.col("copy_slot")).select(
        *slots.columns, *_WORDS, F.lit(None).cast("string").alias("truth_original_video_id"),
        F.lit(None).cast("string").alias("truth_copy_kind"), F.lit(None).cast("int").alias("truth_copy_bits"))

    allv = plain.unionByName(copied).unionByName(farm)
    return _signals(allv, cfg)


def _farm_select(farm: DataFrame, base_cols: list[str], is_dup: Column, s: int, cfg: SimConfig) -> DataFrame:
    farm = farm.withColumn("_bits", F.when(is_dup, rand.randint(s, "farm_bits", 0, cfg.farm_bits_max, "video_id")))
    farm = _with_flipped_bits(farm, s, "farm_mask", F.coalesce(F.col("_bits"), F.lit(0)), cfg.farm_bits_max,
                              F.col("video_id"))
    return farm.select(
        *base_cols, *_WORDS,
        F.when(is_dup, F.col("_first")).alias("truth_original_video_id"),
        F.when(is_dup, F.lit(COPY_KIND_FARM)).alias("truth_copy_kind"),
        F.col("_bits").cast("int").alias("truth_copy_bits"),
    )


def _signals(df: DataFrame, cfg: SimConfig) -> DataFrame:
    """Model-like signals per video; low-effort shifts scaled by ``separation`` (see module doc)."""
    s = cfg.seed
    sep = 0.15 + 0.85 * (1.0 - cfg.camouflage)
    role = F.col("role")
    le = (role == ROLE_LOW_EFFORT).cast("double")
    vid = "video_id"
    is_copy = F.col("truth_copy_kind").isNotNull()
    # Creators have a style: a per-creator offset on static ratio and aesthetics, and a share of
    # honest creators whose format *is* the slideshow (recipe cards, product photo reels) -- so a
    # creator's average signal overlaps the low-effort sellers', not just single videos.
    cr = "creator_id"
    slideshow_style = (role != ROLE_LOW_EFFORT) & rand.bernoulli(SLIDESHOW_STYLE_P, s, "slideshow_style", cr)
    slideshow_p = (F.lit(0.06) + F.lit(0.6 * sep) * le
                   + F.when(slideshow_style, F.lit(SLIDESHOW_STYLE_RATE)).otherwise(F.lit(0.0)))
    slideshow = rand.bernoulli(slideshow_p, s, "slideshow", vid)
    static_style = rand.normal(s, "static_style", cr, sd=0.08)
    aesthetic_style = rand.normal(s, "aesthetic_style", cr, sd=0.10)
    static = rand.clip01(F.when(slideshow, rand.normal(s, "static_ss", vid, mean=0.85, sd=0.08))
                         .otherwise(rand.normal(s, "static", vid, mean=F.lit(0.12) + F.lit(0.25 * sep) * le
                                                + static_style, sd=0.08)))
    motion = rand.clip01((F.lit(1.0) - F.col("static_frame_ratio"))
                         * rand.normal(s, "motion", vid, mean=F.lit(0.7) - F.lit(0.2 * sep) * le, sd=0.15))
    aesthetic = rand.clip01(rand.normal(s, "aesthetic", vid, mean=F.lit(0.62) - F.lit(0.3 * sep) * le
                                        + aesthetic_style, sd=0.12))
    blur = rand.clip01(rand.normal(s, "blur", vid, mean=F.lit(0.18) + F.lit(0.25 * sep) * le, sd=0.08))
    audio_p = (F.when(role == ROLE_FARM, F.lit(0.8))
               .when(is_copy & (role == ROLE_PIRATE), F.lit(0.85))
               .when(is_copy, F.lit(0.6))
               .otherwise(F.lit(0.25) + F.lit(0.4 * sep) * le))
    # Farm reposts reuse the operator's caption: title keyed by the content, not the video.
    title_key = F.when(role == ROLE_FARM, F.concat_ws("/", "operator_id", F.col("day").cast("string"),
                                                       F.col("slot").cast("string"))).otherwise(F.col(vid))
    spam = rand.bernoulli(F.lit(0.05) + F.lit(0.7 * sep) * le, s, "spam", vid) | (role == ROLE_FARM)
    product = rand.choice(PRODUCTS, rand.uniform(s, "product", title_key))
    spam_title = F.concat_ws(" ", rand.choice(SPAM, rand.uniform(s, "spam_word", title_key)), F.upper(product),
                             product, F.lit("!!! buy now"),
                             F.concat(rand.randint(s, "discount", 2, 9, title_key).cast("string"), F.lit("0% OFF")),
                             F.lit("link in bio #sale"), F.concat(F.lit("#"), F.col("category")))
    plain_title = F.trim(F.concat_ws(" ", rand.choice(OPENERS, rand.uniform(s, "opener", title_key)), product,
                                     rand.choice(CLOSERS, rand.uniform(s, "closer", title_key))))
    live = rand.bernoulli(0.08, s, "live", vid) & (role != ROLE_FARM)
    return (
        df.withColumn("static_frame_ratio", static)
        .withColumns({
            "dt": F.date_format("published_at", "yyyy-MM-dd"),
            "scenario": F.when(live, F.lit("live")).otherwise(F.lit("video")),
            "motion_score": motion,
            "aesthetic_score": aesthetic,
            "blur": blur,
            "audio_reuse": rand.bernoulli(audio_p, s, "audio_reuse", vid),
            "fingerprint": F.concat(*[rand.hex64(F.col(w)) for w in _WORDS]),
            "title": F.when(spam, spam_title).otherwise(plain_title),
        })
        .select("video_id", "creator_id", "published_at", "dt", "scenario", "product_id", "static_frame_ratio",
                "motion_score", "aesthetic_score", "blur", "audio_reuse", "fingerprint", "title",
                "truth_original_video_id", "truth_copy_kind", "truth_copy_bits")
    )
