"""Table schemas, each declared once (``schemas/<table>.py`` exports ``SCHEMA``).

Jobs read raw feeds with these schemas (never inferred), write through :func:`conform`, and tests
build their inline frames from them, so a schema change is one edit that every consumer sees.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql.types import StructType


class SchemaMismatch(ValueError):
    pass


def conform(df: DataFrame, schema: StructType) -> DataFrame:
    """Select ``schema``'s columns in order; refuse missing columns or different types.

    No implicit casts: a type drift upstream must surface here, not as a silently truncated value.
    Nullability is not compared (Spark derives it loosely from expressions).
    """
    have = {f.name: f.dataType for f in df.schema.fields}
    problems = []
    for field in schema.fields:
        if field.name not in have:
            problems.append(f"missing column {field.name!r}")
        elif have[field.name] != field.dataType:
            problems.append(f"{field.name!r} is {have[field.name].simpleString()}, expected {field.dataType.simpleString()}")
    if problems:
        raise SchemaMismatch("; ".join(problems))
    return df.select(*[f.name for f in schema.fields])
