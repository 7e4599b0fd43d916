"""Multi-task value models: one network, several outcomes of the same exposure, weights set by policy.

Why multi-task: the ecosystem strategy scores a creator/order on several outcomes at once -- will
it convert (binary), how much GMV (regression), will it draw a complaint (binary, and labelled only
for orders) -- and the policy team combines them with weights they own. One model per outcome
wastes the signal the outcomes share (a buyer who converts and a buyer who complains saw the same
listing); one shared network lets the outcome with many labels teach the representation the rare
one needs, but can also let a loud task drown a quiet one ("negative transfer"). Which side wins
is an empirical question, so this module offers the four standard answers over the *same* inputs:

* ``single_task`` -- one independent input layer, bottom MLP and tower per task: no sharing at
  all, the control every shared model has to beat.
* ``shared_bottom`` -- one input layer and bottom MLP shared by all tasks, one tower per task
  (Caruana 1997): maximal sharing.
* ``mmoe`` -- Multi-gate Mixture-of-Experts (Ma et al., KDD 2018): ``n_experts`` expert MLPs over
  the shared input; each task has its own softmax gate ``g_t(x) = softmax(W_t x + b_t)`` over the
  experts and feeds its tower ``sum_k g_t(x)_k e_k(x)``. Tasks share experts but choose how much.
* ``ple`` -- Progressive Layered Extraction (Tang et al., RecSys 2020): ``ple_levels`` stacked
  Customized Gate Control (CGC) layers. Each level has ``ple_task_experts`` experts *per task*
  and ``ple_shared_experts`` shared experts. Task ``t``'s gate is a softmax over task ``t``'s own
  experts plus the shared ones (never another task's specific experts), and takes task ``t``'s
  representation from the previous level as input; task ``t``'s experts read that same
  representation. In every level but the last, a shared gate -- input: the previous shared
  representation -- selects over *all* experts of the level (every task's and the shared ones)
  and produces the next shared representation, which the next level's shared experts read. The
  last level needs no shared gate (nothing reads its output), so it has none: an unused
  parameter would also break DistributedDataParallel.

How PLE relates to MMoE, stated precisely (and tested): with ``ple_levels=1`` and
``ple_task_experts=0`` a PLE *is* an MMoE -- one level, every task gate a softmax over the same
shared experts, gate inputs the raw input -- with the same parameters in the same order, so
MMoE weights loaded into it give identical outputs. That is the paper's own framing (CGC with no
task-specific experts degenerates to MMoE). The structural differences appear as soon as either
knob moves: with ``ple_task_experts >= 1`` a task's gate has ``ple_task_experts +
ple_shared_experts`` entries and a change to another task's specific expert cannot reach it
within a level; with ``ple_levels >= 2`` information crosses between tasks only through the
shared gate of the intermediate levels, which selects over all experts.

**Inputs** (:class:`FeatureInput`): ``x_num`` (float, already standardised by the caller -- the
data module owns the statistics, see :mod:`libs.strategy.uci_adult`) concatenated with one
embedding per categorical column. Index 0 of every categorical column is reserved for
unknown/unseen values (a category that appears only at scoring time, or a missing value), so a
column with cardinality ``c`` accepts indices ``0..c``; anything outside raises ValueError
instead of reading another row's embedding (or crashing inside ``nn.Embedding`` with an opaque
IndexError). NaN numeric inputs raise too: they would turn every prediction into NaN.

**Loss**: ``L = sum_t weight_t * L_t`` with ``weight_t = TaskSpec.weight`` (the policy knob) and
``L_t`` the *mean over the rows whose task-t label is observed* of BCE-with-logits (binary,
optional ``pos_weight``) or MSE / Huber (regression). Labels may be NaN per task -- complaint
labels exist only for orders -- and such rows contribute exactly zero loss and zero gradient to
that task (the NaN is replaced before the loss, never multiplied by 0: ``NaN * 0`` is NaN). A
batch without any observed label for a task contributes 0 for that task. Observed binary labels
must be 0/1 and regression labels finite; anything else raises rather than training on a
corrupted column.

**Same budget** (:func:`units_for_budget`, :func:`match_budget`): comparisons between the four
architectures are only fair at equal capacity. Every architecture has one width knob,
``expert_units`` (the width of each expert's -- or each bottom's -- hidden layers); everything
else (embedding size, tower width, expert counts, levels) stays as configured. The trainable
parameter count is non-decreasing in that width, so the helper builds the model on PyTorch's
``meta`` device (exact count, no memory) and bisects for the width whose count is closest to the
target; the residual is at most half the count difference of one width step (a few hundred
parameters at the sizes used here), reported by the benchmark.

**Training**: :func:`fit` (Adam, per-epoch loss per task, optional DDP ``join`` context and
early-stopping callback), :func:`fit_arrays` (in memory, early stopping on a validation split
with the best weights restored), and :func:`train_multitask`, one rank of Spark's
TorchDistributor, mirroring :func:`libs.ml.distributed.train_sequence_model`. Its rank
boiler-plate (logging, device choice, process group, DDP wrapping) lives in
:func:`rank_context` / :func:`ddp_wrap` / :func:`cpu_state_dict` below, written so that the
sequence and graph trainers -- which currently repeat it line for line -- could use it too.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("single_task", "shared_bottom", "mmoe", "ple")
TASK_KINDS: tuple[str, ...] = ("binary", "regression")
REGRESSION_LOSSES: tuple[str, ...] = ("mse", "huber")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
# Parquet columns of the features; task columns are named after the tasks and must not collide.
FEATURE_COLUMNS: tuple[str, ...] = ("x_num", "x_cat")
_TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")   # a plain identifier: also a safe Parquet/MLflow name

# Hyper-parameters; an unknown key is an error (a typo would otherwise silently train the defaults).
MULTITASK_HPARAMS: dict[str, Any] = {
    # --- architecture (what build_model reads; saved with the model) ---
    "embedding_dim": 4,          # per categorical column; Adult's largest column has 41 values
    "expert_units": 64,          # width of every expert / bottom hidden layer: the knob match_budget tunes
    "expert_layers": 1,          # hidden layers per expert / bottom (>= 1)
    "tower_units": 16,           # width of each task tower's hidden layers
    "tower_layers": 1,           # hidden layers per tower (0: a linear head on the expert mixture)
    "dropout": 0.1,              # after every hidden activation (experts, bottoms, towers)
    "n_experts": 4,              # MMoE experts
    "ple_shared_experts": 2,     # PLE shared experts per level (>= 1: sharing is PLE's point)
    "ple_task_experts": 1,       # PLE task-specific experts per task and level (0: MMoE-like levels)
    "ple_levels": 2,             # PLE extraction levels (the paper's best census configs use 2)
    # --- loss ---
    "pos_weight": None,          # None, or {binary task name: weight of its positives in BCE}
    "regression_loss": "mse",    # "mse" or "huber"
    "huber_delta": 1.0,          # Huber's quadratic-to-linear switch point (label units)
    # --- optimisation ---
    "lr": 1e-3,
    "weight_decay": 0.0,
    "epochs": 20,                # maximum epochs; fit_arrays stops earlier on the validation loss
    "batch_size": 256,
    "grad_clip": 1.0,            # gradient-norm clip; 0 or None disables
    "patience": 3,               # fit_arrays: epochs without validation improvement before stopping
    "val_fraction": 0.1,         # fit_arrays: share of rows held out when no validation arrays are given
    "seed": 0,
    "device": "auto",
    "reader_workers": 2,         # Petastorm reader threads per rank
}
# The subset build_model reads: it travels with the weights so that a payload rebuilds the model.
ARCH_KEYS: tuple[str, ...] = ("embedding_dim", "expert_units", "expert_layers", "tower_units", "tower_layers",
                              "dropout", "n_experts", "ple_shared_experts", "ple_task_experts", "ple_levels")


# --------------------------------------------------------------------------------------------
# Specs and hyper-parameters
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskSpec:
    """One outcome: ``name`` (identifier; also its Parquet column), ``kind`` and its loss ``weight``.

    ``weight`` is the policy team's knob (conf), so it is validated here: finite and >= 0 (0
    switches a task's training signal off while keeping its head and predictions).
    """

    name: str
    kind: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _TASK_NAME.match(self.name):
            raise ValueError(f"task name must be an identifier ([A-Za-z_][A-Za-z0-9_]*), got {self.name!r}")
        if self.name in FEATURE_COLUMNS:
            raise ValueError(f"task name {self.name!r} collides with a feature column {FEATURE_COLUMNS}")
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task {self.name!r}: kind must be one of {TASK_KINDS}, got {self.kind!r}")
        w = float(self.weight)
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"task {self.name!r}: weight must be finite and >= 0, got {self.weight!r}")
        object.__setattr__(self, "weight", w)


@dataclass(frozen=True)
class MultiTaskSpec:
    """The data contract: ``num_features`` numeric inputs, one categorical column per entry of
    ``categorical_cardinalities`` (known values ``1..c``, 0 = unknown), and the tasks in output order.

    Travels to the distributed ranks as a plain dict (:meth:`to_dict` / :meth:`from_dict`).
    """

    num_features: int
    categorical_cardinalities: tuple[int, ...]
    tasks: tuple[TaskSpec, ...]

    def __post_init__(self) -> None:
        if int(self.num_features) != self.num_features or self.num_features < 0:
            raise ValueError(f"num_features must be an integer >= 0, got {self.num_features!r}")
        cards = tuple(int(c) for c in self.categorical_cardinalities)
        if any(c < 1 for c in cards):
            raise ValueError(f"categorical cardinalities must be >= 1, got {list(cards)}")
        if self.num_features == 0 and not cards:
            raise ValueError("a model needs at least one numeric or categorical input")
        tasks = tuple(self.tasks)
        if not tasks or not all(isinstance(t, TaskSpec) for t in tasks):
            raise ValueError("tasks must be a non-empty list of TaskSpec")
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be distinct, got {names}")
        object.__setattr__(self, "num_features", int(self.num_features))
        object.__setattr__(self, "categorical_cardinalities", cards)
        object.__setattr__(self, "tasks", tasks)

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    def to_dict(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "categorical_cardinalities": list(self.categorical_cardinalities),
                "tasks": [{"name": t.name, "kind": t.kind, "weight": t.weight} for t in self.tasks]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MultiTaskSpec":
        missing = [k for k in ("num_features", "categorical_cardinalities", "tasks") if k not in d]
        if missing:
            raise ValueError(f"multi-task spec lacks {missing}")
        return cls(num_features=int(d["num_features"]),
                   categorical_cardinalities=tuple(int(c) for c in d["categorical_cardinalities"]),
                   tasks=tuple(TaskSpec(str(t["name"]), str(t["kind"]), float(t.get("weight", 1.0)))
                               for t in d["tasks"]))


def _int_at_least(hp: Mapping[str, Any], key: str, low: int) -> None:
    v = hp[key]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise ValueError(f"hyper-parameter {key} must be an integer >= {low}, got {v!r}")


def _positive(hp: Mapping[str, Any], key: str, allow_zero: bool = False) -> None:
    v = hp[key]
    ok = isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and math.isfinite(float(v))
    if not ok or (float(v) < 0 if allow_zero else float(v) <= 0):
        raise ValueError(f"hyper-parameter {key} must be a finite number {'>=' if allow_zero else '>'} 0, got {v!r}")


def resolve_hparams(hparams: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with ``hparams``, validated; unknown keys and out-of-range values raise."""
    unknown = sorted(set(hparams or {}) - set(MULTITASK_HPARAMS))
    if unknown:
        raise ValueError(f"unknown hyper-parameters {unknown}; known: {sorted(MULTITASK_HPARAMS)}")
    hp = {**MULTITASK_HPARAMS, **(hparams or {})}
    for key in ("embedding_dim", "expert_units", "expert_layers", "tower_units", "n_experts", "ple_shared_experts",
                "ple_levels", "epochs", "batch_size", "patience"):
        _int_at_least(hp, key, 1)
    for key in ("tower_layers", "ple_task_experts", "seed"):
        _int_at_least(hp, key, 0)
    _int_at_least(hp, "reader_workers", 1)
    d = hp["dropout"]
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= float(d) < 1.0:
        raise ValueError(f"hyper-parameter dropout must be in [0, 1), got {d!r}")
    _positive(hp, "lr")
    _positive(hp, "weight_decay", allow_zero=True)
    _positive(hp, "huber_delta")
    if hp["grad_clip"] is not None:
        _positive(hp, "grad_clip", allow_zero=True)
    vf = hp["val_fraction"]
    if isinstance(vf, bool) or not isinstance(vf, (int, float)) or not 0.0 < float(vf) < 1.0:
        raise ValueError(f"hyper-parameter val_fraction must be in (0, 1), got {vf!r}")
    if hp["regression_loss"] not in REGRESSION_LOSSES:
        raise ValueError(f"hyper-parameter regression_loss must be one of {REGRESSION_LOSSES}, "
                         f"got {hp['regression_loss']!r}")
    if hp["device"] not in DEVICES:
        raise ValueError(f"hyper-parameter device must be one of {DEVICES}, got {hp['device']!r}")
    pw = hp["pos_weight"]
    if pw is not None:
        if not isinstance(pw, Mapping):
            raise ValueError(f"hyper-parameter pos_weight must be None or {{task name: weight}}, got {pw!r}")
        for name, w in pw.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(float(w)) or float(w) <= 0:
                raise ValueError(f"pos_weight[{name!r}] must be a finite number > 0, got {w!r}")
        hp["pos_weight"] = {str(k): float(v) for k, v in pw.items()}
    return hp


def _pos_weight_vector(spec: MultiTaskSpec, pos_weight: Mapping[str, float] | None) -> list[float]:
    """Per-task positive weights (1.0 where unset); names must be binary tasks of ``spec``."""
    pw = dict(pos_weight or {})
    kinds = {t.name: t.kind for t in spec.tasks}
    bad = sorted(n for n in pw if kinds.get(n) != "binary")
    if bad:
        raise ValueError(f"pos_weight names {bad} are not binary tasks of the spec {list(spec.task_names)}")
    return [float(pw.get(t.name, 1.0)) for t in spec.tasks]


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------

class FeatureInput(nn.Module):
    """``(x_num (B, F) float, x_cat (B, C) int) -> (B, F + C * embedding_dim)``.

    One ``nn.Embedding(c + 1, embedding_dim)`` per categorical column; row 0 is the
    unknown/unseen value (trained on the training rows whose value was missing). Indices outside
    ``0..c`` and NaN numerics raise ValueError naming the column (see the module docstring).
    """

    def __init__(self, num_features: int, cardinalities: Sequence[int], embedding_dim: int) -> None:
        super().__init__()
        self.num_features = int(num_features)
        self.cardinalities = tuple(int(c) for c in cardinalities)
        self.embeddings = nn.ModuleList([nn.Embedding(c + 1, embedding_dim) for c in self.cardinalities])
        self.out_dim = self.num_features + len(self.cardinalities) * int(embedding_dim)
        # The largest valid index per column, as a buffer so the range check runs on the batch's device.
        self.register_buffer("max_index", torch.tensor(self.cardinalities, dtype=torch.long), persistent=False)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        if x_num.dim() != 2 or x_num.shape[1] != self.num_features:
            raise ValueError(f"x_num must be (B, {self.num_features}), got {tuple(x_num.shape)}")
        if x_cat.dim() != 2 or x_cat.shape[1] != len(self.cardinalities):
            raise ValueError(f"x_cat must be (B, {len(self.cardinalities)}), got {tuple(x_cat.shape)}")
        if x_num.shape[0] != x_cat.shape[0]:
            raise ValueError(f"x_num has {x_num.shape[0]} rows, x_cat {x_cat.shape[0]}")
        if x_num.numel() and bool(torch.isnan(x_num).any()):
            col = int(torch.isnan(x_num).any(0).nonzero()[0])
            raise ValueError(f"x_num column {col} contains NaN (impute before scoring)")
        parts = [x_num.float()]
        if self.cardinalities:
            x_cat = x_cat.long()
            bad = (x_cat < 0) | (x_cat > self.max_index)
            if bool(bad.any()):
                row, col = (int(v) for v in bad.nonzero()[0])
                raise ValueError(f"categorical column {col} has index {int(x_cat[row, col])} outside "
                                 f"0..{self.cardinalities[col]} (0 = unknown/unseen)")
            parts += [emb(x_cat[:, j]) for j, emb in enumerate(self.embeddings)]
        return torch.cat(parts, dim=1)


def _mlp(in_dim: int, units: int, layers: int, dropout: float) -> nn.Sequential:
    """``layers`` x (Linear -> ReLU -> Dropout), width ``units``: an expert or a bottom."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(in_dim if i == 0 else units, units), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*mods)


def _tower(in_dim: int, units: int, layers: int, dropout: float) -> nn.Sequential:
    """A task head: ``layers`` hidden layers of ``units`` then one output (logit or value)."""
    mods: list[nn.Module] = list(_mlp(in_dim, units, layers, dropout)) if layers else []
    mods.append(nn.Linear(units if layers else in_dim, 1))
    return nn.Sequential(*mods)


def _mix(gate_logits: torch.Tensor, experts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax gate ``(B, K)`` over ``K`` expert outputs ``(B, U)`` -> mixture ``(B, U)`` and the gate."""
    gate = torch.softmax(gate_logits, dim=-1)
    return torch.einsum("bk,bku->bu", gate, torch.stack(experts, dim=1)), gate


class MultiTaskModel(nn.Module):
    """Base of the four architectures: ``(x_num, x_cat) -> (B, T)`` logits (binary) / values (regression).

    :meth:`forward_with_gates` also returns the gate distributions (empty for the gate-less
    architectures); :meth:`config` is exactly what :func:`build_model` needs to rebuild the model.
    """

    kind: str = ""

    def __init__(self, spec: MultiTaskSpec, arch: Mapping[str, Any]) -> None:
        super().__init__()
        self.spec = spec
        self.arch = {k: arch[k] for k in ARCH_KEYS}

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "spec": self.spec.to_dict(), "arch": dict(self.arch)}

    def forward_with_gates(self, x_num: torch.Tensor,
                           x_cat: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.forward_with_gates(x_num, x_cat)[0]

    def _input(self) -> FeatureInput:
        a = self.arch
        return FeatureInput(self.spec.num_features, self.spec.categorical_cardinalities, int(a["embedding_dim"]))

    def _towers(self, in_dim: int) -> nn.ModuleList:
        a = self.arch
        return nn.ModuleList([_tower(in_dim, int(a["tower_units"]), int(a["tower_layers"]), float(a["dropout"]))
                              for _ in self.spec.tasks])

    def _expert(self, in_dim: int) -> nn.Sequential:
        a = self.arch
        return _mlp(in_dim, int(a["expert_units"]), int(a["expert_layers"]), float(a["dropout"]))


class SingleTaskModel(MultiTaskModel):
    """One independent input layer + bottom + tower per task (nothing shared, not even embeddings)."""

    kind = "single_task"

    def __init__(self, spec: MultiTaskSpec, arch: Mapping[str, Any]) -> None:
        super().__init__(spec, arch)
        self.inputs = nn.ModuleList([self._input() for _ in spec.tasks])
        d = self.inputs[0].out_dim
        self.bottoms = nn.ModuleList([self._expert(d) for _ in spec.tasks])
        self.towers = self._towers(int(self.arch["expert_units"]))

    def forward_with_gates(self, x_num, x_cat):
        outs = [tower(bottom(inp(x_num, x_cat)))
                for inp, bottom, tower in zip(self.inputs, self.bottoms, self.towers)]
        return torch.cat(outs, dim=1), {}


class SharedBottomModel(MultiTaskModel):
    """One input layer and bottom MLP shared by all tasks, one tower per task."""

    kind = "shared_bottom"

    def __init__(self, spec: MultiTaskSpec, arch: Mapping[str, Any]) -> None:
        super().__init__(spec, arch)
        self.input = self._input()
        self.bottom = self._expert(self.input.out_dim)
        self.towers = self._towers(int(self.arch["expert_units"]))

    def forward_with_gates(self, x_num, x_cat):
        h = self.bottom(self.input(x_num, x_cat))
        return torch.cat([tower(h) for tower in self.towers], dim=1), {}


class MMoEModel(MultiTaskModel):
    """Multi-gate Mixture-of-Experts: ``n_experts`` experts, one softmax gate per task over the input.

    Gates are reported as ``{"task:<name>": (B, n_experts)}``. Module order (input, experts,
    gates, towers) matches :class:`PLEModel`'s single level, which the equivalence test relies on.
    """

    kind = "mmoe"

    def __init__(self, spec: MultiTaskSpec, arch: Mapping[str, Any]) -> None:
        super().__init__(spec, arch)
        self.input = self._input()
        d, n = self.input.out_dim, int(self.arch["n_experts"])
        self.experts = nn.ModuleList([self._expert(d) for _ in range(n)])
        self.gates = nn.ModuleList([nn.Linear(d, n) for _ in spec.tasks])
        self.towers = self._towers(int(self.arch["expert_units"]))

    def forward_with_gates(self, x_num, x_cat):
        x = self.input(x_num, x_cat)
        experts = [e(x) for e in self.experts]
        outs, gates = [], {}
        for task, gate, tower in zip(self.spec.tasks, self.gates, self.towers):
            mixed, g = _mix(gate(x), experts)
            gates[f"task:{task.name}"] = g
            outs.append(tower(mixed))
        return torch.cat(outs, dim=1), gates


class CGCLevel(nn.Module):
    """One Customized Gate Control level of PLE (see the module docstring for the wiring).

    ``task_inputs[t]`` feeds task ``t``'s experts and gate; ``shared_input`` feeds the shared
    experts and, when ``shared_gate``, the gate over all experts that makes the next shared input.
    """

    def __init__(self, in_dim: int, n_tasks: int, n_task_experts: int, n_shared_experts: int,
                 make_expert: Callable[[int], nn.Module], shared_gate: bool) -> None:
        super().__init__()
        self.n_tasks, self.n_task_experts, self.n_shared_experts = n_tasks, n_task_experts, n_shared_experts
        self.shared_experts = nn.ModuleList([make_expert(in_dim) for _ in range(n_shared_experts)])
        self.task_gates = nn.ModuleList([nn.Linear(in_dim, n_task_experts + n_shared_experts)
                                         for _ in range(n_tasks)])
        # Task-specific experts after the gates: with none of them the parameter order is MMoE's.
        self.task_experts = nn.ModuleList([nn.ModuleList([make_expert(in_dim) for _ in range(n_task_experts)])
                                           for _ in range(n_tasks)])
        self.shared_gate = (nn.Linear(in_dim, n_tasks * n_task_experts + n_shared_experts)
                            if shared_gate else None)

    def forward(self, task_inputs: Sequence[torch.Tensor], shared_input: torch.Tensor
                ) -> tuple[list[torch.Tensor], torch.Tensor | None, list[torch.Tensor], torch.Tensor | None]:
        shared = [e(shared_input) for e in self.shared_experts]
        own = [[e(task_inputs[t]) for e in self.task_experts[t]] for t in range(self.n_tasks)]
        task_out, task_gates = [], []
        for t in range(self.n_tasks):
            mixed, g = _mix(self.task_gates[t](task_inputs[t]), own[t] + shared)
            task_out.append(mixed)
            task_gates.append(g)
        if self.shared_gate is None:
            return task_out, None, task_gates, None
        everything = [h for hs in own for h in hs] + shared
        shared_out, g_shared = _mix(self.shared_gate(shared_input), everything)
        return task_out, shared_out, task_gates, g_shared


class PLEModel(MultiTaskModel):
    """Progressive Layered Extraction: ``ple_levels`` CGC levels, towers on the last task outputs.

    Gates are reported as ``{"level<i>:task:<name>": (B, task + shared experts),
    "level<i>:shared": (B, all experts of the level)}`` (no shared gate in the last level).
    """

    kind = "ple"

    def __init__(self, spec: MultiTaskSpec, arch: Mapping[str, Any]) -> None:
        super().__init__(spec, arch)
        self.input = self._input()
        a = self.arch
        levels, units = int(a["ple_levels"]), int(a["expert_units"])
        self.levels = nn.ModuleList([
            CGCLevel(self.input.out_dim if i == 0 else units, spec.n_tasks, int(a["ple_task_experts"]),
                     int(a["ple_shared_experts"]), self._expert, shared_gate=i < levels - 1)
            for i in range(levels)])
        self.towers = self._towers(units)

    def forward_with_gates(self, x_num, x_cat):
        x = self.input(x_num, x_cat)
        task_in, shared_in = [x] * self.spec.n_tasks, x
        gates: dict[str, torch.Tensor] = {}
        for i, level in enumerate(self.levels):
            task_in, shared_out, task_gates, g_shared = level(task_in, shared_in)
            for task, g in zip(self.spec.tasks, task_gates):
                gates[f"level{i}:task:{task.name}"] = g
            if g_shared is not None:
                gates[f"level{i}:shared"] = g_shared
                shared_in = shared_out
        return torch.cat([tower(h) for tower, h in zip(self.towers, task_in)], dim=1), gates


_MODELS: dict[str, type[MultiTaskModel]] = {"single_task": SingleTaskModel, "shared_bottom": SharedBottomModel,
                                            "mmoe": MMoEModel, "ple": PLEModel}


def build_model(kind: str, spec: MultiTaskSpec, hparams: Mapping[str, Any] | None = None) -> MultiTaskModel:
    """The architecture ``kind`` (one of :data:`KINDS`) for ``spec``; ``hparams`` as :func:`resolve_hparams`."""
    if kind not in _MODELS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(spec, MultiTaskSpec):
        raise ValueError(f"spec must be a MultiTaskSpec, got {type(spec).__name__}")
    return _MODELS[kind](spec, resolve_hparams(hparams))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (embeddings, experts, gates, towers); buffers are not counted."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def _count_at(kind: str, spec: MultiTaskSpec, hp: Mapping[str, Any], units: int) -> int:
    # The meta device gives exact shapes without allocating (a wide PLE level is units^2 per expert).
    with torch.device("meta"):
        return count_parameters(build_model(kind, spec, {**hp, "expert_units": units}))


def units_for_budget(kind: str, spec: MultiTaskSpec, budget: int, hparams: Mapping[str, Any] | None = None,
                     max_units: int = 1 << 16) -> int:
    """The ``expert_units`` whose parameter count is closest to ``budget`` (other hparams fixed).

    Exponential search for a width over the budget, then bisection (the count is non-decreasing
    in the width); ties go to the smaller width. Raises when even width 1 exceeds the budget
    (embeddings, towers and gates alone are too big) or ``max_units`` cannot reach it.
    """
    hp = resolve_hparams(hparams)
    if int(budget) != budget or budget < 1:
        raise ValueError(f"budget must be a positive integer, got {budget!r}")
    smallest = _count_at(kind, spec, hp, 1)
    if smallest > budget:
        raise ValueError(f"{kind}: even expert_units=1 has {smallest} parameters, above the budget {budget}")
    hi = 1
    while _count_at(kind, spec, hp, hi) < budget:
        if hi >= max_units:
            raise ValueError(f"{kind}: expert_units={max_units} still has fewer than {budget} parameters")
        hi = min(hi * 2, max_units)
    lo = max(1, hi // 2)                  # count(lo) < budget <= count(hi) (or hi == 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _count_at(kind, spec, hp, mid) < budget:
            lo = mid
        else:
            hi = mid
    below, above = _count_at(kind, spec, hp, lo), _count_at(kind, spec, hp, hi)
    return lo if abs(budget - below) <= abs(above - budget) else hi


def match_budget(spec: MultiTaskSpec, budget: int, hparams: Mapping[str, Any] | None = None,
                 kinds: Sequence[str] = KINDS) -> dict[str, dict[str, Any]]:
    """Per architecture, ``hparams`` with ``expert_units`` chosen by :func:`units_for_budget`.

    "Same features and budget": every model sees the same inputs and all other settings; only
    the expert/bottom width differs, set so the trainable parameter counts are as close to
    ``budget`` as one width step allows.
    """
    hp = resolve_hparams(hparams)
    return {kind: {**hp, "expert_units": units_for_budget(kind, spec, budget, hp)} for kind in kinds}


# --------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------

class MultiTaskLoss(nn.Module):
    """``(outputs (B, T), labels (B, T) with NaN = missing) -> (total, per-task sums (T,), counts (T,))``.

    ``total = sum_t weight_t * sums_t / counts_t`` (a task with no observed label in the batch
    contributes 0); ``sums``/``counts`` let a training loop average per task over an epoch.
    """

    def __init__(self, spec: MultiTaskSpec, pos_weight: Mapping[str, float] | None = None,
                 regression_loss: str = "mse", huber_delta: float = 1.0) -> None:
        super().__init__()
        if regression_loss not in REGRESSION_LOSSES:
            raise ValueError(f"regression_loss must be one of {REGRESSION_LOSSES}, got {regression_loss!r}")
        if not huber_delta > 0:
            raise ValueError(f"huber_delta must be > 0, got {huber_delta!r}")
        self.spec, self.regression_loss, self.huber_delta = spec, regression_loss, float(huber_delta)
        self.register_buffer("weights", torch.tensor([t.weight for t in spec.tasks], dtype=torch.float32))
        self.register_buffer("binary", torch.tensor([t.kind == "binary" for t in spec.tasks]))
        self.register_buffer("pos_weight", torch.tensor(_pos_weight_vector(spec, pos_weight), dtype=torch.float32))

    def forward(self, outputs: torch.Tensor, labels: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if outputs.shape != labels.shape or outputs.dim() != 2 or outputs.shape[1] != self.spec.n_tasks:
            raise ValueError(f"outputs {tuple(outputs.shape)} and labels {tuple(labels.shape)} must both be "
                             f"(B, {self.spec.n_tasks})")
        labels = labels.to(outputs.dtype)
        observed = ~torch.isnan(labels)
        filled = torch.where(observed, labels, torch.zeros_like(labels))      # no NaN reaches the graph
        bad = observed & ((self.binary & (filled != 0) & (filled != 1)) | (~self.binary & ~torch.isfinite(filled)))
        if bool(bad.any()):
            row, col = (int(v) for v in bad.nonzero()[0])
            kind = self.spec.tasks[col].kind
            raise ValueError(f"task {self.spec.tasks[col].name!r} ({kind}) has label {float(labels[row, col])} "
                             f"(binary labels must be 0/1, regression labels finite; NaN = missing)")
        bce = F.binary_cross_entropy_with_logits(outputs, filled, pos_weight=self.pos_weight, reduction="none")
        if self.regression_loss == "mse":
            reg = (outputs - filled) ** 2
        else:
            reg = F.huber_loss(outputs, filled, delta=self.huber_delta, reduction="none")
        per_row = torch.where(self.binary, bce, reg)
        per_row = torch.where(observed, per_row, torch.zeros_like(per_row))
        sums = per_row.sum(0)
        counts = observed.sum(0).to(outputs.dtype)
        total = (self.weights * sums / counts.clamp(min=1.0)).sum()
        return total, sums, counts


def loss_for(spec: MultiTaskSpec, hparams: Mapping[str, Any] | None = None) -> MultiTaskLoss:
    """The :class:`MultiTaskLoss` configured by ``hparams`` (pos_weight, regression_loss, huber_delta)."""
    hp = resolve_hparams(hparams)
    return MultiTaskLoss(spec, hp["pos_weight"], hp["regression_loss"], float(hp["huber_delta"]))


# --------------------------------------------------------------------------------------------
# Training and scoring
# --------------------------------------------------------------------------------------------

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]      # x_num (B, F), x_cat (B, C), labels (B, T)


def _epoch_record(spec: MultiTaskSpec, sums: torch.Tensor, counts: torch.Tensor) -> tuple[float, dict[str, float]]:
    """Weighted total and per-task mean losses from summed per-row losses and observed counts."""
    s, c = sums.double().cpu().numpy(), counts.double().cpu().numpy()
    per_task = {t.name: float(s[i] / c[i]) if c[i] > 0 else math.nan for i, t in enumerate(spec.tasks)}
    # A task without any observed label adds nothing (as in the per-batch loss), not NaN.
    total = float(sum(t.weight * per_task[t.name] for i, t in enumerate(spec.tasks) if c[i] > 0))
    return total, per_task


def fit(model: nn.Module, loader_fn: Callable[[int], Iterable[Batch]], spec: MultiTaskSpec, epochs: int, lr: float,
        weight_decay: float, device: torch.device,
        epoch_context: Callable[[], contextlib.AbstractContextManager] | None = None, *,
        loss_fn: MultiTaskLoss | None = None, grad_clip: float | None = 1.0,
        on_epoch_end: Callable[[int, dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
    """Train ``model`` in place with Adam on :class:`MultiTaskLoss`; one record per epoch.

    ``loader_fn(epoch)`` returns a fresh iterable of ``(x_num, x_cat, labels)`` batches (Petastorm
    readers are single-pass; the in-memory loader reshuffles per call). ``model`` may be a DDP
    wrapper, with ``epoch_context=ddp.join`` for uneven shards. ``loss_fn`` defaults to unweighted
    positives and MSE. Records: ``epoch``, ``loss`` (weighted total of the per-task epoch means),
    ``task_loss`` ({task: mean loss over the epoch's observed labels}), ``rows``, ``seconds``,
    ``rows_per_s``. ``on_epoch_end(epoch, record)`` may add to the record and returns True to
    stop (early stopping) -- the optimiser's state survives across epochs, unlike calling
    ``fit`` once per epoch.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    model.to(device)
    loss_fn = (loss_fn or MultiTaskLoss(spec)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history: list[dict[str, Any]] = []
    for epoch in range(epochs):
        model.train()
        # Accumulated on the device: a float() per step would stall a GPU queue every batch.
        sums = torch.zeros(spec.n_tasks, device=device, dtype=torch.float64)
        counts = torch.zeros(spec.n_tasks, device=device, dtype=torch.float64)
        rows, started = 0, time.perf_counter()
        with (epoch_context() if epoch_context else contextlib.nullcontext()):
            for x_num, x_cat, labels in loader_fn(epoch):
                x_num = x_num.to(device, torch.float32, non_blocking=True)
                x_cat = x_cat.to(device, torch.long, non_blocking=True)
                labels = labels.to(device, torch.float32, non_blocking=True)
                opt.zero_grad(set_to_none=True)
                total, batch_sums, batch_counts = loss_fn(model(x_num, x_cat), labels)
                total.backward()
                if grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                opt.step()
                sums += batch_sums.detach().double()
                counts += batch_counts.detach().double()
                rows += x_num.shape[0]
        loss, per_task = _epoch_record(spec, sums, counts)        # synchronises: the timing below is real
        seconds = time.perf_counter() - started
        record: dict[str, Any] = {"epoch": epoch, "loss": loss if rows else math.nan, "task_loss": per_task,
                                  "rows": rows, "seconds": seconds,
                                  "rows_per_s": rows / seconds if seconds > 0 else math.nan}
        stop = bool(on_epoch_end(epoch, record)) if on_epoch_end else False
        log.info("epoch %d: loss %.4f %s, %d rows in %.2fs", epoch, record["loss"],
                 {k: round(v, 4) for k, v in per_task.items()}, rows, seconds)
        history.append(record)
        if stop:
            break
    return history


def _as_arrays(x_num: Any, x_cat: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(N, F)`` float32 and ``(N, C)`` int64 arrays; ``x_cat=None`` means no categorical columns."""
    xn = np.asarray(x_num, dtype=np.float32)
    if xn.ndim != 2:
        raise ValueError(f"x_num must be 2-D (N, F), got shape {xn.shape}")
    xc = np.zeros((len(xn), 0), dtype=np.int64) if x_cat is None else np.asarray(x_cat)
    if xc.ndim != 2:
        raise ValueError(f"x_cat must be 2-D (N, C), got shape {xc.shape}")
    # Float codes are refused rather than truncated: 2.7 is a bug upstream, not category 2.
    if xc.size and not np.issubdtype(xc.dtype, np.integer):
        raise ValueError(f"x_cat must hold integer indices, got dtype {xc.dtype}")
    if len(xn) != len(xc):
        raise ValueError(f"x_num has {len(xn)} rows, x_cat {len(xc)}")
    return xn, xc.astype(np.int64, copy=False)


@torch.no_grad()
def predict_outputs(model: MultiTaskModel, x_num: Any, x_cat: Any, batch_size: int = 1024,
                    device: torch.device | None = None) -> np.ndarray:
    """Raw outputs ``(N, T)`` (logits for binary tasks), eval mode, batched."""
    device = device or torch.device("cpu")
    xn, xc = _as_arrays(x_num, x_cat)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model.eval()
    model.to(device)
    out = [model(torch.as_tensor(xn[s:s + batch_size]).to(device), torch.as_tensor(xc[s:s + batch_size]).to(device))
           .float().cpu().numpy() for s in range(0, len(xn), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.spec.n_tasks), dtype=np.float32)


def predict(model: MultiTaskModel, x_num: Any, x_cat: Any, batch_size: int = 1024,
            device: torch.device | None = None) -> np.ndarray:
    """``(N, T)``: probabilities for binary tasks, values for regression tasks (spec order)."""
    raw = torch.from_numpy(predict_outputs(model, x_num, x_cat, batch_size, device))
    binary = torch.tensor([t.kind == "binary" for t in model.spec.tasks])
    return torch.where(binary, torch.sigmoid(raw), raw).numpy()


@torch.no_grad()
def evaluate_loss(model: MultiTaskModel, x_num: Any, x_cat: Any, labels: Any, loss_fn: MultiTaskLoss,
                  batch_size: int = 4096, device: torch.device | None = None) -> tuple[float, dict[str, float]]:
    """Weighted total and per-task mean loss over all observed labels (eval mode): the early-stopping score."""
    device = device or torch.device("cpu")
    raw = torch.as_tensor(predict_outputs(model, x_num, x_cat, batch_size, device)).to(device)
    _, sums, counts = loss_fn.to(device)(raw, torch.as_tensor(np.asarray(labels, dtype=np.float32)).to(device))
    return _epoch_record(model.spec, sums, counts)


def _check_arrays(x_num: np.ndarray, x_cat: np.ndarray, y: np.ndarray, spec: MultiTaskSpec, what: str) -> None:
    n = len(x_num)
    if x_num.shape != (n, spec.num_features):
        raise ValueError(f"{what}: x_num must be (N, {spec.num_features}), got {x_num.shape}")
    if x_cat.shape != (n, len(spec.categorical_cardinalities)):
        raise ValueError(f"{what}: x_cat must be (N, {len(spec.categorical_cardinalities)}), got {x_cat.shape}")
    if y.shape != (n, spec.n_tasks):
        raise ValueError(f"{what}: labels must be (N, {spec.n_tasks}), got {y.shape}")
    if n == 0:
        raise ValueError(f"{what}: no rows")


def fit_arrays(arrays: Mapping[str, Any], kind: str, spec: MultiTaskSpec, hparams: Mapping[str, Any] | None = None,
               device: torch.device | None = None) -> tuple[MultiTaskModel, list[dict[str, Any]]]:
    """Train in memory with early stopping; returns the model with its *best* weights and the history.

    ``arrays``: ``x_num`` (N, F), ``x_cat`` (N, C) int, ``y`` (N, T) with NaN = missing, and
    optionally ``x_num_val``/``x_cat_val``/``y_val``; without them a seeded ``val_fraction`` of the
    rows is held out. After each epoch the weighted validation loss (the training objective) is
    computed; training stops after ``patience`` epochs without improvement (or at ``epochs``) and
    the weights of the best epoch are restored. Each record gains ``val_loss``, ``val_task_loss``
    and ``best`` (whether it is the restored epoch).
    """
    hp = resolve_hparams(hparams)
    device = device or _pick(hp["device"])
    xn, xc = _as_arrays(arrays["x_num"], arrays.get("x_cat"))
    y = np.asarray(arrays["y"], dtype=np.float32)
    _check_arrays(xn, xc, y, spec, "training arrays")
    if "y_val" in arrays:
        xn_v, xc_v = _as_arrays(arrays["x_num_val"], arrays.get("x_cat_val"))
        y_v = np.asarray(arrays["y_val"], dtype=np.float32)
        _check_arrays(xn_v, xc_v, y_v, spec, "validation arrays")
    else:
        order = np.random.default_rng(int(hp["seed"])).permutation(len(y))
        n_val = int(round(len(y) * float(hp["val_fraction"])))
        if n_val < 1 or n_val >= len(y):
            raise ValueError(f"val_fraction {hp['val_fraction']} of {len(y)} rows leaves no train or no validation")
        val, tr = order[:n_val], order[n_val:]
        xn_v, xc_v, y_v, xn, xc, y = xn[val], xc[val], y[val], xn[tr], xc[tr], y[tr]
    torch.manual_seed(int(hp["seed"]))
    model = build_model(kind, spec, hp)
    loss_fn = loss_for(spec, hp)
    ds = torch.utils.data.TensorDataset(torch.as_tensor(xn), torch.as_tensor(xc), torch.as_tensor(y))
    gen = torch.Generator().manual_seed(int(hp["seed"]))
    loader = torch.utils.data.DataLoader(ds, batch_size=int(hp["batch_size"]), shuffle=True, generator=gen)
    best: dict[str, Any] = {"loss": math.inf, "epoch": -1, "state": None}

    def on_epoch_end(epoch: int, record: dict[str, Any]) -> bool:
        val_loss, val_task = evaluate_loss(model, xn_v, xc_v, y_v, loss_fn, device=device)
        record["val_loss"], record["val_task_loss"] = val_loss, val_task
        if not math.isfinite(val_loss):
            raise ValueError(f"validation loss is {val_loss} at epoch {epoch} (diverged, or no observed labels)")
        if val_loss < best["loss"]:
            best.update(loss=val_loss, epoch=epoch, state=copy.deepcopy(model.state_dict()))
        return epoch - best["epoch"] >= int(hp["patience"])

    history = fit(model, lambda epoch: loader, spec, int(hp["epochs"]), float(hp["lr"]), float(hp["weight_decay"]),
                  device, loss_fn=loss_fn, grad_clip=hp["grad_clip"], on_epoch_end=on_epoch_end)
    model.load_state_dict(best["state"])
    for record in history:
        record["best"] = record["epoch"] == best["epoch"]
    return model.eval(), history


def _pick(prefer: str) -> torch.device:
    from libs.ml.device import pick_device

    return pick_device(prefer)


# --------------------------------------------------------------------------------------------
# Parquet / Petastorm
# --------------------------------------------------------------------------------------------

def _parquet_fields(spec: MultiTaskSpec) -> list[str]:
    """Columns a reader needs: zero-width feature lists are not read (Petastorm cannot stack them)."""
    fields = ["x_num"] if spec.num_features else []
    fields += ["x_cat"] if spec.categorical_cardinalities else []
    return fields + list(spec.task_names)


def _batch_tensors(batch: Mapping[str, Any], spec: MultiTaskSpec) -> Batch:
    first = batch[spec.task_names[0]]
    b = int(first.shape[0])
    x_num = (batch["x_num"].to(torch.float32).reshape(b, spec.num_features) if spec.num_features
             else torch.zeros((b, 0), dtype=torch.float32))
    n_cat = len(spec.categorical_cardinalities)
    x_cat = batch["x_cat"].to(torch.long).reshape(b, n_cat) if n_cat else torch.zeros((b, 0), dtype=torch.long)
    y = torch.stack([batch[name].to(torch.float32).reshape(b) for name in spec.task_names], dim=1)
    return x_num, x_cat, y


def multitask_batches(dataset_url: str | Path, spec: MultiTaskSpec, batch_size: int = 256,
                      num_epochs: int | None = 1, shuffle: bool = False, cur_shard: int | None = None,
                      shard_count: int | None = None, seed: int | None = None, workers_count: int = 1,
                      shuffle_buffer_rows: int = 4096) -> Iterator[Batch]:
    """Petastorm batches ``(x_num (B, F) float32, x_cat (B, C) int64, labels (B, T) float32)``.

    The Parquet contract: ``x_num`` array<float> (F values), ``x_cat`` array<int> (C values),
    one float column per task name, NaN where that task's label is missing. Sharding and
    shuffling as :func:`libs.ml.petastorm_io.petastorm_batches` (row groups are the shard unit).
    """
    from petastorm import make_batch_reader
    from petastorm.pytorch import BatchedDataLoader

    from libs.ml.petastorm_io import _writable_tensor, as_url

    if (cur_shard is None) != (shard_count is None):
        raise ValueError("cur_shard and shard_count go together")
    reader = make_batch_reader(as_url(dataset_url), schema_fields=_parquet_fields(spec), num_epochs=num_epochs,
                               shuffle_row_groups=shuffle, shuffle_rows=shuffle, seed=seed, cur_shard=cur_shard,
                               shard_count=shard_count, reader_pool_type="thread", workers_count=workers_count)
    loader = BatchedDataLoader(reader, batch_size=batch_size, transform_fn=_writable_tensor,
                               shuffling_queue_capacity=shuffle_buffer_rows if shuffle else 0)
    with loader:
        for batch in loader:
            yield _batch_tensors(batch, spec)


def read_multitask_arrays(dataset_url: str | Path, spec: MultiTaskSpec) -> dict[str, np.ndarray]:
    """The whole dataset as numpy, in file order (evaluation, scoring): ``x_num``, ``x_cat``, ``y``.

    List lengths are checked against the spec before reshaping (a short list would otherwise
    shift every later row).
    """
    import pyarrow.parquet as pq

    from libs.ml.petastorm_io import local_path, pc_list_lengths

    table = pq.read_table(local_path(dataset_url), columns=_parquet_fields(spec))
    n = table.num_rows
    out: dict[str, np.ndarray] = {"x_num": np.zeros((n, 0), np.float32), "x_cat": np.zeros((n, 0), np.int64)}
    for name, width, dtype in (("x_num", spec.num_features, np.float32),
                               ("x_cat", len(spec.categorical_cardinalities), np.int64)):
        if not width:
            continue
        col = table.column(name).combine_chunks()
        lengths = pc_list_lengths(col)
        if n and (lengths.min() != width or lengths.max() != width):
            raise ValueError(f"column {name}: every list must have {width} values, found {sorted(set(lengths))[:5]}")
        out[name] = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=dtype).reshape(n, width)
    out["y"] = (np.stack([np.asarray(table.column(t).to_numpy(zero_copy_only=False), dtype=np.float32)
                          for t in spec.task_names], axis=1) if n else np.zeros((0, spec.n_tasks), np.float32))
    return out


# --------------------------------------------------------------------------------------------
# Distributed ranks (TorchDistributor)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RankContext:
    """Where this rank runs: ``rank``/``world``/``local_rank`` (torchrun's variables) and its device."""

    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world > 1


@contextlib.contextmanager
def rank_context(device_pref: str = "auto") -> Iterator[RankContext]:
    """Everything a training rank sets up before its model and tears down after, in one place.

    Configures logging (rank-tagged, Petastorm's INFO chatter and its pyarrow-legacy FutureWarning
    silenced), picks ``cuda:LOCAL_RANK`` when CUDA is available, ``device_pref`` allows it and
    :func:`libs.ml.distributed.run_distributed` did not ask for CPU ranks (``USE_GPU_ENV``),
    initialises the process group (nccl on GPU, gloo on CPU) when ``WORLD_SIZE > 1`` and destroys
    it on exit -- also when training raises. This is the block ``train_sequence_model`` and
    ``train_graph_model`` each repeat; both could open with ``with rank_context(hp["device"]) as ctx:``.
    """
    import torch.distributed as dist

    from libs.ml.distributed import USE_GPU_ENV, rank_env

    rank, world, local_rank = rank_env()
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [rank {rank}] %(name)s: %(message)s")
        # Petastorm logs at INFO that a Spark/pyarrow-written dataset has no Petastorm metadata (expected).
        logging.getLogger("petastorm").setLevel(logging.WARNING)
    # Petastorm 0.12 warns about pyarrow's legacy dataset API from every reader thread (the pin is the project's).
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\.|$)")
    if device_pref not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device_pref!r}")
    use_cuda = (torch.cuda.is_available() and device_pref in ("auto", "cuda")
                and os.environ.get(USE_GPU_ENV, "1") != "0")
    device = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    ctx = RankContext(rank, world, local_rank, device)
    if ctx.distributed:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    try:
        yield ctx
    finally:
        if ctx.distributed and dist.is_initialized():
            dist.destroy_process_group()


def ddp_wrap(model: nn.Module, ctx: RankContext
             ) -> tuple[nn.Module, Callable[[], contextlib.AbstractContextManager] | None]:
    """``(module to train, epoch context)``: DDP + its ``join`` when distributed, else ``(model, None)``.

    ``join`` keeps a rank whose shard ran out of batches answering the others' all-reduces
    (shards of unequal size are normal: row groups differ in size).
    """
    if not ctx.distributed:
        return model, None
    from torch.nn.parallel import DistributedDataParallel as DDP

    ddp = DDP(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)
    return ddp, ddp.join


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copies of the (unwrapped) model's state: what a rank result carries."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def train_multitask(parquet_url: str, spec_dict: Mapping[str, Any], kind: str, hparams: Mapping[str, Any] | None,
                    result_dir: str) -> None:
    """One rank of multi-task training: Petastorm shard -> (DDP) model -> ``rank-<RANK>.pt``.

    Mirrors :func:`libs.ml.distributed.train_sequence_model`: this rank's row groups
    (``cur_shard=RANK``, ``shard_count=WORLD_SIZE``), reshuffled each epoch with ``seed + epoch``;
    DDP over gloo/nccl when there is more than one rank, trained inside ``join()``. Every rank
    seeds the same initialisation. No early stopping here (ranks would have to agree on when to
    stop; the caller owns the hold-out and ``epochs``). Writes ``{rank, world_size, state_dict,
    config, history, spec, kind, hparams}`` via :func:`libs.ml.distributed.write_rank_result`;
    rebuild with :func:`model_from_payload`. Returns None (see :mod:`libs.ml.distributed`).
    """
    from libs.ml.distributed import write_rank_result

    hp = resolve_hparams(hparams)
    spec = MultiTaskSpec.from_dict(spec_dict)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    with rank_context(str(hp["device"])) as ctx:
        torch.manual_seed(int(hp["seed"]))
        model = build_model(kind, spec, hp).to(ctx.device)
        trained, epoch_context = ddp_wrap(model, ctx)

        def loader_fn(epoch: int) -> Iterator[Batch]:
            return multitask_batches(parquet_url, spec, batch_size=int(hp["batch_size"]), num_epochs=1, shuffle=True,
                                     cur_shard=ctx.rank if ctx.distributed else None,
                                     shard_count=ctx.world if ctx.distributed else None,
                                     seed=int(hp["seed"]) + epoch, workers_count=int(hp["reader_workers"]))

        history = fit(trained, loader_fn, spec, int(hp["epochs"]), float(hp["lr"]), float(hp["weight_decay"]),
                      ctx.device, epoch_context, loss_fn=loss_for(spec, hp), grad_clip=hp["grad_clip"])
        write_rank_result(result_dir, {"rank": ctx.rank, "world_size": ctx.world, "state_dict": cpu_state_dict(model),
                                       "config": model.config(), "history": history, "spec": spec.to_dict(),
                                       "kind": kind, "hparams": dict(hp)}, rank=ctx.rank)
        log.info("rank %d/%d wrote its result to %s", ctx.rank, ctx.world, result_dir)


def model_from_payload(payload: Mapping[str, Any]) -> MultiTaskModel:
    """Rebuild the trained model (eval mode, CPU) from a rank result: ``config`` + ``state_dict``."""
    if "config" not in payload or "state_dict" not in payload:
        raise ValueError(f"payload lacks config/state_dict (has {sorted(payload)})")
    config = payload["config"]
    model = build_model(str(config["kind"]), MultiTaskSpec.from_dict(config["spec"]), dict(config["arch"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval()
