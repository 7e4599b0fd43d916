"""Multi-label sequence classifier over per-creator activity sequences, and its train/predict loops.

Why masking is part of the model, not of the data: sequences are zero-padded at the end to a fixed
``L`` so that they batch, but "no activity that week" and "padding" must not look alike -- a
creator with 3 weeks of history is not a creator with 61 silent weeks. The GRU never sees padded
steps (``pack_padded_sequence``); the transformer masks them as attention keys and excludes them
from its mean pooling. The unit tests fill padding with noise and require identical outputs.

Why ``pos_weight``: the governance labels (low effort, piracy, matrix accounts) are rare, a few
percent at most; unweighted BCE reaches a low loss by predicting "no" everywhere. ``pos_weight``
(negatives/positives per label, see :func:`positive_weights`) rebalances the gradient per label
without resampling, so one Parquet dataset serves every label.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from libs.ml.sequences import check_lengths

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]      # seq (B, L, F), seq_len (B,), labels (B, K)
KINDS = ("gru", "transformer")


class SequenceClassifier(nn.Module):
    """``(B, L, F)`` sequences + lengths -> ``(B, K)`` logits, one independent sigmoid per label.

    ``kind="gru"``: GRU over the packed real steps, last hidden state of the top layer.
    ``kind="transformer"``: linear projection + learned positional embeddings (``max_len``
    positions), encoder layers with a key-padding mask, masked mean pooling. ``hidden`` must be
    divisible by ``heads`` for the transformer. The constructor arguments are exactly what
    :meth:`config` returns, so a saved state dict plus that dict rebuilds the model.
    """

    def __init__(self, n_features: int, n_labels: int, hidden: int = 64, kind: str = "gru", layers: int = 1,
                 dropout: float = 0.1, max_len: int = 512, heads: int = 4) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if kind == "transformer" and hidden % heads:
            raise ValueError(f"hidden={hidden} must be divisible by heads={heads}")
        self.n_features, self.n_labels, self.hidden = n_features, n_labels, hidden
        self.kind, self.layers, self.dropout_p, self.max_len, self.heads = kind, layers, dropout, max_len, heads
        if kind == "gru":
            # nn.GRU applies dropout only between stacked layers; with one layer it would warn.
            self.gru = nn.GRU(n_features, hidden, num_layers=layers, batch_first=True,
                              dropout=dropout if layers > 1 else 0.0)
        else:
            self.proj = nn.Linear(n_features, hidden)
            self.pos = nn.Embedding(max_len, hidden)
            layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=2 * hidden, dropout=dropout,
                                               batch_first=True)
            # Nested-tensor fast path off: it changes numerics between train and eval and warns per call.
            self.encoder = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_labels)
        # Prior correction added to the logits in eval mode only (see set_prior_correction). A buffer,
        # not a parameter: it is saved with the state dict, so the registered model serves calibrated
        # probabilities, and the optimiser never touches it.
        self.register_buffer("prior_correction", torch.zeros(n_labels))

    def set_prior_correction(self, pos_weight: "np.ndarray | list[float]") -> None:
        """Undo the odds inflation of training with ``BCEWithLogits(pos_weight=w)``.

        Weighting positives by ``w`` makes the minimiser's odds ``w`` times the true odds, so
        ``logit(p) = logit(q) - log w`` recovers probabilities on the training label scale -- what a
        score that is combined across abuse types (the Creator Quality Score) needs. Ranking metrics
        (AUC, recall at a fixed FPR) are unchanged: the map is monotonic.
        """
        w = torch.as_tensor(np.asarray(pos_weight, dtype=np.float32)).reshape(-1)
        if w.numel() != self.n_labels or bool((w <= 0).any()):
            raise ValueError(f"pos_weight needs {self.n_labels} positive values, got {w.tolist()}")
        self.prior_correction.copy_(-torch.log(w).to(self.prior_correction.device))

    def config(self) -> dict:
        """Constructor arguments, JSON-ready (saved next to the state dict)."""
        return {"n_features": self.n_features, "n_labels": self.n_labels, "hidden": self.hidden, "kind": self.kind,
                "layers": self.layers, "dropout": self.dropout_p, "max_len": self.max_len, "heads": self.heads}

    def forward(self, seq: torch.Tensor, seq_len: torch.Tensor) -> torch.Tensor:
        if seq.dim() != 3 or seq.shape[2] != self.n_features:
            raise ValueError(f"expected seq of shape (B, L, {self.n_features}), got {tuple(seq.shape)}")
        if self.kind == "gru":
            # Lengths must live on the CPU for packing; enforce_sorted=False keeps batch order in h_n.
            packed = pack_padded_sequence(seq, seq_len.detach().to("cpu", torch.int64), batch_first=True,
                                          enforce_sorted=False)
            _, h_n = self.gru(packed)
            summary = h_n[-1]
        else:
            b, steps, _ = seq.shape
            if steps > self.max_len:
                raise ValueError(f"sequence of {steps} steps exceeds the positional table (max_len={self.max_len})")
            positions = torch.arange(steps, device=seq.device)
            pad = positions[None, :] >= seq_len.to(seq.device)[:, None]         # True = padded step
            x = self.proj(seq) + self.pos(positions)[None, :, :]
            x = self.encoder(x, src_key_padding_mask=pad)
            keep = (~pad).unsqueeze(-1).to(x.dtype)
            summary = (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
        logits = self.head(self.drop(summary))
        return logits if self.training else logits + self.prior_correction


def positive_weights(labels: np.ndarray, cap: float = 100.0) -> np.ndarray:
    """Per-label ``negatives / positives`` for ``BCEWithLogitsLoss(pos_weight=...)``, capped.

    The cap stops a label with a handful of positives from dominating every gradient step; a
    label without positives gets weight 1 (nothing to up-weight, and no division by zero).
    """
    y = np.asarray(labels, dtype=np.float64)
    pos = y.sum(axis=0)
    neg = y.shape[0] - pos
    w = np.where(pos > 0, neg / np.maximum(pos, 1.0), 1.0)
    return np.clip(w, 1.0, cap).astype(np.float32)


def train_epochs(model: nn.Module, loader_fn: Callable[[int], Iterable[Batch]], epochs: int, lr: float,
                 pos_weight: Sequence[float] | np.ndarray | torch.Tensor | None, device: torch.device,
                 weight_decay: float = 0.0, grad_clip: float | None = 1.0,
                 epoch_context: Callable[[], contextlib.AbstractContextManager] | None = None) -> list[dict]:
    """Train ``model`` in place with Adam + BCEWithLogits; one dict per epoch.

    ``loader_fn(epoch)`` returns a fresh iterable of ``(seq, seq_len, labels)`` batches: Petastorm
    readers are single-pass objects, and the in-memory loader reshuffles per epoch, so each epoch
    asks for its own. ``model`` may be a DistributedDataParallel wrapper (gradients are averaged
    across ranks by DDP itself). Each dict has ``epoch``, ``loss`` (mean per row), ``rows``,
    ``seconds`` and ``rows_per_s`` -- the throughput is part of the record because data loading,
    not the GRU, is usually what limits these small models.
    Gradient norm clipping (default 1.0) keeps recurrent models from the occasional exploding step.
    ``epoch_context`` wraps each epoch's batch loop (DDP passes ``ddp.join``: ranks whose shards
    hold fewer batches must keep answering the others' gradient all-reduces).
    """
    model.to(device)
    pw = None if pos_weight is None else torch.as_tensor(np.asarray(pos_weight, dtype=np.float32), device=device)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pw, reduction="sum")
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history: list[dict] = []
    for epoch in range(epochs):
        model.train()
        # Accumulated on the device: a float() per step would stall the GPU queue every batch.
        total, rows, started = torch.zeros((), device=device), 0, time.perf_counter()
        with (epoch_context() if epoch_context else contextlib.nullcontext()):
            for seq, seq_len, labels in loader_fn(epoch):
                seq = seq.to(device, torch.float32, non_blocking=True)
                labels = labels.to(device, torch.float32, non_blocking=True)
                opt.zero_grad(set_to_none=True)
                logits = model(seq, seq_len)
                # Sum over labels, mean over rows: the loss scale does not depend on the batch size.
                loss = loss_fn(logits, labels) / seq.shape[0]
                loss.backward()
                if grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                opt.step()
                total += loss.detach() * seq.shape[0]
                rows += seq.shape[0]
        loss_sum = float(total)                      # synchronises the device: the timing below is real
        seconds = time.perf_counter() - started
        record = {"epoch": epoch, "loss": loss_sum / rows if rows else math.nan, "rows": rows, "seconds": seconds,
                  "rows_per_s": rows / seconds if seconds > 0 else math.nan}
        log.info("epoch %d: loss %.4f, %d rows in %.2fs (%.0f rows/s)", epoch, record["loss"], rows, seconds,
                 record["rows_per_s"])
        history.append(record)
    return history


@torch.no_grad()
def predict(model: nn.Module, seq: np.ndarray | torch.Tensor, seq_len: np.ndarray | torch.Tensor,
            device: torch.device, batch_size: int = 1024) -> np.ndarray:
    """Probabilities ``(N, K)`` for sequences ``(N, L, F)`` (or flat ``(N, L*F)``), in eval mode, batched.

    Batched so that scoring a whole market does not need the whole market on the GPU at once.
    Leaves ``model`` in eval mode on ``device``.
    """
    model.eval()
    model.to(device)
    n_features = getattr(model, "n_features", None)
    seq_t = torch.as_tensor(np.asarray(seq, dtype=np.float32) if not torch.is_tensor(seq) else seq.float())
    if seq_t.dim() == 2 and n_features:
        seq_t = seq_t.reshape(seq_t.shape[0], -1, n_features)
    lengths = torch.as_tensor(check_lengths(np.asarray(seq_len), seq_t.shape[1]))
    out = []
    for start in range(0, seq_t.shape[0], batch_size):
        chunk = seq_t[start:start + batch_size].to(device)
        logits = model(chunk, lengths[start:start + batch_size])
        out.append(torch.sigmoid(logits).float().cpu().numpy())
    n_labels = getattr(model, "n_labels", 0)
    return np.concatenate(out) if out else np.zeros((0, n_labels), dtype=np.float32)
