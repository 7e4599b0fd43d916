"""UCI Adult loader (libs/strategy/uci_adult.py): parsing conventions and encoding on hand-made files,
then the real files (skipped when ../shared/data/uci-adult is absent).

Expected real-data counts were taken with awk on the raw files (independent of the loader):
32,561 training / 16,281 test rows; income >50K: 7,841 / 3,846; Never-married: 10,683 / 5,434;
workclass '?': 1,836 / 963.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from libs.strategy import uci_adult as ua

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "uci-adult"

ROW = "{age}, {wc}, 100000, Bachelors, 13, {ms}, Sales, Husband, White, Male, {gain}, 0, 40, United-States, {inc}"


def write(path: Path, rows: list[dict], header: str | None = None, dot: bool = False) -> Path:
    lines = [header] if header else []
    lines += [ROW.format(**r) + ("." if dot else "") for r in rows]
    path.write_text("\n".join(lines) + "\n\n")
    return path


def r(age=30, wc="Private", ms="Never-married", gain=0, inc="<=50K"):
    return {"age": age, "wc": wc, "ms": ms, "gain": gain, "inc": inc}


def test_read_census_handles_comment_line_trailing_dots_and_unknowns(tmp_path):
    path = write(tmp_path / "t.test", [r(inc=">50K"), r(wc="?", ms="Divorced")], header="|1x3 Cross validator",
                 dot=True)
    frame = ua.read_census(path)
    assert len(frame) == 2 and list(frame.columns) == list(ua.COLUMNS)
    assert frame["income"].tolist() == [">50K", "<=50K"]
    assert frame["workclass"].tolist()[1] is None
    np.testing.assert_array_equal(ua.task_labels(frame), [[1.0, 1.0], [0.0, 0.0]])


def test_read_census_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        ua.read_census(tmp_path / "missing.data")
    bad = tmp_path / "bad.data"
    bad.write_text(ROW.format(**r()) + "\n25, Private, 1\n")
    with pytest.raises(ValueError, match=r"bad\.data:2: expected 15"):
        ua.read_census(bad)
    write(bad, [r(inc="50K+")])
    with pytest.raises(ValueError, match="income labels"):
        ua.read_census(bad)
    write(bad, [r(age="old")])
    with pytest.raises(ValueError, match="column age has non-numeric value 'old'"):
        ua.read_census(bad)
    with pytest.raises(FileNotFoundError, match="UCI Adult folder not found"):
        ua.load_uci_adult(tmp_path / "nowhere")


def test_encoder_standardises_with_log1p_money_and_indexes_categories(tmp_path):
    rows = [r(age=20, gain=0, wc="Private"), r(age=30, gain=0, wc="State-gov"),
            r(age=40, gain=99999, wc="?"), r(age=50, gain=99999, wc="Private")]
    frame = ua.read_census(write(tmp_path / "a.data", rows))
    enc = ua.AdultEncoder.fit(frame)
    x_num, x_cat = enc.transform(frame)
    ages = (np.array([20, 30, 40, 50]) - 35.0) / math.sqrt(125.0)            # population std of 20..50
    np.testing.assert_allclose(x_num[:, ua.NUMERIC.index("age")], ages, rtol=1e-6)
    # log1p(99999) = 5 ln 10: two rows at 0 and two at 5 ln 10 standardise to -1 and +1.
    np.testing.assert_allclose(x_num[:, ua.NUMERIC.index("capital-gain")], [-1, -1, 1, 1], rtol=1e-6)
    # Constant columns (fnlwgt here) stay 0 rather than dividing by a zero std.
    np.testing.assert_array_equal(x_num[:, ua.NUMERIC.index("fnlwgt")], [0, 0, 0, 0])
    # Sorted vocabulary from 1: Private=1, State-gov=2; '?' -> 0.
    assert x_cat[:, ua.CATEGORICAL.index("workclass")].tolist() == [1, 2, 0, 1]
    unseen = ua.read_census(write(tmp_path / "b.data", [r(wc="Never-worked")]))
    assert enc.transform(unseen)[1][0, ua.CATEGORICAL.index("workclass")] == 0


def test_load_on_small_files_removes_marital_status_and_splits(tmp_path):
    rows = [r(age=20 + i, ms="Never-married" if i % 3 else "Divorced", inc=">50K" if i % 4 == 0 else "<=50K")
            for i in range(10)]
    write(tmp_path / ua.TRAIN_FILE, rows)
    write(tmp_path / ua.TEST_FILE, [r(wc="Without-pay")], header="|1x3 Cross validator", dot=True)
    data = ua.load_uci_adult(tmp_path, val_fraction=0.2, seed=0)
    assert len(data.train["y"]) == 8 and len(data.val["y"]) == 2 and len(data.test["y"]) == 1
    assert "marital-status" not in data.feature_names and "income" not in data.feature_names
    assert data.spec.num_features == 6 and len(data.spec.categorical_cardinalities) == 7
    assert data.spec.task_names == ("income_gt_50k", "never_married")
    assert data.test["x_cat"][0, ua.CATEGORICAL.index("workclass")] == 0        # unseen in training
    # Labels of train + val are the file's labels (no row lost or duplicated by the split).
    y = np.concatenate([data.train["y"], data.val["y"]])
    assert y[:, 0].sum() == 3 and y[:, 1].sum() == 6                              # i in {0,4,8}; i % 3 != 0
    with pytest.raises(ValueError, match="val_fraction"):
        ua.load_uci_adult(tmp_path, val_fraction=0.0)


needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"UCI Adult data not present at {DATA}")


@pytest.fixture(scope="module")
def adult():
    return ua.load_uci_adult(DATA)


@needs_data
def test_real_row_counts_and_split(adult):
    assert len(adult.train["y"]) + len(adult.val["y"]) == 32_561
    assert len(adult.val["y"]) == 3_256                                             # round(0.1 * 32,561)
    assert len(adult.test["y"]) == 16_281


@needs_data
def test_real_label_rates(adult):
    y_file = np.concatenate([adult.train["y"], adult.val["y"]]).astype(np.float64)
    assert y_file[:, 0].sum() == 7_841 and adult.test["y"][:, 0].sum() == 3_846
    assert y_file[:, 1].sum() == 10_683 and adult.test["y"][:, 1].sum() == 5_434
    assert y_file[:, 0].mean() == pytest.approx(0.24, abs=0.005)                   # the published 24 %


@needs_data
def test_real_inputs_exclude_marital_status_and_are_encoded(adult):
    assert "marital-status" not in adult.feature_names
    assert adult.train["x_num"].shape[1] == 6 and adult.train["x_cat"].shape[1] == 7
    # workclass has 8 known values; its '?' rows are index 0 (awk: 1,836 in the training file, 963 in test).
    assert adult.spec.categorical_cardinalities[ua.CATEGORICAL.index("workclass")] == 8
    wc = ua.CATEGORICAL.index("workclass")
    assert ((adult.train["x_cat"][:, wc] == 0).sum() + (adult.val["x_cat"][:, wc] == 0).sum()) == 1_836
    assert (adult.test["x_cat"][:, wc] == 0).sum() == 963
    np.testing.assert_allclose(adult.train["x_num"].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(adult.train["x_num"].std(0), 1, atol=1e-3)
