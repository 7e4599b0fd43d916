"""Creator Quality Score and evidence on hand-made rows; expected values worked out by hand."""
from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from libs.quality import scores
from schemas import creator_quality_scores as schema
from schemas import creator_signals

THRESHOLDS = {"low_effort": 0.5, "piracy": 0.4, "matrix": 0.6}


def _signals(spark, rows: list[dict]):
    """creator_signals rows (28-day window) with every other feature null."""
    full = []
    for r in rows:
        base = {f.name: None for f in creator_signals.SCHEMA}
        base.update(dt="2026-11-28", window_days=28, market="US", n_videos=0, copy_sources=0)
        base.update(r)
        full.append(base)
    return spark.createDataFrame(full, creator_signals.SCHEMA)


def test_cqs_formula(spark):
    sig = _signals(spark, [
        # quality terms: 1-0.2, 0.6, 1-0.1, 1-0.0, 1-0.5 -> mean 0.76
        dict(creator_id="a", n_videos=10, static_frame_share=0.2, aesthetic_mean=0.6, blur_mean=0.1,
             copied_video_share=0.0, title_dup_share=0.5),
        dict(creator_id="b", n_videos=0),                   # no videos: neutral 0.5
        dict(creator_id="c", n_videos=3, aesthetic_mean=1.0),  # only one term present -> 1.0
    ])
    preds = spark.createDataFrame([("a", 0.1, 0.2, 0.0), ("b", 0.0, 0.0, 0.0), ("c", 0.9, 0.9, 0.9)],
                                  "creator_id string, p_low_effort double, p_piracy double, p_matrix double")
    out = {r.creator_id: r for r in scores.creator_quality_scores(preds, sig, "2026-11-28", THRESHOLDS, "m", "3").collect()}
    risk_a = 1 - 0.9 * 0.8
    assert out["a"].risk == pytest.approx(risk_a)
    assert out["a"].content_quality == pytest.approx(0.76)
    assert out["a"].cqs == pytest.approx(round(100 * (1 - risk_a) * (0.5 + 0.5 * 0.76), 2))
    assert out["b"].content_quality is None and out["b"].cqs == pytest.approx(75.0)
    assert out["c"].cqs == pytest.approx(round(100 * 0.1 ** 3 * 1.0, 2))
    assert out["c"].flagged == ["low_effort", "piracy", "matrix"] and out["a"].flagged == []
    assert [e.name for e in out["c"].evidence if e.kind == "model"] == ["p_low_effort", "p_piracy", "p_matrix"]
    assert out["a"].model_version == "3" and out["a"].dt == "2026-11-28"


def test_evidence_top_decile_of_market_strongest_first(spark):
    # 20 creators in US: c19 has the highest static share and the highest blur; c18 second-highest static.
    rows = [dict(creator_id=f"c{i:02d}", n_videos=5, static_frame_share=i / 100, blur_mean=0.1 + (i == 19) * 0.5)
            for i in range(20)]
    rows.append(dict(creator_id="x", market="GB", n_videos=5, static_frame_share=0.01, copy_sources=2,
                     copied_video_share=0.4, copy_min_distance=9))
    sig = _signals(spark, rows)
    preds = sig.select("creator_id", F.lit(0.0).alias("p_low_effort"), F.lit(0.0).alias("p_piracy"),
                       F.lit(0.0).alias("p_matrix"))
    out = {r.creator_id: r for r in scores.creator_quality_scores(preds, sig, "2026-11-28", THRESHOLDS, "m", "1").collect()}
    ev = out["c19"].evidence
    assert [(e.kind, e.name) for e in ev] == [("signal", "blur_mean"), ("signal", "static_frame_share")]
    static = ev[1]
    assert static.value == pytest.approx(0.19) and static.percentile == pytest.approx(1.0)
    assert static.reference == pytest.approx(0.095)           # median of 0.00..0.19
    assert "top 1%" in static.detail and "0.19" in static.detail
    # c18: percentile 18/19 = 0.947 >= 0.9 -> evidence; c16: 16/19 = 0.84 -> none
    assert [e.name for e in out["c18"].evidence] == ["static_frame_share"]
    assert out["c16"].evidence == []
    # alone in its market: percentile 0, not above its own median -> no signal evidence; copies are reported
    assert [(e.kind, e.name) for e in out["x"].evidence] == [("copies", "copied_video_share")]
    assert "2 other creator(s)" in out["x"].evidence[0].detail and "9/256" in out["x"].evidence[0].detail


def test_schema_and_missing_threshold(spark):
    sig = _signals(spark, [dict(creator_id="a")])
    preds = spark.createDataFrame([("a", 0.1, 0.2, 0.3)],
                                  "creator_id string, p_low_effort double, p_piracy double, p_matrix double")
    out = scores.creator_quality_scores(preds, sig, "2026-11-28", THRESHOLDS, "m", "1")
    assert [(f.name, f.dataType) for f in out.schema] == [(f.name, f.dataType) for f in schema.SCHEMA]
    with pytest.raises(ValueError, match="threshold"):
        scores.creator_quality_scores(preds, sig, "2026-11-28", {"piracy": 0.5}, "m", "1")
