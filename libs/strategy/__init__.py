"""Ecosystem strategy: multi-task value models and fairness-regulated traffic quotas."""
