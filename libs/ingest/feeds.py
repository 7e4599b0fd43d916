"""The feeds ingestion knows: one record per raw feed with everything silver needs to load it.

A feed's *types* come from its schema modules (``schemas.raw_<feed>``, ``schemas.silver_<feed>``);
this registry adds the *rules* a record must pass to enter silver -- which columns are market
codes, currencies, amounts, enumerations, timestamps that cannot lie in the future -- and what
it references. Rules are data, so the validator (:mod:`libs.ingest.validate`), the contract
suites (``expectations/``) and the tests read one declaration.

Order matters: :data:`FEEDS` lists parents before children (creators before the feeds whose
``creator_id`` is checked against them), which is the order a load runs.
"""
from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import dataclass, field
from types import ModuleType

from pyspark.sql.types import StructField

from schemas import raw_creators, raw_engagement_events, raw_listings, raw_moderation, raw_videos


@dataclass(frozen=True)
class Feed:
    """One raw feed and the rules its records must pass to enter silver.

    ``snapshot``: the feed lands a full snapshot per run date (creators, devices, ...) rather than
    the day's events; a snapshot missing for the run date is an upstream outage (an error), an
    event feed with no records on a day is just a quiet day.
    ``keys``: the business key, unique per date partition in silver (duplicates are quarantined).
    ``order_by``: timestamp that decides which copy of a duplicated key is kept (earliest wins).
    ``markets``: columns carrying a market code (validated exactly, then conformed to ISO).
    ``market_of_day``: the market column whose time zone gives ``local_date``.
    ``currency``: the currency column of ``amount`` (silver's ``AMOUNT``).
    ``allowed``: enumerated columns and their values.
    ``not_after_day``: timestamps that cannot lie after the end of the record's date partition.
    ``references``: column -> parent silver table whose same-named column it must exist in.
    """

    name: str
    keys: tuple[str, ...]
    snapshot: bool
    order_by: str | None = None
    markets: tuple[str, ...] = ()
    market_of_day: str | None = None
    currency: str | None = None
    allowed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    not_after_day: tuple[str, ...] = ()
    references: dict[str, str] = field(default_factory=dict)

    @property
    def raw(self) -> ModuleType:
        return importlib.import_module(f"schemas.raw_{self.name}")

    @property
    def silver(self) -> ModuleType:
        return importlib.import_module(f"schemas.silver_{self.name}")

    @property
    def raw_table(self) -> str:
        return f"raw_{self.name}"

    @property
    def bronze_table(self) -> str:
        return f"bronze_{self.name}"

    @property
    def silver_table(self) -> str:
        return f"silver_{self.name}"

    @property
    def data_fields(self) -> list[StructField]:
        """The raw record's fields (everything but the directory partition ``dt``)."""
        return [f for f in self.raw.SCHEMA.fields if f.name != "dt"]

    @property
    def required(self) -> list[str]:
        """Fields the producer guarantees present and non-null (declared non-nullable)."""
        return [f.name for f in self.data_fields if not f.nullable]

    @property
    def amount(self) -> str | None:
        return self.silver.AMOUNT


_CREATOR_REF = {"creator_id": "silver_creators"}

FEEDS: tuple[Feed, ...] = (
    Feed("creators", keys=("creator_id",), snapshot=True, markets=("market",), market_of_day="market",
         allowed={"status": raw_creators.STATUSES}),
    Feed("users", keys=("user_id",), snapshot=True, markets=("market",)),
    Feed("devices", keys=("creator_id", "device_id"), snapshot=True, markets=("geo",), market_of_day="geo",
         not_after_day=("first_seen", "last_seen"), references=_CREATOR_REF),
    Feed("videos", keys=("video_id",), snapshot=False, order_by="published_at",
         allowed={"scenario": raw_videos.SCENARIOS}, not_after_day=("published_at",), references=_CREATOR_REF),
    Feed("listings", keys=("listing_id",), snapshot=True, currency="currency",
         allowed={"listing_status": raw_listings.LISTING_STATUSES}, not_after_day=("listed_at",),
         references=_CREATOR_REF),
    Feed("moderation", keys=("case_id",), snapshot=True, allowed={"action": raw_moderation.ACTIONS},
         not_after_day=("decided_at",), references=_CREATOR_REF),
    Feed("engagement_events", keys=("event_id",), snapshot=False, order_by="ts", markets=("market",),
         market_of_day="market", currency="currency",
         allowed={"event_type": raw_engagement_events.EVENT_TYPES, "scenario": raw_engagement_events.SCENARIOS},
         not_after_day=("ts",), references=_CREATOR_REF),
    Feed("logins", keys=("login_id",), snapshot=False, order_by="ts", markets=("geo",), market_of_day="geo",
         not_after_day=("ts",), references=_CREATOR_REF),
    Feed("withdrawals", keys=("withdrawal_id",), snapshot=False, order_by="requested_at", currency="currency",
         not_after_day=("requested_at",), references=_CREATOR_REF),
    Feed("complaints", keys=("complaint_id",), snapshot=False, order_by="ts", not_after_day=("ts",),
         references=_CREATOR_REF),
    Feed("refunds", keys=("refund_id",), snapshot=False, order_by="ts", currency="currency", not_after_day=("ts",),
         references=_CREATOR_REF),
)
BY_NAME: dict[str, Feed] = {f.name: f for f in FEEDS}


def feed(name: str) -> Feed:
    """The feed called ``name`` (``engagement_events`` or ``raw_engagement_events``); clear error otherwise."""
    short = name[4:] if name.startswith("raw_") else name
    if short not in BY_NAME:
        raise KeyError(f"unknown feed {name!r}; known: {', '.join(BY_NAME)}")
    return BY_NAME[short]


def select(names: str | None) -> list[Feed]:
    """Feeds named in a comma-separated list (``None``: all), always in :data:`FEEDS` order."""
    if not names:
        return list(FEEDS)
    wanted = {feed(n.strip()).name for n in names.split(",") if n.strip()}
    return [f for f in FEEDS if f.name in wanted]


def load_dates(feed: Feed, run_date: dt.date, days: int) -> list[str]:
    """The date partitions one load covers for ``feed`` (oldest first)."""
    if days < 1:
        raise ValueError(f"--days must be >= 1, got {days}")
    n = 1 if feed.snapshot else days
    return [(run_date - dt.timedelta(days=i)).isoformat() for i in reversed(range(n))]
