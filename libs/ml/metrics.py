"""Hold-out metrics of multi-label risk models, per label and per market, and their curves.

Why these metrics: positives are rare and every flagged creator costs a reviewer's time, so
ROC AUC alone (dominated by the easy negatives) says little. Reviewers work at an operating
point: *recall at precision p* ("how many bad actors we catch if at least p of the flags are
right") and *recall at FPR f* ("... if at most f of honest creators are flagged"). PR AUC
(average precision) summarises the rare-positive regime.

Operating points are thresholds ``score >= t``: tied scores are flagged together, so a tie between
a positive and a negative cannot be split to reach a better point (recall_at_fpr is the best TPR
over thresholds whose FPR <= f; recall_at_precision the best recall over thresholds whose
precision >= p; 0.0 when no threshold qualifies).

A label with a single class in a slice (no positives in a small market, say) has no defined AUC or
recall: every metric of that slice is None, never an exception and never a misleading 0.5.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

PRECISIONS = (0.8, 0.9)
FPRS = (0.01, 0.05)


def _pct(x: float) -> str:
    return f"{x * 100:g}".replace(".", "_")


def _check(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and scores {p.shape} differ in shape")
    if not np.isfinite(p).all():
        raise ValueError("scores contain NaN or infinity")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1")
    return y, p


def _two_classes(y: np.ndarray) -> bool:
    return 0 < y.sum() < y.size


def precision_recall_f1(tp: int, fp: int, fn: int) -> tuple[float | None, float | None, float | None]:
    """Precision, recall and F1 from counts; ``None`` where undefined, never a misleading 0 or 1.

    Precision is undefined with nothing reported (tp + fp = 0), recall with nothing to find
    (tp + fn = 0); F1 needs both and is 0.0 when both are defined and either is 0.
    """
    if min(tp, fp, fn) < 0:
        raise ValueError(f"counts must be >= 0, got tp={tp} fp={fp} fn={fn}")
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    if p is None or r is None:
        return p, r, None
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def recall_at_precision(y: np.ndarray, p: np.ndarray, min_precision: float) -> float | None:
    """Best recall over thresholds with precision >= ``min_precision`` (0.0 if none); None if one class."""
    y, p = _check(y, p)
    if not _two_classes(y):
        return None
    precision, recall, _ = precision_recall_curve(y, p)
    ok = precision >= min_precision
    return float(recall[ok].max()) if ok.any() else 0.0


def recall_at_fpr(y: np.ndarray, p: np.ndarray, max_fpr: float) -> float | None:
    """Best recall (TPR) over thresholds with false-positive rate <= ``max_fpr``; None if one class."""
    y, p = _check(y, p)
    if not _two_classes(y):
        return None
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    ok = fpr <= max_fpr + 1e-12                     # fpr is a ratio of counts: compare without float noise
    return float(tpr[ok].max()) if ok.any() else 0.0


def binary_metrics(y: np.ndarray, p: np.ndarray, precisions: Sequence[float] = PRECISIONS,
                   fprs: Sequence[float] = FPRS) -> dict[str, float | None]:
    """``roc_auc``, ``pr_auc``, ``recall_at_p<P>``, ``recall_at_fpr<F>`` (percent in the name) plus counts."""
    y, p = _check(y, p)
    out: dict[str, float | None] = {"n": float(y.size), "positives": float(y.sum())}
    defined = _two_classes(y)
    out["roc_auc"] = float(roc_auc_score(y, p)) if defined else None
    out["pr_auc"] = float(average_precision_score(y, p)) if defined else None
    for q in precisions:
        out[f"recall_at_p{_pct(q)}"] = recall_at_precision(y, p, q)
    for f in fprs:
        out[f"recall_at_fpr{_pct(f)}"] = recall_at_fpr(y, p, f)
    return out


def label_metrics(y: np.ndarray, p: np.ndarray, label_names: Sequence[str], precisions: Sequence[float] = PRECISIONS,
                  fprs: Sequence[float] = FPRS) -> dict[str, dict[str, float | None]]:
    """:func:`binary_metrics` for each label column of ``(N, K)`` labels and scores."""
    y, p = _check(y, p)
    if y.ndim != 2 or y.shape[1] != len(label_names):
        raise ValueError(f"expected (N, {len(label_names)}) arrays, got {y.shape}")
    return {name: binary_metrics(y[:, k], p[:, k], precisions, fprs) for k, name in enumerate(label_names)}


def group_auc(y: np.ndarray, p: np.ndarray, groups: Sequence[str] | np.ndarray,
              label_names: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """ROC AUC per group (market) and label: ``{group: {label: auc or None}}``.

    Why per market: a model can improve overall while getting worse where a market's behaviour
    differs (language, payout rails); the promotion rule compares markets one by one.
    """
    y, p = _check(y, p)
    g = np.asarray(groups).astype(str)
    if g.shape[0] != y.shape[0]:
        raise ValueError(f"{g.shape[0]} groups for {y.shape[0]} rows")
    out: dict[str, dict[str, float | None]] = {}
    for group in sorted(set(g.tolist())):
        rows = g == group
        out[group] = {}
        for k, name in enumerate(label_names):
            yk, pk = y[rows, k], p[rows, k]
            out[group][name] = float(roc_auc_score(yk, pk)) if _two_classes(yk) else None
    return out


def macro(values: Iterable[float | None]) -> float | None:
    """Mean of the defined values; None if none is defined."""
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def mlflow_metrics(per_label: Mapping[str, Mapping[str, float | None]],
                   per_group: Mapping[str, Mapping[str, float | None]] | None = None,
                   group_prefix: str = "market_auc.") -> dict[str, float]:
    """Flat metric dict for ``mlflow.log_metrics``: undefined (None) values are left out.

    Keys: ``<label>.<metric>``, ``macro_roc_auc``, ``macro_pr_auc``, ``<group_prefix><group>`` (macro
    AUC of the group over labels, what the promotion rule compares) and ``<label>.<group_prefix><group>``.
    """
    out: dict[str, float] = {}
    for label, metrics in per_label.items():
        for key, value in metrics.items():
            if value is not None:
                out[f"{label}.{key}"] = float(value)
    for key in ("roc_auc", "pr_auc"):
        m = macro(metrics.get(key) for metrics in per_label.values())
        if m is not None:
            out[f"macro_{key}"] = m
    for group, by_label in (per_group or {}).items():
        m = macro(by_label.values())
        if m is not None:
            out[f"{group_prefix}{group}"] = m
        for label, value in by_label.items():
            if value is not None:
                out[f"{label}.{group_prefix}{group}"] = float(value)
    return out


def plot_curves(y: np.ndarray, p: np.ndarray, label_names: Sequence[str], out_dir: str | Path) -> list[Path]:
    """ROC and precision-recall curves, one line per label: ``roc.png`` and ``pr.png`` in ``out_dir``.

    Built on matplotlib's object API with the Agg canvas (no pyplot, no global backend switch), so
    it works on headless training nodes and inside processes that already imported pyplot.
    Labels with a single class are listed in the title instead of drawn.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    y, p = _check(y, p)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in ("roc", "pr"):
        fig = Figure(figsize=(6, 5))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        skipped = []
        for k, name in enumerate(label_names):
            yk, pk = y[:, k], p[:, k]
            if not _two_classes(yk):
                skipped.append(name)
                continue
            if kind == "roc":
                fpr, tpr, _ = roc_curve(yk, pk)
                ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(yk, pk):.3f})")
            else:
                precision, recall, _ = precision_recall_curve(yk, pk)
                line, = ax.plot(recall, precision, label=f"{name} (AP {average_precision_score(yk, pk):.3f})")
                ax.axhline(yk.mean(), color=line.get_color(), linestyle=":", linewidth=0.8)   # chance level
        if kind == "roc":
            ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
            ax.set_xlabel("false positive rate")
            ax.set_ylabel("recall (true positive rate)")
        else:
            ax.set_xlabel("recall")
            ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        title = "ROC" if kind == "roc" else "Precision-recall"
        ax.set_title(title + (f" (one class, not drawn: {', '.join(skipped)})" if skipped else ""), fontsize=9)
        if len(skipped) < len(label_names):
            ax.legend(loc="lower right" if kind == "roc" else "upper right", fontsize=8)
        path = folder / f"{kind}.png"
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths
