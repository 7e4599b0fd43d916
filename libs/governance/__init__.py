"""Explainable governance: policy corpus, retrieval, agent, cards."""
