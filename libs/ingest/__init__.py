"""Ingestion: raw landing zone -> bronze (as received) -> silver (typed, deduplicated, conformed, gated)."""
