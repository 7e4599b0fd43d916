"""policy_index -> governance_explanations end to end on the session's small simulated world.

Upstream tables (quality scores, syndicates, migration predictions, graph risk) come from the
other end-to-end modules or :func:`tests.e2e.conftest.ensure_upstream`. Checks what a reviewer
relies on: every flagged creator gets exactly one decision, every decision re-validates from its
row alone (no citation that was not retrieved, no evidence that is not there), the index is the
packaged corpus, cards are written, a re-run replaces, a stale index is refused.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import functions as F

from libs.governance import agent
from libs.governance.corpus import corpus_hash, load_corpus
from libs.governance.evidence import flagged_ids
from libs.platform import delta_io
from tests.e2e.conftest import LANDING, ensure_upstream

pytestmark = pytest.mark.slow
RUN = LANDING["run_date"]
DAY = RUN.isoformat()
UPSTREAM = ("creator_quality_scores", "syndicates", "migration_predictions", "entity_risk")


@pytest.fixture(scope="module")
def explained(spark, settings, ingested) -> dict:
    import jobs.governance_explanations as job
    import jobs.policy_index as index_job

    ensure_upstream(spark, settings, UPSTREAM)
    return {"index": index_job.main(run_date=RUN, env="local"), "job": job.main(run_date=RUN, env="local")}


def _day(spark, settings, table: str):
    return delta_io.read_dates(spark, settings.table(table), DAY, DAY, table)


def test_index_is_the_packaged_corpus(spark, settings, explained):
    corpus = load_corpus()
    rows = _day(spark, settings, "policy_index").collect()
    assert sorted(r["clause_id"] for r in rows) == sorted(c.id for c in corpus.clauses)
    assert {r["corpus_hash"] for r in rows} == {corpus_hash(corpus)}
    assert all(len(r["embedding"]) == 384 for r in rows)


def test_every_flagged_creator_gets_one_valid_decision(spark, settings, explained):
    from jobs.governance_explanations import explanation_from_row

    g = settings.section("governance")
    scores = _day(spark, settings, "creator_quality_scores")
    flagged = flagged_ids(scores, _day(spark, settings, "syndicates"), _day(spark, settings, "migration_predictions"),
                          migration_min_score=float(g["migration_min_score"]))
    rows = _day(spark, settings, "governance_explanations")
    assert rows.count() == rows.select("creator_id").distinct().count() == flagged.count() > 0
    assert rows.join(flagged, "creator_id", "left_anti").count() == 0
    assert explained["job"]["decisions"] == rows.count()
    corpus = load_corpus()
    statuses = set()
    for r in rows.collect():
        row = r.asDict()
        x = explanation_from_row(row)
        assert agent.validate(x.decision, x.case, agent.supported(x.case), x.retrieved, corpus) == [], row["creator_id"]
        assert set(row["cited_clause_ids"]) <= {h["clause_id"] for h in row["retrieved"]}
        assert row["validation_errors"] == [] and row["policy_version"] == corpus.version
        assert row["status"] == x.decision.status and row["card_markdown"].startswith("# Governance card")
        statuses.add(row["status"])
    assert "enforce" in statuses


def test_cards_are_written(settings, explained):
    out = Path(explained["job"]["cards_dir"])
    cards = [p for p in out.glob("*.html") if p.name != "index.html"]
    assert (out / "index.html").exists() and 0 < len(cards) == explained["job"]["cards"]
    assert all(p.stem in (out / "index.html").read_text() for p in cards)


def test_rerun_replaces_and_a_stale_index_is_refused(spark, settings, explained):
    import jobs.governance_explanations as job

    before = _day(spark, settings, "governance_explanations").count()
    job.main(run_date=RUN, env="local")
    assert _day(spark, settings, "governance_explanations").count() == before
    # An index built from another corpus text: the job must refuse, not retrieve stale clauses.
    from schemas import policy_index as index_schema

    rows = _day(spark, settings, "policy_index").withColumn("corpus_hash", F.lit("0" * 64)).collect()
    stale = spark.createDataFrame(rows, index_schema.SCHEMA)
    delta_io.replace_partition(stale, settings.table("policy_index"), "dt", DAY)
    try:
        with pytest.raises(job.IndexMismatch, match="re-run policy_index"):
            job.main(run_date=RUN, env="local")
    finally:
        import jobs.policy_index as index_job

        index_job.main(run_date=RUN, env="local")


def test_pipeline_summary_reads_back_what_was_written(spark, settings, explained):
    from libs.platform.run_summary import summary_text

    text = summary_text(spark, settings, DAY, {"policy_index": 1.0, "governance_explanations": 2.0})
    n = _day(spark, settings, "governance_explanations").count()
    line = next(x for x in text.splitlines() if x.strip().startswith("governance_explanations "))
    assert line.split()[-1].replace(",", "") == str(n)
    assert "decisions by status:" in text and "Largest syndicates found" in text
    assert str(Path(explained["job"]["cards_dir"]) / "index.html") in text
    assert "mlflow ui --backend-store-uri sqlite:///" in text
