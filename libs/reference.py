"""Platform reference data: markets, their currency and time zone, and reference FX rates.

One table both sides share: the simulator draws prices in these currencies and the ingestion
layer conforms with the same registry, so "which currency does market X settle in" has exactly
one answer in the codebase. A production deployment would load FX from a daily rates table; the
fixed rates here are the embedded default (round numbers, not market data), and
:func:`fx_per_usd` is the single place that would change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from pyspark.sql import Column
from pyspark.sql import functions as F


@dataclass(frozen=True)
class Market:
    """A marketplace market: the platform's code, its ISO 3166-1 alpha-2 code, currency and time zone."""

    code: str        # the platform's code as upstream systems send it ("UK", not "GB")
    iso: str         # ISO 3166-1 alpha-2, what silver tables carry
    currency: str    # ISO 4217
    tz: str          # IANA zone of the market's business day (the capital's, for multi-zone markets)


MARKETS: dict[str, Market] = {m.code: m for m in (
    Market("US", "US", "USD", "America/New_York"),
    Market("UK", "GB", "GBP", "Europe/London"),
    Market("ID", "ID", "IDR", "Asia/Jakarta"),
    Market("MY", "MY", "MYR", "Asia/Kuala_Lumpur"),
    Market("TH", "TH", "THB", "Asia/Bangkok"),
    Market("VN", "VN", "VND", "Asia/Ho_Chi_Minh"),
    Market("PH", "PH", "PHP", "Asia/Manila"),
    Market("SG", "SG", "SGD", "Asia/Singapore"),
)}
# Reference rates: local currency units per USD.
FX_PER_USD: dict[str, float] = {"USD": 1.0, "GBP": 0.8, "IDR": 16000.0, "MYR": 4.5, "THB": 35.0, "VND": 25000.0,
                                "PHP": 58.0, "SGD": 1.35}
CURRENCY: dict[str, str] = {code: m.currency for code, m in MARKETS.items()}
CURRENCIES: tuple[str, ...] = tuple(FX_PER_USD)


def lookup(key: Column, mapping: Mapping[str, object], default: object = None) -> Column:
    """``mapping[key]`` as a column expression (``default`` for unknown keys, null by default).

    A literal map indexed by the key: one expression however long the mapping, where a chain of
    ``when`` clauses grows the plan with every entry.
    """
    if not mapping:
        raise ValueError("lookup needs a non-empty mapping")
    m = F.create_map(*[F.lit(x) for kv in mapping.items() for x in kv])
    # try_element_at: a missing key is null (never an error, whatever the ANSI settings), and a
    # null key is not looked up at all (a map lookup of null fails).
    value = F.when(key.isNotNull(), F.try_element_at(m, key))
    return value if default is None else F.coalesce(value, F.lit(default))


def currency(market: Column) -> Column:
    """ISO currency of a market code; markets outside the registry settle in USD."""
    return lookup(market, CURRENCY, "USD")


def fx_per_usd(currency_col: Column) -> Column:
    """Reference rate (units per USD) of a currency; null for a currency without a rate."""
    return lookup(currency_col, FX_PER_USD)
