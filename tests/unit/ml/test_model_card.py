"""The shared model card: its Markdown (exact rows written out by hand), the fairness numbers on
hand-made arrays, and one round trip through a real MLflow sqlite store (artifacts + the version
description a reviewer sees in the registry UI, after the promotion rule ran)."""
from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest

from libs.ml import model_card as mc
from libs.ml.registry import promote_if_better

RUN_DATE = "2026-11-01"
BY_MARKET = {"BR": {"low_effort": 0.9, "piracy": 0.6},
             "MX": {"low_effort": 0.7, "piracy": None},        # no piracy positive in MX: AUC undefined
             "US": {"low_effort": 0.8, "piracy": 0.75}}


def _card(**overrides) -> mc.ModelCard:
    """A small hand-built card; every number below appears verbatim in the expected rows."""
    fields = dict(
        title="creator-quality sequence model", model_name="cq", version="3", run_id="abc123", run_date=RUN_DATE,
        window=mc.DataWindow("2026-10-05", RUN_DATE, 28, "activity tokens; labels as of the last day"),
        labels_note="standing moderation decisions", train_rows=800, holdout_rows=200,
        positives={"low_effort": mc.Positives(40, 9), "piracy": mc.Positives(12, 3)},
        hyperparameters={"kind": "gru", "epochs": 4},
        metric_columns=(("roc_auc", "ROC AUC"), ("recall_at_fpr1", "recall@1% FPR")),
        metrics={"low_effort": {"roc_auc": 0.81, "recall_at_fpr1": 0.25},
                 "piracy": {"roc_auc": 0.7, "recall_at_fpr1": None}},
        by_market=BY_MARKET,
        baselines={"baseline": {"low_effort": {"roc_auc": 0.79, "recall_at_fpr1": 0.2},
                                "piracy": {"roc_auc": 0.66}}},
        baseline_notes={"baseline": "gradient boosting on signals"},
        primary_metric="macro_roc_auc", primary={"model": 0.78, "baseline": 0.76},
        market_scores={"model": {"BR": 0.75, "MX": 0.7, "US": 0.775}, "baseline": {"BR": 0.7, "MX": 0.72}},
        spread=mc.market_spread(BY_MARKET),
        operating_points=[mc.OperatingPoint(
            "low_effort", 0.5, "score at 1% FPR",
            mc.MarketRates("all", 10, 3, 8, 1, 0.3, 0.125),
            (mc.MarketRates("BR", 6, 2, 5, 1, 2 / 6, 0.2), mc.MarketRates("US", 4, 1, 3, 0, 0.25, 0.0)))],
        plots=["plots/markets/auc_by_market.png"],
        promotion=mc.Promotion("refused", "refused: macro_roc_auc 0.7800 is not better than champion v2's 0.8000",
                               "champion", "2", "2026-11-01T06:00:00+00:00"),
        notes=["training: 4 epochs"])
    fields.update(overrides)
    return mc.ModelCard(**fields)


def test_markdown_has_the_exact_market_fairness_baseline_and_promotion_rows():
    md = _card().to_markdown()
    lines = md.splitlines()
    expected = [
        "# creator-quality sequence model: `cq` version 3",
        "- **data window**: 2026-10-05 .. 2026-11-01 (28 days): activity tokens; labels as of the last day",
        "- **rows**: 800 train, 200 hold-out",
        # promotion: decision, what it was compared with, the rule's reason verbatim
        "- **decision**: **not promoted**: alias `champion` stays where it was",
        "- **compared with**: version 2",
        "- **reason**: refused: macro_roc_auc 0.7800 is not better than champion v2's 0.8000",
        # metrics overall (None -> n/a, never 0)
        "| task | ROC AUC | recall@1% FPR |",
        "| low_effort | 0.810 | 0.250 |",
        "| piracy | 0.700 | n/a |",
        "| low_effort | 40 | 9 |",
        "| kind | gru |",
        # by market, markets sorted
        "| market | low_effort | piracy |",
        "| BR | 0.900 | 0.600 |",
        "| MX | 0.700 | n/a |",
        "| US | 0.800 | 0.750 |",
        # baselines side by side; a metric no model has (piracy recall) is left out
        "| task | metric | model | baseline |",
        "| low_effort | ROC AUC | 0.810 | 0.790 |",
        "| low_effort | recall@1% FPR | 0.250 | 0.200 |",
        "| piracy | ROC AUC | 0.700 | 0.660 |",
        "- `baseline`: gradient boosting on signals",
        # promotion metric by market, model vs baseline (baseline has no US)
        "| overall | 0.780 | 0.760 |",
        "| BR | 0.750 | 0.700 |",
        "| US | 0.775 | n/a |",
        # fairness: spread = max - min over markets with an AUC (low_effort 0.9 - 0.7; piracy 0.75 - 0.6)
        "| task | AUC spread (max - min) | lowest market | highest market | markets with an AUC |",
        "| low_effort | 0.200 | MX 0.700 | BR 0.900 | 3 of 3 |",
        "| piracy | 0.150 | BR 0.600 | US 0.750 | 2 of 3 |",
        # fairness: rates at the threshold
        # FPR disparity: BR 20 % vs US 0 % -> 20 points
        "**low_effort**: flagged when score >= 0.5000 (score at 1% FPR); overall flag rate 30.00 %, FPR 12.50 %; "
        "FPR by market from US 0.00 % to BR 20.00 % (spread 20.00 points)",
        "| market | rows | flagged | flag rate | negatives | false positives | FPR |",
        "| all | 10 | 3 | 30.00 % | 8 | 1 | 12.50 % |",
        "| BR | 6 | 2 | 33.33 % | 5 | 1 | 20.00 % |",
        "| US | 4 | 1 | 25.00 % | 3 | 0 | 0.00 % |",
        "- [plots/markets/auc_by_market.png](plots/markets/auc_by_market.png)",
        "- training: 4 epochs",
    ]
    missing = [e for e in expected if e not in lines]
    assert not missing, missing
    # sections in the order a reviewer reads them: decision first, fairness before plots
    order = [md.index(h) for h in ("## Promotion", "## Hold-out metrics", "## ROC AUC by market",
                                   "## Baselines", "## Fairness", "## Plots", "## Notes")]
    assert order == sorted(order)


def test_markdown_without_threshold_or_decision_says_so():
    md = _card(operating_points=(), operating_point_note="No decision threshold: it ranks.", promotion=None,
               baselines={}, market_scores={}).to_markdown()
    assert "No decision threshold: it ranks." in md.splitlines()
    assert "- **decision**: not decided (the promotion rule has not run on this version)" in md.splitlines()
    assert "## Baselines" not in md and "| all |" not in md


def test_market_spread_edge_cases():
    # one market with an AUC: nothing to compare -> spread None, but lowest/highest still named
    one = mc.market_spread({"BR": {"t": 0.8}, "MX": {"t": None}})
    assert one == [mc.MarketSpread("t", None, "BR", 0.8, "BR", 0.8, 1, 2)]
    # no market with an AUC
    assert mc.market_spread({"BR": {"t": None}}) == [mc.MarketSpread("t", None, None, None, None, None, 0, 1)]
    # ties pick the alphabetically first market on both ends
    tie = mc.market_spread({"US": {"t": 0.9}, "BR": {"t": 0.9}, "MX": {"t": 0.6}, "AR": {"t": 0.6}})[0]
    assert (tie.lowest_market, tie.highest_market) == ("AR", "BR") and tie.spread == pytest.approx(0.3)
    with pytest.raises(ValueError, match="NaN"):
        mc.market_spread({"BR": {"t": float("nan")}})


def test_rates_at_threshold_per_market_by_hand():
    #          BR BR BR BR BR  US US US US  JP JP
    y = np.array([0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([.9, .2, .8, .6, .1, .3, .2, .9, .4, .7, .1])
    markets = np.array(["BR"] * 5 + ["US"] * 4 + ["JP"] * 2)
    overall, by_market = mc.rates_at_threshold(y, p, markets, 0.6)
    # flagged (p >= 0.6): BR rows 0, 2, 3 (0.6 itself counts: enforcement uses >=); US row 7; JP row 9.
    # BR: 5 rows, 3 flagged, negatives rows 0,1,3,4 = 4, false positives rows 0 and 3 = 2 -> FPR 0.5.
    # US (the honest look-alike market): 4 rows, 1 flagged (a positive), 2 negatives, 0 false positives -> FPR 0.
    # JP: 2 rows, 1 flagged, no negatives -> FPR undefined (None), never 0.
    # all: 11 rows, 5 flagged, 6 negatives, 2 false positives -> FPR 1/3.
    assert overall == mc.MarketRates("all", 11, 5, 6, 2, 5 / 11, 2 / 6)
    assert by_market == (mc.MarketRates("BR", 5, 3, 4, 2, 0.6, 0.5),
                         mc.MarketRates("JP", 2, 1, 0, 0, 0.5, None),
                         mc.MarketRates("US", 4, 1, 2, 0, 0.25, 0.0))
    op = mc.operating_point("low_effort", y, p, markets, 0.6, "rule")
    assert (op.threshold, op.overall, op.by_market) == (0.6, overall, by_market)
    # FPR range over markets with negatives (JP has none): US 0.0 lowest, BR 0.5 highest
    assert op.fpr_range() == (by_market[2], by_market[0])
    assert mc.operating_point("t", y[9:], p[9:], markets[9:], 0.6, "rule").fpr_range() is None   # JP only
    with pytest.raises(ValueError, match="0/1"):
        mc.rates_at_threshold(np.array([0, 2]), np.array([.1, .2]), ["a", "b"], 0.5)
    with pytest.raises(ValueError, match="1-D of one length"):
        mc.rates_at_threshold(y, p, markets[:3], 0.5)


def test_top_k_threshold_by_hand():
    # sorted descending: .9 .7 .5 .3 .1; top 40 % of 5 rows = 2 rows -> the 2nd highest, 0.7
    assert mc.top_k_threshold(np.array([.1, .9, .5, .7, .3]), 0.4) == 0.7
    # 1 % of 300 rows is 3 rows (3.0000000000000004 in floats must not become 4): scores 299..0 -> 297
    assert mc.top_k_threshold(np.arange(300, dtype=float), 0.01) == 297.0
    # at least one row is flagged however small the rate
    assert mc.top_k_threshold(np.array([.2, .4]), 0.001) == 0.4
    with pytest.raises(ValueError):
        mc.top_k_threshold(np.array([.2]), 0.0)


def test_data_window_must_match_its_dates():
    assert mc.DataWindow("2026-10-05", "2026-11-01", 28).lookback_days == 28
    with pytest.raises(ValueError, match="28 days, not lookback_days=27"):
        mc.DataWindow("2026-10-05", "2026-11-01", 27)


def test_long_card_goes_to_the_registry_in_compact_form():
    short = _card()
    assert mc.registry_description(short) == short.to_markdown()
    long = _card(hyperparameters={f"p{i:03d}": "x" * 40 for i in range(150)})       # ~8k characters of parameters
    assert len(long.to_markdown()) > mc.DESCRIPTION_MAX
    text = mc.registry_description(long)
    assert len(text) <= mc.DESCRIPTION_MAX
    assert "`runs:/abc123/model_card.md`" in text
    assert "- **reason**: refused: macro_roc_auc 0.7800 is not better than champion v2's 0.8000" in text
    lines = text.splitlines()
    # what a reviewer decides on survives: spread, AUC by market, promotion metric by market, FPR range
    for kept in ("| low_effort | 0.200 | MX 0.700 | BR 0.900 | 3 of 3 |", "| MX | 0.700 | n/a |",
                 "| overall | 0.780 | 0.760 |",
                 "**low_effort**: flagged when score >= 0.5000 (score at 1% FPR); overall flag rate 30.00 %, FPR "
                 "12.50 %; FPR by market from US 0.00 % to BR 20.00 % (spread 20.00 points)"):
        assert kept in lines, kept
    # the long parts do not: hyper-parameters, per-market rate rows, baseline table
    assert "p000" not in text and "| all | 10 | 3 | 30.00 % | 8 | 1 | 12.50 % |" not in lines
    assert "## Baselines" not in text


@pytest.fixture()
def store(tmp_path):
    """A fresh sqlite tracking store with artifacts under tmp_path; the global URI is restored afterwards."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/m.db")
    try:
        client = mlflow.MlflowClient()
        yield client, client.create_experiment("card-test", artifact_location=str(tmp_path / "artifacts"))
    finally:
        mlflow.set_tracking_uri(previous)


def test_card_round_trip_through_the_registry(store):
    client, exp_id = store
    run = client.create_run(exp_id)
    run_id = run.info.run_id
    client.log_metric(run_id, "macro_roc_auc", 0.8)
    client.set_terminated(run_id)                     # the card is written after the run ended
    client.create_registered_model("cq")
    version = str(client.create_model_version("cq", source=f"runs:/{run_id}/model", run_id=run_id).version)
    with pytest.raises(ValueError, match="run the promotion rule"):
        mc.Promotion.from_registry(client, "cq", version)
    promoted, reason = promote_if_better(client, "cq", version, "champion", "macro_roc_auc", "market_auc.", 0.02)
    promotion = mc.Promotion.from_registry(client, "cq", version)
    assert promoted and (promotion.decision, promotion.alias, promotion.compared_to) == ("promoted", "champion", None)
    assert promotion.reason == reason == "no 'champion' yet: version 1 becomes the first"

    y = np.array([[0, 1], [1, 0], [0, 1], [1, 0], [0, 0], [1, 1]], dtype=float)
    p = np.array([[.2, .7], [.9, .1], [.1, .8], [.6, .4], [.3, .2], [.8, .6]])
    markets = np.array(["BR", "BR", "BR", "US", "US", "US"])
    plots = mc.log_market_plots(client, run_id, y, p, markets, ["low_effort", "piracy"], BY_MARKET)
    assert plots == ["plots/markets/auc_by_market.png", "plots/markets/roc_low_effort.png",
                     "plots/markets/roc_piracy.png"]
    card = _card(model_name="cq", version=version, run_id=run_id, plots=plots, promotion=promotion)
    with pytest.raises(ValueError, match="not cq v2"):
        mc.log_card(client, card, "cq", "2")
    description = mc.log_card(client, card, "cq", version)

    assert client.get_model_version("cq", version).description == description == card.to_markdown()
    assert "- **decision**: **promoted**: now holds alias `champion`" in description.splitlines()
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/model_card.md") == card.to_markdown()
    saved = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/model_card.json"))
    assert saved["version"] == version and saved["promotion"]["decision"] == "promoted"
    assert saved["spread"][0] == {"task": "low_effort", "spread": pytest.approx(0.2), "lowest_market": "MX",
                                  "lowest": 0.7, "highest_market": "BR", "highest": 0.9, "markets_defined": 3,
                                  "markets_total": 3}
    logged = {f.path for f in client.list_artifacts(run_id, "plots/markets")}
    assert logged == set(plots)
    assert {k: str(v) for k, v in client.get_registered_model("cq").aliases.items()} == {"champion": version}
