"""Rich-get-richer: a multi-round simulation of exposure feeding popularity feeding exposure.

Why simulate: a one-day quota looks harmless -- the optimiser just puts impressions where they
are worth most today. But "worth most today" is decided by *capacity*, which grows with
popularity, and popularity grows with the exposure it was given. Run that loop for a few weeks
and a heavy-tailed start becomes a winner-take-all market in which a high-quality newcomer with
no audience never gets the exposure that would give it one. The regulated policy of
:mod:`libs.strategy.quota` (merit band, new-creator floors, concentration caps) is meant to break
the loop at a bounded cost in GMV; this module measures both halves of that claim on the same
population and the same random draws (common random numbers, so the arms differ only by policy).

One round, per creator ``i`` (all vectorised):

1. The platform builds the quota input from what it *knows*: its estimates of GMV per effective
   impression and of quality (``merit``), the governance costs, current popularity, eligibility
   (``original`` and estimated quality >= ``hq_threshold``), newness and enforcement; then
   :func:`libs.strategy.quota.allocate` splits the round's impressions.
2. The world responds with its *latent* truth: effective impressions
   ``e_i = Q*c_i*(1 - exp(-s_i/c_i))`` (the audience saturates, as in the quota model), engagement
   ``e_i * engagement_rate * quality_i * noise`` and GMV ``engagement * gmv_per_engagement_i * noise``
   (log-normal noise with mean one, from one seeded ``numpy`` Generator).
3. Popularity becomes ``decay * popularity + follow_rate * engagement`` (audiences forget; engaged
   viewers follow), and the estimates are updated from the observed engagement and GMV
   (pseudo-count shrinkage towards the population prior, so a creator seen on few impressions is
   not judged on noise).

Per round and arm the output has the exposure Gini and top-1 % share, the exposure share of
latent high-quality original creators, GMV and cumulative GMV, the popularity Gini, and the quota
report's merit disparity; :func:`compare` adds GMV retained (regulated / unregulated, cumulative).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from libs.platform.plots import saved_axes
from libs.strategy.quota import INPUT_COLUMNS, QuotaPolicy, check, gini, lorenz, solve, top_share

POPULATION_COLUMNS: tuple[str, ...] = ("creator_id", "quality", "original", "popularity", "gmv_per_engagement",
                                       "risk", "complaints", "is_new", "enforced")
ARMS: tuple[str, ...] = ("regulated", "unregulated")


@dataclass(frozen=True)
class FeedbackConfig:
    """World dynamics and the platform's learning; defaults give weekly-ish rounds.

    ``decay`` 0.7: an audience keeps ~70 % of its attention from one round to the next without new
    exposure. ``follow_rate`` 1.0: one engagement earns one unit of popularity (popularity counts
    engaged followers). ``engagement_rate`` 0.05: a quality-1 creator earns one engagement per 20
    effective impressions. ``noise`` 0.3: log-normal sigma of per-round engagement and GMV luck.
    ``prior_impressions`` 2000: the merit / GMV estimates weigh the population prior like 2 000
    effective impressions of evidence. ``new_rounds`` 4: a new creator keeps its C2 floor for four
    rounds. ``hq_threshold`` 0.5: quality at or above which an original creator is "high quality".
    """

    decay: float = 0.7
    follow_rate: float = 1.0
    engagement_rate: float = 0.05
    noise: float = 0.3
    prior_impressions: float = 2000.0
    new_rounds: int = 4
    hq_threshold: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.decay <= 1:
            raise ValueError(f"decay must be in [0, 1], got {self.decay}")
        for name in ("follow_rate", "engagement_rate", "prior_impressions"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.noise >= 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        if self.new_rounds < 0:
            raise ValueError(f"new_rounds must be >= 0, got {self.new_rounds}")
        if not 0 < self.hq_threshold <= 1:
            raise ValueError(f"hq_threshold must be in (0, 1], got {self.hq_threshold}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "FeedbackConfig":
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown feedback config keys {unknown}")
        return cls(**d)


# --------------------------------------------------------------------------------------------
# Populations
# --------------------------------------------------------------------------------------------

def synthetic_population(n: int, seed: int = 0, popularity_sigma: float = 2.0, new_fraction: float = 0.1,
                         enforced_fraction: float = 0.02, original_fraction: float = 0.7) -> pd.DataFrame:
    """A seeded market of ``n`` creators with heavy-tailed popularity (log-normal, sigma 2: the top 1 %
    hold ~30 % of the audience) that is *independent* of quality -- so any link between exposure
    and quality is what the allocation creates, not what the start assumed.

    Quality ~ Beta(2, 3) (mean 0.4, a minority above 0.5), GMV per engagement log-normal, governance
    costs higher for non-original creators (reposts draw more complaints and IP risk). New
    creators start with ~1 % of a typical audience.
    """
    if n < 2:
        raise ValueError(f"need at least 2 creators, got {n}")
    rng = np.random.default_rng(seed)
    quality = np.clip(rng.beta(2.0, 3.0, n), 1e-3, 1.0)
    original = rng.random(n) < original_fraction
    popularity = rng.lognormal(0.0, popularity_sigma, n) * 100.0     # ~100 followers at the median
    is_new = rng.random(n) < new_fraction
    popularity[is_new] *= 0.01
    enforced = rng.random(n) < enforced_fraction
    return pd.DataFrame({
        "creator_id": [f"c{i:06d}" for i in range(n)],
        "quality": quality,
        "original": original,
        "popularity": popularity,
        "gmv_per_engagement": rng.lognormal(0.0, 0.5, n),
        "risk": rng.exponential(0.002, n) * np.where(original, 1.0, 3.0),        # per impression, value units
        "complaints": rng.exponential(0.001, n) * np.where(original, 1.0, 3.0),
        "is_new": is_new,
        "enforced": enforced,
    })


def population_from_quota_frame(frame: pd.DataFrame, config: FeedbackConfig | None = None,
                                engagement_rate: float | None = None) -> pd.DataFrame:
    """A simulation population from a real quota input frame (``creator_id, gmv, ..., popularity``).

    ``quality = merit``; ``original = eligible or merit < hq_threshold`` (an eligible creator is
    original; a high-merit creator that is *not* eligible must be non-original; below the threshold
    originality is unknown and assumed, which only matters if its estimate later crosses the
    threshold). ``gmv_per_engagement = gmv / (engagement_rate * merit)`` inverts the GMV per
    effective impression the platform had estimated.
    """
    config = config or FeedbackConfig()
    rate = engagement_rate or config.engagement_rate
    missing = [c for c in INPUT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"quota frame lacks columns {missing}")
    merit = frame["merit"].to_numpy(dtype=np.float64)
    eligible = frame["eligible"].to_numpy(dtype=bool)
    return pd.DataFrame({
        "creator_id": frame["creator_id"].astype(str).to_numpy(),
        "quality": merit,
        "original": eligible | (merit < config.hq_threshold),
        "popularity": frame["popularity"].to_numpy(dtype=np.float64),
        "gmv_per_engagement": frame["gmv"].to_numpy(dtype=np.float64) / (rate * merit),
        "risk": frame["risk"].to_numpy(dtype=np.float64),
        "complaints": frame["complaints"].to_numpy(dtype=np.float64),
        "is_new": frame["is_new"].to_numpy(dtype=bool),
        "enforced": frame["enforced"].to_numpy(dtype=bool),
    })


def _as_population(creators: pd.DataFrame, config: FeedbackConfig) -> pd.DataFrame:
    if "quality" not in creators.columns and "merit" in creators.columns:
        creators = population_from_quota_frame(creators, config)
    missing = [c for c in POPULATION_COLUMNS if c not in creators.columns]
    if missing:
        raise ValueError(f"creator population lacks columns {missing} (pass a population or a quota input frame)")
    if len(creators) < 2:
        raise ValueError("need at least 2 creators")
    q = creators["quality"].to_numpy(dtype=np.float64)
    if not np.isfinite(q).all() or ((q <= 0) | (q > 1)).any():
        raise ValueError(f"quality must be in (0, 1]; {int((~np.isfinite(q) | (q <= 0) | (q > 1)).sum())} rows are not")
    for col in ("popularity", "gmv_per_engagement", "risk", "complaints"):
        v = creators[col].to_numpy(dtype=np.float64)
        if not np.isfinite(v).all() or (v < 0).any():
            raise ValueError(f"column {col!r} has {int((~np.isfinite(v) | (v < 0)).sum())} NaN or negative values")
    if creators["creator_id"].duplicated().any():
        raise ValueError(f"creator_id has {int(creators['creator_id'].duplicated().sum())} duplicates")
    return creators.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------

@dataclass
class SimulationRun:
    """Per-round metrics of one arm and its last round's per-creator state."""

    metrics: pd.DataFrame
    final: pd.DataFrame      # creator_id, share, popularity, quality, original, enforced of the last round


def _lognormal_mean_one(rng: np.random.Generator, sigma: float, n: int) -> np.ndarray:
    # exp(N(-sigma^2/2, sigma)) has mean exactly one: noise adds luck, not bias.
    return np.exp(rng.normal(-0.5 * sigma * sigma, sigma, n)) if sigma > 0 else np.ones(n)


def simulate_detailed(creators: pd.DataFrame, policy: QuotaPolicy, rounds: int, total_impressions: int,
                      seed: int = 0, config: FeedbackConfig | None = None) -> SimulationRun:
    """Run one arm for ``rounds`` rounds (see the module docstring); deterministic given ``seed``."""
    config = config or FeedbackConfig()
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if total_impressions < 1:
        raise ValueError(f"total_impressions must be >= 1, got {total_impressions}")
    pop_df = _as_population(creators, config)
    n = len(pop_df)
    rng = np.random.default_rng(seed)
    quality = pop_df["quality"].to_numpy(dtype=np.float64)
    original = pop_df["original"].to_numpy(dtype=bool)
    gpe = pop_df["gmv_per_engagement"].to_numpy(dtype=np.float64)
    enforced = pop_df["enforced"].to_numpy(dtype=bool)
    new0 = pop_df["is_new"].to_numpy(dtype=bool)
    popularity = pop_df["popularity"].to_numpy(dtype=np.float64).copy()
    active = ~enforced
    hq_original = original & (quality >= config.hq_threshold) & active

    # Platform's starting knowledge: the population means (a creator has no track record yet), plus
    # one prior-sized observation of its own quality for established creators (past data).
    q_prior = float(quality[active].mean())
    gmv_prior = float((config.engagement_rate * quality * gpe)[active].mean())       # GMV per effective impression
    n0 = config.prior_impressions
    seen_eff = np.where(new0, 0.0, n0)
    seen_eng = np.where(new0, 0.0, n0 * config.engagement_rate * quality * _lognormal_mean_one(rng, config.noise, n))
    seen_gmv = seen_eng * gpe
    rows: list[dict[str, Any]] = []
    cum_gmv = 0.0
    share = np.zeros(n)
    for r in range(rounds):
        merit_hat = np.clip((seen_eng / config.engagement_rate + n0 * q_prior) / (seen_eff + n0), 1e-3, 1.0)
        gmv_hat = (seen_gmv + n0 * gmv_prior) / (seen_eff + n0)
        frame = pd.DataFrame({
            "creator_id": pop_df["creator_id"].astype(str).to_numpy(),
            "gmv": gmv_hat,
            "prosperity": config.engagement_rate * merit_hat,       # engagements per effective impression
            "risk": pop_df["risk"].to_numpy(dtype=np.float64),
            "complaints": pop_df["complaints"].to_numpy(dtype=np.float64),
            "merit": merit_hat,
            "eligible": original & (merit_hat >= config.hq_threshold),
            "is_new": new0 & (r < config.new_rounds),
            "enforced": enforced,
            "popularity": popularity,
        })
        sol = solve(frame, int(total_impressions), policy)
        report = check(sol.frame, policy, int(total_impressions), allow_relaxed=True)
        share = sol.frame["share"].to_numpy(dtype=np.float64)
        impressions = sol.frame["impressions"].to_numpy(dtype=np.float64)
        cap = sol.frame["capacity"].to_numpy(dtype=np.float64)   # the audiences the solver planned with
        eff = total_impressions * cap * -np.expm1(-share / cap)
        eng = eff * config.engagement_rate * quality * _lognormal_mean_one(rng, config.noise, n)
        gmv_i = eng * gpe * _lognormal_mean_one(rng, config.noise, n)
        round_gmv = float(gmv_i.sum())
        cum_gmv += round_gmv
        s_act = share[active]
        rows.append({
            "round": r, "gini": gini(s_act), "top_share": top_share(s_act, policy.top_fraction),
            "hq_original_share": float(share[hq_original].sum()),
            "eligible_share": report.hq_original_share,
            "zero_exposure": float((impressions[active] == 0).mean()),
            "gmv": round_gmv, "cumulative_gmv": cum_gmv, "engagement": float(eng.sum()),
            "popularity_gini": gini(popularity[active]),
            "popularity_top_share": top_share(popularity[active], policy.top_fraction),
            "merit_disparity": report.merit_disparity, "utility": report.utility,
            "relaxation": ";".join(sol.relaxations),
            # The constraints hold over the *servable* creators (quota.servable); ``gini`` above is
            # the market view over every non-enforced creator, zero-exposure harmful ones included.
            "violations": len(report.violations),
        })
        popularity = config.decay * popularity + config.follow_rate * eng
        seen_eff += eff
        seen_eng += eng
        seen_gmv += gmv_i
    final = pd.DataFrame({"creator_id": pop_df["creator_id"].to_numpy(), "share": share, "popularity": popularity,
                          "quality": quality, "original": original, "enforced": enforced})
    return SimulationRun(metrics=pd.DataFrame(rows), final=final)


def simulate(creators: pd.DataFrame, policy: QuotaPolicy, rounds: int, total_impressions: int = 1_000_000,
             seed: int = 0, config: FeedbackConfig | None = None) -> pd.DataFrame:
    """Per-round metrics of one arm (``round, gini, top_share, hq_original_share, gmv, cumulative_gmv, ...``)."""
    return simulate_detailed(creators, policy, rounds, total_impressions, seed, config).metrics


@dataclass
class Comparison:
    """Both arms on the same population and random draws."""

    metrics: pd.DataFrame                    # long: one row per (arm, round), plus gmv_retained
    final: dict[str, pd.DataFrame]
    policy: QuotaPolicy

    @property
    def gmv_retained(self) -> float:
        """Cumulative GMV of the regulated arm over the unregulated arm's, at the last round."""
        last = self.metrics[self.metrics["round"] == self.metrics["round"].max()]
        by_arm = last.set_index("arm")["cumulative_gmv"]
        return float(by_arm["regulated"] / by_arm["unregulated"])


def compare(creators: pd.DataFrame, policy: QuotaPolicy, rounds: int, total_impressions: int = 1_000_000,
            seed: int = 0, config: FeedbackConfig | None = None) -> Comparison:
    """Run the regulated arm (``policy`` with ``regulated=True``) and the unregulated baseline with the same seed.

    ``gmv_retained`` per round = regulated cumulative GMV / unregulated cumulative GMV.
    """
    runs = {"regulated": simulate_detailed(creators, replace(policy, regulated=True), rounds, total_impressions,
                                           seed, config),
            "unregulated": simulate_detailed(creators, replace(policy, regulated=False), rounds, total_impressions,
                                             seed, config)}
    frames = [run.metrics.assign(arm=arm) for arm, run in runs.items()]
    long = pd.concat(frames, ignore_index=True)
    cum = long.pivot(index="round", columns="arm", values="cumulative_gmv")
    retained = (cum["regulated"] / cum["unregulated"]).rename("gmv_retained")
    long = long.merge(retained, left_on="round", right_index=True, how="left")
    cols = ["arm", "round"] + [c for c in long.columns if c not in ("arm", "round")]
    return Comparison(metrics=long[cols], final={arm: run.final for arm, run in runs.items()}, policy=policy)


# --------------------------------------------------------------------------------------------
# Plots (Agg canvas, files only: libs.platform.plots)
# --------------------------------------------------------------------------------------------

def _line_plot(comparison: Comparison, column: str, ylabel: str, title: str, path: str | os.PathLike,
               hline: float | None = None, hlabel: str = "") -> str:
    with saved_axes(path, (6.4, 4.0)) as ax:
        for arm in ARMS:
            d = comparison.metrics[comparison.metrics["arm"] == arm]
            ax.plot(d["round"], d[column], marker="o", markersize=3, label=arm)
        if hline is not None:
            ax.axhline(hline, color="grey", linestyle="--", linewidth=1, label=hlabel)
        ax.set_xlabel("round")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend()
    return str(path)


def plot_gini(comparison: Comparison, path: str | os.PathLike) -> str:
    """Exposure Gini per round for both arms, with the policy's ``max_gini``; returns the PNG path."""
    return _line_plot(comparison, "gini", "Gini of exposure", "Exposure concentration over rounds", path,
                      hline=comparison.policy.max_gini, hlabel="max_gini")


def plot_hq_share(comparison: Comparison, path: str | os.PathLike) -> str:
    """Exposure share of latent high-quality original creators per round; returns the PNG path."""
    return _line_plot(comparison, "hq_original_share", "share of impressions",
                      "Exposure of high-quality original creators", path)


def plot_lorenz(comparison: Comparison, path: str | os.PathLike) -> str:
    """Lorenz curves of the last round's exposure (active creators) for both arms; returns the PNG path."""
    with saved_axes(path, (5.0, 5.0)) as ax:
        for arm in ARMS:
            fin = comparison.final[arm]
            p, l = lorenz(fin.loc[~fin["enforced"], "share"].to_numpy())
            ax.plot(p, l, label=f"{arm} (Gini {gini(fin.loc[~fin['enforced'], 'share']):.2f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="equality")
        ax.set_xlabel("fraction of creators (least exposed first)")
        ax.set_ylabel("cumulative share of impressions")
        ax.set_title("Lorenz curves, last round")
        ax.legend()
    return str(path)


def plot_all(comparison: Comparison, out_dir: str | os.PathLike) -> dict[str, str]:
    """All three plots into ``out_dir``; ``{"gini": path, "lorenz": path, "hq_share": path}``."""
    out = Path(out_dir)
    return {"gini": plot_gini(comparison, out / "gini_over_rounds.png"),
            "lorenz": plot_lorenz(comparison, out / "lorenz_last_round.png"),
            "hq_share": plot_hq_share(comparison, out / "hq_original_share.png")}
