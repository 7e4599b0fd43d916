"""Products and showcase listings: what creators sell, at what price, in which currency.

Every product is identified by its *owner key* and a showcase slot ``k``: the owner key is the
farm's operator for matrix-farm accounts (so a farm's accounts -- and a migrated operator's banned
and new accounts -- list the very same products), the creator for everyone else, and
``<creator>/buyer`` for a traded account after the trade (the buyer sells different goods). The
showcase size and each product's category and price are hash draws of the owner key, so the
video generator can name the product a video features (:func:`product_id`) without a join, and the
listings feed (:func:`listings`) enumerates exactly the same ids.

Prices are log-normal per category, drawn in USD and converted to the market's currency at fixed
rates (``libs.reference.FX_PER_USD``); amounts in the feeds are local-currency values, as a checkout service
would emit them.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from libs import reference
from libs.reference import currency
from libs.sim import rand
from libs.sim.config import SimConfig

# Median USD price per category (log-normal around it).
CATEGORY_PRICE_USD = {"beauty": 18.0, "fashion": 25.0, "electronics": 45.0, "home": 30.0, "food": 9.0,
                      "toys": 20.0, "sports": 28.0, "health": 15.0}
LISTING_ACTIVE = "active"
LISTING_REMOVED = "removed"


def fx_per_usd(currency_col: Column) -> Column:
    """Reference rate of a currency; the simulator's currencies all have one (1.0 is a safe floor)."""
    return reference.lookup(currency_col, reference.FX_PER_USD, 1.0)


def owner_key(role: Column, operator_id: Column, creator_id_col: Column, after_trade: Column) -> Column:
    """Whose showcase a product belongs to (see module docstring)."""
    return (F.when(role == "matrix_farm", operator_id)
            .when(after_trade, F.concat(creator_id_col, F.lit("/buyer")))
            .otherwise(creator_id_col))


def showcase_size(cfg: SimConfig, owner: Column) -> Column:
    return rand.randint(cfg.seed, "showcase", 1, cfg.products_per_creator, owner)


def product_id(cfg: SimConfig, owner: Column, k: Column) -> Column:
    return F.concat(F.lit("pr_"), rand.hex64(rand.hash64(cfg.seed, "product", owner, k)))


def price_usd(cfg: SimConfig, category: Column, owner: Column, k: Column) -> Column:
    """Log-normal around the category median (sd 0.6 in log space), rounded to cents."""
    median = F.lit(20.0)
    for c, p in CATEGORY_PRICE_USD.items():
        median = F.when(category == c, F.lit(p)).otherwise(median)
    return F.round(median * F.exp(rand.normal(cfg.seed, "price", owner, k, sd=0.6)), 2)


def to_minor_unit(amount: Column, currency_col: Column) -> Column:
    """Round a local amount the way the currency is paid: whole units for currencies without minor
    units (IDR, VND), cents otherwise."""
    return F.when(currency_col.isin("IDR", "VND"), F.round(amount, 0)).otherwise(F.round(amount, 2))


def local_price(price_usd_col: Column, currency_col: Column) -> Column:
    """USD to local currency, rounded to the currency's unit."""
    return to_minor_unit(price_usd_col * fx_per_usd(currency_col), currency_col)


def listings(acc: DataFrame, cfg: SimConfig, run_date: dt.date) -> DataFrame:
    """Showcase listings snapshot as of ``run_date``: one row per (creator, product).

    A traded account lists the seller's products (removed at the trade) and the buyer's (listed
    from the trade on); a banned account's listings are kept with status ``removed`` -- the shared
    product ids are how a migrated operator's new accounts link back to the banned ones.
    """
    s = cfg.seed
    is_traded = F.col("trade_date").isNotNull()
    eras = F.when(is_traded, F.array(F.lit(False), F.lit(True))).otherwise(F.array(F.lit(False)))
    after = F.col("after_trade")
    owner = owner_key(F.col("role"), F.col("operator_id"), F.col("creator_id"), after)
    category = F.when(F.col("role") == "matrix_farm", F.col("category")).when(
        after, F.col("category")).otherwise(F.col("original_category"))
    signup_ts = F.col("signup_date").cast("timestamp").cast("long")
    trade_ts = F.col("trade_date").cast("timestamp").cast("long")
    listed = F.when(after, trade_ts + rand.randint(s, "listed_buyer", 0, 12 * 3600, "creator_id", "k")).otherwise(
        signup_ts + rand.randint(s, "listed", 0, 30 * 86400, "creator_id", "k"))
    end_ts = int(dt.datetime.combine(run_date, dt.time(23, 59, 59), tzinfo=dt.timezone.utc).timestamp())
    listed = F.least(listed, F.lit(end_ts))     # sybils sign up inside the window
    removed = (F.col("status") == "banned") | (is_traded & ~after)
    cur = currency(F.col("market"))
    return (
        acc.withColumn("after_trade", F.explode(eras))
        .withColumn("owner", owner)
        .withColumn("k", F.explode(F.sequence(F.lit(0), showcase_size(cfg, F.col("owner")) - F.lit(1))))
        .withColumn("product_category", category)
        .withColumn("currency", cur)
        .withColumn("product_id", product_id(cfg, F.col("owner"), F.col("k")))
        .select(
            F.concat(F.lit("ls_"), rand.hex64(rand.hash64(s, "listing_id", "product_id", "creator_id"))).alias("listing_id"),
            "product_id",
            "creator_id",
            F.col("product_category").alias("category"),
            local_price(price_usd(cfg, F.col("product_category"), F.col("owner"), F.col("k")), cur).alias("price"),
            "currency",
            F.when(removed, F.lit(LISTING_REMOVED)).otherwise(F.lit(LISTING_ACTIVE)).alias("listing_status"),
            F.timestamp_seconds(listed).alias("listed_at"),
            F.lit(run_date.isoformat()).alias("dt"),
        )
    )


# --- after-sales: complaints and refunds ---------------------------------------------------------
# Per-purchase complaint / refund probabilities by the seller's behaviour (base = honest seller).
COMPLAINT_P = {"base": 0.02, "low_effort": 0.12, "matrix_farm": 0.10, "pirate": 0.05, "after_trade": 0.15}
REFUND_P = {"base": 0.03, "low_effort": 0.15, "matrix_farm": 0.12, "pirate": 0.05, "after_trade": 0.20}
REFUND_IF_COMPLAINED_P = 0.6      # a complaint usually ends in a refund
COPYRIGHT_CLAIM_P = {"piracy": 0.3, "licensed": 0.02}   # original's owner files a claim on a copy
PURCHASE_COMPLAINT_REASONS = ("not_as_described", "counterfeit", "never_arrived", "misleading_video")
REFUND_REASONS = ("damaged", "not_as_described", "changed_mind", "never_arrived")


def _seller_p(table: dict, role: Column, after_trade: Column) -> Column:
    expr = F.lit(table["base"])
    for r in ("low_effort", "matrix_farm", "pirate"):
        expr = F.when(role == r, F.lit(table[r])).otherwise(expr)
    return F.when(after_trade, F.lit(table["after_trade"])).otherwise(expr)


def _purchases_with_seller(events: DataFrame, acc: DataFrame) -> DataFrame:
    return (events.where(F.col("event_type") == "purchase")
            .select(F.col("event_id").alias("order_id"), "user_id", "creator_id", "video_id", "gmv", "currency", "ts")
            .join(acc.select("creator_id", "role", "trade_date"), "creator_id")
            .withColumn("after_trade", F.coalesce(F.to_date("ts") >= F.col("trade_date"), F.lit(False))))


def complaints(events: DataFrame, videos_df: DataFrame, acc: DataFrame, cfg: SimConfig, run_date: dt.date) -> DataFrame:
    """User complaints: complaint_id, user_id, creator_id, video_id, order_id, reason, ts, dt.

    Two sources: buyers complaining about an order (more often about bad sellers), and original
    creators filing copyright claims against copies of their videos (most piracy goes unreported;
    a licensed repost is sometimes claimed by mistake -- the look-alike).
    Complaints filed after ``run_date`` are not in this landing (they arrive in a later one).
    """
    s = cfg.seed
    end_ts = int(dt.datetime.combine(run_date, dt.time(23, 59, 59), tzinfo=dt.timezone.utc).timestamp())
    orders = _purchases_with_seller(events, acc)
    complained = rand.bernoulli(_seller_p(COMPLAINT_P, F.col("role"), F.col("after_trade")), s, "complaint", "order_id")
    order_ts = F.col("ts").cast("long") + rand.randint(s, "complaint_delay", 600, 3 * 86400, "order_id")
    by_buyers = orders.where(complained & (order_ts <= F.lit(end_ts))).select(
        F.concat(F.lit("cp_"), rand.hex64(rand.hash64(s, "complaint_id", "order_id"))).alias("complaint_id"),
        "user_id", "creator_id", "video_id", "order_id",
        rand.choice(PURCHASE_COMPLAINT_REASONS, rand.uniform(s, "complaint_reason", "order_id")).alias("reason"),
        F.timestamp_seconds(order_ts).alias("ts"))
    copies = videos_df.where(F.col("truth_copy_kind").isin(*COPYRIGHT_CLAIM_P)).select(
        "video_id", "creator_id", "published_at", "truth_copy_kind", "truth_original_video_id")
    claim_p = F.lit(0.0)
    for kind, p in COPYRIGHT_CLAIM_P.items():
        claim_p = F.when(F.col("truth_copy_kind") == kind, F.lit(p)).otherwise(claim_p)
    claim_ts = F.col("published_at").cast("long") + rand.randint(s, "claim_delay", 3600, 5 * 86400, "video_id")
    claims = (
        copies.where(rand.bernoulli(claim_p, s, "copyright_claim", "video_id") & (claim_ts <= F.lit(end_ts)))
        .join(videos_df.select(F.col("video_id").alias("truth_original_video_id"),
                               F.col("creator_id").alias("original_creator_id")), "truth_original_video_id")
        .join(acc.select(F.col("creator_id").alias("original_creator_id"), F.col("user_id")), "original_creator_id")
        .select(
            F.concat(F.lit("cp_"), rand.hex64(rand.hash64(s, "claim_id", "video_id"))).alias("complaint_id"),
            "user_id", "creator_id", "video_id", F.lit(None).cast("string").alias("order_id"),
            F.lit("copyright").alias("reason"), F.timestamp_seconds(claim_ts).alias("ts"))
    )
    return by_buyers.unionByName(claims).withColumn("dt", F.date_format("ts", "yyyy-MM-dd"))


def refunds(events: DataFrame, acc: DataFrame, cfg: SimConfig, run_date: dt.date) -> DataFrame:
    """Refunds: refund_id, order_id, user_id, creator_id, amount, currency, reason, ts, dt.

    Drawn per order, more often from bad sellers; an order with a complaint is refunded with
    probability ``REFUND_IF_COMPLAINED_P`` (the complaint draw is the same hash as in
    :func:`complaints`, so the two feeds agree without a join). A quarter of refunds are partial.
    """
    s = cfg.seed
    end_ts = int(dt.datetime.combine(run_date, dt.time(23, 59, 59), tzinfo=dt.timezone.utc).timestamp())
    orders = _purchases_with_seller(events, acc)
    complained = rand.bernoulli(_seller_p(COMPLAINT_P, F.col("role"), F.col("after_trade")), s, "complaint", "order_id")
    refunded = (rand.bernoulli(_seller_p(REFUND_P, F.col("role"), F.col("after_trade")), s, "refund", "order_id")
                | (complained & rand.bernoulli(REFUND_IF_COMPLAINED_P, s, "refund_after_complaint", "order_id")))
    refund_ts = F.col("ts").cast("long") + rand.randint(s, "refund_delay", 3600, 3 * 86400, "order_id")
    partial = rand.bernoulli(0.25, s, "partial_refund", "order_id")
    amount = F.when(partial, F.round(F.col("gmv") * F.lit(0.5), 2)).otherwise(F.col("gmv"))
    return orders.where(refunded & (refund_ts <= F.lit(end_ts))).select(
        F.concat(F.lit("rf_"), rand.hex64(rand.hash64(s, "refund_id", "order_id"))).alias("refund_id"),
        "order_id", "user_id", "creator_id",
        to_minor_unit(amount, F.col("currency")).alias("amount"),
        "currency",
        rand.choice(REFUND_REASONS, rand.uniform(s, "refund_reason", "order_id")).alias("reason"),
        F.timestamp_seconds(refund_ts).alias("ts"),
        F.date_format(F.timestamp_seconds(refund_ts), "yyyy-MM-dd").alias("dt"),
    )
