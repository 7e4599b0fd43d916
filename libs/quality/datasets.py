"""The creator-quality model's input for one run date, read once for training and scoring alike.

Training (``jobs/creator_quality_model.py``) and batch inference (``jobs/creator_quality_scores.py``)
must build sequences with exactly the same code from exactly the same tables -- a feature built
differently at serving time is the classic silent skew. This module is that single path: it
reads the run's silver snapshot, the window of activity the sequences cover, this run's copies
and the moderation snapshot, and returns the contract rows of :func:`libs.quality.sequences.training_rows`.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession

from libs.platform import delta_io
from libs.platform.config import Settings
from libs.quality import sequences as sq

# Activity window the sequences draw from (the longest feature window: older tokens would be
# truncated away by max_len for any active creator anyway).
LOOKBACK_DAYS = 28


def sequence_spec_dict(max_len: int) -> dict:
    """The :class:`libs.ml.sequences.SequenceSpec` of these rows, as a plain dict."""
    return {"max_len": int(max_len), "n_features": len(sq.FEATURES), "label_names": list(sq.LABELS),
            "feature_names": list(sq.FEATURES)}


def creator_rows(spark: SparkSession, settings: Settings, run_date: dt.date, max_len: int) -> DataFrame:
    """``creator_id, market, seq, seq_len, labels, holdout`` for every creator of the run's snapshot."""
    day = run_date.isoformat()
    first = (run_date - dt.timedelta(days=LOOKBACK_DAYS - 1)).isoformat()

    def window(name: str) -> DataFrame:
        return delta_io.read_dates(spark, settings.table(name), first, day, name)

    def snapshot(name: str) -> DataFrame:
        return delta_io.read_snapshot(spark, settings.table(name), day, name)

    copies = delta_io.read_written_partition(spark, settings.table("video_copies"), day, "video_copies",
                                             "sequences would otherwise show no copies")
    creators = snapshot("silver_creators")
    tokens = sq.all_tokens(window("silver_videos"), copies,
                           snapshot("silver_listings"), creators, window("silver_engagement_events"),
                           window("silver_logins"))
    seqs = sq.sequences(tokens, max_len)
    return sq.training_rows(creators, seqs, sq.labels(snapshot("silver_moderation"), run_date), max_len)
