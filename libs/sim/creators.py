"""Creators (accounts) and their devices, with the hidden truth of who is who.

Layout: creator ``idx`` (0..n-1) lives in block ``idx // B`` (``B = cfg.block_size``, the largest
farm). A block hosts at most one *group*, decided by hashing the block number:

* a **matrix farm** (probability ``cfg.farm_block_probability``): ``s`` consecutive accounts
  (``s`` in ``farm_size_min..farm_size_max``) at a hashed offset, run by operator ``op_<block>``;
* else a **family** (probability ``cfg.family_block_probability``): 2-3 consecutive honest accounts
  sharing one phone -- the look-alike a farm detector must not flag.

Consecutive ids model how farms are actually created (a batch of sign-ups by one operator) and let
every account compute its group from its own id alone: no join, no driver state, so any partition
of ``spark.range`` can be generated independently. Only *full* blocks host groups, so a farm is
never cut short by the end of the id range.

Creators outside groups draw an individual role from one uniform, with thresholds scaled by the
share of creators left outside groups, so every role's prevalence over *all* creators equals its
configured rate in expectation.

Farm accounts share (a) a pool of ``ceil(s/3)`` devices, assigned round-robin to the accounts'
primary device -- ``ceil(s/3) <= s/2`` for ``s >= 2``, so every farm account shares its primary
device with at least one sibling; (b) one or two IP /24s; (c) a small pool of payout accounts.
``camouflage`` gives farm accounts more personal devices and payout accounts and a wider sign-up
spread. Families share exactly one device (and its home /24) and nothing else.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from libs.sim import rand
from libs.sim.config import SimConfig

CATEGORIES = ("beauty", "fashion", "electronics", "home", "food", "toys", "sports", "health")

ROLE_FARM = "matrix_farm"
ROLE_FAMILY = "family_shared_device"
ROLE_LOW_EFFORT = "low_effort"
ROLE_PIRATE = "pirate"
ROLE_LICENSED = "licensed_repost"
ROLE_HONEST = "honest"
ABUSE_ROLES = (ROLE_LOW_EFFORT, ROLE_PIRATE, ROLE_FARM)
LOOK_ALIKE_ROLES = (ROLE_FAMILY, ROLE_LICENSED)


def window_start(cfg: SimConfig, run_date: dt.date) -> dt.date:
    """First day of the simulated window ``[run_date - days + 1, run_date]``."""
    return run_date - dt.timedelta(days=cfg.days - 1)


def id_width(cfg: SimConfig) -> int:
    """Digits of the zero-padded creator number: ``cr_000123`` up to 1M creators, wider beyond."""
    return max(6, len(str(cfg.n_creators - 1)))


def creator_id(cfg: SimConfig, idx: Column) -> Column:
    return F.concat(F.lit("cr_"), F.lpad(idx.cast("string"), id_width(cfg), "0"))


def creator_idx(creator_id_col: Column) -> Column:
    """Inverse of :func:`creator_id`, so downstream generators re-derive hashes from the id alone."""
    return F.substring(creator_id_col, 4, 100).cast("long")


def _ip24(h: Column) -> Column:
    """An IPv4 /24 prefix ``a.b.c`` from a hash (first octet 1..223: unicast space)."""
    a = F.pmod(h, F.lit(223)) + F.lit(1)
    b = F.shiftrightunsigned(h, 8).bitwiseAND(F.lit(255))
    c = F.shiftrightunsigned(h, 16).bitwiseAND(F.lit(255))
    return F.concat_ws(".", a.cast("string"), b.cast("string"), c.cast("string"))


def _hex_id(prefix: str, h: Column) -> Column:
    return F.concat(F.lit(prefix), rand.hex64(h))


def accounts(spark: SparkSession, cfg: SimConfig, run_date: dt.date) -> DataFrame:
    """All creators with every internal column (``idx``, ``role``, group layout) the generators need.

    Not a feed: :func:`creators` and :func:`devices` select from it.
    """
    s, B = cfg.seed, cfg.block_size
    n = cfg.n_creators
    start = window_start(cfg, run_date)
    idx = F.col("idx")
    block = F.col("block")
    full_block = (block + F.lit(1)) * F.lit(B) <= F.lit(n)

    farm_block = full_block & rand.bernoulli(cfg.farm_block_probability, s, "farm_block", block)
    family_block = (full_block & ~farm_block
                    & rand.bernoulli(min(cfg.family_block_probability, 1.0), s, "family_block", block))
    outside = max(1.0 - cfg.matrix_farm - cfg.family_shared_device, 1e-12)
    t1 = cfg.low_effort / outside
    t2 = t1 + cfg.pirate / outside
    t3 = t2 + cfg.licensed_repost / outside
    u_role = rand.uniform(s, "role", idx)

    df = (
        spark.range(n).withColumnRenamed("id", "idx")
        .withColumn("block", F.floor(idx / F.lit(B)).cast("long"))
        .withColumn("pos", F.pmod(idx, F.lit(B)))
        .withColumn("farm_block", farm_block)
        .withColumn("family_block", family_block)
        .withColumn("group_size", F.when(F.col("farm_block"), rand.randint(s, "farm_size", cfg.farm_size_min, cfg.farm_size_max, block))
                    .when(F.col("family_block"), rand.randint(s, "family_size", 2, 3, block)))
        .withColumn("group_offset", rand.randint(s, "group_offset", 0, F.lit(B) - F.col("group_size"), block))
        .withColumn("group_pos", F.col("pos") - F.col("group_offset"))
        .withColumn("in_group", F.col("group_size").isNotNull() & (F.col("group_pos") >= 0)
                    & (F.col("group_pos") < F.col("group_size")))
        .withColumn("role",
                    F.when(F.col("in_group") & F.col("farm_block"), F.lit(ROLE_FARM))
                    .when(F.col("in_group") & F.col("family_block"), F.lit(ROLE_FAMILY))
                    .when(u_role < F.lit(t1), F.lit(ROLE_LOW_EFFORT))
                    .when(u_role < F.lit(t2), F.lit(ROLE_PIRATE))
                    .when(u_role < F.lit(t3), F.lit(ROLE_LICENSED))
                    .otherwise(F.lit(ROLE_HONEST)))
        .withColumn("group_pos", F.when(F.col("in_group"), F.col("group_pos")))
        .drop("in_group")
    )
    is_farm = F.col("role") == ROLE_FARM
    is_family = F.col("role") == ROLE_FAMILY
    own_market = rand.choice(cfg.markets, rand.uniform(s, "market", idx))
    group_market = rand.choice(cfg.markets, rand.uniform(s, "group_market", block))
    # Farm sign-ups come in a burst; camouflage spreads them over up to ~2 months.
    farm_spread = 2 + int(round(60 * cfg.camouflage))
    farm_signup_back = (rand.randint(s, "op_signup", 70 + farm_spread, 400 + farm_spread, block)
                        - rand.randint(s, "farm_signup", 0, farm_spread, idx))
    honest_signup_back = rand.randint(s, "signup", 1, 1500, idx)
    return (
        df.withColumn("creator_id", creator_id(cfg, idx))
        .withColumn("market", F.when(is_farm | is_family, group_market).otherwise(own_market))
        .withColumn("category", F.when(is_farm, rand.choice(CATEGORIES, rand.uniform(s, "op_category", block)))
                    .otherwise(rand.choice(CATEGORIES, rand.uniform(s, "category", idx))))
        .withColumn("signup_date", F.date_sub(F.lit(start), F.when(is_farm, farm_signup_back)
                                              .otherwise(honest_signup_back).cast("int")))
        .withColumn("operator_id", F.when(is_farm, F.concat(F.lit("op_"), F.lpad(block.cast("string"), 6, "0"))))
        .withColumn("family_id", F.when(is_family, F.concat(F.lit("fam_"), F.lpad(block.cast("string"), 6, "0"))))
        # Farm payouts funnel into 1 + floor(camouflage * (s-1) / 3) accounts of the operator.
        .withColumn("payment_account_id", F.when(
            is_farm, _hex_id("pa_", rand.hash64(s, "op_payment", block, F.pmod(
                F.col("group_pos"), F.lit(1) + F.floor(F.lit(cfg.camouflage) * (F.col("group_size") - 1) / 3))))
        ).otherwise(_hex_id("pa_", rand.hash64(s, "payment", idx))))
    )


def creators(spark: SparkSession, cfg: SimConfig, run_date: dt.date) -> DataFrame:
    """Creator snapshot as of ``run_date`` (``dt``), plus hidden ``truth_*`` columns.

    ``truth_abuse`` is an array (empty for non-abusers) so later slices can plant overlapping
    abuse without a schema change; ``truth_look_alike`` names the honest look-alike behaviour.
    """
    role = F.col("role")
    return accounts(spark, cfg, run_date).select(
        "creator_id", "market", "signup_date", "category", "payment_account_id",
        F.lit(run_date.isoformat()).alias("dt"),
        F.when(role.isin(*ABUSE_ROLES), F.array(role)).otherwise(F.array()).cast("array<string>").alias("truth_abuse"),
        F.col("operator_id").alias("truth_operator_id"),
        F.when(role.isin(*LOOK_ALIKE_ROLES), role).alias("truth_look_alike"),
        F.col("family_id").alias("truth_family_id"),
    )


def devices(spark: SparkSession, cfg: SimConfig, run_date: dt.date) -> DataFrame:
    """Device observations (snapshot as of ``run_date``): one row per (creator, device) pair.

    No truth columns: who shares what is derivable from ``truth_operator_id`` / ``truth_family_id``.
    """
    s = cfg.seed
    end_ts = int(dt.datetime.combine(run_date, dt.time(23, 59, 59), tzinfo=dt.timezone.utc).timestamp())
    idx, block, k = F.col("idx"), F.col("block"), F.col("k")
    is_farm = F.col("role") == ROLE_FARM
    is_family = F.col("role") == ROLE_FAMILY
    # Honest: 1 device, a second with p=.35, a third with p=.10. Farm accounts get extra personal
    # devices more often when camouflaged.
    extra_p = F.when(is_farm, F.lit(0.15 + 0.6 * cfg.camouflage)).otherwise(F.lit(0.35))
    n_dev = (F.lit(1) + rand.bernoulli(extra_p, s, "dev2", idx).cast("int")
             + (rand.bernoulli(extra_p, s, "dev2", idx) & rand.bernoulli(0.3, s, "dev3", idx)).cast("int"))
    dev_pool = F.ceil(F.col("group_size") / F.lit(3))       # farm device pool size
    ip_pool = F.when(F.col("group_size") > 6, F.lit(2)).otherwise(F.lit(1))
    farm_slot = F.when(k == 0, F.pmod(F.col("group_pos"), dev_pool)).otherwise(
        rand.randint(s, "farm_dev", 0, dev_pool - 1, idx, k))
    # Extra devices of a farm account are the operator's with p = 1 - camouflage, else personal.
    farm_pool_dev = is_farm & ((k == 0) | ~rand.bernoulli(cfg.camouflage, s, "farm_personal", idx, k))
    family_dev = is_family & (k == 0)
    first_dev_ts = F.col("signup_ts") + rand.randint(s, "first_seen0", 0, 6 * 3600, idx)
    later_ts = F.col("signup_ts") + F.floor(rand.uniform(s, "first_seen", idx, k)
                                             * (F.lit(end_ts) - F.col("signup_ts"))).cast("long")
    travel = rand.bernoulli(0.05, s, "travel", idx, k)
    return (
        accounts(spark, cfg, run_date)
        .withColumn("signup_ts", F.col("signup_date").cast("timestamp").cast("long"))
        .withColumn("k", F.explode(F.sequence(F.lit(0), n_dev - F.lit(1))))
        .select(
            "creator_id",
            F.when(farm_pool_dev, _hex_id("dv_", rand.hash64(s, "op_device", block, farm_slot)))
            .when(family_dev, _hex_id("dv_", rand.hash64(s, "family_device", block)))
            .otherwise(_hex_id("dv_", rand.hash64(s, "device", idx, k))).alias("device_id"),
            F.when(farm_pool_dev, _ip24(rand.hash64(s, "op_ip", block, F.pmod(F.col("group_pos"), ip_pool))))
            .when(family_dev, _ip24(rand.hash64(s, "family_ip", block)))
            .otherwise(_ip24(rand.hash64(s, "ip", idx, k))).alias("ip24"),
            # Farms operate from one place; honest creators occasionally log in while travelling.
            F.when(farm_pool_dev, rand.choice(cfg.markets, rand.uniform(s, "op_geo", block)))
            .when(travel, rand.choice(cfg.markets, rand.uniform(s, "travel_geo", idx, k)))
            .otherwise(F.col("market")).alias("geo"),
            F.timestamp_seconds(F.when(k == 0, first_dev_ts).otherwise(F.greatest(later_ts, first_dev_ts))).alias("first_seen"),
            F.lit(run_date.isoformat()).alias("dt"),
        )
    )
