"""Black-market account trading: a per-creator change-point scan over the run's window.

Why a change point
------------------
A bought account is valuable *because* of its history (age, followers, reputation), so the buyer
keeps the account and changes everything behind it at once: the seller's phones stop and the
buyer's start (on another network, usually from another country), the shop is restocked in the
buyer's category (the seller's listings removed), the posting rhythm becomes the buyer's, and the
buyer often tops up the audience with a bought follower package right after the hand-over. No
single one of these is proof -- people buy new phones, travel, add a product line, have a video go
viral -- but *several at the same day* is what a sale looks like. So instead of thresholding each
signal on its own, we look for the one day that best splits the creator's history into "before"
and "after" on all signals together.

The scan
--------
Per creator, the *active days* are the UTC days on which the account acted: a login, a published
video or a listing listed; everything before the run's window (the listings snapshot reaches back
to the shop's opening) counts as one single day, "before the window" -- the old catalogue is a
genuine before side, but years of listing history must not count as many days. Every active day
``d`` with at least ``min_days_each_side`` active days before it and at least
``min_days_each_side`` active days from ``d`` on is a candidate change date (before = earlier than
``d``, after = ``d`` and later). A creator with one side only (a fresh creator seen on a single
day) gets no candidate and no row. For each candidate, six components in ``[0, 1]`` compare the
two sides:

``device_turnover``
    Jaccard distance ``1 - |B & A| / |B | A|`` between the device sets of the logins before (B) and
    after (A): 1 when every device changed, 0.5 when one new phone joins one old one.
``ip_turnover``
    The same on the /24 prefixes of the logins (a new phone at home keeps the home /24).
``geo_shift``
    Total-variation distance between the login-geo distributions (login counts per market); a
    short trip moves only a share of the after side's logins.
``category_shift``
    Total-variation distance between the category mix of the catalogue before ``d`` (every listing
    listed before ``d``, whatever its status now) and the catalogue after it (listings listed on or
    after ``d`` plus earlier ones still active). Counted only when listings were added on or after
    ``d``: without a new listing nothing in the catalogue can be attributed to ``d``. Listings
    are a snapshot (no removal time), which is why old *removed* listings count on the before side
    only.
``rhythm_shift``
    How far the posting peak moved: circular distance (hours, 0..12) between the mean posting
    hour of the videos before and after, minus ``rhythm_tolerance_hours`` (an honest creator's own
    day-to-day spread), scaled to ``[0, 1]``. Needs ``min_videos_each_side`` videos per side.
``follow_burst``
    Follows received in ``[d 00:00, d + burst_hours)`` beyond what the creator's follow rate before
    ``d`` (since the window's first day or the sign-up, whichever is later) predicts:
    ``excess / max(min_burst_follows, burst_multiple * expected)``, clipped to ``[0, 1]``. Full
    marks need an excess of ``min_burst_follows`` follows *and* of ``burst_multiple`` times the
    normal rate, so a big creator's ordinary day is no burst.

A component whose inputs are missing on either side is 0 (no evidence, not negative evidence).

``score = sum(w_i * component_i) / sum(w_i)`` -- a weighted mean, so it lies in ``[0, 1]`` whatever
the weights, and a reviewer can read off which signals carried it. Default weights: device 1,
/24 0.5 (it mostly moves with the devices), geo 1, catalogue 2, rhythm 0.5 (noisy: few videos a
day), follower burst 1.5 (total 6.5). The business changing hands (catalogue, bought audience)
weighs more than the account-control signals, because those alone are what the honest
look-alikes show: a new phone on a new network abroad reaches (1 + 0.5 + 1) / 6.5 = 0.38, while a
catalogue switch with a follower burst reaches 3.5 / 6.5 = 0.54 even when the window holds no
login on one side of the trade. :func:`traded_accounts` flags from 0.5.
The candidate with the highest score is the creator's change point; ties go to the *latest* day,
i.e. the first day on which the new regime is visible (the days between the seller's last login
and the buyer's first one all split the devices perfectly).

Inputs are the run window's events, read from silver by the caller: ``logins(creator_id,
device_id, ip24, geo, ts)``, ``videos(creator_id, published_at)``, ``listings(creator_id, category,
listed_at, listing_status)`` (the snapshot, so listings listed long before the window are in it),
``follows(creator_id, user_id, ts)`` (follows received) and ``creators(creator_id, signup_date)``:
only creators of that table are scanned, and the follow baseline never starts before sign-up.
Days are UTC days of epoch seconds, independent of the session time zone; the window's first day
is the earliest login, video or follow in the inputs (of any creator).

Distribution: the four feeds are unioned into one narrow event frame and scanned with
``groupBy(creator_id).applyInPandas``: the scan is sequential per creator and a creator's window
is small (hundreds of rows, a bought-follower package at most ~600), while the number of creators
is what grows. Nothing is collected to the driver.
"""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

from schemas.syndicates import DETECTOR_COLUMNS

__all__ = ["CHANGE_POINT_COLUMNS", "COMPONENTS", "change_points", "traded_accounts"]

COMPONENTS = ("device_turnover", "ip_turnover", "geo_shift", "category_shift", "rhythm_shift", "follow_burst")
CHANGE_POINT_COLUMNS = ["creator_id", "change_date", "score", *COMPONENTS, "evidence"]

SYNDICATE_PREFIX = "trade:"
ENTITY_TYPE = "creator"
ROLE = "account"

_KIND_LOGIN, _KIND_VIDEO, _KIND_LISTING, _KIND_FOLLOW = "login", "video", "listing", "follow"
_DAY_S = 86400
_EPOCH = dt.date(1970, 1, 1)
_TIE_EPS = 1e-9   # scores equal up to float noise count as a tie (resolved to the latest day)

_REQUIRED = {
    "logins": ("creator_id", "device_id", "ip24", "geo", "ts"),
    "videos": ("creator_id", "published_at"),
    "listings": ("creator_id", "category", "listed_at", "listing_status"),
    "follows": ("creator_id", "user_id", "ts"),
    "creators": ("creator_id", "signup_date"),
}

# One narrow row per observation: what each kind carries in a/b/c is documented at the union.
_EVENT_SCHEMA = StructType([
    StructField("creator_id", StringType(), False),
    StructField("kind", StringType(), False),
    StructField("sec", LongType(), True),
    StructField("a", StringType(), True),
    StructField("b", StringType(), True),
    StructField("c", StringType(), True),
    StructField("signup_day", LongType(), True),
    StructField("window_day", LongType(), False),
])

_SCAN_SCHEMA = StructType([
    StructField("creator_id", StringType(), False),
    StructField("change_day", LongType(), False),
    StructField("score", DoubleType(), False),
    *[StructField(c, DoubleType(), False) for c in COMPONENTS],
    StructField("evidence", StringType(), False),
])


# --- validation ---------------------------------------------------------------------------------

def _check_columns(name: str, df: DataFrame) -> None:
    missing = [c for c in _REQUIRED[name] if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it needs {list(_REQUIRED[name])}")


def _check_params(min_days_each_side: int, weights: dict[str, float], burst_hours: float,
                  min_burst_follows: float, burst_multiple: float, rhythm_tolerance_hours: float,
                  min_videos_each_side: int) -> None:
    if isinstance(min_days_each_side, bool) or not isinstance(min_days_each_side, int) or min_days_each_side < 1:
        raise ValueError(f"min_days_each_side must be an int >= 1, got {min_days_each_side!r}")
    if isinstance(min_videos_each_side, bool) or not isinstance(min_videos_each_side, int) or min_videos_each_side < 1:
        raise ValueError(f"min_videos_each_side must be an int >= 1, got {min_videos_each_side!r}")
    for name, w in weights.items():
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w) or w < 0:
            raise ValueError(f"weight {name} must be a finite number >= 0, got {w!r}")
    if sum(weights.values()) <= 0:
        raise ValueError("at least one component weight must be > 0")
    for name, v in (("burst_hours", burst_hours), ("min_burst_follows", min_burst_follows),
                    ("burst_multiple", burst_multiple)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    if (not isinstance(rhythm_tolerance_hours, (int, float)) or isinstance(rhythm_tolerance_hours, bool)
            or not 0 <= rhythm_tolerance_hours < 12):
        raise ValueError(f"rhythm_tolerance_hours must be in [0, 12), got {rhythm_tolerance_hours!r}")


# --- per-creator scan (numpy on one creator's rows; no Spark) -------------------------------------

def _presence(codes: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """Which of ``n`` coded values occur among ``codes[mask]``."""
    out = np.zeros(n, dtype=bool)
    out[codes[mask]] = True
    return out


def _jaccard_distance(before: np.ndarray, after: np.ndarray) -> float:
    """``1 - |B & A| / |B | A|`` of two presence vectors; 0 when either side is empty."""
    if not before.any() or not after.any():
        return 0.0
    return float(1.0 - (before & after).sum() / (before | after).sum())


def _tv_distance(before: np.ndarray, after: np.ndarray) -> float:
    """Total-variation distance between two count vectors; 0 when either side is empty."""
    nb, na = before.sum(), after.sum()
    if nb == 0 or na == 0:
        return 0.0
    return float(0.5 * np.abs(before / nb - after / na).sum())


def _mean_hour(sin_sum: float, cos_sum: float) -> float:
    """Circular mean hour of day (0..24) from the summed unit vectors of the posting times."""
    return (math.atan2(sin_sum, cos_sum) / (2 * math.pi) * 24) % 24


def _mode(counts: np.ndarray, uniques: np.ndarray) -> str:
    """Most frequent value; ties to the alphabetically first (deterministic evidence text)."""
    return sorted(uniques[counts == counts.max()])[0]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _scan_creator(pdf: pd.DataFrame, p: dict) -> pd.DataFrame:
    """Best change point of one creator: 0 or 1 row of ``_SCAN_SCHEMA``.

    Values are coded to small integers once, so each candidate day costs a few vector
    operations (presence vectors, bincounts, binary searches) instead of pandas group-bys: the
    scan runs once per creator, and the number of creators is what grows.
    """
    columns = [f.name for f in _SCAN_SCHEMA.fields]
    kind = pdf["kind"].to_numpy()
    sec = pdf["sec"].to_numpy(dtype=np.int64)
    day = sec // _DAY_S
    a, b, c = pdf["a"].to_numpy(dtype=object), pdf["b"].to_numpy(dtype=object), pdf["c"].to_numpy(dtype=object)
    window_day = int(pdf["window_day"].iloc[0])
    is_l, is_v = kind == _KIND_LOGIN, kind == _KIND_VIDEO
    is_s, is_f = kind == _KIND_LISTING, kind == _KIND_FOLLOW
    l_day, v_day, s_day = day[is_l], day[is_v], day[is_s]

    # Active days; the whole history before the window (listings listed long ago) is one day.
    acts = np.concatenate([l_day, v_day, s_day])
    active = np.unique(np.where(acts < window_day, window_day - 1, acts))
    m = p["min_days_each_side"]
    candidates = active[m:len(active) - m + 1]
    if len(candidates) == 0:
        return pd.DataFrame(columns=columns)

    dev, dev_u = pd.factorize(a[is_l])
    ip, ip_u = pd.factorize(b[is_l])
    geo, geo_u = pd.factorize(c[is_l])
    cat, cat_u = pd.factorize(a[is_s])
    s_active = b[is_s] == "active"
    ang = (sec[is_v] % _DAY_S) / _DAY_S * 2 * math.pi
    v_sin, v_cos = np.sin(ang), np.cos(ang)
    f_sec = np.sort(sec[is_f])
    signup = pdf["signup_day"].iloc[0]
    base_start = window_day if pd.isna(signup) else max(window_day, int(signup))
    burst_s = p["burst_hours"] * 3600.0
    weights, wsum = p["weights"], sum(p["weights"].values())
    tol = p["rhythm_tolerance_hours"]

    best = None
    for d in candidates.tolist():
        lb, la = l_day < d, l_day >= d
        comp = {
            "device_turnover": _jaccard_distance(_presence(dev, lb, len(dev_u)), _presence(dev, la, len(dev_u))),
            "ip_turnover": _jaccard_distance(_presence(ip, lb, len(ip_u)), _presence(ip, la, len(ip_u))),
            "geo_shift": _tv_distance(np.bincount(geo[lb], minlength=len(geo_u)),
                                      np.bincount(geo[la], minlength=len(geo_u))),
        }
        new = s_day >= d
        cat_b = np.bincount(cat[~new], minlength=len(cat_u))
        cat_a = np.bincount(cat[new | s_active], minlength=len(cat_u))
        comp["category_shift"] = _tv_distance(cat_b, cat_a) if new.any() else 0.0
        vb = v_day < d
        nvb, nva = int(vb.sum()), int((~vb).sum())
        hours = None
        comp["rhythm_shift"] = 0.0
        if min(nvb, nva) >= p["min_videos_each_side"]:
            hours = (_mean_hour(v_sin[vb].sum(), v_cos[vb].sum()), _mean_hour(v_sin[~vb].sum(), v_cos[~vb].sum()))
            gap = abs(hours[0] - hours[1])
            gap = min(gap, 24 - gap)
            comp["rhythm_shift"] = float(min(1.0, max(0.0, (gap - tol) / (12 - tol))))
        d_sec = d * _DAY_S
        lo, hi = np.searchsorted(f_sec, [d_sec, d_sec + burst_s])
        n_burst = int(hi - lo)
        base_s = (d - base_start) * _DAY_S
        expected = float("nan")
        comp["follow_burst"] = 0.0
        if base_s > 0:      # no baseline, no burst: the first day of the window cannot be judged
            n_base = lo - np.searchsorted(f_sec, base_start * _DAY_S)
            expected = n_base / base_s * burst_s
            excess = n_burst - expected
            comp["follow_burst"] = float(min(1.0, max(0.0, excess / max(p["min_burst_follows"],
                                                                        p["burst_multiple"] * expected))))
        score = sum(weights[k] * comp[k] for k in COMPONENTS) / wsum
        if best is None or score >= best[0] - _TIE_EPS:       # ties: the later day wins
            best = (score, d, comp, hours, n_burst, expected)

    score, d, comp, hours, n_burst, expected = best
    lb, la = l_day < d, l_day >= d
    parts = [f"on {(_EPOCH + dt.timedelta(days=d)).isoformat()}"]
    if lb.any() and la.any():
        db, da = _presence(dev, lb, len(dev_u)), _presence(dev, la, len(dev_u))
        ib, ia = _presence(ip, lb, len(ip_u)), _presence(ip, la, len(ip_u))
        parts[0] += " " + _login_phrase(db, da, ib, ia,
                                        _mode(np.bincount(geo[lb], minlength=len(geo_u)), geo_u),
                                        _mode(np.bincount(geo[la], minlength=len(geo_u)), geo_u))
    else:
        parts[0] += " (logins on one side only)"
    if comp["category_shift"] > 0:
        new = s_day >= d
        text = (f"listings switched {_mode(np.bincount(cat[~new], minlength=len(cat_u)), cat_u)} -> "
                f"{_mode(np.bincount(cat[new | s_active], minlength=len(cat_u)), cat_u)}")
        n_removed = int((~new & ~s_active).sum())
        if n_removed:
            text += f" ({n_removed} earlier removed)"
        parts.append(text)
    if comp["rhythm_shift"] > 0:
        parts.append(f"posting peak moved from {round(hours[0]) % 24:02d}h to {round(hours[1]) % 24:02d}h UTC")
    if comp["follow_burst"] > 0:
        parts.append(f"{n_burst} follows within {p['burst_hours']:g} h (about {expected:.0f} expected)")
    row = {"creator_id": pdf["creator_id"].iloc[0], "change_day": d, "score": float(score),
           **{k: float(comp[k]) for k in COMPONENTS}, "evidence": "; ".join(parts)}
    return pd.DataFrame([row], columns=columns)


def _login_phrase(db: np.ndarray, da: np.ndarray, ib: np.ndarray, ia: np.ndarray, geo_b: str, geo_a: str) -> str:
    """'all 2 devices replaced by 1 new device on a new /24 in FR (was DE)' from presence vectors."""
    nb, na = int(db.sum()), int(da.sum())
    new, gone = int((da & ~db).sum()), int((db & ~da).sum())
    if new == na and gone == nb:
        was = "its device" if nb == 1 else f"all {nb} devices"
        dev = f"{was} replaced by {new} new device{'s' if new != 1 else ''}"
    elif new == 0 and gone == 0:
        dev = "same device" if nb == 1 else f"same {nb} devices"
    else:
        dev = f"{new} new device{'s' if new != 1 else ''}, {gone} of {_plural(nb, 'device')} gone"
    n_ip, new_ip = int(ia.sum()), int((ia & ~ib).sum())
    if new_ip == 0:
        ip = "on known /24s" if n_ip > 1 else "on a known /24"
    elif new_ip == n_ip:
        ip = "on a new /24" if new_ip == 1 else f"on {new_ip} new /24s"
    else:
        ip = f"on {new_ip} new of {n_ip} /24s"
    return f"{dev} {ip} in {geo_a}" + (f" (was {geo_b})" if geo_a != geo_b else "")


# --- public API ---------------------------------------------------------------------------------

def change_points(logins: DataFrame, videos: DataFrame, listings: DataFrame, follows: DataFrame,
                  creators: DataFrame, min_days_each_side: int = 1, *,
                  w_device: float = 1.0, w_ip: float = 0.5, w_geo: float = 1.0, w_category: float = 2.0,
                  w_rhythm: float = 0.5, w_follow: float = 1.5,
                  burst_hours: float = 36.0, min_burst_follows: float = 20.0, burst_multiple: float = 3.0,
                  rhythm_tolerance_hours: float = 3.0, min_videos_each_side: int = 2) -> DataFrame:
    """The best change point of every creator with activity on both sides of some day.

    Returns ``CHANGE_POINT_COLUMNS``: ``creator_id``, ``change_date`` (date: first day of the
    "after" side), ``score`` (weighted mean of the components, see the module docstring), the six
    components and a one-line ``evidence``. One row per creator of ``creators`` that has a
    candidate day; creators with a single side get none.

    Defaults: ``burst_hours=36`` covers an order placed within 12 h of the hand-over and delivered
    within a day; ``min_burst_follows=20`` is the smallest follower package worth selling;
    ``burst_multiple=3`` asks for three times the creator's normal follow rate;
    ``rhythm_tolerance_hours=3`` absorbs an honest creator's spread around their usual hour;
    ``min_videos_each_side=2``: a mean of one video is too noisy to call a rhythm.
    """
    for name, df in (("logins", logins), ("videos", videos), ("listings", listings), ("follows", follows),
                     ("creators", creators)):
        _check_columns(name, df)
    weights = {"device_turnover": w_device, "ip_turnover": w_ip, "geo_shift": w_geo,
               "category_shift": w_category, "rhythm_shift": w_rhythm, "follow_burst": w_follow}
    _check_params(min_days_each_side, weights, burst_hours, min_burst_follows, burst_multiple,
                  rhythm_tolerance_hours, min_videos_each_side)
    params = {"min_days_each_side": min_days_each_side, "weights": {k: float(v) for k, v in weights.items()},
              "burst_hours": float(burst_hours), "min_burst_follows": float(min_burst_follows),
              "burst_multiple": float(burst_multiple), "rhythm_tolerance_hours": float(rhythm_tolerance_hours),
              "min_videos_each_side": min_videos_each_side}

    def sec(col: str):
        # Epoch seconds of a timestamp: independent of the session time zone.
        return F.unix_seconds(F.col(col).cast("timestamp"))

    null = F.lit(None).cast("string")
    # a/b/c per kind: login = device, /24, geo; listing = category, status; follow = user; video = -.
    # Rows missing what their kind is compared on are dropped: an event without a time cannot be
    # placed on a side, a login without a device cannot say whether the device changed.
    events = (
        logins.where(F.col("device_id").isNotNull() & F.col("ip24").isNotNull() & F.col("geo").isNotNull())
        .select("creator_id", F.lit(_KIND_LOGIN).alias("kind"), sec("ts").alias("sec"),
                F.col("device_id").alias("a"), F.col("ip24").alias("b"), F.col("geo").alias("c"))
        .unionByName(videos.select("creator_id", F.lit(_KIND_VIDEO).alias("kind"), sec("published_at").alias("sec"),
                                   null.alias("a"), null.alias("b"), null.alias("c")))
        .unionByName(listings.where(F.col("category").isNotNull())
                     .select("creator_id", F.lit(_KIND_LISTING).alias("kind"), sec("listed_at").alias("sec"),
                             F.col("category").alias("a"), F.col("listing_status").alias("b"), null.alias("c")))
        .unionByName(follows.select("creator_id", F.lit(_KIND_FOLLOW).alias("kind"), sec("ts").alias("sec"),
                                    F.col("user_id").alias("a"), null.alias("b"), null.alias("c")))
        .where(F.col("sec").isNotNull())
    )
    # First day of the run's window: the earliest login, video or follow of *any* creator (the
    # listings snapshot reaches far back). Global rather than per creator, so a creator's quiet
    # first days count as days without follows in its baseline. One row, cross-joined (broadcast):
    # nothing is collected to the driver.
    window = (events.where(F.col("kind") != _KIND_LISTING)
              .agg(F.floor(F.min("sec") / F.lit(_DAY_S)).cast("long").alias("window_day")))
    people = creators.select("creator_id", F.datediff(F.col("signup_date").cast("date"), F.lit(_EPOCH))
                             .cast("long").alias("signup_day")).dropDuplicates(["creator_id"])
    frame = (events.join(people, "creator_id").crossJoin(window)
             .where(F.col("window_day").isNotNull())     # no login, video or follow at all: nothing to scan
             .select(*[f.name for f in _EVENT_SCHEMA.fields]))

    def scan(pdf: pd.DataFrame) -> pd.DataFrame:
        return _scan_creator(pdf, params)

    scanned = frame.groupBy("creator_id").applyInPandas(scan, schema=_SCAN_SCHEMA)
    return scanned.select(
        "creator_id",
        F.date_add(F.lit(_EPOCH), F.col("change_day").cast("int")).alias("change_date"),
        "score", *COMPONENTS, "evidence",
    )


def traded_accounts(change_points_df: DataFrame, threshold: float = 0.5) -> DataFrame:
    """Creators whose change point scores at least ``threshold``, as ``DETECTOR_COLUMNS`` rows.

    A sold account has no accomplices in these feeds, so each is its own one-member syndicate
    ``trade:<creator_id>`` (role ``account``, size 1, syndicate score = member score). The default
    0.5 (with the default weights) sits above what honest device changes give -- a new phone on a
    new network abroad 0.38, plus a viral day's follow burst 0.46 -- and below a catalogue switch
    with a follower burst (0.54), the trade's business side alone.
    """
    if (not isinstance(threshold, (int, float)) or isinstance(threshold, bool)
            or not 0.0 <= threshold <= 1.0):
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    missing = [c for c in ("creator_id", "score", "evidence") if c not in change_points_df.columns]
    if missing:
        raise ValueError(f"change_points_df lacks column(s) {missing}; pass the output of change_points()")
    return (
        change_points_df.where(F.col("score") >= F.lit(float(threshold)))
        .select(
            F.concat(F.lit(SYNDICATE_PREFIX), F.col("creator_id")).alias("syndicate_id"),
            F.lit(ENTITY_TYPE).alias("entity_type"),
            F.col("creator_id").alias("entity_id"),
            F.lit(ROLE).alias("role"),
            F.col("score").cast("double").alias("score"),
            F.lit(1).cast("long").alias("syndicate_size"),
            F.col("score").cast("double").alias("syndicate_score"),
            F.col("evidence"),
        )
        .select(*DETECTOR_COLUMNS)
    )
