"""Evidence gathering: every flagged creator of a run date with the facts an explanation may cite.

A creator is *flagged* when an upstream governance job pointed at it on the run date: the quality
model passed a threshold (``creator_quality_scores.flagged``), a syndicate detector listed it
(``syndicates``, creator rows), or migration prediction named it as a likely new account of a
banned operator (``migration_predictions``, ``prediction = 'account'`` at or above a score). For
each flagged creator this module collects, as pure DataFrame transforms:

* ``evidence``: numbered items (``E1``, ``E2``, ...) -- model scores with their thresholds, the
  quality signals and fingerprint copies ``creator_quality_scores`` already selected, syndicate
  memberships with the detector's own evidence line, migration predictions, propagated graph risk.
  Every item comes from a platform job; the numbering is deterministic (source order, then name)
  so a decision can cite ``E3`` and a reviewer finds the same fact in the row.
* ``history``: standing enforcement (moderation actions not overturned on appeal, decided before
  the end of the run date) with the reason mapped to the policy's violation types, which sets the
  step of the enforcement ladder.
* ``creator_text``: what the creator wrote (its newest video titles). It is carried as *data* for
  reviewers and cards; nothing downstream may let it change a decision (prompt-injection guard).
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from libs.platform.frames import require_columns

# The enforcement tool's reason codes (silver_moderation.reason) -> the policy's violation types.
# Codes without a counterpart (spam, content_violation) stay history but never raise a ladder step.
REASON_TO_VIOLATION = {
    "copyright": "unoriginal_content",
    "low_quality_selling": "low_effort_selling",
    "account_farm": "matrix_accounts",
    "engagement_manipulation": "fake_engagement",
    "fake_accounts": "inauthentic_accounts",
    "account_transfer": "account_trading",
    "ban_evasion": "enforcement_circumvention",
    "misleading_claims": "misleading_claims",
}

# Evidence sources in citation order (a decision reads model scores first, context last).
SOURCE_ORDER = ("quality_model", "copies", "signal", "syndicate", "migration", "graph_risk")


def _item(creator_id: Column, source: Column | str, name: Column, value: Column, reference: Column,
          detail: Column) -> list[Column]:
    src = F.lit(source) if isinstance(source, str) else source
    return [creator_id.alias("creator_id"), src.alias("source"), name.alias("name"),
            value.cast("double").alias("value"), reference.cast("double").alias("reference"),
            detail.alias("detail")]


def flagged_ids(quality: DataFrame, syndicates: DataFrame, migration: DataFrame, *,
                migration_min_score: float) -> DataFrame:
    """``creator_id`` of every creator some governance job pointed at (distinct)."""
    by_quality = quality.where(F.size("flagged") > 0).select("creator_id")
    by_graph = syndicates.where(F.col("entity_type") == "creator").select(F.col("entity_id").alias("creator_id"))
    by_migration = (migration.where((F.col("prediction") == "account") & (F.col("score") >= migration_min_score))
                    .select(F.col("target").alias("creator_id")))
    return by_quality.unionByName(by_graph).unionByName(by_migration).distinct()


def evidence_items(flagged: DataFrame, quality: DataFrame, syndicates: DataFrame, migration: DataFrame,
                   graph_risk: DataFrame, *, migration_min_score: float) -> DataFrame:
    """One row per (flagged creator, fact): creator_id, source, name, value, reference, detail."""
    q = quality.join(flagged, "creator_id").select("creator_id", F.explode("evidence").alias("e"))
    kind_source = (F.when(F.col("e.kind") == "model", "quality_model")
                   .when(F.col("e.kind") == "copies", "copies").otherwise("signal"))
    from_quality = q.select(*_item(F.col("creator_id"), kind_source, F.col("e.name"), F.col("e.value"),
                                   F.col("e.reference"), F.col("e.detail")))
    s = syndicates.where(F.col("entity_type") == "creator").withColumnRenamed("entity_id", "creator_id")
    from_syndicates = s.join(flagged, "creator_id").select(*_item(
        F.col("creator_id"), "syndicate", F.col("detector"), F.col("score"), F.lit(None),
        F.format_string("%s syndicate %s (%d members, role %s): %s", F.col("detector"), F.col("syndicate_id"),
                        F.col("syndicate_size"), F.col("role"), F.col("evidence"))))
    m = (migration.where((F.col("prediction") == "account") & (F.col("score") >= migration_min_score))
         .withColumnRenamed("target", "creator_id"))
    from_migration = m.join(flagged, "creator_id").select(*_item(
        F.col("creator_id"), "migration", F.lit("operator_account"), F.col("score"), F.lit(migration_min_score),
        F.format_string("likely account #%d of operator %s (%d banned account(s)): %s", F.col("rank"),
                        F.col("operator_id"), F.col("banned_accounts"), F.col("evidence"))))
    r = (graph_risk.where((F.col("vertex_type") == "creator") & (F.col("risk") > 0))
         .withColumn("creator_id", F.regexp_replace("id", "^creator:", "")))
    from_risk = r.join(flagged, "creator_id").select(*_item(
        F.col("creator_id"), "graph_risk", F.lit("risk"), F.col("risk"), F.lit(None),
        F.format_string("risk %.2f propagated from enforced accounts within %d hop(s) (content %.2f, shelf %.2f)",
                        F.col("risk"), F.coalesce(F.col("hops"), F.lit(0)), F.col("risk_content"),
                        F.col("risk_shelf"))))
    return (from_quality.unionByName(from_syndicates).unionByName(from_migration).unionByName(from_risk)
            .dropDuplicates(["creator_id", "source", "name", "detail"]))


def numbered(items: DataFrame) -> DataFrame:
    """Per creator: ``evidence`` array of items numbered E1.. in source order, then name, then detail."""
    order = F.array_position(F.array(*[F.lit(s) for s in SOURCE_ORDER]), F.col("source"))
    w = Window.partitionBy("creator_id").orderBy(order, "name", "detail")
    with_n = items.withColumn("n", F.row_number().over(w))
    item = F.struct(F.concat(F.lit("E"), F.col("n").cast("string")).alias("evidence_id"),
                    "source", "name", "value", "reference", "detail")
    # collect_list has no order guarantee: sort by the number, then drop it.
    return (with_n.groupBy("creator_id").agg(F.array_sort(F.collect_list(F.struct("n", item.alias("item")))).alias("o"))
            .select("creator_id", F.transform("o", lambda x: x["item"]).alias("evidence")))


def _end_of(run_date: dt.date) -> dt.datetime:
    """Midnight after the run date: facts up to the run date's end count, later ones do not."""
    return dt.datetime.combine(run_date + dt.timedelta(days=1), dt.time())


def standing_history(moderation: DataFrame, flagged: DataFrame, run_date: dt.date) -> DataFrame:
    """Per flagged creator: ``history`` of standing actions (not overturned, decided by the run date's end)."""
    end = _end_of(run_date)
    reason_map = F.create_map(*[F.lit(x) for kv in REASON_TO_VIOLATION.items() for x in kv])
    rows = (moderation.join(flagged, "creator_id")
            .where(~F.coalesce(F.col("overturned"), F.lit(False)) & (F.col("decided_at") < F.lit(end)))
            .select("creator_id", F.struct("decided_at", "action", "reason",
                                           reason_map[F.col("reason")].alias("violation_type")).alias("h")))
    return (rows.groupBy("creator_id").agg(F.array_sort(F.collect_list("h")).alias("hs"))
            .select("creator_id", F.transform("hs", lambda h: F.struct(
                h["action"].alias("action"), h["reason"].alias("reason"), h["violation_type"].alias("violation_type"),
                h["decided_at"].alias("decided_at"))).alias("history")))


def creator_titles(videos: DataFrame, flagged: DataFrame, run_date: dt.date, max_titles: int) -> DataFrame:
    """Per flagged creator: its newest ``max_titles`` video titles up to the run date (creator-written data)."""
    end = _end_of(run_date)
    w = Window.partitionBy("creator_id").orderBy(F.col("published_at").desc(), F.col("video_id"))
    newest = (videos.join(flagged, "creator_id").where(F.col("published_at") < F.lit(end))
              .withColumn("n", F.row_number().over(w)).where(F.col("n") <= max_titles))
    return (newest.groupBy("creator_id").agg(F.array_sort(F.collect_list(F.struct("n", "title"))).alias("t"))
            .select("creator_id", F.transform("t", lambda x: x["title"]).alias("creator_text")))


def creator_evidence(creators: DataFrame, quality: DataFrame, syndicates: DataFrame, migration: DataFrame,
                     graph_risk: DataFrame, moderation: DataFrame, videos: DataFrame, run_date: dt.date, *,
                     migration_min_score: float = 2.0, max_titles: int = 5) -> DataFrame:
    """Every flagged creator of the run date with ``market, evidence, history, creator_text``.

    Inputs are the run date's snapshots: ``silver_creators``, ``creator_quality_scores``,
    ``syndicates``, ``migration_predictions``, ``entity_risk`` and ``silver_moderation``, plus
    ``silver_videos`` (titles). ``migration_min_score``: a predicted account counts as flagged at
    this score or above (2.0 = it shares at least two resources with the banned accounts, or one
    first used after the ban). A flagged creator missing from ``silver_creators`` is an error: a
    decision about an account the platform does not know could not be enforced or appealed.
    """
    require_columns(quality, ["creator_id", "flagged", "evidence"], "creator_quality_scores")
    require_columns(syndicates, ["detector", "syndicate_id", "entity_type", "entity_id", "role", "score",
                                 "syndicate_size", "evidence"], "syndicates")
    require_columns(migration, ["operator_id", "banned_accounts", "prediction", "target", "score", "rank",
                                "evidence"], "migration_predictions")
    require_columns(graph_risk, ["id", "vertex_type", "risk", "risk_content", "risk_shelf", "hops"], "entity_risk")
    require_columns(moderation, ["creator_id", "action", "reason", "decided_at", "overturned"], "silver_moderation")
    require_columns(videos, ["video_id", "creator_id", "published_at", "title"], "silver_videos")
    flagged = flagged_ids(quality, syndicates, migration, migration_min_score=migration_min_score).cache()
    unknown = flagged.join(creators.select("creator_id"), "creator_id", "left_anti").limit(5).collect()
    if unknown:
        raise ValueError(f"flagged creators missing from silver_creators (first: {[r[0] for r in unknown]}): "
                         "the upstream snapshots are from different runs")
    items = evidence_items(flagged, quality, syndicates, migration, graph_risk,
                           migration_min_score=migration_min_score)
    base = flagged.join(creators.select("creator_id", "market"), "creator_id")
    out = (base.join(numbered(items), "creator_id", "left")
           .join(standing_history(moderation, flagged, run_date), "creator_id", "left")
           .join(creator_titles(videos, flagged, run_date, max_titles), "creator_id", "left"))
    empty = F.array()
    return out.select(
        "creator_id", "market",
        F.coalesce("evidence", empty.cast("array<struct<evidence_id:string,source:string,name:string,"
                                          "value:double,reference:double,detail:string>>")).alias("evidence"),
        F.coalesce("history", empty.cast("array<struct<action:string,reason:string,violation_type:string,"
                                         "decided_at:timestamp>>")).alias("history"),
        F.coalesce("creator_text", empty.cast("array<string>")).alias("creator_text"))
