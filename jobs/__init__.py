"""Thin job entry points, one module per produced table: ``arg_parser()`` -> ``main()``.

Each module reads its inputs, calls pure transforms from ``libs`` and writes one table
idempotently. Run through ``cgov run <name>`` or ``spark-submit jobs/<name>.py``.
"""
