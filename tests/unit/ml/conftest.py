"""Shared tiny data of the ML-layer tests: 64 synthetic sequences with a planted pattern.

Label ``k`` is positive exactly when feature ``k`` spikes to 3.0 on one real step (see
``libs.ml.sequences.synthetic_sequences``), so "the model learned" has a known right answer.
"""
from __future__ import annotations

import numpy as np
import pytest

from libs.ml.sequences import SequenceSpec, synthetic_sequences

LABELS = ("low_effort", "piracy", "matrix")


@pytest.fixture(scope="session")
def seq_spec() -> SequenceSpec:
    return SequenceSpec(max_len=12, n_features=4, label_names=LABELS, feature_names=("f0", "f1", "f2", "f3"))


@pytest.fixture(scope="session")
def seq_data(seq_spec) -> dict[str, np.ndarray]:
    return synthetic_sequences(64, seq_spec, seed=7)


def training_rows(data: dict[str, np.ndarray]) -> list[tuple]:
    """Contract rows (creator_id, market, flat seq, seq_len, labels) for spark.createDataFrame."""
    n = len(data["seq_len"])
    return [(f"c{i:03d}", str(data["market"][i]), data["seq"][i].reshape(-1).tolist(), int(data["seq_len"][i]),
             data["labels"][i].tolist()) for i in range(n)]


ROW_SCHEMA = "creator_id string, market string, seq array<float>, seq_len int, labels array<float>"


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every ML-layer test runs torch on one intra-op thread (tests/conftest.py)."""
    yield
