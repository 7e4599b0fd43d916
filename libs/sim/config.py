"""Simulator knobs, validated once so a bad value fails before any Spark work starts.

Rates are *prevalences over all creators* (what an analyst would quote), not conditional
probabilities; :mod:`libs.sim.creators` converts them into the per-block / per-creator draws that
realise them in expectation.
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MARKETS: tuple[str, ...] = ("US", "UK", "ID", "MY", "TH", "VN", "PH", "SG")


@dataclass(frozen=True)
class SimConfig:
    """One simulated ecosystem. Frozen: a config is part of the identity of the data it generates."""

    seed: int = 7
    n_creators: int = 2000
    days: int = 14
    markets: tuple[str, ...] = DEFAULT_MARKETS
    # --- abuse prevalences (fractions of all creators) ---
    low_effort: float = 0.06
    pirate: float = 0.04
    matrix_farm: float = 0.05          # fraction of creators that are farm accounts
    farm_size_min: int = 3             # accounts per farm operator
    farm_size_max: int = 12
    sybil: float = 0.02                # fraction of creators that are sybil accounts (fresh, in clusters)
    sybil_size_min: int = 5            # accounts per sybil cluster
    sybil_size_max: int = 12
    account_trading: float = 0.02      # aged accounts sold on the black market inside the window
    fake_engagement: float = 0.04      # creators who buy engagement from a ring
    creators_per_ring: float = 6.0     # mean customers served by one ring
    ring_size_min: int = 8             # users per fake-engagement ring
    ring_size_max: int = 40
    migration: float = 0.35            # share of farm operators that were banned before and came back
    # Moderation history: share of bad actors with a past enforcement label (the rest were never
    # caught), and the share of honest creators wrongly enforced against (label noise).
    caught: float = 0.3
    false_enforcement: float = 0.004
    # 0 = bad actors are easy to tell apart; 1 = their signals overlap the honest ones almost fully.
    camouflage: float = 0.5
    # --- honest look-alikes (fractions of all creators) ---
    family_shared_device: float = 0.03
    agency_managed: float = 0.04       # honest creators run by an agency from one office (shared device/IP)
    licensed_repost: float = 0.02
    # --- content volume and copies ---
    videos_per_day: float = 0.6        # mean per honest creator
    pirate_copy_share: float = 0.5     # share of a pirate's videos that are copies of someone else's
    licensed_copy_share: float = 0.5   # share of a licensed reposter's videos that are reposts
    pirate_bits_min: int = 4           # Hamming distance (flipped fingerprint bits) of a pirate copy
    pirate_bits_max: int = 40
    licensed_bits_min: int = 0         # licensed reposts are near-exact re-uploads (watermark, crop)
    licensed_bits_max: int = 16
    farm_bits_max: int = 8             # farm reposts differ from the operator's master by 0..this
    # --- users, engagement and commerce ---
    users_per_creator: float = 5.0     # organic (non-ring) users per creator
    events_per_video: float = 12.0     # mean organic engagement events per video (heavy-tailed)
    products_per_creator: int = 4      # max products in a creator's showcase (1..this)
    # --- feed hygiene ---
    defect_rate: float = 0.005         # share of raw JSON-lines records injected with a defect

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            problems.append(f"seed must be an int, got {self.seed!r}")
        if self.n_creators < 1:
            problems.append(f"n_creators must be >= 1, got {self.n_creators}")
        if self.days < 1:
            problems.append(f"days must be >= 1, got {self.days}")
        if not self.markets or len(set(self.markets)) != len(self.markets):
            problems.append(f"markets must be a non-empty tuple of distinct codes, got {self.markets!r}")
        for name in ("low_effort", "pirate", "matrix_farm", "camouflage", "family_shared_device",
                     "licensed_repost", "pirate_copy_share", "licensed_copy_share", "sybil", "account_trading",
                     "fake_engagement", "migration", "caught", "false_enforcement", "agency_managed"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {value}")
        if self.videos_per_day <= 0 or self.videos_per_day > 4:
            problems.append(f"videos_per_day must be in (0, 4], got {self.videos_per_day}")
        if not 2 <= self.farm_size_min <= self.farm_size_max:
            problems.append(f"farm sizes need 2 <= farm_size_min <= farm_size_max, got "
                            f"{self.farm_size_min}..{self.farm_size_max} (a farm of one account is no farm)")
        for lo, hi in (("pirate_bits_min", "pirate_bits_max"), ("licensed_bits_min", "licensed_bits_max")):
            if not 0 <= getattr(self, lo) <= getattr(self, hi) <= 128:
                problems.append(f"need 0 <= {lo} <= {hi} <= 128, got {getattr(self, lo)}..{getattr(self, hi)}")
        if not 2 <= self.sybil_size_min <= self.sybil_size_max <= self.farm_size_max:
            problems.append(f"sybil sizes need 2 <= sybil_size_min <= sybil_size_max <= farm_size_max, got "
                            f"{self.sybil_size_min}..{self.sybil_size_max} (clusters share the farms' id blocks)")
        if not 2 <= self.ring_size_min <= self.ring_size_max:
            problems.append(f"ring sizes need 2 <= ring_size_min <= ring_size_max, got "
                            f"{self.ring_size_min}..{self.ring_size_max}")
        if self.creators_per_ring < 1:
            problems.append(f"creators_per_ring must be >= 1, got {self.creators_per_ring}")
        if self.users_per_creator < 1 or self.events_per_video <= 0 or self.products_per_creator < 1:
            problems.append("users_per_creator must be >= 1, events_per_video > 0 and products_per_creator >= 1")
        if not 0.0 <= self.defect_rate <= 0.5:
            problems.append(f"defect_rate must be in [0, 0.5], got {self.defect_rate}")
        if not 0 <= self.farm_bits_max <= 64:
            problems.append(f"farm_bits_max must be in [0, 64], got {self.farm_bits_max}")
        if problems:
            raise ValueError("invalid SimConfig: " + "; ".join(problems))
        # Derived probabilities must be realisable (checked after the basic ranges above).
        if self.farm_block_probability > 1:
            problems.append(
                f"matrix_farm={self.matrix_farm} is too high for farm sizes {self.farm_size_min}.."
                f"{self.farm_size_max}: at most {self.farm_mean_size / self.block_size:.3f} of creators can be farm accounts")
        elif (self.farm_block_probability + self.sybil_block_probability + self.family_block_probability
              + self.agency_block_probability > 1):
            problems.append(f"matrix_farm={self.matrix_farm}, sybil={self.sybil}, family_shared_device="
                            f"{self.family_shared_device} and agency_managed={self.agency_managed} together "
                            f"need more id blocks than exist")
        individual = self.low_effort + self.pirate + self.licensed_repost + self.account_trading
        grouped = self.grouped_share
        if individual + grouped > 1:
            problems.append(
                f"low_effort + pirate + licensed_repost + account_trading + matrix_farm + sybil + "
                f"family_shared_device + agency_managed = {individual + grouped:.3f} exceeds 1 (each creator has one role)")
        if self.fake_engagement > 1 - grouped:
            problems.append(f"fake_engagement={self.fake_engagement} exceeds the share of creators outside farms, "
                            f"sybil clusters and families ({1 - grouped:.3f}): only those buy engagement")
        if problems:
            raise ValueError("invalid SimConfig: " + "; ".join(problems))

    # --- derived quantities (see libs.sim.creators for how they are used) ---
    @property
    def block_size(self) -> int:
        """Creators are laid out in blocks of this many consecutive ids; a block hosts at most one group."""
        return self.farm_size_max

    @property
    def farm_mean_size(self) -> float:
        return (self.farm_size_min + self.farm_size_max) / 2

    @property
    def farm_block_probability(self) -> float:
        """P(block hosts a farm) so that E[farm accounts] / n = matrix_farm."""
        return self.matrix_farm * self.block_size / self.farm_mean_size

    @property
    def sybil_block_probability(self) -> float:
        """P(block hosts a sybil cluster) so that E[sybil accounts] / n = sybil."""
        return self.sybil * self.block_size / ((self.sybil_size_min + self.sybil_size_max) / 2)

    @property
    def family_block_probability(self) -> float:
        """P(block hosts a family of 2-3) so that E[family members] / n = family_shared_device."""
        return self.family_shared_device * self.block_size / 2.5

    @property
    def agency_block_probability(self) -> float:
        """P(block hosts an agency of 4-10 managed creators) so that E[agency creators] / n = agency_managed."""
        return self.agency_managed * self.block_size / 7.0

    @property
    def grouped_share(self) -> float:
        """Expected share of creators in groups (farms, sybil clusters, families, agencies)."""
        return self.matrix_farm + self.sybil + self.family_shared_device + self.agency_managed

    @property
    def n_rings(self) -> int:
        """Fake-engagement rings: fixed by the configured customers, at least one if any customer exists."""
        if self.fake_engagement == 0:
            return 0
        return max(1, round(self.n_creators * self.fake_engagement / self.creators_per_ring))

    @property
    def n_organic_users(self) -> int:
        return max(1, round(self.n_creators * self.users_per_creator))
