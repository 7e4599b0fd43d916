"""Job ``governance_explanations``: every flagged creator -> a cited, evidence-backed, validated decision.

Reads the run date's snapshots of the governance tables (``creator_quality_scores``,
``syndicates``, ``migration_predictions``, ``entity_risk``, ``silver_moderation``,
``silver_creators``, ``silver_videos``), gathers each flagged creator's evidence
(:mod:`libs.governance.evidence`), and explains all of them in a ``mapInPandas`` over the cases:
each Python worker rebuilds the run's ``policy_index`` (stored by ``jobs/policy_index.py``) once,
retrieves clauses per violation, asks the configured backend (``governance.backend``: the embedded
deterministic composer, or an OpenAI-compatible endpoint whose answers are validated and replaced
by the composer's when they fail) and validates the decision (:mod:`libs.governance.agent`).

The run date's partition of ``governance_explanations`` is replaced in one commit, after checking
that every case produced exactly one decision; then the per-creator HTML cards of the most severe
``governance.max_cards`` decisions and an index page are written to ``governance.cards_dir/<date>/``.

    cgov run governance_explanations --run-date 2026-11-01
    cgov run governance_explanations --run-date 2026-11-01 --backend openai_chat   # endpoint/model from conf
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from libs.governance import agent, cards
from libs.governance.corpus import ENFORCEMENT_STEPS, PolicyCorpus, corpus_hash, load_corpus
from libs.governance.evidence import creator_evidence
from libs.graph.materialize import RoundStore
from libs.platform import delta_io
from libs.platform.config import Settings, load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark
from schemas import governance_explanations as schema

TABLE = "governance_explanations"
INDEX_TABLE = "policy_index"
# mapInPandas output: the table's schema without the run-date column the write adds.
OUT_STRUCT = StructType([f for f in schema.SCHEMA.fields if f.name != "dt"])


class IndexMismatch(RuntimeError):
    """The run's policy index was not built from the corpus this code ships: rebuild it first."""


def arg_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("grounded_composer", "openai_chat"), default=None,
                        help="override governance.backend for this run")
    return parser


def load_cases(spark: SparkSession, settings: Settings, run_date: dt.date) -> DataFrame:
    """The run date's flagged creators with their evidence (:func:`creator_evidence` on the snapshots)."""
    g = settings.section("governance")
    day = run_date.isoformat()

    def snap(table: str) -> DataFrame:
        return delta_io.read_snapshot(spark, settings.table(table), day, table)

    def written(table: str, why: str) -> DataFrame:
        # Detector/prediction tables may legitimately hold no rows for a day, but must have been written.
        return delta_io.read_written_partition(spark, settings.table(table), day, table, why)

    videos = delta_io.read_dates(spark, settings.table("silver_videos"), "0000-01-01", day, "silver_videos")
    return creator_evidence(
        snap("silver_creators"), snap("creator_quality_scores"),
        written("syndicates", "syndicate memberships are evidence"),
        written("migration_predictions", "migration predictions are evidence"),
        written("entity_risk", "propagated risk is evidence"),
        snap("silver_moderation"), videos, run_date,
        migration_min_score=float(g["migration_min_score"]), max_titles=int(g["max_titles"]))


def load_index_rows(spark: SparkSession, settings: Settings, day: str, corpus: PolicyCorpus) -> list[dict[str, Any]]:
    """The run's ``policy_index`` rows; an error if absent or built from another corpus text."""
    rows = [r.asDict() for r in delta_io.read_written_partition(
        spark, settings.table(INDEX_TABLE), day, INDEX_TABLE, "explanations retrieve from the run's index").collect()]
    if not rows:
        raise IndexMismatch(f"{INDEX_TABLE} for dt={day} is empty: run the policy_index job for this date")
    digest = corpus_hash(corpus)
    stale = sorted({r["corpus_hash"] for r in rows} - {digest})
    if stale:
        raise IndexMismatch(f"{INDEX_TABLE} for dt={day} was built from corpus {stale[0][:12]} but this code ships "
                            f"policy {corpus.version} ({digest[:12]}): re-run policy_index for {day}")
    return [{k: v for k, v in r.items() if k != "dt"} for r in rows]


def explanation_row(x: agent.Explanation, corpus: PolicyCorpus, digest: str, index_model_id: str, day: str) -> dict:
    """One output row (without ``dt``) for an explanation."""
    d = x.decision
    return {
        "creator_id": x.case.creator_id, "market": x.case.market, "status": d.status,
        "violation_types": d.violation_types,
        "violations": [{**dataclasses.asdict(v), "clause_ids": list(v.clause_ids), "evidence_ids": list(v.evidence_ids)}
                       for v in d.violations],
        "cited_clause_ids": d.cited_clause_ids, "recommended_step": d.recommended_step,
        "evidence": [dict(e) for e in x.case.evidence], "history": [dict(h) for h in x.case.history],
        "retrieved": [dataclasses.asdict(r) for r in x.retrieved], "education_text": d.education_text,
        "creator_text": list(x.case.creator_text), "backend": d.backend, "backend_rejection": x.backend_rejection,
        "validation_errors": [], "policy_version": corpus.version, "corpus_hash": digest,
        "index_model_id": index_model_id,
        "card_markdown": cards.card_markdown(x, corpus, policy_version=corpus.version, generated_for_date=day),
        "latency_ms": x.latency_ms,
    }


def explanation_from_row(row: Mapping[str, Any]) -> agent.Explanation:
    """Rebuild the :class:`agent.Explanation` a table row was written from (for cards and audits)."""
    case = agent.Case.from_row(row)
    violations = tuple(agent.Violation(v["violation_type"], tuple(v["clause_ids"] or ()), tuple(v["evidence_ids"] or ()),
                                       v["severity"], int(v["prior_actions"]), v["step"])
                       for v in agent.as_dicts(row["violations"]))
    retrieved = tuple(agent.Retrieved(r["violation_type"], r["clause_id"], int(r["rank"]), float(r["score"]))
                      for r in agent.as_dicts(row["retrieved"]))
    decision = agent.Decision(violations, row["education_text"], row["backend"])
    return agent.Explanation(case, decision, retrieved, row["backend_rejection"], float(row["latency_ms"] or 0.0))


def explainer(index_rows: list[dict[str, Any]], governance: Mapping[str, Any], day: str,
              backend_name: str | None) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The ``mapInPandas`` function: cases -> explanation rows. Heavy state is built once per Python worker."""
    conf = dict(governance)
    if backend_name:
        conf["backend"] = backend_name

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        # One torch thread per Spark task: the executor already runs one task per core.
        import torch

        torch.set_num_threads(1)
        from libs.governance.backends import backend_from_settings
        from libs.governance.embedding import get_encoder
        from libs.governance.retrieval import PolicyIndex

        corpus = load_corpus()
        digest = corpus_hash(corpus)
        encoder = get_encoder(conf["model_cache_dir"])
        index = PolicyIndex.from_rows(index_rows, encoder)
        backend = backend_from_settings(conf)
        k, mode = int(conf["retrieval_k"]), str(conf["retrieval_mode"])
        for pdf in batches:
            cases = [agent.Case.from_row(rec) for rec in pdf.to_dict("records")]
            out = [explanation_row(x, corpus, digest, encoder.model_id, day)
                   for x in agent.explain_batch(cases, index, corpus, backend, k=k, mode=mode)]
            yield pd.DataFrame(out, columns=OUT_STRUCT.names)

    return run


def write_cards(spark: SparkSession, table_path: str, day: str, cards_dir: str, max_cards: int,
                corpus: PolicyCorpus) -> tuple[Path, int]:
    """HTML cards of the ``max_cards`` most severe decisions of ``day`` + an index page; (directory, count)."""
    out = Path(cards_dir) / day
    out.mkdir(parents=True, exist_ok=True)
    step_rank = F.coalesce(F.array_position(F.array(*[F.lit(s) for s in ENFORCEMENT_STEPS]),
                                            F.col("recommended_step")), F.lit(0))
    top = (spark.read.format("delta").load(table_path).where(F.col("dt") == day)
           .orderBy(step_rank.desc(), F.col("creator_id")).limit(max_cards).collect())
    index_rows = []
    for row in top:
        r = row.asDict(recursive=False)
        x = explanation_from_row(r)
        (out / f"{r['creator_id']}.html").write_text(
            cards.card_html(x, corpus, policy_version=r["policy_version"], generated_for_date=day), encoding="utf-8")
        index_rows.append({"creator_id": r["creator_id"], "market": r["market"], "status": r["status"],
                           "recommended_step": r["recommended_step"], "violation_types": list(r["violation_types"])})
    (out / "index.html").write_text(cards.index_html(index_rows), encoding="utf-8")
    return out, len(index_rows)


def main(run_date: dt.date, env: str, backend: str | None = None) -> dict[str, Any]:
    settings = load_settings(env)
    g = dict(settings.section("governance"))
    spark = get_spark(settings, f"cgov-{TABLE}")
    started = time.time()
    day = run_date.isoformat()
    corpus = load_corpus()
    index_rows = load_index_rows(spark, settings, day, corpus)
    with RoundStore(spark, TABLE) as store:
        cases = store.put(load_cases(spark, settings, run_date), "cases")
        n_cases = cases.count()
        # Spread the cases over every core: each task is CPU-bound (query embedding + retrieval).
        parts = max(1, min(spark.sparkContext.defaultParallelism, n_cases))
        t0 = time.time()
        explained = store.put(cases.repartition(parts, "creator_id")
                              .mapInPandas(explainer(index_rows, g, day, backend), schema=OUT_STRUCT), "explained")
        n_out = explained.count()
        explain_s = time.time() - t0
        if n_out != n_cases:
            raise RuntimeError(f"[{TABLE}] {day}: {n_cases} flagged creators but {n_out} decisions: nothing written")
        delta_io.replace_partition(explained.withColumn("dt", F.lit(day)), settings.table(TABLE), "dt", day)
        stats = explained.select("status", "violation_types", "backend", "backend_rejection").collect()
    cards_at, n_cards = write_cards(spark, settings.table(TABLE), day, g["cards_dir"], int(g["max_cards"]), corpus)
    status = Counter(r["status"] for r in stats)
    types = Counter(t for r in stats for t in r["violation_types"])
    rejected = sum(1 for r in stats if r["backend_rejection"])
    summary = {"table": TABLE, "run_date": day, "decisions": n_out, "status": dict(status),
               "violation_types": dict(types), "backend_rejections": rejected,
               "explain_seconds": round(explain_s, 1),
               "explanations_per_s": round(n_out / explain_s, 2) if explain_s > 0 else None,
               "cards_dir": str(cards_at), "cards": n_cards, "seconds": round(time.time() - started, 1)}
    print(f"[{TABLE}] {day}: {n_out:,} flagged creators explained ({dict(status)}); violations {dict(types)}; "
          f"backend rejections {rejected}; {summary['explanations_per_s']} explanations/s over {parts} task(s)",
          flush=True)
    print(f"[{TABLE}] {day}: -> {settings.table(TABLE)}; {n_cards} cards at {cards_at}"
          f"{os.sep}index.html in {summary['seconds']}s", flush=True)
    return summary


if __name__ == "__main__":
    run_job(arg_parser, main)
