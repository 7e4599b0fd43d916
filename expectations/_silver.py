"""What every silver suite checks, derived from the table's schema and its feed's rules.

Table modules add their own value ranges on top. Deriving the common part keeps the suites in
step with the schemas: a new non-nullable column is checked for nulls without anyone editing a
suite, and a changed enumeration is checked against the same constant the validator uses.
"""
from __future__ import annotations

import great_expectations.expectations as gxe

from libs import reference
from libs.ingest.feeds import feed as feed_of

# Referential checks tolerate a sliver of orphans (an account deleted between the parent's
# snapshot and the child's event), not a broken join.
REFERENCE_MOSTLY = 0.999


def ref_column(column: str) -> str:
    """Column the load adds beside ``column``: the parent's key when it exists, else null."""
    return f"_ref_{column}"


def common(feed_name: str) -> list:
    feed = feed_of(feed_name)
    schema = feed.silver.SCHEMA
    out: list = [gxe.ExpectTableRowCountToBeBetween(min_value={"$PARAMETER": "min_rows"},
                                                    max_value={"$PARAMETER": "max_rows"})]
    out += [gxe.ExpectColumnValuesToNotBeNull(column=f.name) for f in schema.fields if not f.nullable]
    out.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=list(feed.silver.KEYS)))
    out += [gxe.ExpectColumnValuesToBeInSet(column=c, value_set=list(v)) for c, v in feed.allowed.items()]
    iso = sorted(m.iso for m in reference.MARKETS.values())
    out += [gxe.ExpectColumnValuesToBeInSet(column=c, value_set=iso) for c in feed.markets]
    if feed.currency:
        out.append(gxe.ExpectColumnValuesToBeInSet(column=feed.currency, value_set=list(reference.CURRENCIES)))
    if feed.amount:
        out.append(gxe.ExpectColumnValuesToBeBetween(column=f"{feed.amount}_usd", min_value=0))
    out += [gxe.ExpectColumnValuesToNotBeNull(column=ref_column(c), mostly=REFERENCE_MOSTLY) for c in feed.references]
    out += [gxe.ExpectColumnValueLengthsToEqual(column=c, value=64) for c in
            (f.name for f in schema.fields if f.name.endswith("_key"))]
    return out
