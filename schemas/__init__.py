"""Table schemas, each declared once (``schemas/<table>.py`` exports ``SCHEMA``).

Jobs read raw feeds with these schemas (never inferred), write through :func:`conform`, and tests
build their inline frames from them, so a schema change is one edit that every consumer sees.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql.types import ArrayType, DataType, MapType, StructField, StructType


# Wire format of every JSON-lines feed of the landing zone, for writers (the simulator) and
# readers (ingestion) alike: timestamps in UTC with an explicit zone designator and microseconds
# (lossless for Spark timestamps, independent of the session time zone), ISO dates, and nulls
# written as explicit ``null`` -- so an absent field (a defect) differs from a null one.
JSON_OPTIONS: dict[str, str] = {
    "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "timeZone": "UTC",
    "dateFormat": "yyyy-MM-dd",
    "ignoreNullFields": "false",
}


class SchemaMismatch(ValueError):
    pass


def _nullable(t: DataType) -> DataType:
    """``t`` with every nested nullability flag set: types compared as types, not as null promises."""
    if isinstance(t, ArrayType):
        return ArrayType(_nullable(t.elementType), True)
    if isinstance(t, MapType):
        return MapType(_nullable(t.keyType), _nullable(t.valueType), True)
    if isinstance(t, StructType):
        return StructType([StructField(f.name, _nullable(f.dataType), True) for f in t.fields])
    return t


def conform(df: DataFrame, schema: StructType) -> DataFrame:
    """Select ``schema``'s columns in order; refuse missing columns or different types.

    No implicit casts: a type drift upstream must surface here, not as a silently truncated value.
    Nullability is not compared, nested included (Spark derives it loosely from expressions
    and from file footers).
    """
    have = {f.name: f.dataType for f in df.schema.fields}
    problems = []
    for field in schema.fields:
        if field.name not in have:
            problems.append(f"missing column {field.name!r}")
        elif _nullable(have[field.name]) != _nullable(field.dataType):
            problems.append(f"{field.name!r} is {have[field.name].simpleString()}, expected {field.dataType.simpleString()}")
    if problems:
        raise SchemaMismatch("; ".join(problems))
    return df.select(*[f.name for f in schema.fields])
