"""Fairness-regulated traffic quotas: how one market's daily impressions are split between creators.

The problem (stated in full, with the reasons, in ``docs/traffic_quotas.md``)
-----------------------------------------------------------------------------
Creator ``i`` of one market has a per-impression value ``v_i = w_gmv*gmv_i + w_prosperity*prosperity_i
- lam*risk_i - mu*complaints_i`` and an audience *capacity* ``c_i``. Giving it the share ``s_i`` of
the market's ``Q`` impressions is worth ``U_i(s) = v_i * c_i * (1 - exp(-s/c_i))`` (``v_i > 0``):
the first impressions reach the creator's most interested viewers, later ones a tiring audience,
so returns diminish, and they diminish sooner for a creator with a small audience. ``c_i`` is
proportional to ``popularity_i + p0`` (``p0 = capacity_prior * mean popularity`` so that a creator
without an audience yet is not worthless) and ``sum(c) = saturation`` over the active creators:
``saturation`` says how many "market shares" of exposure the whole creator base absorbs before the
returns fall by ``1/e`` -- large means nearly linear returns (winner-take-all), small means strong
saturation (exposure spread out). A creator with ``v_i <= 0`` (net harmful at the policy's risk
weights) is scored linearly, ``U_i(s) = v_i * s``: harm does not saturate -- every impression of
a risky creator carries its full expected risk -- and the linear form keeps the problem concave.

We maximise ``sum U_i(s_i)`` over ``sum s_i = 1, s_i >= 0`` with, when ``policy.regulated``:

* (C0) ``s_i = 0`` for net-harmful creators (``v_i <= 0``), in both arms; the *active* set of
  every constraint below is the non-enforced creators with ``v_i > 0`` (:func:`servable`: all
  non-enforced ones when none has positive value);
* (C1) ``s_i = 0`` for creators under standing enforcement (also in the unregulated baseline:
  platforms do apply bans);
* (C2) ``s_i >= new_floor / n_active`` for eligible (high-quality and original) new creators;
* (C3) Singh & Joachims' merit-proportional exposure within a tolerance ``delta``: with
  ``rbar = sum_E s / sum_E merit`` over the eligible set ``E``, every ``i`` in ``E`` has
  ``s_i/merit_i`` in ``[(1-delta)*rbar, (1+delta)*rbar]``;
* (C4) the Gini coefficient of the active creators' shares is at most ``max_gini`` and the top
  ``top_fraction`` of them (``ceil``, at least one creator) hold at most ``max_top_share``.

How it is solved (deterministic, no randomness, ``O(n)`` per inner solve)
------------------------------------------------------------------------
*Inner: water-filling.* With box bounds ``lo_i <= s_i <= hi_i`` and ``sum s_i = T`` the problem is
separable and concave; KKT gives ``s_i(nu) = clip(c_i*ln(v_i/nu), lo_i, hi_i)`` (``lo_i`` when
``v_i <= nu``) for the multiplier ``nu`` of the sum. In ``t = ln(nu)`` every term is piecewise
linear, so ``sum_i s_i(t)`` is a monotone piecewise-linear function and a bracketed Newton
iteration (bisection fallback) lands on the exact root in a handful of ``O(n)`` passes. If the
positive-value creators cannot absorb ``T`` even at their upper bounds (caps force exposure on
harmful creators), ``nu <= 0`` and the linear part is an exact greedy fill in decreasing ``v``.

*C3 by a 1-D outer search over ``S = sum_E s`` (equivalently ``rbar = S/sum_E merit``).* For fixed
``S`` the eligible group has box bounds ``[max((1-delta)*S*w_i, floor_i), min((1+delta)*S*w_i, u)]``
(``w_i = merit_i/sum_E merit``) and total ``S``; the rest has ``[0, u]`` and total ``1 - S``. The set
``{(s, S)}`` is convex, so the optimal value ``G_E(S) + G_N(1 - S)`` is concave in ``S``; its
derivative is ``G_E'(S) - nu_N`` with ``G_E'(S) = nu_E + sum_i rho_i^+ (1+delta) w_i + sum_i rho_i^-
(1-delta) w_i`` (``rho_i = U_i'(s_i) - nu_E``, counted only where the proportional bound, not the
floor or cap, is the active one) -- the envelope theorem on the Lagrangian. A bracketed root search
(Brent) on this monotone derivative finds ``S*``.

*C4 by a 1-D outer search over a common per-creator cap ``u``.* Lowering the cap moves exposure
from the capped top to every uncapped creator, which lowers the Lorenz curve everywhere, so Gini
and top share fall as ``u`` falls. We take the largest ``u`` whose solution meets both targets
(Illinois regula falsi in ``log u`` between the smallest feasible cap and 1, to a relative
``CAP_RTOL`` in ``u`` or ``CAP_SLACK`` of a target). A uniform cap is a restriction (the exact
optimum under a Gini bound need not be a cap), accepted because it is monotone, explainable
("nobody gets more than u of the market") and reduces C4 to one scalar.

Cost: one water-filling is ``O(n)`` per Newton pass (about 5-15 passes); the S search is ~15-40
water-fillings, the cap search ~15-20 S searches. Measured times are in the docs.

Infeasibility and relaxation (never silent)
-------------------------------------------
C1 and ``sum s = 1`` are never relaxed (no active creator -> ``ValueError``). Otherwise, when the
constraints cannot hold together, ``policy.on_infeasible == "raise"`` raises
:class:`InfeasibleQuotaError`; ``"relax"`` (default) relaxes in this order, lowest priority first,
and records every change as ``field=old->new`` in the ``relaxation`` output column and in the
report: (1) C4 -- ``max_gini`` / ``max_top_share`` raised to what the most spread-out feasible
allocation achieves; (2) C3 -- ``merit_tolerance`` widened to the smallest feasible value;
(3) C2 -- ``new_floor`` lowered so the floors sum to one (only when they sum to more than one).
Priorities: the new-creator floor is a small, explicit promise; merit-proportional exposure is the
fairness guarantee; the concentration caps are aggregate health targets that C2/C3 already push
toward. :func:`check` (independent of the solver) fails an allocation that relaxed anything unless
told ``allow_relaxed=True``, and then checks it against the relaxed policy.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy.optimize import brentq

INPUT_COLUMNS: tuple[str, ...] = ("creator_id", "gmv", "prosperity", "risk", "complaints", "merit", "eligible",
                                  "is_new", "enforced", "popularity")
NONNEGATIVE_COLUMNS: tuple[str, ...] = ("gmv", "prosperity", "risk", "complaints", "popularity")
BOOL_COLUMNS: tuple[str, ...] = ("eligible", "is_new", "enforced")
OUTPUT_COLUMNS: tuple[str, ...] = ("value", "capacity", "share", "impressions", "lower", "upper", "relaxation")

CAP_RTOL = 1e-4          # cap search stops when u_bad/u_good <= 1 + CAP_RTOL: utility loss ~1e-4 relative
CAP_SLACK = 1e-6         # ... or when the Gini/top share is within 1e-6 of its target (tighter buys nothing)
SHARE_TOL = 1e-9         # absolute slack on shares in check(): the solver is exact to ~1e-13
NEWTON_MAX = 200         # water-filling passes; piecewise-linear Newton needs ~5-15, bisection fallback <200
BISECT_ITERS = 100       # bisection on bounded monotone scalars: 2^-100 of the bracket = exact in float64
RELAX_DIGITS = 6         # relaxed policy values are rounded *up* to 6 decimals: readable and still feasible


class InfeasibleQuotaError(ValueError):
    """The regulated constraints cannot hold together and the policy says ``on_infeasible="raise"``."""


# --------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuotaPolicy:
    """Weights and fairness constraints of the quota problem; lives under ``strategy:`` in conf/<env>.yaml.

    ``lam``/``mu`` price one unit of expected risk / complaints per impression in value units
    (GMV units when ``w_gmv = 1``). ``merit_tolerance`` is the C3 band half-width ``delta``
    (0.2: an eligible creator's exposure per unit merit may deviate 20 % from the group's mean);
    ``max_gini``/``max_top_share``/``top_fraction`` are C4; ``new_floor`` is C2 as a multiple of
    the uniform share. ``saturation`` and ``capacity_prior`` shape the diminishing returns (see the
    module docstring). ``head_fraction`` only defines the head/tail split of the group-disparity
    metric. ``min_eligible_share`` optionally reserves a total share for eligible creators (0 = off).
    """

    w_gmv: float = 1.0
    w_prosperity: float = 1.0
    lam: float = 1.0
    mu: float = 1.0
    regulated: bool = True
    merit_tolerance: float = 0.2
    max_gini: float = 0.6
    max_top_share: float = 0.2
    top_fraction: float = 0.01
    new_floor: float = 0.5
    saturation: float = 1.0          # sum of capacities = 1 market: returns fall by 1/e once exposure ~ audience share
    capacity_prior: float = 0.25     # a creator without audience gets the capacity of 1/4 of an average audience
    head_fraction: float = 0.2       # top 20 % of eligible creators by popularity = "head" for group disparity
    min_eligible_share: float = 0.0
    on_infeasible: str = "relax"

    def __post_init__(self) -> None:
        for name in ("w_gmv", "w_prosperity", "lam", "mu", "merit_tolerance", "new_floor", "min_eligible_share"):
            val = getattr(self, name)
            if not (isinstance(val, (int, float)) and math.isfinite(val) and val >= 0):
                raise ValueError(f"policy.{name} must be a finite number >= 0, got {val!r}")
        for name in ("saturation", "capacity_prior"):
            val = getattr(self, name)
            if not (isinstance(val, (int, float)) and math.isfinite(val) and val > 0):
                raise ValueError(f"policy.{name} must be a finite number > 0, got {val!r}")
        for name, low_open in (("max_gini", False), ("max_top_share", True), ("top_fraction", True),
                               ("head_fraction", True)):
            val = getattr(self, name)
            ok = isinstance(val, (int, float)) and (0 < val <= 1 if low_open else 0 <= val <= 1)
            if not ok:
                raise ValueError(f"policy.{name} must be in {'(0, 1]' if low_open else '[0, 1]'}, got {val!r}")
        if self.min_eligible_share > 1:
            raise ValueError(f"policy.min_eligible_share must be <= 1, got {self.min_eligible_share}")
        if not isinstance(self.regulated, bool):
            raise ValueError(f"policy.regulated must be a bool, got {self.regulated!r}")
        if self.on_infeasible not in ("relax", "raise"):
            raise ValueError(f"policy.on_infeasible must be 'relax' or 'raise', got {self.on_infeasible!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "QuotaPolicy":
        """Build from a config mapping; unknown keys are an error (a typo must not fall back to a default)."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown quota policy keys {unknown}; known: {sorted(known)}")
        out: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            val = d[f.name]
            if f.name == "regulated":
                if not isinstance(val, bool):
                    raise ValueError(f"policy.regulated must be true/false, got {val!r}")
                out[f.name] = val
            elif f.name == "on_infeasible":
                out[f.name] = str(val)
            else:
                try:
                    out[f.name] = float(val)
                except (TypeError, ValueError):
                    raise ValueError(f"policy.{f.name} must be a number, got {val!r}") from None
        return cls(**out)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------

def _nonneg_vector(x: Any, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError(f"{what} of an empty vector is undefined")
    if not np.isfinite(a).all():
        raise ValueError(f"{what}: values contain NaN or infinity")
    if (a < 0).any():
        raise ValueError(f"{what}: {(a < 0).sum()} negative values")
    return a


def gini(x: Any) -> float:
    """Gini coefficient of non-negative amounts (0 = equal, ``1 - 1/n`` = one holds all); 0.0 if all zero."""
    a = np.sort(_nonneg_vector(x, "gini"))
    total = a.sum()
    if total <= 0:
        return 0.0
    n = a.size
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * np.dot(ranks, a) / (n * total) - (n + 1.0) / n)


def lorenz(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """Lorenz curve: (population fraction, cumulative share), both length ``n+1`` from (0, 0) to (1, 1)."""
    a = np.sort(_nonneg_vector(x, "lorenz"))
    total = a.sum()
    pop = np.arange(a.size + 1, dtype=np.float64) / a.size
    cum = np.concatenate([[0.0], np.cumsum(a)])
    cum = cum / total if total > 0 else pop.copy()     # all zero: the equality line, like gini() = 0
    return pop, cum


def top_count(n_active: int, top_fraction: float) -> int:
    """Creators in the "top fraction": ``ceil(top_fraction * n)``, at least one (a 1 % cap must bind below 100)."""
    return max(1, int(math.ceil(top_fraction * n_active - 1e-12)))


def top_share(x: Any, top_fraction: float) -> float:
    """Share of the total held by the ``top_count`` largest entries."""
    a = _nonneg_vector(x, "top_share")
    total = a.sum()
    if total <= 0:
        return 0.0
    k = top_count(a.size, top_fraction)
    return float(np.partition(a, a.size - k)[a.size - k:].sum() / total)


# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------

def _bool_column(frame: pd.DataFrame, col: str) -> np.ndarray:
    s = frame[col]
    if s.isna().any():
        raise ValueError(f"column {col!r} has {int(s.isna().sum())} missing values")
    if s.dtype == bool:
        return s.to_numpy(dtype=bool)
    vals = pd.to_numeric(s, errors="coerce")
    bad = vals.isna() | ~vals.isin([0, 1])
    if bad.any():
        raise ValueError(f"column {col!r} must be boolean (or 0/1); {int(bad.sum())} rows are not")
    return vals.to_numpy(dtype=np.float64) == 1


def validate_frame(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Check one market's quota input and return its columns as arrays (``ValueError`` naming column and count)."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in INPUT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"quota input lacks columns {missing} (has {list(frame.columns)})")
    if len(frame) == 0:
        raise ValueError("quota input has no creators")
    ids = frame["creator_id"]
    if ids.isna().any():
        raise ValueError(f"column 'creator_id' has {int(ids.isna().sum())} missing values")
    dup = ids.duplicated().sum()
    if dup:
        raise ValueError(f"column 'creator_id' has {int(dup)} duplicate ids")
    out: dict[str, np.ndarray] = {}
    for col in (*NONNEGATIVE_COLUMNS, "merit"):
        vals = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
        nan = (~np.isfinite(vals)).sum()
        if nan:
            raise ValueError(f"column {col!r} has {int(nan)} NaN, infinite or non-numeric values")
        if col == "merit":
            bad = ((vals <= 0) | (vals > 1)).sum()
            if bad:
                raise ValueError(f"column 'merit' has {int(bad)} values outside (0, 1]")
        else:
            neg = (vals < 0).sum()
            if neg:
                raise ValueError(f"column {col!r} has {int(neg)} negative values")
        out[col] = vals
    for col in BOOL_COLUMNS:
        out[col] = _bool_column(frame, col)
    return out


def value_of(cols: Mapping[str, np.ndarray], policy: QuotaPolicy) -> np.ndarray:
    """Per-impression value ``w_gmv*gmv + w_prosperity*prosperity - lam*risk - mu*complaints``."""
    return (policy.w_gmv * cols["gmv"] + policy.w_prosperity * cols["prosperity"]
            - policy.lam * cols["risk"] - policy.mu * cols["complaints"])


def servable(cols: Mapping[str, np.ndarray], value: np.ndarray) -> np.ndarray:
    """Creators that may receive impressions: not enforced and with positive value ``v_i > 0`` (C0).

    Why value too: the fairness constraints spread exposure (floors, merit band, concentration
    caps); over a population that includes net-harmful creators -- value <= 0 at the policy's
    risk and complaint prices -- spreading would *force* their exposure up as the caps tighten,
    so a higher ``lam`` would raise expected risk (measured before this rule: 2.7x the
    unconstrained risk at lam = mu = 10). Fairness is among creators the platform would show at
    all. If no creator of the market has positive value, every non-enforced creator is servable
    (the least harmful then get the traffic; the market still has a defined quota).
    """
    ok = ~cols["enforced"] & (value > 0)
    return ok if ok.any() else ~cols["enforced"]


def capacity_of(popularity: np.ndarray, active: np.ndarray, policy: QuotaPolicy) -> np.ndarray:
    """``saturation * (pop + p0) / sum_active(pop + p0)``, ``p0 = capacity_prior * mean_active(pop)``.

    Normalised over the active creators so only relative popularity matters (followers or views,
    either works); when every active popularity is zero all capacities are equal.
    """
    pop = np.asarray(popularity, dtype=np.float64)
    base = pop[active] if active.any() else pop
    mean = float(base.mean()) if base.size else 0.0
    p0 = policy.capacity_prior * mean if mean > 0 else 1.0
    denom = float((base + p0).sum()) if base.size else 1.0
    return policy.saturation * (pop + p0) / denom


def effective_exposure(share: np.ndarray, value: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """``c*(1-exp(-s/c))`` for net-positive creators (saturating audience), ``s`` for net-harmful ones."""
    sat = capacity * -np.expm1(-share / capacity)
    return np.where(value > 0, sat, share)


# --------------------------------------------------------------------------------------------
# Inner solver: water-filling with box bounds
# --------------------------------------------------------------------------------------------

def _marginal(v: np.ndarray, c: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``U_i'(s_i)``: ``v*exp(-s/c)`` for ``v > 0``, ``v`` (linear harm) otherwise."""
    return np.where(v > 0, v * np.exp(-s / c), v)


def waterfill(v: np.ndarray, c: np.ndarray, lo: np.ndarray, hi: np.ndarray, total: float) -> tuple[np.ndarray, float]:
    """Maximise ``sum U_i(s_i)`` s.t. ``sum s = total``, ``lo <= s <= hi``; returns ``(s, nu)``.

    ``nu`` is the multiplier of the sum (the common marginal utility). The caller guarantees
    ``sum(lo) <= total <= sum(hi)`` up to rounding; outside that the nearest bound vector is
    returned (with the ``nu`` that makes it KKT-consistent), never an exception.
    """
    n = v.size
    if n == 0:
        return np.zeros(0), 0.0
    slo, shi = float(lo.sum()), float(hi.sum())
    if total <= slo:
        return lo.copy(), float(_marginal(v, c, lo).max())
    if total >= shi:
        return hi.copy(), float(_marginal(v, c, hi).min())
    pos = v > 0
    s = lo.copy()
    rest_lo = float(lo[~pos].sum())
    if pos.any() and float(hi[pos].sum()) + rest_lo >= total:
        cp, lp, hp = c[pos], lo[pos], hi[pos]
        logv = np.log(v[pos])
        target = total - rest_lo
        t_lo = float((logv - hp / cp).min())        # every positive creator at its upper bound: sum >= target
        t_hi = float((logv - lp / cp).max())        # every one at its lower bound: sum <= target
        csum = float(cp.sum())
        t = min(max((float(np.dot(cp, logv)) - target) / csum, t_lo), t_hi)   # all-linear guess
        tol = 1e-14 * max(1.0, target)
        sp = np.clip(cp * (logv - t), lp, hp)
        for _ in range(NEWTON_MAX):
            x = cp * (logv - t)
            sp = np.clip(x, lp, hp)
            f = float(sp.sum())
            if abs(f - target) <= tol or t_hi - t_lo <= 1e-15 * max(1.0, abs(t)):
                break
            if f > target:
                t_lo = t
            else:
                t_hi = t
            slope = float(cp[(x > lp) & (x < hp)].sum())
            t_new = t + (f - target) / slope if slope > 0 else math.nan
            t = t_new if t_lo < t_new < t_hi else 0.5 * (t_lo + t_hi)
        s[pos] = sp
        return s, math.exp(t)
    # Positive creators cannot absorb the total: all at their caps, the rest to the least harmful
    # (linear utility: an exact greedy fill in decreasing v; ties share the remainder by room).
    s[pos] = hi[pos]
    remainder = total - float(hi[pos].sum()) - rest_lo
    idx = np.flatnonzero(~pos)
    order = idx[np.argsort(-v[idx], kind="stable")]
    vals = v[order]
    room = hi[order] - lo[order]
    uniq, starts = np.unique(-vals, return_index=True)     # groups of equal v, decreasing v
    ends = np.append(starts[1:], vals.size)
    nu = float(vals[-1])
    for st, en in zip(starts, ends):
        group = order[st:en]
        groom = float(room[st:en].sum())
        if groom <= remainder:
            s[group] = hi[group]
            remainder -= groom
            continue
        if groom > 0:
            s[group] = lo[group] + room[st:en] * (remainder / groom)
        nu = float(vals[st])
        break
    return s, nu


# --------------------------------------------------------------------------------------------
# Regulated solver: S search (C3) inside a cap search (C4)
# --------------------------------------------------------------------------------------------

@dataclass
class _Market:
    """Arrays of the active creators of one market, split into the eligible (E) and other (N) groups."""

    vE: np.ndarray
    cE: np.ndarray
    wE: np.ndarray          # merit / sum merit over E
    fE: np.ndarray          # C2 floors (0 for non-new)
    vN: np.ndarray
    cN: np.ndarray
    delta: float
    min_S: float
    s_floor: float = 0.0     # set by _s_floor after construction (independent of the cap)

    @property
    def a(self) -> np.ndarray:
        return max(1.0 - self.delta, 0.0) * self.wE

    @property
    def b(self) -> np.ndarray:
        return (1.0 + self.delta) * self.wE


def _boundary(pred, lo: float, hi: float) -> tuple[float, float]:
    """For a predicate true at ``lo`` and false at ``hi`` (monotone in between): the pair
    ``(last_true, first_false)`` after bisection to float resolution."""
    for _ in range(BISECT_ITERS):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if pred(mid):
            lo = mid
        else:
            hi = mid
    return lo, hi


def _s_floor(m: _Market) -> float:
    """Smallest ``S`` with ``sum_i max(a_i S, f_i) <= S`` (the eligible floors fit); ``inf`` if none <= 1.

    ``phi(S) = sum max(a_i S, f_i) - S`` has slope ``(1-delta)*W - 1 <= 0``: it only falls, so the
    feasible set is ``[S_d, inf)``. Independent of the cap, so computed once per market.
    """
    a, f = m.a, m.fE
    if f.size == 0 or float(f.sum()) <= 0:
        return 0.0
    if float(np.maximum(a, f).sum()) > 1.0 + 1e-12:
        return math.inf
    return _boundary(lambda S: float(np.maximum(a * S, f).sum()) > S, 0.0, 1.0)[1]


def _s_range(m: _Market, u: float) -> tuple[float, float]:
    """Feasible totals ``S`` of the eligible group for cap ``u`` (``low > high`` when infeasible).

    Conditions: every floor fits under the cap and inside its band (``f_i <= (1+delta) S w_i``),
    the floors and lower band fit in ``S`` (:func:`_s_floor`), the upper bounds can hold ``S``
    (``psi(S) = sum min(b_i S, u) - S >= 0``, concave with ``psi(0) = 0``: an interval ``[0, S_e]``),
    no lower band exceeds the cap, and the other group can take ``1 - S`` under its caps.
    """
    nN = m.vN.size
    if m.fE.size and float(m.fE.max()) > u * (1 + 1e-12):
        return 1.0, 0.0
    a, b = m.a, m.b
    low = 1.0 if nN == 0 else max(m.min_S, 0.0, 1.0 - nN * u)
    high = 1.0
    floored = m.fE > 0
    if floored.any():
        low = max(low, float((m.fE[floored] / b[floored]).max()), m.s_floor)
    amax = float(a.max()) if a.size else 0.0
    if amax > 0:
        high = min(high, u / amax)
    if a.size and float(np.minimum(b, u).sum()) < 1.0 - 1e-12:
        high = min(high, _boundary(lambda S: float(np.minimum(b * S, u).sum()) >= S, 0.0, 1.0)[0])
    if low > high and low - high <= 1e-12:          # a single feasible point, up to float noise
        high = low
    return low, high


def _bounds_E(m: _Market, S: float, u: float) -> tuple[np.ndarray, np.ndarray]:
    lo = np.maximum(m.a * S, m.fE)
    hi = np.minimum(m.b * S, u)
    return lo, np.maximum(hi, lo)     # lo <= hi holds in the feasible range; guard float ties


def _solve_fixed_cap(m: _Market, u: float, s_low: float, s_high: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Optimal (s_E, s_N, S) for cap ``u`` given a non-empty feasible S range."""
    hiN = np.full(m.vN.size, u)
    loN = np.zeros(m.vN.size)

    def solve_E(S: float) -> tuple[np.ndarray, float]:
        lo, hi = _bounds_E(m, S, u)
        return waterfill(m.vE, m.cE, lo, hi, S)

    def deriv(S: float) -> float:
        sE, nuE = solve_E(S)
        rho = _marginal(m.vE, m.cE, sE) - nuE
        prop_hi = m.b * S <= u
        prop_lo = m.a * S >= m.fE
        gE = nuE + float((np.maximum(rho, 0) * m.b)[prop_hi].sum()) + float((np.minimum(rho, 0) * m.a)[prop_lo].sum())
        _, nuN = waterfill(m.vN, m.cN, loN, hiN, 1.0 - S)
        return gE - nuN

    if m.vE.size == 0:
        S = 0.0
    elif m.vN.size == 0 or s_high - s_low <= 1e-15:
        S = s_high if m.vN.size == 0 else s_low
    else:
        g_low, g_high = deriv(s_low), deriv(s_high)
        if g_low <= 0:
            S = s_low
        elif g_high >= 0:
            S = s_high
        else:
            S = float(brentq(deriv, s_low, s_high, xtol=1e-14, rtol=1e-12, maxiter=500))
    sE, _ = solve_E(S) if m.vE.size else (np.zeros(0), 0.0)
    sN, _ = waterfill(m.vN, m.cN, loN, hiN, 1.0 - S)
    return sE, sN, S


@dataclass
class QuotaSolution:
    """Everything :func:`solve` decided: the allocated frame, the effective policy and the relaxations."""

    frame: pd.DataFrame
    policy: QuotaPolicy
    effective_policy: QuotaPolicy
    relaxations: list[str]
    cap: float
    eligible_total: float


def _ceil_digits(x: float) -> float:
    scale = 10 ** RELAX_DIGITS
    return math.ceil(x * scale - 1e-9) / scale


def _relax(policy: QuotaPolicy, relaxations: list[str], name: str, new: float, why: str) -> QuotaPolicy:
    old = getattr(policy, name)
    if policy.on_infeasible == "raise":
        raise InfeasibleQuotaError(f"{why}; {name}={old} cannot be met (would need {name}={new:g})")
    relaxations.append(f"{name}={old:g}->{new:g}")
    return replace(policy, **{name: new})


def solve(frame: pd.DataFrame, total_impressions: int, policy: QuotaPolicy | None = None) -> QuotaSolution:
    """Allocate one market's impressions and return the frame with the solver's decisions (see module doc)."""
    policy = policy or QuotaPolicy()
    if not isinstance(policy, QuotaPolicy):
        raise ValueError(f"policy must be a QuotaPolicy, got {type(policy).__name__}")
    if isinstance(total_impressions, bool) or not isinstance(total_impressions, (int, np.integer)) or total_impressions < 0:
        raise ValueError(f"total_impressions must be a non-negative int, got {total_impressions!r}")
    clash = [c for c in OUTPUT_COLUMNS if c in frame.columns]
    if clash:
        raise ValueError(f"quota input already has output columns {clash}")
    cols = validate_frame(frame)
    n = len(frame)
    value = value_of(cols, policy)
    active = servable(cols, value)
    n_active = int(active.sum())
    if n_active == 0:
        raise ValueError(f"all {n} creators are under enforcement: no one can receive impressions (C1 is never relaxed)")
    capacity = capacity_of(cols["popularity"], active, policy)
    share = np.zeros(n)
    lower = np.zeros(n)
    upper = np.zeros(n)
    relaxations: list[str] = []
    eff = policy
    cap = 1.0
    S = 0.0
    idx_act = np.flatnonzero(active)
    if not policy.regulated:
        lo = np.zeros(n_active)
        hi = np.ones(n_active)
        s_act, _ = waterfill(value[idx_act], capacity[idx_act], lo, hi, 1.0)
        share[idx_act] = s_act
        upper[idx_act] = 1.0
        S = float(share[cols["eligible"] & active].sum())
    else:
        elig = cols["eligible"] & active
        iE = np.flatnonzero(elig)
        iN = np.flatnonzero(active & ~elig)
        new_elig = elig & cols["is_new"]
        n_new = int(new_elig.sum())
        # (C2) floors sum to new_floor * n_new / n_active; above one they cannot all hold.
        if n_new and eff.new_floor * n_new / n_active > 1.0 + 1e-12:
            eff = _relax(eff, relaxations, "new_floor", math.floor(n_active / n_new * 10 ** RELAX_DIGITS) / 10 ** RELAX_DIGITS,
                         f"floors of {n_new} new eligible creators sum to {eff.new_floor * n_new / n_active:.4g} > 1")
        if eff.min_eligible_share > 0 and iE.size == 0:
            eff = _relax(eff, relaxations, "min_eligible_share", 0.0, "no eligible creator to receive min_eligible_share")
        floor_share = eff.new_floor / n_active
        mE = cols["merit"][iE]

        def market(delta: float, min_S: float) -> _Market:
            mk = _Market(vE=value[iE], cE=capacity[iE], wE=mE / mE.sum() if iE.size else mE,
                         fE=np.where(new_elig[iE], floor_share, 0.0), vN=value[iN], cN=capacity[iN],
                         delta=delta, min_S=min_S)
            mk.s_floor = _s_floor(mk)
            return mk

        m = market(eff.merit_tolerance, eff.min_eligible_share)
        lo_S, hi_S = _s_range(m, 1.0)
        if lo_S > hi_S and eff.min_eligible_share > 0:
            # min_eligible_share is part of C3's group (the eligible group's exposure); relax it first within C3.
            m0 = market(eff.merit_tolerance, 0.0)
            l0, h0 = _s_range(m0, 1.0)
            if l0 <= h0:
                eff = _relax(eff, relaxations, "min_eligible_share", math.floor(h0 * 10 ** RELAX_DIGITS) / 10 ** RELAX_DIGITS,
                             "eligible creators cannot absorb min_eligible_share")
                m = market(eff.merit_tolerance, eff.min_eligible_share)
                lo_S, hi_S = _s_range(m, 1.0)
        if lo_S > hi_S:
            # (C3) widen delta to the smallest feasible value (doubling, then bisection).
            def feasible(d: float) -> bool:
                lo_, hi_ = _s_range(market(d, eff.min_eligible_share), 1.0)
                return lo_ <= hi_
            top = max(2.0 * eff.merit_tolerance, 0.1)
            while not feasible(top):
                top *= 2.0
                if top > 1e9:
                    raise ValueError("quota constraints infeasible even without the merit band (C3); check floors")
            d_new = _ceil_digits(_boundary(lambda d: not feasible(d), eff.merit_tolerance, top)[1])
            while not feasible(d_new):                      # rounding guard
                d_new += 10 ** -RELAX_DIGITS
            eff = _relax(eff, relaxations, "merit_tolerance", d_new,
                         "merit-proportional exposure (C3) cannot hold with the new-creator floors (C2)")
            m = market(eff.merit_tolerance, eff.min_eligible_share)
            lo_S, hi_S = _s_range(m, 1.0)

        k = top_count(n_active, eff.top_fraction)

        def assemble(u: float) -> tuple[np.ndarray, float]:
            l_, h_ = _s_range(m, u)
            sE, sN, S_ = _solve_fixed_cap(m, u, l_, h_)
            s_act = np.zeros(n)
            s_act[iE] = sE
            s_act[iN] = sN
            return s_act, S_

        def meets(s_full: np.ndarray) -> tuple[bool, float, float]:
            sa = s_full[idx_act]
            g, t = gini(sa), top_share(sa, eff.top_fraction)
            return (g <= eff.max_gini and t <= eff.max_top_share), g, t

        s_full, S = assemble(1.0)
        ok, g, t = meets(s_full)
        if not ok:
            # Smallest feasible cap: the most spread-out allocation the other constraints allow.
            u_floor = 1.0 / n_active
            lo_u = _s_range(m, u_floor)
            if lo_u[0] <= lo_u[1]:
                u_min = u_floor
            else:
                def infeasible(lu: float) -> bool:
                    r = _s_range(m, math.exp(lu))
                    return r[0] > r[1]
                u_min = math.exp(_boundary(infeasible, math.log(u_floor), 0.0)[1])
            s_min, S_min = assemble(u_min)
            ok_min, g_min, t_min = meets(s_min)
            if not ok_min:
                if g_min > eff.max_gini:
                    eff = _relax(eff, relaxations, "max_gini", _ceil_digits(g_min),
                                 f"Gini {g_min:.4f} is the lowest the floors and merit band allow")
                if t_min > eff.max_top_share:
                    eff = _relax(eff, relaxations, "max_top_share", _ceil_digits(t_min),
                                 f"top-{k} share {t_min:.4f} is the lowest the floors and merit band allow")
                s_full, S, cap = s_min, S_min, u_min
            else:
                # Largest cap meeting both targets. excess(u) = max(gini - max_gini, top - max_top_share)
                # is monotone and continuous in log u, so an Illinois (regula falsi) step converges
                # superlinearly; it keeps a bracket [good, bad] and stops when the bracket is within
                # CAP_RTOL or the good side is within CAP_SLACK of a target (nothing left to gain).
                def excess(gv: float, tv: float) -> float:
                    return max(gv - eff.max_gini, tv - eff.max_top_share)

                good, bad = math.log(u_min), 0.0
                h_good, h_bad = excess(g_min, t_min), excess(g, t)
                s_full, S, cap = s_min, S_min, u_min
                side = 0
                while bad - good > math.log1p(CAP_RTOL) and h_good < -CAP_SLACK:
                    x = good - h_good * (bad - good) / (h_bad - h_good)
                    width = bad - good
                    x = min(max(x, good + 0.01 * width), bad - 0.01 * width)   # keep strictly inside
                    s_x, S_x = assemble(math.exp(x))
                    ok_x, g_x, t_x = meets(s_x)
                    h_x = excess(g_x, t_x)
                    if ok_x:
                        good, h_good, s_full, S, cap = x, h_x, s_x, S_x, math.exp(x)
                        h_bad = h_bad / 2 if side == 1 else h_bad        # Illinois: halve the stale end
                        side = 1
                    else:
                        bad, h_bad = x, h_x
                        h_good = h_good / 2 if side == -1 else h_good
                        side = -1
        share = s_full
        lo_E, hi_E = _bounds_E(m, S, cap)
        lower[iE], upper[iE] = lo_E, hi_E
        upper[iN] = cap
    lower = np.minimum(lower, share)      # bounds hold exactly; rounding noise must not flag the solver itself
    upper = np.maximum(upper, share)
    impressions = round_impressions(share, total_impressions)
    out = frame.copy()
    out["value"] = value
    out["capacity"] = capacity
    out["share"] = share
    out["impressions"] = impressions
    out["lower"] = lower
    out["upper"] = upper
    out["relaxation"] = ";".join(relaxations)
    return QuotaSolution(frame=out, policy=policy, effective_policy=eff, relaxations=relaxations, cap=cap,
                         eligible_total=S)


def allocate(frame: pd.DataFrame, total_impressions: int, policy: QuotaPolicy | None = None) -> pd.DataFrame:
    """One market's frame plus ``value, capacity, share, impressions, lower, upper, relaxation``.

    ``impressions`` are integers summing exactly to ``total_impressions``; ``relaxation`` is ``""``
    unless the policy had to be relaxed (then ``field=old->new;...``, the same on every row).
    """
    return solve(frame, total_impressions, policy).frame


def round_impressions(share: np.ndarray, total: int) -> np.ndarray:
    """Largest-remainder rounding of ``total * share`` to integers summing exactly to ``total``.

    Zero shares stay at zero (a positive remainder always exists for every unit handed out, since
    the fractional parts sum to the number of units left), each creator gets ``floor`` or ``floor+1``
    of its exact amount (so ``floor(total*lower)`` is always met), and ties go to the earlier row.
    """
    s = np.asarray(share, dtype=np.float64)
    if s.size == 0 or total == 0:
        return np.zeros(s.size, dtype=np.int64)
    exact = s / s.sum() * total
    base = np.floor(exact).astype(np.int64)
    left = int(total - base.sum())
    if left > 0:
        frac = exact - base
        order = np.argsort(-frac, kind="stable")[:left]
        order = order[frac[order] > 0]
        base[order] += 1
        left = int(total - base.sum())
        if left > 0:       # float noise left units without a positive remainder: give them to the largest shares
            base[np.argsort(-s, kind="stable")[:left]] += 1
    elif left < 0:         # float noise in the other direction: take from the largest remainders' floors
        frac = exact - base
        order = np.argsort(frac, kind="stable")
        order = order[base[order] > 0][: -left]
        base[order] -= 1
    return base


# --------------------------------------------------------------------------------------------
# Independent check
# --------------------------------------------------------------------------------------------

@dataclass
class QuotaReport:
    """Metrics of an allocation and the constraints it violates (empty = fit to publish)."""

    n_creators: int
    n_active: int
    n_eligible: int
    total_impressions: int
    utility: float            # objective in value units: Q * sum U_i(s_i)
    gmv: float                # Q * sum gmv_i * effective exposure_i (same saturation as the objective)
    prosperity: float
    risk: float
    complaints: float
    gini: float               # over active (non-enforced) creators' shares
    top_share: float
    merit_disparity: float | None      # max |(s/merit)/rbar - 1| over eligible
    group_disparity: float | None      # (head exposure/merit) / (tail exposure/merit), 1 = parity
    hq_original_share: float
    new_eligible_min_ratio: float | None   # min share * n_active over eligible new creators
    relaxations: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_relaxation(text: str) -> dict[str, float]:
    """``"a=1->2;b=0.2->0.3"`` -> ``{"a": 2.0, "b": 0.3}`` (the relaxed values)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in str(text or "").split(";"))):
        try:
            name, rest = part.split("=", 1)
            _, new = rest.split("->", 1)
            out[name.strip()] = float(new)
        except ValueError:
            raise ValueError(f"malformed relaxation entry {part!r} (expected name=old->new)") from None
    return out


def check(allocated: pd.DataFrame, policy: QuotaPolicy | None = None, total_impressions: int | None = None,
          allow_relaxed: bool = False) -> QuotaReport:
    """Recompute every metric and constraint from an allocated frame's columns, independent of the solver.

    Checks the output contract (shares sum to one and lie in their bounds, integer impressions that
    sum to ``total_impressions`` -- or to their own sum when not given -- and match the shares to
    within one unit, zeros stay zero, ``value``/``capacity`` match the policy) and, against the policy,
    C1 always and C2-C4 when regulated. A non-empty ``relaxation`` column is a violation unless
    ``allow_relaxed``; then the relaxed values replace the policy's and are listed in ``relaxations``.
    """
    policy = policy or QuotaPolicy()
    missing = [c for c in OUTPUT_COLUMNS if c not in allocated.columns]
    if missing:
        raise ValueError(f"allocated frame lacks output columns {missing}")
    cols = validate_frame(allocated)
    viol: list[str] = []
    rel_vals = allocated["relaxation"].fillna("").astype(str).unique()
    if len(rel_vals) > 1:
        viol.append(f"relaxation column differs between rows: {sorted(rel_vals)}")
    rel_text = str(rel_vals[0]) if len(rel_vals) else ""
    relaxed = parse_relaxation(rel_text)
    eff = policy
    if relaxed:
        if allow_relaxed:
            eff = replace(policy, **relaxed)
        else:
            viol.append(f"solver relaxed the policy: {rel_text}")
    share = pd.to_numeric(allocated["share"], errors="coerce").to_numpy(dtype=np.float64)
    lower = pd.to_numeric(allocated["lower"], errors="coerce").to_numpy(dtype=np.float64)
    upper = pd.to_numeric(allocated["upper"], errors="coerce").to_numpy(dtype=np.float64)
    impr_raw = pd.to_numeric(allocated["impressions"], errors="coerce").to_numpy(dtype=np.float64)
    for name, arr in (("share", share), ("lower", lower), ("upper", upper), ("impressions", impr_raw)):
        if not np.isfinite(arr).all():
            raise ValueError(f"column {name!r} has {int((~np.isfinite(arr)).sum())} NaN or infinite values")
    n = len(allocated)
    value = value_of(cols, eff)
    active = servable(cols, value)
    n_active = int(active.sum())
    elig = cols["eligible"] & active
    capacity = capacity_of(cols["popularity"], active, eff)
    for name, want in (("value", value), ("capacity", capacity)):
        got = pd.to_numeric(allocated[name], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isclose(got, want, rtol=1e-9, atol=1e-12)
        if bad.any():
            viol.append(f"{name} differs from the policy's for {int(bad.sum())} creators")

    # --- output contract ---
    if (share < -SHARE_TOL).any():
        viol.append(f"negative share for {int((share < -SHARE_TOL).sum())} creators")
    if abs(share.sum() - 1.0) > 1e-9:
        viol.append(f"shares sum to {share.sum():.12g}, not 1")
    out_of_box = (share < lower - SHARE_TOL) | (share > upper + SHARE_TOL)
    if out_of_box.any():
        viol.append(f"share outside [lower, upper] for {int(out_of_box.sum())} creators")
    if (impr_raw != np.round(impr_raw)).any() or (impr_raw < 0).any():
        viol.append("impressions are not non-negative integers")
    impr = np.round(impr_raw).astype(np.int64)
    Q = int(impr.sum()) if total_impressions is None else int(total_impressions)
    if int(impr.sum()) != Q:
        viol.append(f"impressions sum to {int(impr.sum())}, not {Q}")
    far = np.abs(impr - Q * share) >= 1.0 + 1e-6
    if far.any():
        viol.append(f"impressions differ from total*share by a unit or more for {int(far.sum())} creators")
    if ((share <= 0) & (impr > 0)).any():
        viol.append(f"{int(((share <= 0) & (impr > 0)).sum())} creators with zero share got impressions")

    # --- C1 (always) ---
    banned = cols["enforced"] & ((share > SHARE_TOL) | (impr > 0))
    if banned.any():
        viol.append(f"C1: {int(banned.sum())} enforced creators receive exposure")
    harmful = ~cols["enforced"] & ~active & ((share > SHARE_TOL) | (impr > 0))
    if harmful.any():
        viol.append(f"C0: {int(harmful.sum())} creators with non-positive value receive exposure")

    s_act = np.clip(share[active], 0, None) if n_active else np.zeros(1)
    g = gini(s_act) if n_active else 0.0
    t = top_share(s_act, eff.top_fraction) if n_active else 0.0
    merit = cols["merit"]
    ratio_dev: float | None = None
    if elig.any():
        rbar = share[elig].sum() / merit[elig].sum()
        if rbar > 0:
            ratio = share[elig] / merit[elig] / rbar
            ratio_dev = float(np.abs(ratio - 1.0).max())
    new_elig = elig & cols["is_new"]
    new_min = float(share[new_elig].min() * n_active) if new_elig.any() else None

    if eff.regulated and n_active:
        floor_share = eff.new_floor / n_active
        under = new_elig & (share < floor_share - SHARE_TOL)
        if under.any():
            viol.append(f"C2: {int(under.sum())} new eligible creators below the floor {floor_share:.6g}")
        under_i = new_elig & (impr < np.floor(Q * floor_share + 1e-9))
        if under_i.any():
            viol.append(f"C2: {int(under_i.sum())} new eligible creators below floor(Q*floor) impressions")
        if elig.any():
            rbar = share[elig].sum() / merit[elig].sum()
            r = share[elig] / merit[elig]
            lo_r = max(1.0 - eff.merit_tolerance, 0.0) * rbar
            hi_r = (1.0 + eff.merit_tolerance) * rbar
            slack = 1e-9 * max(rbar, 1e-300)
            out_band = (r < lo_r - slack) | (r > hi_r + slack)
            if out_band.any():
                viol.append(f"C3: {int(out_band.sum())} eligible creators outside the merit band "
                            f"(max deviation {ratio_dev:.4g} > {eff.merit_tolerance:g})")
        if g > eff.max_gini + 1e-9:
            viol.append(f"C4: Gini {g:.6f} > max_gini {eff.max_gini:g}")
        if t > eff.max_top_share + 1e-9:
            viol.append(f"C4: top-{top_count(n_active, eff.top_fraction)} share {t:.6f} > max_top_share "
                        f"{eff.max_top_share:g}")
        if eff.min_eligible_share > 0 and share[elig].sum() < eff.min_eligible_share - SHARE_TOL:
            viol.append(f"eligible creators hold {share[elig].sum():.6g} < min_eligible_share {eff.min_eligible_share:g}")

    # --- metrics ---
    e = effective_exposure(np.clip(share, 0, None), value, capacity) * Q
    util = float(np.dot(value, e))
    group: float | None = None
    iE = np.flatnonzero(elig)
    if iE.size >= 2:
        order = iE[np.argsort(-cols["popularity"][iE], kind="stable")]
        h = max(1, int(math.ceil(eff.head_fraction * iE.size - 1e-12)))
        head, tail = order[:h], order[h:]
        if tail.size:
            rh = share[head].sum() / merit[head].sum()
            rt = share[tail].sum() / merit[tail].sum()
            group = float(rh / rt) if rt > 0 else None
    return QuotaReport(
        n_creators=n, n_active=n_active, n_eligible=int(elig.sum()), total_impressions=Q, utility=util,
        gmv=float(np.dot(cols["gmv"], e)), prosperity=float(np.dot(cols["prosperity"], e)),
        risk=float(np.dot(cols["risk"], e)), complaints=float(np.dot(cols["complaints"], e)),
        gini=g, top_share=t, merit_disparity=ratio_dev, group_disparity=group,
        hq_original_share=float(share[elig].sum()), new_eligible_min_ratio=new_min,
        relaxations=[p for p in rel_text.split(";") if p] if allow_relaxed else [], violations=viol)
