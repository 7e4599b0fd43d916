"""Gradient-boosting baseline: the wide feature layout and that it learns / refuses what it should."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from libs.quality import baseline
from schemas import creator_signals


def test_wide_features_one_row_per_creator(spark):
    rows = []
    for cid, w, n in (("a", 7, 1), ("a", 28, 5), ("b", 28, 2)):
        r = {f.name: None for f in creator_signals.SCHEMA}
        r.update(dt="2026-11-28", creator_id=cid, window_days=w, market="US", account_age_days=30, n_videos=n)
        rows.append(r)
    wide = {r.creator_id: r for r in baseline.wide_features(spark.createDataFrame(rows, creator_signals.SCHEMA),
                                                            [7, 28]).collect()}
    assert (wide["a"].n_videos_7d, wide["a"].n_videos_28d) == (1.0, 5.0)
    assert wide["b"].n_videos_7d is None and wide["b"].n_videos_28d == 2.0   # missing window stays missing
    assert baseline.feature_columns([28, 7])[:3] == ["account_age_days", "n_videos_7d", "active_days_7d"]
    assert set(baseline.feature_columns([7, 28])) <= set(wide["a"].asDict())


@pytest.mark.parametrize("n_pos", [8, 60])   # below and above the early-stopping minimum
def test_fit_learns_a_planted_signal_with_missing_values(n_pos):
    rng = np.random.default_rng(0)
    n = 600
    x = pd.DataFrame({"f1": rng.normal(size=n), "f2": rng.normal(size=n)})
    y = np.zeros((n, 2), dtype=np.float32)
    top = np.argsort(-x["f1"].to_numpy())[:n_pos]
    y[top, 0] = 1.0                                   # label 0 = the highest f1 values
    y[rng.choice(n, n_pos, replace=False), 1] = 1.0   # label 1 = noise
    x.loc[rng.choice(n, 50, replace=False), "f2"] = np.nan   # nulls are allowed (native missing support)
    models = baseline.fit(x, y, ["signal", "noise"])
    p = baseline.predict(models, x, ["signal", "noise"])
    assert p.shape == (n, 2) and ((p >= 0) & (p <= 1)).all()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[:, 0], p[:, 0]) > 0.95


def test_single_class_label_is_refused():
    x = pd.DataFrame({"f": [0.0, 1.0, 2.0]})
    with pytest.raises(ValueError, match="single class"):
        baseline.fit(x, np.zeros((3, 1)), ["empty"])
