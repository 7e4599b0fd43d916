"""Metrics against values computed by hand on arrays small enough to check on paper."""
from __future__ import annotations

import numpy as np
import pytest

from libs.ml.metrics import (binary_metrics, group_auc, label_metrics, macro, mlflow_metrics, plot_curves,
                             precision_recall_f1, recall_at_fpr, recall_at_precision)

# Ranked by score: 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-).
Y = np.array([0, 0, 1, 1])
P = np.array([0.1, 0.4, 0.35, 0.8])


def test_binary_metrics_match_hand_computed_values():
    m = binary_metrics(Y, P, precisions=(0.6, 0.8), fprs=(0.0, 0.5))
    # AUC: of the 4 (pos, neg) pairs, 3 are ordered right -> 0.75.
    assert m["roc_auc"] == pytest.approx(0.75)
    # AP: precision 1 at recall 1/2, precision 2/3 at recall 1 -> 0.5 * 1 + 0.5 * 2/3.
    assert m["pr_auc"] == pytest.approx(0.5 + 1 / 3)
    # Threshold 0.8: P=1, R=1/2; 0.35: P=2/3, R=1 -> recall 1/2 at P>=0.8, 1 at P>=0.6.
    assert m["recall_at_p80"] == pytest.approx(0.5)
    assert m["recall_at_p60"] == pytest.approx(1.0)
    # FPR 0 allows only threshold 0.8 (TPR 1/2); FPR 1/2 allows 0.35 (TPR 1).
    assert m["recall_at_fpr0"] == pytest.approx(0.5)
    assert m["recall_at_fpr50"] == pytest.approx(1.0)
    assert (m["n"], m["positives"]) == (4.0, 2.0)


def test_recall_at_fpr_counts_tied_scores_together():
    # 100 negatives, 10 positives. One negative outscores everything; one negative ties the
    # five weaker positives at 0.5, so reaching those positives costs a second false positive.
    y = np.array([0] * 100 + [1] * 10)
    p = np.array([0.95, 0.5] + [0.1] * 98 + [0.9] * 5 + [0.5] * 5)
    assert recall_at_fpr(y, p, 0.0) == 0.0                    # even the top score is a negative
    assert recall_at_fpr(y, p, 0.01) == pytest.approx(0.5)    # 1 FP / 100: the five 0.9 positives
    assert recall_at_fpr(y, p, 0.019) == pytest.approx(0.5)   # the tie cannot be split
    assert recall_at_fpr(y, p, 0.02) == pytest.approx(1.0)    # 2 FP / 100: all positives
    # Precision at those points: 5/6 and 10/12 -> recall 1 at P>=0.8, recall 0 at P>=0.9.
    assert recall_at_precision(y, p, 0.8) == pytest.approx(1.0)
    assert recall_at_precision(y, p, 0.9) == 0.0


def test_one_class_gives_none_not_a_crash_and_groups_are_split():
    assert binary_metrics(np.zeros(5), np.linspace(0, 1, 5))["roc_auc"] is None
    assert recall_at_fpr(np.ones(3), np.array([0.1, 0.2, 0.3]), 0.1) is None
    y = np.array([[0, 1], [1, 1], [0, 0], [1, 0], [0, 0], [1, 1]])
    p = np.array([[0.2, 0.9], [0.8, 0.8], [0.3, 0.1], [0.1, 0.2], [0.6, 0.3], [0.9, 0.7]])
    groups = np.array(["US", "US", "US", "DE", "DE", "DE"])
    by_group = group_auc(y, p, groups, ["a", "b"])
    # US, label a: pos 0.8 vs neg {0.2, 0.3} -> 1.0; label b: pos {0.9, 0.8} vs neg 0.1 -> 1.0.
    assert by_group["US"] == {"a": 1.0, "b": 1.0}
    # DE, label a: pos {0.1, 0.9} vs neg 0.6 -> 1/2; label b: pos 0.7 vs neg {0.2, 0.3} -> 1.0.
    assert by_group["DE"] == {"a": 0.5, "b": 1.0}
    only_neg = group_auc(np.array([[0], [0], [1]]), np.array([[0.1], [0.2], [0.3]]), ["BR", "BR", "US"], ["a"])
    assert only_neg == {"BR": {"a": None}, "US": {"a": None}}
    assert macro([None, 0.5, 1.0]) == 0.75 and macro([None]) is None


def test_mlflow_metrics_flatten_and_drop_undefined():
    y = np.array([[0, 0], [1, 0], [0, 0], [1, 0]])
    p = np.array([[0.1, 0.2], [0.9, 0.4], [0.3, 0.1], [0.7, 0.3]])
    flat = mlflow_metrics(label_metrics(y, p, ["a", "b"]), group_auc(y, p, ["US"] * 4, ["a", "b"]))
    assert flat["a.roc_auc"] == 1.0 and "b.roc_auc" not in flat          # label b has no positive
    assert flat["macro_roc_auc"] == 1.0 and flat["market_auc.US"] == 1.0
    assert flat["a.market_auc.US"] == 1.0
    assert all(isinstance(v, float) for v in flat.values())


def test_plot_curves_writes_both_pngs(tmp_path):
    rng = np.random.default_rng(0)
    y = (rng.random((50, 2)) < 0.3).astype(float)
    y[:, 1] = 0                                                         # one-class label: listed, not drawn
    paths = plot_curves(y, rng.random((50, 2)), ["a", "b"], tmp_path / "curves")
    assert [p.name for p in paths] == ["roc.png", "pr.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_precision_recall_f1_from_counts_and_undefined_cases():
    assert precision_recall_f1(3, 1, 2) == (0.75, 0.6, pytest.approx(2 * 0.75 * 0.6 / 1.35))
    assert precision_recall_f1(0, 0, 4) == (None, 0.0, None)      # nothing reported: no precision
    assert precision_recall_f1(0, 2, 0) == (0.0, None, None)      # nothing to find: no recall
    assert precision_recall_f1(0, 2, 3) == (0.0, 0.0, 0.0)        # both defined, both zero
    assert precision_recall_f1(5, 0, 0) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="counts"):
        precision_recall_f1(1, -1, 0)
