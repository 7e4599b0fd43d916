"""The training-data contract of sequence models, and the few conversions every consumer needs.

Rows (Spark DataFrame or Parquet) have ``creator_id`` string, ``market`` string, ``seq``
array<float> of length ``L*F`` (``L`` time steps of ``F`` features, row-major, zero-padded at the
end), ``seq_len`` int in ``1..L`` (real steps) and ``labels`` array<float> of length ``K`` (0/1).

Why a flat ``L*F`` array instead of array<array<float>>: Parquet stores it as one list column
that pyarrow turns into a single contiguous buffer (``flatten`` + ``reshape``, no per-row Python),
and Petastorm's batch reader only collates lists of primitives. The shape travels separately, in
:class:`SequenceSpec`, which is logged with every run and saved with every model, so a scorer never
guesses ``L`` or ``F`` -- a wrong guess reshapes silently into garbage features.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

COLUMNS = ("creator_id", "market", "seq", "seq_len", "labels")


@dataclass(frozen=True)
class SequenceSpec:
    """Shape and names of a sequence dataset: ``max_len`` (L), ``n_features`` (F), label and feature names.

    ``feature_names`` may be empty (synthetic data); when given it must have ``n_features`` entries,
    so reordering features in the Spark job without updating the spec is caught at construction.
    """

    max_len: int
    n_features: int
    label_names: tuple[str, ...]
    feature_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        # Lists arrive from JSON (MLflow params, model artifacts); tuples keep the spec hashable/frozen.
        object.__setattr__(self, "label_names", tuple(self.label_names))
        object.__setattr__(self, "feature_names", tuple(self.feature_names))
        if self.max_len < 1 or self.n_features < 1:
            raise ValueError(f"max_len and n_features must be >= 1, got {self.max_len}, {self.n_features}")
        if not self.label_names:
            raise ValueError("label_names must not be empty")
        if len(set(self.label_names)) != len(self.label_names):
            raise ValueError(f"duplicate label names: {self.label_names}")
        if self.feature_names and len(self.feature_names) != self.n_features:
            raise ValueError(f"{len(self.feature_names)} feature names for n_features={self.n_features}")

    @property
    def n_labels(self) -> int:
        return len(self.label_names)

    @property
    def flat_len(self) -> int:
        """Length of the flat ``seq`` array: ``max_len * n_features``."""
        return self.max_len * self.n_features

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists, not tuples) for MLflow params/artifacts and TorchDistributor args."""
        d = asdict(self)
        d["label_names"] = list(self.label_names)
        d["feature_names"] = list(self.feature_names)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SequenceSpec":
        return cls(max_len=int(d["max_len"]), n_features=int(d["n_features"]),
                   label_names=tuple(d["label_names"]), feature_names=tuple(d.get("feature_names") or ()))


def stack_flat(values: Sequence[Any], spec: SequenceSpec) -> np.ndarray:
    """Rows of flat ``seq`` values (lists or arrays) -> float32 ``(N, L, F)``; wrong lengths are an error."""
    n = len(values)
    if n == 0:
        return np.zeros((0, spec.max_len, spec.n_features), dtype=np.float32)
    arr = np.asarray([np.asarray(v, dtype=np.float32).reshape(-1) for v in values])
    if arr.ndim != 2 or arr.shape[1] != spec.flat_len:
        lens = sorted({len(np.asarray(v).reshape(-1)) for v in values})
        raise ValueError(f"seq must have max_len*n_features = {spec.flat_len} values per row, got lengths {lens[:5]}")
    return arr.reshape(n, spec.max_len, spec.n_features)


def check_lengths(seq_len: np.ndarray, max_len: int) -> np.ndarray:
    """``seq_len`` as int64, refusing values outside ``1..max_len``.

    A zero length has no step to summarise (the GRU's packing raises, the transformer's mean
    pooling divides by zero); a length above ``max_len`` means the producer truncated ``seq``
    but not ``seq_len``. Both are contract violations to surface, not to clamp.
    """
    lengths = np.asarray(seq_len).astype(np.int64).reshape(-1)
    bad = (lengths < 1) | (lengths > max_len)
    if bad.any():
        raise ValueError(f"seq_len must be in 1..{max_len}; {int(bad.sum())} rows are not "
                         f"(e.g. {lengths[bad][:5].tolist()})")
    return lengths


def synthetic_sequences(n: int, spec: SequenceSpec, seed: int = 0, positive_rate: float = 0.25,
                        spike: float = 3.0) -> dict[str, np.ndarray]:
    """Random sequences with a planted, learnable pattern (tests, benchmarks, demos).

    Features are uniform noise in [-1, 1] on real steps and 0 on padding. Label ``k`` is positive
    with probability ``positive_rate`` and, when positive, feature ``k`` equals ``spike`` on one
    random real step -- a pattern a sequence model must *find in time* (it is not at a fixed
    position), yet one any working model learns in a few epochs. Needs ``n_features >= n_labels``.
    Returns numpy arrays ``seq`` (N, L, F) float32, ``seq_len`` (N,) int32, ``labels`` (N, K)
    float32 and ``market`` (N,) str (three markets, for per-group metrics).
    """
    if spec.n_features < spec.n_labels:
        raise ValueError("synthetic_sequences plants label k in feature k: needs n_features >= n_labels")
    rng = np.random.default_rng(seed)
    L, F, K = spec.max_len, spec.n_features, spec.n_labels
    seq_len = rng.integers(1, L + 1, size=n).astype(np.int32)
    seq = rng.uniform(-1.0, 1.0, size=(n, L, F)).astype(np.float32)
    seq[np.arange(L)[None, :] >= seq_len[:, None]] = 0.0
    labels = (rng.random((n, K)) < positive_rate).astype(np.float32)
    for k in range(K):
        rows = np.flatnonzero(labels[:, k])
        steps = (rng.random(rows.size) * seq_len[rows]).astype(np.int64)
        seq[rows, steps, k] = spike
    market = np.array(["BR", "DE", "US"])[rng.integers(0, 3, size=n)]
    return {"seq": seq, "seq_len": seq_len, "labels": labels, "market": market}
