"""Account activity feeds: login events (from the login service) and payout withdrawals (from payments).

Logins are drawn per (device, day) inside the device's observed interval ``[first_seen,
last_seen]`` from the devices snapshot, so the two feeds can never contradict each other: a
traded account's seller devices stop logging in at the trade and the buyer's start; a banned
account's devices go quiet at the ban. Withdrawals go to the payout account of the time: the
seller's before a trade, the buyer's after it -- the payout switch is one of the trade's traces.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from libs.sim import commerce, rand
from libs.sim.config import SimConfig
from libs.sim.creators import ROLE_FARM, STATUS_ACTIVE, window_start

LOGIN_DAY_P = 0.55          # a device in use logs in on a given day with this probability
MAX_LOGINS_PER_DAY = 3      # 1..3 sessions on a day with a login
WITHDRAW_DAY_P = 1 / 7      # honest creators cash out about weekly
FARM_WITHDRAW_DAY_P = 0.4   # farms drain their accounts far more often
WITHDRAW_MEDIAN_USD = 120.0


def _day_bounds(run_date: dt.date, days: int) -> tuple[int, int]:
    """Epoch seconds of the window's first instant and last second (UTC)."""
    first = dt.datetime.combine(run_date - dt.timedelta(days=days - 1), dt.time(), tzinfo=dt.timezone.utc)
    start = int(first.timestamp())
    return start, start + days * 86400 - 1


def logins(devices_df: DataFrame, cfg: SimConfig, run_date: dt.date) -> DataFrame:
    """Login events in the window: login_id, creator_id, device_id, ip24, geo, ts, dt."""
    s = cfg.seed
    w0, w1 = _day_bounds(run_date, cfg.days)
    first, last = F.col("first_seen").cast("long"), F.col("last_seen").cast("long")
    day_start = F.lit(w0) + F.col("d") * F.lit(86400)
    lo = F.greatest(first, day_start)
    hi = F.least(last, day_start + F.lit(86399))
    keys = ("creator_id", "device_id", "d", "n")
    return (
        devices_df
        .withColumn("d", F.explode(F.sequence(F.lit(0), F.lit(cfg.days - 1))))
        .where((day_start + F.lit(86399) >= first) & (day_start <= last)
               & rand.bernoulli(LOGIN_DAY_P, s, "login_day", "creator_id", "device_id", "d"))
        .withColumn("n", F.explode(F.sequence(F.lit(1), rand.randint(s, "logins", 1, MAX_LOGINS_PER_DAY,
                                                                     "creator_id", "device_id", "d"))))
        .withColumn("ts_s", lo + F.floor(rand.uniform(s, "login_ts", *keys) * (hi - lo + F.lit(1))).cast("long"))
        .select(
            F.concat(F.lit("lg_"), rand.hex64(rand.hash64(s, "login_id", *keys))).alias("login_id"),
            "creator_id", "device_id", "ip24", "geo",
            F.timestamp_seconds("ts_s").alias("ts"),
            F.date_format(F.timestamp_seconds("ts_s"), "yyyy-MM-dd").alias("dt"),
        )
    )


def withdrawals(acc: DataFrame, cfg: SimConfig, run_date: dt.date) -> DataFrame:
    """Payout requests in the window: withdrawal_id, creator_id, payment_account_id, amount, currency, requested_at, dt."""
    s = cfg.seed
    start = window_start(cfg, run_date)
    day = F.date_add(F.lit(start), F.col("d"))
    p = F.when(F.col("role") == ROLE_FARM, F.lit(FARM_WITHDRAW_DAY_P)).otherwise(F.lit(WITHDRAW_DAY_P))
    account = F.when(F.col("trade_date").isNotNull() & (day < F.col("trade_date")),
                     F.col("previous_payment_account_id")).otherwise(F.col("payment_account_id"))
    usd = F.round(F.lit(WITHDRAW_MEDIAN_USD) * F.exp(rand.normal(s, "withdraw_amount", "creator_id", "d", sd=0.9)), 2)
    cur = commerce.currency(F.col("market"))
    ts = F.col("day_ts") + rand.randint(s, "withdraw_ts", 0, 86399, "creator_id", "d")
    return (
        acc.where(F.col("status") == STATUS_ACTIVE)
        .withColumn("d", F.explode(F.sequence(F.lit(0), F.lit(cfg.days - 1))))
        .where((day > F.col("signup_date")) & rand.bernoulli(p, s, "withdraw_day", "creator_id", "d"))
        .withColumn("day_ts", day.cast("timestamp").cast("long"))
        .withColumn("currency", cur)
        .select(
            F.concat(F.lit("wd_"), rand.hex64(rand.hash64(s, "withdrawal_id", "creator_id", "d"))).alias("withdrawal_id"),
            "creator_id",
            account.alias("payment_account_id"),
            commerce.local_price(usd, F.col("currency")).alias("amount"),
            "currency",
            F.timestamp_seconds(ts).alias("requested_at"),
            F.date_format(F.timestamp_seconds(ts), "yyyy-MM-dd").alias("dt"),
        )
    )
