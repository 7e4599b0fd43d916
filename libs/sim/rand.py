"""Deterministic randomness as Spark Column expressions.

Every draw is a pure function of ``xxhash64(seed, salt, *keys)``: the same seed, salt and key
values give the same number on any executor, in any partition, in any order, on any cluster size.
``rand()`` cannot promise that: it is seeded per *partition* (seed + partition index) and advances
row by row, so its values change whenever the partitioning, the number of input files, AQE
coalescing or the row order inside a partition changes -- the same job would write different bytes
on a laptop and on a cluster. Hashing the row's own identity (creator index, day, slot, ...) makes
the value a property of the row, not of where it happens to be computed.

The *salt* names the purpose of a draw ("role", "video_slot", ...), so two draws over the same keys
are independent, and adding a new draw never shifts existing ones (unlike a sequential RNG).

Keys may be column names or Columns; constants are folded in as literals.
"""
from __future__ import annotations

import math
from typing import Sequence, Union

from pyspark.sql import Column
from pyspark.sql import functions as F

ColumnOrName = Union[Column, str]
Number = Union[int, float, Column]

_MANTISSA_BITS = 53  # doubles represent every multiple of 2**-53 in [0, 1) exactly


def _col(c: ColumnOrName) -> Column:
    return F.col(c) if isinstance(c, str) else c


def _lit(x: Number) -> Column:
    return x if isinstance(x, Column) else F.lit(x)


def hash64(seed: int, salt: str, *keys: ColumnOrName) -> Column:
    """64-bit signed hash of (seed, salt, keys); the root of every other draw."""
    return F.xxhash64(F.lit(int(seed)).cast("long"), F.lit(salt), *[_col(k) for k in keys])


def uniform(seed: int, salt: str, *keys: ColumnOrName) -> Column:
    """U[0, 1) from the low 53 bits of the hash (exactly representable, so no rounding to 1.0)."""
    mantissa = hash64(seed, salt, *keys).bitwiseAND(F.lit((1 << _MANTISSA_BITS) - 1))
    return mantissa.cast("double") / F.lit(float(1 << _MANTISSA_BITS))


def randint(seed: int, salt: str, lo: Number, hi: Number, *keys: ColumnOrName) -> Column:
    """Integer uniform on the *inclusive* range [lo, hi] (bounds may be Columns); a long Column."""
    span = _lit(hi) - _lit(lo) + F.lit(1)
    return (_lit(lo) + F.floor(uniform(seed, salt, *keys) * span)).cast("long")


def normal(seed: int, salt: str, *keys: ColumnOrName, mean: Number = 0.0, sd: Number = 1.0) -> Column:
    """Gaussian via Box-Muller on two independent uniforms (salts ``salt#1`` and ``salt#2``).

    ``1 - u1`` lies in (0, 1], so the logarithm is always finite.
    """
    u1 = uniform(seed, salt + "#1", *keys)
    u2 = uniform(seed, salt + "#2", *keys)
    z = F.sqrt(F.lit(-2.0) * F.log(F.lit(1.0) - u1)) * F.cos(F.lit(2 * math.pi) * u2)
    return _lit(mean) + _lit(sd) * z


def bernoulli(p: Number, seed: int, salt: str, *keys: ColumnOrName) -> Column:
    """Boolean Column, true with probability ``p`` (a float or a Column)."""
    return uniform(seed, salt, *keys) < _lit(p)


def choice(options: Sequence, u: Column, weights: Sequence[float] | None = None) -> Column:
    """Pick one of ``options`` (Python literals) with the uniform ``u``; optionally weighted.

    Unweighted: index ``floor(u * n)`` into a literal array. Weighted: a CASE over cumulative
    weights (normalised here, so they need not sum to 1).
    """
    if not options:
        raise ValueError("choice() needs at least one option")
    if weights is None:
        idx = F.least(F.floor(u * F.lit(len(options))).cast("int"), F.lit(len(options) - 1))
        return F.element_at(F.array(*[F.lit(o) for o in options]), idx + F.lit(1))
    if len(weights) != len(options) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError("weights must be non-negative, one per option, with a positive sum")
    total = float(sum(weights))
    expr = None
    cum = 0.0
    for opt, w in zip(options[:-1], weights[:-1]):
        cum += w / total
        expr = (F.when(u < F.lit(cum), F.lit(opt)) if expr is None else expr.when(u < F.lit(cum), F.lit(opt)))
    last = F.lit(options[-1])
    return last if expr is None else expr.otherwise(last)


def clip01(c: Column) -> Column:
    """Clamp a score into [0, 1], the range upstream models emit."""
    return F.least(F.greatest(c, F.lit(0.0)), F.lit(1.0))


def hex64(c: Column) -> Column:
    """A 64-bit long as 16 lowercase hex digits (two's complement, zero padded)."""
    return F.lower(F.lpad(F.hex(c), 16, "0"))
