"""The UCI Adult census extract as a two-task problem: the real-data check of the multi-task models.

Why this data set: the multi-task architectures of :mod:`libs.strategy.multitask` are tested on
synthetic data whose answer we planted; that proves the code, not that sharing helps on real,
messy, correlated outcomes. The MMoE paper (Ma et al., KDD 2018, section 5.2) evaluates on
census data with exactly this task pair -- income > 50K and marital status "never married" --
so Adult (Kohavi & Becker; the smaller, public 1994 extract, *not* the paper's census-income KDD
file) gives a comparable, reproducible check. As in the paper, ``marital-status`` becomes a label
and is removed from the inputs (otherwise task 2 is a lookup); ``income`` is the other label.

Parsing follows the distributed files' conventions, tolerating both published variants: the
official ``adult.test`` starts with a ``|1x3 Cross validator`` comment line and ends its labels
with ``.`` (``>50K.``); some copies have neither. Comment (``|``) and blank lines are skipped,
a trailing ``.`` on the label is removed, ``?`` means unknown. Any other line must have exactly
15 comma-separated fields, or a ValueError names the file and line.

Encoding (fitted on the *training portion* only, i.e. the training file minus the validation
rows, so validation mimics the test set):

* numeric columns: ``capital-gain`` and ``capital-loss`` through ``log1p`` first (they are 0 for
  ~90 % of rows with a tail to 99,999: standardised raw, one outlier sets the scale for
  everybody; the transform is monotonic, so tree baselines are unaffected), then standardised
  with the training portion's mean and standard deviation. (Adult has no missing numerics; one
  would be imputed with the training mean, i.e. 0 after standardising.)
* categorical columns: values seen in the training portion get indices ``1..c`` in sorted order;
  ``?`` and values never seen in training (at validation/test time) get 0, the model's reserved
  "unknown" index.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from libs.strategy.multitask import MultiTaskSpec, TaskSpec

DEFAULT_DIR = Path("../shared/data/uci-adult")
TRAIN_FILE = "census-income.data"
TEST_FILE = "census-income.test"

# Field order of census-income.names (+ the label).
COLUMNS: tuple[str, ...] = ("age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
                            "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
                            "hours-per-week", "native-country", "income")
NUMERIC: tuple[str, ...] = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")
LOG1P: frozenset[str] = frozenset({"capital-gain", "capital-loss"})     # heavy-tailed money amounts, see docstring
# marital-status is task 2's label and income task 1's: neither may be an input.
CATEGORICAL: tuple[str, ...] = ("workclass", "education", "occupation", "relationship", "race", "sex",
                                "native-country")
LABEL_COLUMNS: tuple[str, ...] = ("income", "marital-status")
TASKS: tuple[TaskSpec, ...] = (TaskSpec("income_gt_50k", "binary"), TaskSpec("never_married", "binary"))
UNKNOWN = "?"


def read_census(path: str | Path) -> pd.DataFrame:
    """One Adult file as a frame of strings/ints: the 15 :data:`COLUMNS`, ``?`` -> None, labels without ``.``.

    Raises FileNotFoundError for a missing file and ValueError naming the line for a malformed one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"UCI Adult file not found: {path} (pass the folder holding {TRAIN_FILE} and "
                                f"{TEST_FILE}, e.g. --data ../shared/data/uci-adult)")
    rows: list[list[Any]] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("|"):
                continue
            fields = [f.strip() for f in text.split(",")]
            if len(fields) != len(COLUMNS):
                raise ValueError(f"{path}:{number}: expected {len(COLUMNS)} comma-separated fields, got "
                                 f"{len(fields)}: {text[:80]!r}")
            fields[-1] = fields[-1].rstrip(".")
            rows.append([None if f == UNKNOWN else f for f in fields])
    if not rows:
        raise ValueError(f"{path}: no data rows")
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in NUMERIC:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & frame[col].notna()
        if bad.any():
            raise ValueError(f"{path}: column {col} has non-numeric value {frame.loc[bad.idxmax(), col]!r}")
        frame[col] = values.astype("float64")
    labels = set(frame["income"].dropna().unique())
    if not labels <= {">50K", "<=50K"} or frame["income"].isna().any():
        raise ValueError(f"{path}: income labels must be '>50K' or '<=50K', found {sorted(map(str, labels))[:5]}")
    if frame["marital-status"].isna().any():
        raise ValueError(f"{path}: marital-status (task 2's label) is missing on some rows")
    return frame


def task_labels(frame: pd.DataFrame) -> np.ndarray:
    """``(N, 2)`` float32: income > 50K, marital-status == Never-married (the order of :data:`TASKS`)."""
    return np.stack([(frame["income"] == ">50K").to_numpy(), (frame["marital-status"] == "Never-married").to_numpy()],
                    axis=1).astype(np.float32)


@dataclass(frozen=True)
class AdultEncoder:
    """Train-portion statistics: numeric mean/std (after log1p where applied) and category vocabularies."""

    mean: dict[str, float]
    std: dict[str, float]
    vocab: dict[str, tuple[str, ...]]

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> "AdultEncoder":
        mean, std = {}, {}
        for col in NUMERIC:
            v = _numeric(frame, col)
            mean[col] = float(np.nanmean(v))
            s = float(np.nanstd(v))
            std[col] = s if s > 1e-12 else 1.0          # a constant column stays 0, not NaN
        vocab = {col: tuple(sorted(frame[col].dropna().unique())) for col in CATEGORICAL}
        return cls(mean, std, vocab)

    @property
    def cardinalities(self) -> list[int]:
        return [len(self.vocab[c]) for c in CATEGORICAL]

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``x_num (N, 6)`` float32 standardised, ``x_cat (N, 7)`` int64 with 0 = unknown/unseen."""
        x_num = np.stack([(np.nan_to_num(_numeric(frame, c), nan=self.mean[c]) - self.mean[c]) / self.std[c]
                          for c in NUMERIC], axis=1).astype(np.float32)
        x_cat = np.stack([frame[c].map({v: i + 1 for i, v in enumerate(self.vocab[c])}).fillna(0).to_numpy()
                          for c in CATEGORICAL], axis=1).astype(np.int64)
        return x_num, x_cat


def _numeric(frame: pd.DataFrame, col: str) -> np.ndarray:
    v = frame[col].to_numpy(dtype=np.float64)
    return np.log1p(np.maximum(v, 0.0)) if col in LOG1P else v


@dataclass(frozen=True)
class AdultData:
    """Encoded splits (``train``/``val``/``test``: ``x_num``, ``x_cat``, ``y``), the spec, the encoder.

    ``frames`` keeps the raw (decoded) rows of each split for inspection and baselines.
    """

    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    spec: MultiTaskSpec
    encoder: AdultEncoder
    feature_names: tuple[str, ...] = field(default=(*NUMERIC, *CATEGORICAL))
    frames: Mapping[str, pd.DataFrame] = field(default_factory=dict)

    def fit_arrays(self) -> dict[str, np.ndarray]:
        """The train + validation arrays in :func:`libs.strategy.multitask.fit_arrays`' layout."""
        return {"x_num": self.train["x_num"], "x_cat": self.train["x_cat"], "y": self.train["y"],
                "x_num_val": self.val["x_num"], "x_cat_val": self.val["x_cat"], "y_val": self.val["y"]}


def load_uci_adult(data_dir: str | Path = DEFAULT_DIR, val_fraction: float = 0.1, seed: int = 0,
                   tasks: tuple[TaskSpec, ...] = TASKS) -> AdultData:
    """Read, split and encode Adult: validation = a seeded ``val_fraction`` of the training file.

    ``tasks`` may re-weight the two tasks (same names and kinds as :data:`TASKS`, in that order).
    Raises FileNotFoundError naming the path when the folder or a file is missing.
    """
    folder = Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"UCI Adult folder not found: {folder.resolve()} (expected {TRAIN_FILE} and "
                                f"{TEST_FILE} there; pass --data)")
    if not 0.0 < val_fraction < 1.0 or math.isnan(val_fraction):
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if [(t.name, t.kind) for t in tasks] != [(t.name, t.kind) for t in TASKS]:
        raise ValueError(f"tasks must be {[(t.name, t.kind) for t in TASKS]} (weights may differ)")
    full = read_census(folder / TRAIN_FILE)
    test = read_census(folder / TEST_FILE)
    order = np.random.default_rng(seed).permutation(len(full))
    n_val = int(round(len(full) * val_fraction))
    if n_val < 1 or n_val >= len(full):
        raise ValueError(f"val_fraction {val_fraction} of {len(full)} rows leaves no train or no validation rows")
    val = full.iloc[np.sort(order[:n_val])].reset_index(drop=True)
    train = full.iloc[np.sort(order[n_val:])].reset_index(drop=True)
    encoder = AdultEncoder.fit(train)

    def encode(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        x_num, x_cat = encoder.transform(frame)
        return {"x_num": x_num, "x_cat": x_cat, "y": task_labels(frame)}

    spec = MultiTaskSpec(num_features=len(NUMERIC), categorical_cardinalities=encoder.cardinalities, tasks=tasks)
    return AdultData(train=encode(train), val=encode(val), test=encode(test), spec=spec, encoder=encoder,
                     frames={"train": train, "val": val, "test": test})
