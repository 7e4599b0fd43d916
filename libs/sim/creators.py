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

# Primary roles: every creator has exactly one (``truth_role``).
ROLE_FARM = "matrix_farm"
ROLE_SYBIL = "sybil"
ROLE_FAMILY = "family_shared_device"
ROLE_AGENCY = "agency_managed"
ROLE_LOW_EFFORT = "low_effort"
ROLE_PIRATE = "pirate"
ROLE_LICENSED = "licensed_repost"
ROLE_TRADED = "account_trading"
ROLE_HONEST = "honest"
# Overlay abuse types: stacked on a primary role in ``truth_abuse``.
ABUSE_FAKE_ENGAGEMENT = "fake_engagement"
ABUSE_MIGRATION = "migration"
ABUSE_ROLES = (ROLE_LOW_EFFORT, ROLE_PIRATE, ROLE_FARM, ROLE_SYBIL, ROLE_TRADED)
ABUSE_TYPES = ABUSE_ROLES + (ABUSE_FAKE_ENGAGEMENT, ABUSE_MIGRATION)
LOOK_ALIKE_ROLES = (ROLE_FAMILY, ROLE_LICENSED, ROLE_AGENCY)
AGENCY_DEVICE_K = 5        # device slot of an agency's office device (beside the creator's own 0..2)
PUBLIC_DEVICE_K = 6        # device slot of a shared public device
SECOND_HAND_K = 7          # device slot of a second-hand phone
PUBLIC_DEVICE_P = 0.04     # ordinary creators who also use a public/shared device
SECOND_HAND_P = 0.35       # ordinary creators who draw a second-hand phone candidate (hits a banned farm ~3%)
FRESH_CREATOR_P = 0.12     # ordinary creators who signed up within the last month
STATUS_ACTIVE = "active"
STATUS_BANNED = "banned"
MIGRATION_MARKET = "market"
MIGRATION_SCENARIO = "scenario"


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


def creator_user_id(seed: int, idx: Column) -> Column:
    """The user account behind a creator (creators browse, like and follow as users too).

    Hashed, like every user id, so a user id reveals nothing about the account's layout.
    """
    return F.concat(F.lit("us_"), rand.hex64(rand.hash64(seed, "creator_user", idx)))


def ring_id(ring: Column) -> Column:
    return F.concat(F.lit("ring_"), F.lpad(ring.cast("string"), 4, "0"))


def _ip24(h: Column) -> Column:
    """An IPv4 /24 prefix ``a.b.c`` from a hash (first octet 1..223: unicast space)."""
    a = F.pmod(h, F.lit(223)) + F.lit(1)
    b = F.shiftrightunsigned(h, 8).bitwiseAND(F.lit(255))
    c = F.shiftrightunsigned(h, 16).bitwiseAND(F.lit(255))
    return F.concat_ws(".", a.cast("string"), b.cast("string"), c.cast("string"))


def _hex_id(prefix: str, h: Column) -> Column:
    return F.concat(F.lit(prefix), rand.hex64(h))


def _other_choice(options: tuple[str, ...], current_u: Column, u: Column) -> Column:
    """An option different from ``choice(options, current_u)``: shift its index by 1..n-1."""
    n = len(options)
    cur = F.least(F.floor(current_u * F.lit(n)).cast("int"), F.lit(n - 1))
    shift = F.lit(1) + F.least(F.floor(u * F.lit(n - 1)).cast("int"), F.lit(n - 2))
    return F.element_at(F.array(*[F.lit(o) for o in options]), F.pmod(cur + shift, F.lit(n)) + F.lit(1))


def accounts(spark: SparkSession, cfg: SimConfig, run_date: dt.date) -> DataFrame:
    """All creators with every internal column (``idx``, ``role``, group layout) the generators need.

    Not a feed: :func:`creators`, :func:`devices` and the other generators select from it; build it
    once per run and pass it on. It is returned *checkpointed* (needs the session's checkpoint
    dir, set by :func:`libs.platform.session.get_spark`): the layout is a deep tree of hash
    expressions, and without a cut the optimizer substitutes it into every downstream projection
    and filter, the generated Java exceeds the JVM's 64 KB method limit and Spark falls back to the
    much slower interpreter (with a screen of compiler errors). A reliable checkpoint of one row per
    creator is cheap next to the feeds and survives executor loss, unlike ``localCheckpoint``.
    """
    s, B = cfg.seed, cfg.block_size
    n = cfg.n_creators
    start = window_start(cfg, run_date)
    idx = F.col("idx")
    block = F.col("block")
    full_block = (block + F.lit(1)) * F.lit(B) <= F.lit(n)
    # One uniform per block decides its group kind (salt kept from the farm-only layout, so farms
    # stay where they were when sybil clusters were added).
    u_block = rand.uniform(s, "farm_block", block)
    pf, ps, pm = cfg.farm_block_probability, cfg.sybil_block_probability, cfg.family_block_probability
    pa = cfg.agency_block_probability
    farm_block = full_block & (u_block < F.lit(pf))
    sybil_block = full_block & (u_block >= F.lit(pf)) & (u_block < F.lit(pf + ps))
    family_block = full_block & (u_block >= F.lit(pf + ps)) & (u_block < F.lit(pf + ps + pm))
    agency_block = full_block & (u_block >= F.lit(pf + ps + pm)) & (u_block < F.lit(pf + ps + pm + pa))
    outside = max(1.0 - cfg.grouped_share, 1e-12)
    thresholds = []
    cum = 0.0
    for role, rate in ((ROLE_LOW_EFFORT, cfg.low_effort), (ROLE_PIRATE, cfg.pirate),
                       (ROLE_LICENSED, cfg.licensed_repost), (ROLE_TRADED, cfg.account_trading)):
        cum += rate / outside
        thresholds.append((role, cum))
    u_role = rand.uniform(s, "role", idx)
    individual = F.lit(ROLE_HONEST)
    for role, t in reversed(thresholds):
        individual = F.when(u_role < F.lit(t), F.lit(role)).otherwise(individual)

    df = (
        spark.range(n).withColumnRenamed("id", "idx")
        .withColumn("block", F.floor(idx / F.lit(B)).cast("long"))
        .withColumn("pos", F.pmod(idx, F.lit(B)))
        .withColumn("farm_block", farm_block)
        .withColumn("sybil_block", sybil_block)
        .withColumn("family_block", family_block)
        .withColumn("agency_block", agency_block)
        .withColumn("group_size",
                    F.when(F.col("farm_block"), rand.randint(s, "farm_size", cfg.farm_size_min, cfg.farm_size_max, block))
                    .when(F.col("sybil_block"), rand.randint(s, "sybil_size", cfg.sybil_size_min, cfg.sybil_size_max, block))
                    .when(F.col("family_block"), rand.randint(s, "family_size", 2, 3, block))
                    .when(F.col("agency_block"), rand.randint(s, "agency_size", 4, 10, block)))
        .withColumn("group_offset", rand.randint(s, "group_offset", 0, F.lit(B) - F.col("group_size"), block))
        .withColumn("group_pos", F.col("pos") - F.col("group_offset"))
        .withColumn("in_group", F.col("group_size").isNotNull() & (F.col("group_pos") >= 0)
                    & (F.col("group_pos") < F.col("group_size")))
        .withColumn("role",
                    F.when(F.col("in_group") & F.col("farm_block"), F.lit(ROLE_FARM))
                    .when(F.col("in_group") & F.col("sybil_block"), F.lit(ROLE_SYBIL))
                    .when(F.col("in_group") & F.col("family_block"), F.lit(ROLE_FAMILY))
                    .when(F.col("in_group") & F.col("agency_block"), F.lit(ROLE_AGENCY))
                    .otherwise(individual))
        .withColumn("group_pos", F.when(F.col("in_group"), F.col("group_pos")))
        .drop("in_group")
    )
    is_farm = F.col("role") == ROLE_FARM
    is_sybil = F.col("role") == ROLE_SYBIL
    is_family = F.col("role") == ROLE_FAMILY
    is_traded = F.col("role") == ROLE_TRADED
    is_agency = F.col("role") == ROLE_AGENCY
    grouped = is_farm | is_sybil | is_family | is_agency
    u_market, u_group_market = rand.uniform(s, "market", idx), rand.uniform(s, "group_market", block)
    own_market = rand.choice(cfg.markets, u_market)
    group_market = rand.choice(cfg.markets, u_group_market)
    # Migration: a farm operator whose first accounts were banned. Those accounts (the first third
    # of the farm) are kept, banned, in the old market -- or, for a scenario migration, in the same
    # market, banned for content while the new accounts sell on the product shelf.
    migrating = is_farm & rand.bernoulli(cfg.migration, s, "migrate", block)
    kind = F.when(migrating, F.when(rand.bernoulli(0.7, s, "migration_kind", block), F.lit(MIGRATION_MARKET))
                  .otherwise(F.lit(MIGRATION_SCENARIO)))
    n_old = F.greatest(F.lit(1), F.floor(F.col("group_size") / F.lit(3)))
    old_account = migrating & (F.col("group_pos") < n_old)
    old_market = F.when(kind == MIGRATION_MARKET,
                        _other_choice(cfg.markets, u_group_market, rand.uniform(s, "old_market", block))
                        ).otherwise(group_market) if len(cfg.markets) > 1 else group_market
    # Fake-engagement customers: creators outside groups, each served by one ring.
    customer = (~grouped & F.lit(cfg.n_rings > 0)
                & rand.bernoulli(cfg.fake_engagement / outside, s, "customer", idx))
    # Farm sign-ups come in a burst; camouflage spreads them over up to ~2 months.
    farm_spread = 2 + int(round(60 * cfg.camouflage))
    farm_signup_back = (rand.randint(s, "op_signup", 70 + farm_spread, 400 + farm_spread, block)
                        - rand.randint(s, "farm_signup", 0, farm_spread, idx)
                        + F.when(old_account, F.lit(300)).otherwise(F.lit(0)))
    # The platform grows: a share of ordinary creators joined in the last month too (so being
    # fresh is no proof of being a sybil).
    honest_signup_back = F.when(rand.bernoulli(FRESH_CREATOR_P, s, "fresh_creator", idx),
                                rand.randint(s, "fresh_signup", 1 - cfg.days + 1, 30, idx)
                                ).otherwise(rand.randint(s, "signup", 1, 1500, idx))
    # Sybils are fresh: created in the 25 days before the window up to its second-to-last day.
    sybil_signup_back = rand.randint(s, "sybil_signup", 1 - cfg.days + 1, 25, idx)
    # Black-market accounts are aged (that is what buyers pay for).
    traded_signup_back = rand.randint(s, "traded_signup", 400, 1500, idx)
    trade_day = rand.randint(s, "trade_day", 1 if cfg.days > 1 else 0, max(cfg.days - 1, 0), idx)
    u_cat = rand.uniform(s, "category", idx)
    return (
        df.withColumn("creator_id", creator_id(cfg, idx))
        .withColumn("user_id", creator_user_id(s, idx))
        .withColumn("migration_kind", kind)
        .withColumn("old_account", F.coalesce(old_account, F.lit(False)))
        .withColumn("market", F.when(F.col("old_account"), old_market)
                    .when(is_farm | is_sybil | is_family | is_agency, group_market).otherwise(own_market))
        .withColumn("previous_market", F.when(migrating & ~F.col("old_account") & (kind == MIGRATION_MARKET), old_market))
        .withColumn("status", F.when(F.col("old_account"), F.lit(STATUS_BANNED)).otherwise(F.lit(STATUS_ACTIVE)))
        .withColumn("banned_date", F.when(F.col("old_account"), F.date_sub(
            F.lit(start), rand.randint(s, "ban_back", 5, 60, block).cast("int"))))
        .withColumn("original_category", rand.choice(CATEGORIES, u_cat))
        .withColumn("category", F.when(is_farm, rand.choice(CATEGORIES, rand.uniform(s, "op_category", block)))
                    .when(is_traded, _other_choice(CATEGORIES, u_cat, rand.uniform(s, "buyer_category", idx)))
                    .otherwise(F.col("original_category")))
        .withColumn("signup_date", F.date_sub(F.lit(start), F.when(is_farm, farm_signup_back)
                                              .when(is_sybil, sybil_signup_back)
                                              .when(is_traded, traded_signup_back)
                                              .otherwise(honest_signup_back).cast("int")))
        .withColumn("trade_date", F.when(is_traded, F.date_add(F.lit(start), trade_day.cast("int"))))
        .withColumn("operator_id", F.when(is_farm, F.concat(F.lit("op_"), F.lpad(block.cast("string"), 6, "0"))))
        .withColumn("sybil_cluster_id", F.when(is_sybil, F.concat(F.lit("syb_"), F.lpad(block.cast("string"), 6, "0"))))
        .withColumn("family_id", F.when(is_family, F.concat(F.lit("fam_"), F.lpad(block.cast("string"), 6, "0"))))
        .withColumn("agency_id", F.when(is_agency, F.concat(F.lit("ag_"), F.lpad(block.cast("string"), 6, "0"))))
        .withColumn("ring_id", F.when(customer, ring_id(rand.randint(s, "ring", 0, max(cfg.n_rings - 1, 0), idx))))
        # Farm payouts funnel into 1 + floor(camouflage * (s-1) / 3) accounts of the operator.
        # A traded account's payouts go to the buyer from the trade on (the snapshot shows the buyer's).
        .withColumn("payment_account_id", F.when(
            is_farm, _hex_id("pa_", rand.hash64(s, "op_payment", block, F.pmod(
                F.col("group_pos"), F.lit(1) + F.floor(F.lit(cfg.camouflage) * (F.col("group_size") - 1) / 3))))
        ).when(is_traded, _hex_id("pa_", rand.hash64(s, "buyer_payment", idx))
               ).otherwise(_hex_id("pa_", rand.hash64(s, "payment", idx))))
        .withColumn("previous_payment_account_id",
                    F.when(is_traded, _hex_id("pa_", rand.hash64(s, "payment", idx))))
        .checkpoint(eager=True)
    )


def creators(acc: DataFrame, run_date: dt.date) -> DataFrame:
    """Creator snapshot as of ``run_date`` (``dt``), plus hidden ``truth_*`` columns.

    ``truth_role`` is the creator's one primary role; ``truth_abuse`` lists every abuse type the
    creator commits, primary first (a low-effort seller may also buy fake engagement; a farm account
    of a migrated operator is ``[matrix_farm, migration]``), empty for honest creators.
    ``truth_look_alike`` names the honest look-alike behaviour. A traded account's snapshot shows
    the buyer's category and payout account (snapshots only carry current state).
    """
    role = F.col("role")
    migrated = F.col("migration_kind").isNotNull() & ~F.col("old_account")
    abuse = F.concat(
        F.when(role.isin(*ABUSE_ROLES), F.array(role)).otherwise(F.array()),
        F.when(migrated, F.array(F.lit(ABUSE_MIGRATION))).otherwise(F.array()),
        F.when(F.col("ring_id").isNotNull(), F.array(F.lit(ABUSE_FAKE_ENGAGEMENT))).otherwise(F.array()),
    ).cast("array<string>")
    return acc.select(
        "creator_id", "user_id", "market", "signup_date", "category", "payment_account_id", "status",
        F.lit(run_date.isoformat()).alias("dt"),
        role.alias("truth_role"),
        abuse.alias("truth_abuse"),
        F.col("operator_id").alias("truth_operator_id"),
        F.when(role.isin(*LOOK_ALIKE_ROLES), role).alias("truth_look_alike"),
        F.col("family_id").alias("truth_family_id"),
        F.col("agency_id").alias("truth_agency_id"),
        F.col("sybil_cluster_id").alias("truth_sybil_cluster_id"),
        F.col("ring_id").alias("truth_ring_id"),
        F.col("trade_date").alias("truth_trade_date"),
        F.when(role == ROLE_TRADED, F.col("original_category")).alias("truth_previous_category"),
        F.when(migrated, F.col("migration_kind")).alias("truth_migration_kind"),
        F.col("previous_market").alias("truth_previous_market"),
        F.col("banned_date").alias("truth_banned_date"),
    )


def _ts(d: dt.date, t: dt.time) -> int:
    return int(dt.datetime.combine(d, t, tzinfo=dt.timezone.utc).timestamp())


def devices(acc: DataFrame, cfg: SimConfig, run_date: dt.date) -> DataFrame:
    """Device observations (snapshot as of ``run_date``): one row per (creator, device) pair.

    ``first_seen`` / ``last_seen`` bound the device's logins (``libs.sim.activity`` generates the
    login events inside them). No truth columns: who shares what is derivable from
    ``truth_operator_id`` / ``truth_family_id``, and a trade from ``truth_trade_date``.

    A traded account keeps the seller's devices up to the trade, then logs in from 1-2 buyer
    devices on a new /24, usually from another market (a VPN to the old market with probability
    ``0.6 * camouflage``). A banned account's devices go quiet at the ban -- and show up again
    on the migrated operator's new accounts, which is what links them.
    """
    s = cfg.seed
    end_ts = _ts(run_date, dt.time(23, 59, 59))
    idx, block, k = F.col("idx"), F.col("block"), F.col("k")
    is_farm = F.col("role") == ROLE_FARM
    is_family = F.col("role") == ROLE_FAMILY
    is_traded = F.col("role") == ROLE_TRADED
    # Honest: 1 device, a second with p=.35, a third with p=.10. Farm accounts get extra personal
    # devices more often when camouflaged.
    extra_p = F.when(is_farm, F.lit(0.15 + 0.6 * cfg.camouflage)).otherwise(F.lit(0.35))
    n_dev = (F.lit(1) + rand.bernoulli(extra_p, s, "dev2", idx).cast("int")
             + (rand.bernoulli(extra_p, s, "dev2", idx) & rand.bernoulli(0.3, s, "dev3", idx)).cast("int"))
    # Buyer devices of a traded account are k = 10, 11 (disjoint from the seller's k < 3).
    n_buyer = F.when(is_traded, F.lit(1) + rand.bernoulli(0.5, s, "buyer_dev2", idx).cast("int")).otherwise(F.lit(0))
    ordinary = F.col("role").isin(ROLE_HONEST, ROLE_LOW_EFFORT, ROLE_PIRATE, ROLE_LICENSED)
    # Honest device overlaps beyond families and agencies: shared/public devices (a shop's demo
    # phone, a cafe tablet) used by a couple of unrelated creators each ...
    public_user = ordinary & rand.bernoulli(PUBLIC_DEVICE_P, s, "public_device_user", idx)
    n_public = max(1, int(cfg.n_creators * PUBLIC_DEVICE_P / 2))      # ~2 creators per public device
    public_slot = rand.randint(s, "public_device", 0, n_public - 1, idx)
    # ... and second-hand phones: a creator draws a random id block; if that block is a migrated
    # operator's farm, the phone is the one its first banned account used (pool slot 0), bought
    # after the ban. Recomputes the block's layout from its number alone (as accounts() does).
    n_blocks = max(1, cfg.n_creators // cfg.block_size)
    cand = rand.randint(s, "second_hand_block", 0, n_blocks - 1, idx)
    cand_is_banned_farm = ((rand.uniform(s, "farm_block", cand) < F.lit(cfg.farm_block_probability))
                           & rand.bernoulli(cfg.migration, s, "migrate", cand))
    second_hand = ordinary & rand.bernoulli(SECOND_HAND_P, s, "second_hand", idx) & cand_is_banned_farm
    cand_ban_ts = F.date_sub(F.lit(window_start(cfg, run_date)),
                             rand.randint(s, "ban_back", 5, 60, cand).cast("int")).cast("timestamp").cast("long")
    ks = F.concat(F.sequence(F.lit(0), n_dev - F.lit(1)),
                  F.when(n_buyer > 0, F.sequence(F.lit(10), F.lit(9) + n_buyer)).otherwise(F.array().cast("array<int>")),
                  F.when(F.col("role") == ROLE_AGENCY, F.array(F.lit(AGENCY_DEVICE_K))).otherwise(F.array().cast("array<int>")),
                  F.when(public_user, F.array(F.lit(PUBLIC_DEVICE_K))).otherwise(F.array().cast("array<int>")),
                  F.when(second_hand, F.array(F.lit(SECOND_HAND_K))).otherwise(F.array().cast("array<int>")))
    buyer_dev = k >= 10
    public_dev = k == PUBLIC_DEVICE_K
    second_hand_dev = k == SECOND_HAND_K
    # An agency's managed creators also log in from the agency's office computer (its office /24).
    office_dev = k == AGENCY_DEVICE_K
    dev_pool = F.ceil(F.col("group_size") / F.lit(3))       # farm device pool size
    ip_pool = F.when(F.col("group_size") > 6, F.lit(2)).otherwise(F.lit(1))
    farm_slot = F.when(k == 0, F.pmod(F.col("group_pos"), dev_pool)).otherwise(
        rand.randint(s, "farm_dev", 0, dev_pool - 1, idx, k))
    # Extra devices of a farm account are the operator's with p = 1 - camouflage, else personal.
    farm_pool_dev = is_farm & ((k == 0) | ~rand.bernoulli(cfg.camouflage, s, "farm_personal", idx, k))
    family_dev = is_family & (k == 0)
    first_dev_ts = F.col("signup_ts") + rand.randint(s, "first_seen0", 0, 6 * 3600, idx)
    later_ts = F.col("signup_ts") + F.floor(rand.uniform(s, "first_seen", idx, k)
                                             * (F.col("until_ts") - F.col("signup_ts"))).cast("long")
    trade_ts = F.col("trade_date").cast("timestamp").cast("long")
    buyer_first = trade_ts + rand.randint(s, "buyer_first_seen", 0, 6 * 3600, idx, k)
    first_seen = (F.when(buyer_dev, buyer_first).when(k == 0, first_dev_ts)
                  .when(second_hand_dev, F.greatest(later_ts, cand_ban_ts + F.lit(86400), F.col("signup_ts")))
                  .otherwise(F.greatest(later_ts, first_dev_ts)))
    # Seen until the snapshot (minus up to a day and a half of inactivity), the ban, or the trade.
    quiet = rand.randint(s, "quiet", 0, 36 * 3600, idx, k)
    last_seen = F.greatest(F.col("first_sec"), F.when(buyer_dev, F.lit(end_ts)).otherwise(F.col("until_ts")) - quiet)
    travel = rand.bernoulli(0.05, s, "travel", idx, k)
    buyer_geo = F.when(rand.bernoulli(0.6 * cfg.camouflage, s, "buyer_vpn", idx), F.col("market")).otherwise(
        _other_choice(cfg.markets, rand.uniform(s, "market", idx), rand.uniform(s, "buyer_geo", idx))
        if len(cfg.markets) > 1 else F.col("market"))
    return (
        acc
        .withColumn("signup_ts", F.col("signup_date").cast("timestamp").cast("long"))
        # Banned accounts stop at the ban, a sold account's seller devices at the trade; everyone
        # else is observed up to the snapshot.
        .withColumn("until_ts", F.coalesce(F.col("banned_date").cast("timestamp").cast("long"), trade_ts, F.lit(end_ts)))
        .withColumn("k", F.explode(ks))
        .withColumn("first_sec", first_seen)
        .select(
            "creator_id",
            F.when(buyer_dev, _hex_id("dv_", rand.hash64(s, "buyer_device", idx, k)))
            .when(office_dev, _hex_id("dv_", rand.hash64(s, "agency_device", block)))
            .when(public_dev, _hex_id("dv_", rand.hash64(s, "public_device_id", public_slot)))
            .when(second_hand_dev, _hex_id("dv_", rand.hash64(s, "op_device", cand, F.lit(0).cast("long"))))
            .when(farm_pool_dev, _hex_id("dv_", rand.hash64(s, "op_device", block, farm_slot)))
            .when(family_dev, _hex_id("dv_", rand.hash64(s, "family_device", block)))
            .otherwise(_hex_id("dv_", rand.hash64(s, "device", idx, k))).alias("device_id"),
            F.when(buyer_dev, _ip24(rand.hash64(s, "buyer_ip", idx)))
            .when(office_dev, _ip24(rand.hash64(s, "agency_ip", block)))
            .when(public_dev, _ip24(rand.hash64(s, "public_ip", public_slot)))
            .when(farm_pool_dev, _ip24(rand.hash64(s, "op_ip", block, F.pmod(F.col("group_pos"), ip_pool))))
            .when(family_dev, _ip24(rand.hash64(s, "family_ip", block)))
            .otherwise(_ip24(rand.hash64(s, "ip", idx, k))).alias("ip24"),
            # Farms operate from one place; honest creators occasionally log in while travelling.
            F.when(buyer_dev, buyer_geo)
            .when(office_dev, F.col("market"))
            .when(farm_pool_dev, rand.choice(cfg.markets, rand.uniform(s, "op_geo", block)))
            .when(travel, rand.choice(cfg.markets, rand.uniform(s, "travel_geo", idx, k)))
            .otherwise(F.col("market")).alias("geo"),
            F.col("first_sec"),
            last_seen.alias("last_sec"),
        )
        # A farm account's extra device can be the operator's pool device it already uses: one
        # row per (creator, device), seen over the union of its intervals. Address and geo of a pool
        # device are the operator's, identical in both rows, so min() merely picks that value.
        .groupBy("creator_id", "device_id")
        .agg(F.min("ip24").alias("ip24"), F.min("geo").alias("geo"),
             F.timestamp_seconds(F.min("first_sec")).alias("first_seen"),
             F.timestamp_seconds(F.max("last_sec")).alias("last_seen"))
        .withColumn("dt", F.lit(run_date.isoformat()))
    )
