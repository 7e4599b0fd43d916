"""Data contracts: one Great Expectations suite per table, ``expectations/<table>.py``.

Each module exports ``EXPECTATIONS`` (a list of ``great_expectations.expectations`` objects).
:func:`libs.ingest.contracts.gate` runs a table's suite on a load's candidate rows before they are
published; the row-count bounds are suite parameters (``min_rows``/``max_rows``) the load derives
from the previous day, so one suite serves every date.
"""
