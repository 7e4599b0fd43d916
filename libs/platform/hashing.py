"""Content hashes shared by writers and readers of the landing zone."""
from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def line_hash(value: Column | str) -> Column:
    """Identity of a raw record: 16 lowercase hex digits of ``xxhash64(value)``.

    Bronze stores it beside every record and the simulator's defect truth names defective lines
    by it, so the one definition is what lets a quarantined line be matched to its planted defect.
    """
    col = F.col(value) if isinstance(value, str) else value
    return F.lower(F.lpad(F.hex(F.xxhash64(col)), 16, "0"))
