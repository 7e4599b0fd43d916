"""Moderation history: the *partial, noisy* enforcement labels a detector would be trained on.

Real label sets are nothing like the ground truth, and a detector evaluated only against them
looks better than it is. So, deliberately:

* only a share ``cfg.caught`` of bad actors were ever enforced against (the rest never got caught);
* a caught actor's recorded reason is redrawn at random with probability ``REASON_NOISE``
  (moderators mislabel: a farm account filed as spam);
* honest creators are enforced against at ``cfg.false_enforcement``, and the honest look-alikes
  (families sharing a phone, licensed reposters) ``LOOK_ALIKE_FP_FACTOR`` times as often -- half of
  those decisions were overturned on appeal, the rest stand;
* every banned account of a migrated operator has its ban (that is what makes it a migration).

Decisions never postdate ``run_date`` and never predate what they sanction: an account is never
sanctioned for a trade before the trade happened.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from libs.sim import rand
from libs.sim.config import SimConfig
from libs.sim.creators import MIGRATION_SCENARIO, ROLE_AGENCY, ROLE_FAMILY, ROLE_LICENSED, STATUS_BANNED

# Reason vocabulary of the enforcement tool (not the simulator's abuse names).
REASON_OF_ABUSE = {"low_effort": "low_quality_selling", "pirate": "copyright", "matrix_farm": "account_farm",
                   "sybil": "fake_accounts", "account_trading": "account_transfer",
                   "fake_engagement": "engagement_manipulation", "migration": "ban_evasion"}
REASONS = tuple(sorted(set(REASON_OF_ABUSE.values()) | {"spam", "misleading_claims", "content_violation"}))
REASON_NOISE = 0.15          # recorded reason is a random other one
LOOK_ALIKE_FP_FACTOR = 3.0   # look-alikes draw wrongful enforcement this much more often
OVERTURNED_P = 0.5           # share of wrongful decisions reversed on appeal
ACTIONS = ("warning", "strike")


def _reason_of(abuse: Column) -> Column:
    expr = F.lit("spam")
    for a, r in REASON_OF_ABUSE.items():
        expr = F.when(abuse == a, F.lit(r)).otherwise(expr)
    return expr


def history(acc: DataFrame, creators_df: DataFrame, cfg: SimConfig, run_date: dt.date) -> DataFrame:
    """Enforcement decisions up to ``run_date``: case_id, creator_id, action, reason, decided_at,
    overturned, dt (the snapshot date), plus ``truth_correct`` (the decision matches a real abuse).

    ``creators_df`` is :func:`libs.sim.creators.creators` (for ``truth_abuse``).
    """
    s = cfg.seed
    end_ts = int(dt.datetime.combine(run_date, dt.time(23, 59, 59), tzinfo=dt.timezone.utc).timestamp())
    abuse = F.col("truth_abuse")
    is_bad = F.size(abuse) > 0
    banned = F.col("status") == STATUS_BANNED
    look_alike = F.col("role").isin(ROLE_FAMILY, ROLE_LICENSED, ROLE_AGENCY)
    fp_p = F.lit(cfg.false_enforcement) * F.when(look_alike, F.lit(LOOK_ALIKE_FP_FACTOR)).otherwise(F.lit(1.0))
    caught = is_bad & ~banned & rand.bernoulli(cfg.caught, s, "caught", "creator_id")
    wrongful = ~is_bad & ~banned & rand.bernoulli(fp_p, s, "wrongful", "creator_id")
    # The sanctioned behaviour starts at sign-up -- or at the trade for a traded account.
    since = F.coalesce(F.col("trade_date"), F.col("signup_date")).cast("timestamp").cast("long")
    decided = since + F.floor(rand.uniform(s, "decided", "creator_id") * (F.lit(end_ts) - since)).cast("long")
    true_reason = _reason_of(F.element_at(abuse, rand.randint(s, "reason_pick", 1, F.size(abuse), "creator_id").cast("int")))
    noisy = rand.bernoulli(REASON_NOISE, s, "reason_noise", "creator_id")
    random_reason = rand.choice(REASONS, rand.uniform(s, "random_reason", "creator_id"))
    ban_reason = F.when(F.col("migration_kind") == MIGRATION_SCENARIO, F.lit("content_violation")).otherwise(
        F.lit(REASON_OF_ABUSE["matrix_farm"]))
    rows = (
        acc.select("creator_id", "role", "status", "signup_date", "trade_date", "banned_date", "migration_kind")
        .join(creators_df.select("creator_id", "truth_abuse"), "creator_id")
        .where(banned | caught | wrongful)
        .select(
            "creator_id",
            F.when(banned, F.lit("ban")).otherwise(rand.choice(ACTIONS, rand.uniform(s, "action", "creator_id"),
                                                               weights=[0.6, 0.4])).alias("action"),
            F.when(banned, ban_reason).when(wrongful | noisy, random_reason).otherwise(true_reason).alias("reason"),
            F.timestamp_seconds(F.when(banned, F.col("banned_date").cast("timestamp").cast("long")
                                       + rand.randint(s, "ban_ts", 0, 86399, "creator_id"))
                                .otherwise(F.least(decided, F.lit(end_ts)))).alias("decided_at"),
            (wrongful & rand.bernoulli(OVERTURNED_P, s, "overturned", "creator_id")).alias("overturned"),
            (banned | caught).alias("truth_correct"),
        )
    )
    return rows.select(
        F.concat(F.lit("mc_"), rand.hex64(rand.hash64(s, "case_id", "creator_id"))).alias("case_id"),
        "creator_id", "action", "reason", "decided_at", "overturned",
        F.lit(run_date.isoformat()).alias("dt"), "truth_correct",
    )
