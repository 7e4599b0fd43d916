"""How a silver table's schema follows from its raw feed's: one rule, applied in one place.

Silver is the raw feed typed, deduplicated and conformed, so its columns are the raw columns
(same names, same types) with three kinds of changes, each declared by the table's own module:

* ``pseudonymise``: raw user ids are replaced by ``<name>_key`` (salted SHA-256, 64 hex chars):
  silver never carries a platform user id;
* ``amount``: a local-currency amount gains ``<amount>_usd`` at the reference rate;
* ``local_date_of``: a UTC timestamp gains ``local_date``, the calendar day in the market's zone.

Every silver table ends with the same lineage columns (where the row came from) and ``dt``.
Markets keep their column but carry ISO 3166 codes (the conforming is data, not schema).
"""
from __future__ import annotations

from pyspark.sql.types import DateType, DoubleType, StringType, StructField, StructType

LINEAGE = [
    StructField("_source_file", StringType(), False),   # landing-zone file the record came from
    StructField("_line_hash", StringType(), False),     # xxhash64 of the raw record (16 hex)
    StructField("_ingest_run_date", DateType(), False),  # --run-date of the load that wrote it
]


def pseudonym_column(name: str) -> str:
    """``user_id`` -> ``user_key``: the renamed column makes the change visible to every reader."""
    return name[:-3] + "_key" if name.endswith("_id") else name + "_key"


def silver_schema(raw: StructType, *, pseudonymise: tuple[str, ...] = (), amount: str | None = None,
                  local_date_of: str | None = None) -> StructType:
    names = {f.name for f in raw.fields}
    for col in (*pseudonymise, *(c for c in (amount, local_date_of) if c)):
        if col not in names:
            raise ValueError(f"silver rule names {col!r}, which the raw schema does not have")
    fields: list[StructField] = []
    for f in raw.fields:
        if f.name == "dt":
            continue
        if f.name in pseudonymise:
            fields.append(StructField(pseudonym_column(f.name), StringType(), f.nullable))
        else:
            fields.append(f)
    if amount:
        fields.append(StructField(f"{amount}_usd", DoubleType(), True))
    if local_date_of:
        fields.append(StructField("local_date", DateType(), True))
    return StructType(fields + LINEAGE + [StructField("dt", StringType(), False)])
