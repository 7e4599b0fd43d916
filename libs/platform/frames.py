"""Small DataFrame guards shared by the pure transforms in ``libs/``."""
from __future__ import annotations

from typing import Iterable

from pyspark.sql import DataFrame


def require_columns(df: DataFrame, cols: Iterable[str], what: str) -> None:
    """Raise ``ValueError`` naming ``what`` and the missing columns.

    Why: a transform handed the wrong table fails later with an analyser error about some derived
    column; naming the input and what it lacks points at the caller's mistake directly.
    """
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing} (has {df.columns})")
