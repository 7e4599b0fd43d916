"""Syndicate detectors: each a pure function returning rows of ``schemas.syndicates.DETECTOR_COLUMNS``."""
