"""Creator quality: signal aggregation, fingerprint matching, sequence models (issue 6)."""
