"""A relation-aware graph neural network for creator-level fraud scores, and its boosting baseline.

Why a GNN at all: the abuse the graph exists for -- matrix farms, sybil clusters, traded
accounts, bought engagement, ban evasion -- is *who a creator is connected to and through what*:
a farm account on its own looks like a slightly busy seller; next to six accounts that share its
phone, its /24 and its payout account it does not. The creator-level features of
``creator_signals`` cannot see that. This module turns the typed graph into fixed-size
neighbourhood samples, trains an R-GCN/GraphSAGE-style model on them and, because "a neural
network beat nothing" proves little, the same information is handed to gradient boosting as
neighbour aggregates -- the strong simple baseline the model has to beat.

Three parts:

**(a) Sampling (Spark).** For every target creator and every relation of :data:`RELATIONS` the
creator-to-creator neighbours are derived from the typed edges of :mod:`libs.graph.hetero`:

* ``device`` / ``ip`` / ``payment`` -- shared infrastructure, creator-resource-creator 2-hop through
  ``uses_device`` / ``logs_in_from`` / ``pays_to``; strength = resources shared. Resources used by
  more than ``max_resource_creators`` creators (a public device, a carrier-grade NAT /24) link
  nobody: they are hubs that say nothing about a pair and would make the self-join quadratic.
* ``audience`` -- co-engagement, creator <- user -> creator, where a user is linked to a creator by
  engaging with one of its videos (``engages`` + ``posts``) or following it (``follows``);
  strength = distinct users shared, at least ``min_shared_users`` (one shared viewer is chance).
  Users linked to more than ``max_user_creators`` creators are skipped (heavy browsers: they
  connect everybody, like a stop word, and dominate the pair count).
* ``persona`` -- the user account behind a creator (``persona_of``) engaging with or following
  another creator; undirected, strength = engagement weight. Sybil clusters live here.

Each relation keeps at most ``k`` neighbours per target in a deterministic order: strongest
first, ties broken by ``xxhash64(seed, relation, target, neighbour)`` (never ``rand()``: a re-run
must produce the same sample, or a model change cannot be told from a sampling change).
Each sampled neighbour contributes its node vector (:data:`OWN_FEATURES` of ``creator_signals``
plus its per-relation neighbour counts -- a precomputed 1-hop aggregate, so one aggregation layer
sees 2-hop structure) followed by :data:`EDGE_CHANNELS`: log strength and whether the
*neighbour* has a standing moderation decision / ban. A target's own decision is never among its
inputs (that is its label); its neighbours' decisions are known facts at scoring time and
exactly how ban evasion shows (a new account on a banned account's phone). The rows are written
as Parquet for Petastorm: ``x`` (array<float> D), ``nb_<relation>`` (array<float> k * Dn,
neighbour-major, zero-padded) and ``mask_<relation>`` (array<float> k: 1 = real neighbour).

**(b) Model (PyTorch).** :class:`RelationalRiskModel`: a self MLP, one message MLP and one
aggregator (masked mean or masked attention) per relation with its own weights (R-GCN's
relation-specific transforms), concatenated with per-relation "has any neighbour" flags, then an
MLP head to one logit. Padded neighbours are excluded with ``torch.where`` (not multiplication),
so even NaN padding cannot leak in; the unit tests fill padding with noise and require identical
outputs. Trained on moderation labels (:data:`GRAPH_REASONS`) with a stable 1-in-5 hash hold-out.

**(c) Baseline.** :func:`gbt_matrix` turns the *same* arrays into a flat table -- the node vector,
and per relation the masked mean and max of every neighbour channel and the neighbour count --
for ``HistGradientBoostingClassifier``; ``with_neighbours=False`` keeps only the creator's own
``creator_signals`` features (what a model without the graph would see).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import mlflow
import numpy as np
import pandas as pd
import torch
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window
from torch import nn

from libs.graph.hetero import key_of
from libs.platform.frames import require_columns
from libs.quality.sequences import holdout as quality_holdout
from schemas import creator_signals as signals_schema

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

# Relation name -> the edge type whose shared destination links two creators (infrastructure).
RESOURCE_RELATIONS: dict[str, str] = {"device": "uses_device", "ip": "logs_in_from", "payment": "pays_to"}
RELATIONS: tuple[str, ...] = ("device", "ip", "payment", "audience", "persona")
# Edge types the sampler reads (load_graph(edge_types=...) keeps the read to these).
EDGE_TYPES_USED: tuple[str, ...] = ("uses_device", "logs_in_from", "pays_to", "posts", "engages", "follows",
                                    "persona_of")

# Moderation reasons that mean *graph* abuse. Read off libs/sim/moderation.REASON_OF_ABUSE: the
# enforcement tool files matrix_farm as account_farm, sybil as fake_accounts, account_trading as
# account_transfer, fake_engagement as engagement_manipulation and migration as ban_evasion -- the
# five abuse types that exist only as relations between accounts. Excluded: low_quality_selling
# and copyright (content abuse, visible in a creator's own videos), spam / misleading_claims
# (noise reasons), and content_violation: it is the *ban* reason of a migrated operator's old
# account and otherwise a random mislabel; the migration itself is labelled on the new account
# (ban_evasion), which is the one the graph must find.
GRAPH_REASONS: tuple[str, ...] = ("account_farm", "fake_accounts", "account_transfer", "engagement_manipulation",
                                  "ban_evasion")
# Truth abuse types that are graph abuse (evaluation only, see benchmarks/eval_graph_gnn.py).
GRAPH_ABUSE_TYPES: tuple[str, ...] = ("matrix_farm", "sybil", "account_trading", "fake_engagement", "migration")

# creator_signals features that are unbounded counts/amounts: log1p keeps a 10k-view creator
# and a 10M-view creator on one learnable scale. Every other feature is a share/rate/score.
_LOG_DOUBLES = {"gmv_usd", "refund_usd", "videos_per_active_day", "min_gap_minutes", "events_per_user", "gap_cv"}
_COUNT_TYPES = (T.LongType, T.IntegerType)
# copy_min_distance is bits of 256 to the closest copied original, null when nothing was copied:
# as closeness (1 = exact copy, 0 = none) a missing value and "no copy" coincide, as they should.
_CLOSENESS = {"copy_min_distance": 256.0}
OWN_FEATURES: tuple[str, ...] = ("log_account_age_days", *signals_schema.FEATURE_NAMES)
# Per-neighbour channels appended after the neighbour's node vector.
EDGE_CHANNELS: tuple[str, ...] = ("log_strength", "nb_enforced", "nb_banned")
LABEL = "graph_abuse"
HOLDOUT_BUCKETS = 5

DEFAULT_K = 8                         # neighbours per relation: infra degrees have p99 ~4 on q10k
DEFAULT_MAX_RESOURCE_CREATORS = 50    # a device/IP/payout shared by more creators is a hub, not a ring
DEFAULT_MAX_USER_CREATORS = 40        # users linked to more creators are heavy browsers, skipped
DEFAULT_MIN_SHARED_USERS = 2          # one shared viewer between two creators is chance


@dataclass(frozen=True)
class GraphSpec:
    """The Parquet contract between the Spark sampler and the model: names, sizes, normalisation.

    ``x_mean``/``x_std`` are the training rows' statistics of the node vector (one value per
    :attr:`node_features`); the model standardises self and neighbour vectors with them, so the
    (saved) spec is all a scorer needs to rebuild the input pipeline.
    """

    k: int
    relations: tuple[str, ...] = RELATIONS
    own_features: tuple[str, ...] = OWN_FEATURES
    edge_channels: tuple[str, ...] = EDGE_CHANNELS
    x_mean: tuple[float, ...] = field(default=())
    x_std: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if not self.relations or len(set(self.relations)) != len(self.relations):
            raise ValueError(f"relations must be non-empty and distinct, got {self.relations}")
        for stats in (self.x_mean, self.x_std):
            if stats and len(stats) != self.node_dim:
                raise ValueError(f"normalisation statistics need {self.node_dim} values, got {len(stats)}")

    @property
    def node_features(self) -> tuple[str, ...]:
        """Own features then ``n_<relation>`` (log1p neighbour count, uncapped) per relation."""
        return (*self.own_features, *[f"log_n_{r}" for r in self.relations])

    @property
    def node_dim(self) -> int:
        return len(self.node_features)

    @property
    def nb_dim(self) -> int:
        return self.node_dim + len(self.edge_channels)

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "relations": list(self.relations), "own_features": list(self.own_features),
                "edge_channels": list(self.edge_channels), "x_mean": list(self.x_mean), "x_std": list(self.x_std)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GraphSpec":
        return cls(k=int(d["k"]), relations=tuple(d["relations"]), own_features=tuple(d["own_features"]),
                   edge_channels=tuple(d["edge_channels"]), x_mean=tuple(float(v) for v in d.get("x_mean") or ()),
                   x_std=tuple(float(v) for v in d.get("x_std") or ()))

    def with_stats(self, mean: Sequence[float], std: Sequence[float]) -> "GraphSpec":
        return GraphSpec(self.k, self.relations, self.own_features, self.edge_channels,
                         tuple(float(v) for v in mean), tuple(float(v) for v in std))


# --------------------------------------------------------------------------------------------
# (a) Spark: relations, sampling, node vectors, rows
# --------------------------------------------------------------------------------------------

def _creator(col: str) -> Column:
    """The creator_id of a ``creator:<id>`` vertex id."""
    return key_of(F.col(col))


def resource_pairs(edges: DataFrame, edge_type: str,
                   max_resource_creators: int = DEFAULT_MAX_RESOURCE_CREATORS) -> DataFrame:
    """``src, dst, strength``: creators sharing a resource of ``edge_type`` (both directions, no self pairs).

    ``strength`` = distinct shared resources. Resources with more than ``max_resource_creators``
    distinct creators are dropped before the self-join (hubs; and the join is quadratic in them).
    """
    require_columns(edges, ("src", "dst", "edge_type"), "edges")
    if max_resource_creators < 2:
        raise ValueError(f"max_resource_creators must be >= 2, got {max_resource_creators}")
    use = (edges.where((F.col("edge_type") == edge_type) & F.col("src").startswith("creator:"))
           .select(_creator("src").alias("creator"), F.col("dst").alias("res")).distinct())
    deg = use.groupBy("res").agg(F.count(F.lit(1)).alias("deg"))
    shared = use.join(deg.where((F.col("deg") >= 2) & (F.col("deg") <= max_resource_creators)), "res", "left_semi")
    a, b = shared.alias("a"), shared.alias("b")
    return (a.join(b, F.col("a.res") == F.col("b.res"))
            .where(F.col("a.creator") != F.col("b.creator"))
            .groupBy(F.col("a.creator").alias("src"), F.col("b.creator").alias("dst"))
            .agg(F.count(F.lit(1)).cast("double").alias("strength")))


def user_creator_links(edges: DataFrame) -> DataFrame:
    """``user, creator, weight``: a user engaged with the creator's videos or followed it (weights add)."""
    posts = (edges.where(F.col("edge_type") == "posts")
             .select(F.col("dst").alias("video"), _creator("src").alias("creator")).distinct())
    engaged = (edges.where(F.col("edge_type") == "engages")
               .select(F.col("src").alias("user"), F.col("dst").alias("video"), "weight")
               .join(posts, "video").select("user", "creator", "weight"))
    followed = (edges.where(F.col("edge_type") == "follows")
                .select(F.col("src").alias("user"), _creator("dst").alias("creator"), "weight"))
    return (engaged.unionByName(followed).groupBy("user", "creator")
            .agg(F.sum(F.coalesce(F.col("weight"), F.lit(0.0))).alias("weight")))


def audience_pairs(links: DataFrame, max_user_creators: int = DEFAULT_MAX_USER_CREATORS,
                   min_shared_users: int = DEFAULT_MIN_SHARED_USERS) -> DataFrame:
    """``src, dst, strength``: creators with at least ``min_shared_users`` users in common.

    ``links`` is :func:`user_creator_links`. Users linked to more than ``max_user_creators``
    creators are skipped: a heavy browser links everybody (and its pairs grow quadratically).
    """
    require_columns(links, ("user", "creator"), "user-creator links")
    if max_user_creators < 2 or min_shared_users < 1:
        raise ValueError(f"need max_user_creators >= 2 and min_shared_users >= 1, got {max_user_creators}, "
                         f"{min_shared_users}")
    uc = links.select("user", "creator").distinct()
    fan = uc.groupBy("user").agg(F.count(F.lit(1)).alias("fan"))
    uc = uc.join(fan.where((F.col("fan") >= 2) & (F.col("fan") <= max_user_creators)), "user", "left_semi")
    a, b = uc.alias("a"), uc.alias("b")
    return (a.join(b, F.col("a.user") == F.col("b.user"))
            .where(F.col("a.creator") != F.col("b.creator"))
            .groupBy(F.col("a.creator").alias("src"), F.col("b.creator").alias("dst"))
            .agg(F.count(F.lit(1)).cast("double").alias("strength"))
            .where(F.col("strength") >= min_shared_users))


def persona_pairs(edges: DataFrame, links: DataFrame) -> DataFrame:
    """``src, dst, strength``: one creator's persona user engaged with / followed the other (undirected).

    ``strength`` = the engagement weight, summed over both directions.
    """
    persona = (edges.where(F.col("edge_type") == "persona_of")
               .select(F.col("src").alias("user"), _creator("dst").alias("owner")).distinct())
    directed = (links.join(persona, "user").where(F.col("owner") != F.col("creator"))
                .select(F.col("owner").alias("a"), F.col("creator").alias("b"), "weight"))
    both = directed.unionByName(directed.select(F.col("b").alias("a"), F.col("a").alias("b"), "weight"))
    return both.groupBy(F.col("a").alias("src"), F.col("b").alias("dst")).agg(
        F.sum("weight").cast("double").alias("strength"))


def relation_pairs(edges: DataFrame, relations: Sequence[str] = RELATIONS,
                   max_resource_creators: int = DEFAULT_MAX_RESOURCE_CREATORS,
                   max_user_creators: int = DEFAULT_MAX_USER_CREATORS,
                   min_shared_users: int = DEFAULT_MIN_SHARED_USERS) -> DataFrame:
    """``relation, src, dst, strength`` for every requested relation (creator ids, both directions).

    ``edges`` are the folded window edges of :func:`libs.graph.hetero.load_graph`.
    """
    unknown = sorted(set(relations) - set(RELATIONS))
    if unknown:
        raise ValueError(f"unknown relations {unknown}; known: {list(RELATIONS)}")
    parts: list[DataFrame] = []
    links = user_creator_links(edges) if {"audience", "persona"} & set(relations) else None
    for rel in relations:
        if rel in RESOURCE_RELATIONS:
            p = resource_pairs(edges, RESOURCE_RELATIONS[rel], max_resource_creators)
        elif rel == "audience":
            p = audience_pairs(links, max_user_creators, min_shared_users)
        else:
            p = persona_pairs(edges, links)
        parts.append(p.select(F.lit(rel).alias("relation"), "src", "dst", "strength"))
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def sample_neighbours(pairs: DataFrame, k: int, seed: int = 0) -> DataFrame:
    """``relation, src, dst, strength, slot``: at most ``k`` neighbours per ``(relation, src)``.

    Order (``slot`` 0..k-1): strength descending, then ``xxhash64(seed, relation, src, dst)``,
    then ``dst`` -- deterministic, so the same graph always gives the same sample, and among
    equally strong neighbours the pick is a seeded pseudo-random one (not alphabetical, which
    would favour low ids).
    """
    require_columns(pairs, ("relation", "src", "dst", "strength"), "relation pairs")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    w = Window.partitionBy("relation", "src").orderBy(
        F.col("strength").desc(), F.xxhash64(F.lit(int(seed)), "relation", "src", "dst"), "dst")
    return (pairs.withColumn("slot", F.row_number().over(w) - 1).where(F.col("slot") < k)
            .select("relation", "src", "dst", "strength", F.col("slot").cast("int")))


def _f(col: Column) -> Column:
    return col.cast("float")


def own_features(signals: DataFrame, window_days: int = 28) -> DataFrame:
    """``creator_id, market, own`` (array<float> of :data:`OWN_FEATURES`) from one ``creator_signals`` window.

    Counts and amounts are log1p'd, the copy distance becomes a closeness, nulls (no
    denominator) become 0 -- the same vector feeds the network and the boosting baseline.
    """
    require_columns(signals, ("creator_id", "market", "window_days", "account_age_days", *signals_schema.FEATURE_NAMES),
             "creator_signals")
    types = {f.name: f.dataType for f in signals_schema.SCHEMA.fields}
    cols: list[Column] = [F.log1p(F.greatest(F.coalesce(F.col("account_age_days").cast("double"), F.lit(0.0)),
                                             F.lit(0.0)))]
    for name in signals_schema.FEATURE_NAMES:
        c = F.col(name).cast("double")
        if name in _CLOSENESS:
            c = F.when(c.isNotNull(), F.greatest(F.lit(0.0), 1.0 - c / _CLOSENESS[name]))
        elif isinstance(types[name], _COUNT_TYPES) or name in _LOG_DOUBLES:
            c = F.log1p(F.greatest(c, F.lit(0.0)))
        cols.append(c)
    w = signals.where(F.col("window_days") == int(window_days))
    return w.select("creator_id", "market", F.array(*[_f(F.coalesce(c, F.lit(0.0))) for c in cols]).alias("own"))


def structure_features(pairs: DataFrame, relations: Sequence[str] = RELATIONS) -> DataFrame:
    """``creator_id, structure`` (array<float>): log1p of the (uncapped) neighbour count per relation.

    Creators without any pair are absent (the caller fills zeros). As part of the node vector of a
    *neighbour*, these are that neighbour's own degrees: 2-hop structure for a 1-layer model.
    """
    counts = pairs.groupBy("src").agg(*[F.sum((F.col("relation") == r).cast("double")).alias(f"n_{r}")
                                        for r in relations])
    return counts.select(F.col("src").alias("creator_id"),
                         F.array(*[_f(F.log1p(F.col(f"n_{r}"))) for r in relations]).alias("structure"))


def standing_decisions(moderation: DataFrame, run_date: dt.date,
                       reasons: Sequence[str] = GRAPH_REASONS) -> DataFrame:
    """``creator_id, label, enforced, banned``: per creator with a standing (not overturned) decision by ``run_date``.

    ``label`` 1.0 when a standing decision cites one of ``reasons``; ``enforced`` 1.0 for any
    standing decision; ``banned`` 1.0 for a standing ban. Creators without one are absent.
    """
    require_columns(moderation, ("creator_id", "reason", "action", "decided_at", "overturned"), "moderation")
    standing = moderation.where(~F.coalesce(F.col("overturned"), F.lit(False))
                                & (F.to_date("decided_at") <= F.lit(run_date)))
    return standing.groupBy("creator_id").agg(
        F.max(F.col("reason").isin(*reasons).cast("float")).alias("label"),
        F.lit(1.0).cast("float").alias("enforced"),
        F.max((F.col("action") == "ban").cast("float")).alias("banned"))


def holdout(creator_id: Column) -> Column:
    """True for the stable 1-in-5 hold-out (same hash as :func:`libs.quality.sequences.holdout`)."""
    return quality_holdout(creator_id)


def _zeros(n: int) -> Column:
    return F.array_repeat(F.lit(0.0).cast("float"), n)


def neighbour_arrays(sampled: DataFrame, nodes: DataFrame, decisions: DataFrame, spec: GraphSpec) -> DataFrame:
    """``creator_id`` + ``nb_<r>`` (array<float> k*Dn) + ``mask_<r>`` (array<float> k) per target with any neighbour.

    ``nodes``: ``creator_id, x`` (node vector, ``spec.node_dim``). A neighbour without a node row
    (in the graph but not in the feature snapshot) keeps its slot with a zero node vector and its
    edge channels -- the link is a fact even when the account's features are unknown.
    Neighbours are laid out in ``slot`` order, each ``x ++ [log1p(strength), enforced, banned]``.
    """
    require_columns(sampled, ("relation", "src", "dst", "strength", "slot"), "sampled neighbours")
    require_columns(nodes, ("creator_id", "x"), "node vectors")
    k, d, dn = spec.k, spec.node_dim, spec.nb_dim
    nb = (sampled.join(nodes.select(F.col("creator_id").alias("dst"), F.col("x").alias("nx")), "dst", "left")
          .join(decisions.select(F.col("creator_id").alias("dst"), "enforced", "banned"), "dst", "left"))
    vec = F.concat(F.coalesce(F.col("nx"), _zeros(d)),
                   F.array(_f(F.log1p("strength")), _f(F.coalesce("enforced", F.lit(0.0))),
                           _f(F.coalesce("banned", F.lit(0.0)))))
    per = nb.groupBy("src", "relation").agg(
        F.array_sort(F.collect_list(F.struct(F.col("slot"), vec.alias("v")))).alias("toks"))
    flat = F.flatten(F.transform("toks", lambda s: s["v"]))
    per = per.select("src", "relation",
                     F.concat(flat, F.array_repeat(F.lit(0.0).cast("float"), F.lit(k * dn) - F.size(flat))).alias("nb"),
                     F.concat(F.array_repeat(F.lit(1.0).cast("float"), F.size("toks")),
                              F.array_repeat(F.lit(0.0).cast("float"), F.lit(k) - F.size("toks"))).alias("mask"))
    aggs = []
    for r in spec.relations:
        aggs.append(F.first(F.when(F.col("relation") == r, F.col("nb")), ignorenulls=True).alias(f"nb_{r}"))
        aggs.append(F.first(F.when(F.col("relation") == r, F.col("mask")), ignorenulls=True).alias(f"mask_{r}"))
    return per.groupBy(F.col("src").alias("creator_id")).agg(*aggs)


def graph_rows(edges: DataFrame, signals: DataFrame, moderation: DataFrame, run_date: dt.date, spec: GraphSpec,
               window_days: int = 28, seed: int = 0, exclude_banned: bool = True,
               max_resource_creators: int = DEFAULT_MAX_RESOURCE_CREATORS,
               max_user_creators: int = DEFAULT_MAX_USER_CREATORS,
               min_shared_users: int = DEFAULT_MIN_SHARED_USERS) -> DataFrame:
    """One training/scoring row per target creator: the Parquet contract of :func:`write_graph_parquet`.

    Columns: ``creator_id, market, x, nb_<r>..., mask_<r>..., label, holdout``. Targets are the
    creators of the ``signals`` snapshot, minus -- with ``exclude_banned`` -- creators already
    under a standing ban (nothing left to decide; they still appear as neighbours, where their
    ban is evidence). ``label`` is 1.0 for a standing decision citing :data:`GRAPH_REASONS`.
    """
    if tuple(spec.own_features) != OWN_FEATURES:
        raise ValueError("graph_rows builds OWN_FEATURES; a spec with other own features needs its own builder")
    pairs = relation_pairs(edges, spec.relations, max_resource_creators, max_user_creators, min_shared_users)
    own = own_features(signals, window_days)
    struct = structure_features(pairs, spec.relations)
    nodes = own.join(struct, "creator_id", "left").select(
        "creator_id", "market",
        F.concat("own", F.coalesce("structure", _zeros(len(spec.relations)))).alias("x"))
    decisions = standing_decisions(moderation, run_date)
    arrays = neighbour_arrays(sample_neighbours(pairs, spec.k, seed), nodes, decisions, spec)
    targets = nodes
    if exclude_banned:
        targets = targets.join(decisions.where(F.col("banned") > 0).select("creator_id"), "creator_id", "left_anti")
    cols: list[Column] = [F.col("creator_id"), F.col("market"), F.col("x")]
    for r in spec.relations:
        cols.append(F.coalesce(F.col(f"nb_{r}"), _zeros(spec.k * spec.nb_dim)).alias(f"nb_{r}"))
        cols.append(F.coalesce(F.col(f"mask_{r}"), _zeros(spec.k)).alias(f"mask_{r}"))
    cols += [F.coalesce(F.col("label"), F.lit(0.0)).cast("float").alias("label"),
             holdout(F.col("creator_id")).alias("holdout")]
    return (targets.join(arrays, "creator_id", "left")
            .join(decisions.select("creator_id", "label"), "creator_id", "left").select(*cols))


def feature_stats(rows: DataFrame, spec: GraphSpec) -> tuple[list[float], list[float]]:
    """Mean and standard deviation (population; 1.0 where constant) of each node-vector position.

    ``spec.node_dim`` pairs of scalars come to the driver -- independent of the row count.
    """
    per = (rows.select(F.posexplode("x").alias("pos", "v")).groupBy("pos")
           .agg(F.avg("v").alias("m"), F.stddev_pop("v").alias("s")).collect())
    got = {int(r["pos"]): (float(r["m"] or 0.0), float(r["s"] or 0.0)) for r in per}
    if sorted(got) != list(range(spec.node_dim)):
        raise ValueError(f"node vectors must have {spec.node_dim} values; positions seen: {sorted(got)[:5]}...")
    mean = [got[i][0] for i in range(spec.node_dim)]
    std = [got[i][1] if got[i][1] > 1e-6 else 1.0 for i in range(spec.node_dim)]
    return mean, std


# --------------------------------------------------------------------------------------------
# Parquet contract (Petastorm)
# --------------------------------------------------------------------------------------------

_VIOLATION = "graph sample contract violated"


def array_columns(spec: GraphSpec) -> list[str]:
    return ["x", *[c for r in spec.relations for c in (f"nb_{r}", f"mask_{r}")]]


def write_graph_parquet(df: DataFrame, path: str | Path, spec: GraphSpec, num_files: int = 4,
                        mode: str = "overwrite") -> str:
    """Write :func:`graph_rows` rows as Parquet for Petastorm; returns the dataset URL.

    Array lengths are checked inside the writing job (``raise_error``) -- a wrong length would
    otherwise surface as Petastorm's "lists of different lengths" inside a training rank. A
    violation raises ValueError and removes the partial local output. ``num_files`` should be a
    multiple of the training ranks (one file ~ one row group, Petastorm's unit of sharding).
    """
    from libs.ml.petastorm_io import write_checked

    require_columns(df, ("creator_id", "market", "label", *array_columns(spec)), "graph rows")
    widths = {"x": spec.node_dim, **{f"nb_{r}": spec.k * spec.nb_dim for r in spec.relations},
              **{f"mask_{r}": spec.k for r in spec.relations}}
    bad = F.lit(False)
    for c, n in widths.items():
        bad = bad | F.col(c).isNull() | (F.size(c) != n)
    bad = bad | F.col("label").isNull()
    detail = F.concat_ws(" ", F.lit(f"{_VIOLATION} ({widths}); first bad row:"), F.col("creator_id"),
                         *[F.concat(F.lit(f"{c}="), F.coalesce(F.size(c).cast("string"), F.lit("null"))) for c in widths])
    first = array_columns(spec)[0]
    cols = [F.col("creator_id"), F.col("market")]
    for c in array_columns(spec):
        col = F.col(c).cast("array<float>")
        cols.append((F.when(bad, F.raise_error(detail)).otherwise(col) if c == first else col).alias(c))
    cols.append(F.col("label").cast("float").alias("label"))
    url = write_checked(df.select(*cols), path, num_files, mode, _VIOLATION, max_chars=400)
    log.info("wrote graph samples to %s (%d files)", url, num_files)
    return url


def _stack(col: Any, width: int, name: str) -> np.ndarray:
    from libs.ml.petastorm_io import pc_list_lengths

    col = col.combine_chunks() if hasattr(col, "combine_chunks") else col
    lengths = pc_list_lengths(col)
    if len(lengths) and (lengths.min() != width or lengths.max() != width):
        raise ValueError(f"column {name}: every list must have {width} values, found {sorted(set(lengths))[:5]}")
    values = np.require(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float32, requirements="W")
    return values.reshape(len(col), width)


def read_graph_arrays(dataset_url: str | Path, spec: GraphSpec) -> dict[str, np.ndarray]:
    """The whole dataset as numpy (evaluation, baseline, tests): ``x`` (N, D), ``nb`` (N, R, K, Dn),
    ``mask`` (N, R, K), ``label`` (N,), ``creator_id`` and ``market`` (object arrays)."""
    import pyarrow.parquet as pq

    from libs.ml.petastorm_io import local_path

    table = pq.read_table(local_path(dataset_url), columns=["creator_id", "market", "label", *array_columns(spec)])
    n, r, k = table.num_rows, len(spec.relations), spec.k
    out = {"x": _stack(table.column("x"), spec.node_dim, "x"),
           "nb": np.stack([_stack(table.column(f"nb_{rel}"), k * spec.nb_dim, f"nb_{rel}").reshape(n, k, spec.nb_dim)
                           for rel in spec.relations], axis=1) if n else np.zeros((0, r, k, spec.nb_dim), np.float32),
           "mask": np.stack([_stack(table.column(f"mask_{rel}"), k, f"mask_{rel}") for rel in spec.relations], axis=1)
           if n else np.zeros((0, r, k), np.float32),
           "label": table.column("label").to_numpy().astype(np.float32),
           "creator_id": np.asarray(table.column("creator_id").to_pylist(), dtype=object),
           "market": np.asarray(table.column("market").to_pylist(), dtype=object)}
    return out


def _batch_tensors(batch: Mapping[str, Any], spec: GraphSpec) -> tuple[Any, Any, Any, Any]:
    x = batch["x"].to(torch.float32)
    b = x.shape[0]
    nb = torch.stack([batch[f"nb_{r}"].to(torch.float32).reshape(b, spec.k, spec.nb_dim) for r in spec.relations], 1)
    mask = torch.stack([batch[f"mask_{r}"].to(torch.float32) for r in spec.relations], 1)
    return x, nb, mask, batch["label"].to(torch.float32)


def graph_batches(dataset_url: str | Path, spec: GraphSpec, batch_size: int = 256, num_epochs: int | None = 1,
                  shuffle: bool = False, cur_shard: int | None = None, shard_count: int | None = None,
                  seed: int | None = None, workers_count: int = 1,
                  shuffle_buffer_rows: int = 4096) -> Iterator[tuple[Any, Any, Any, Any]]:
    """Petastorm batches ``(x (B, D), nb (B, R, K, Dn), mask (B, R, K), label (B,))`` -- see
    :func:`libs.ml.petastorm_io.petastorm_batches` for the sharding and shuffling semantics."""
    from petastorm import make_batch_reader
    from petastorm.pytorch import BatchedDataLoader

    from libs.ml.petastorm_io import _writable_tensor, as_url

    if (cur_shard is None) != (shard_count is None):
        raise ValueError("cur_shard and shard_count go together")
    reader = make_batch_reader(as_url(dataset_url), schema_fields=[*array_columns(spec), "label"],
                               num_epochs=num_epochs, shuffle_row_groups=shuffle, shuffle_rows=shuffle, seed=seed,
                               cur_shard=cur_shard, shard_count=shard_count, reader_pool_type="thread",
                               workers_count=workers_count)
    loader = BatchedDataLoader(reader, batch_size=batch_size, transform_fn=_writable_tensor,
                               shuffling_queue_capacity=shuffle_buffer_rows if shuffle else 0)
    with loader:
        for batch in loader:
            yield _batch_tensors(batch, spec)


# --------------------------------------------------------------------------------------------
# (b) The model
# --------------------------------------------------------------------------------------------

AGGREGATORS = ("mean", "attention")

class RelationalRiskModel(nn.Module):
    """``(x (B, D), nb (B, R, K, Dn), mask (B, R, K)) -> logit (B,)``.

    * self: ``MLP(standardise(x))``;
    * per relation ``r``: message ``m_j = ReLU(W_r standardise(nb_j) + b_r)`` (own weights per
      relation, as R-GCN), aggregated over the real neighbours by a masked mean or masked
      attention (scores ``v_r . tanh(A_r m_j + B_r h_self)``) -- GraphSAGE's "concat self with
      the neighbourhood summary";
    * head: ``MLP([h_self, agg_1..agg_R, has_neighbours_1..R])`` -> one logit. The flags separate
      "no neighbours" from "neighbours whose summary happens to be 0".

    ``use_neighbours=False`` is the same network without the relation branches (the control in
    the tests: what the graph adds). ``x_mean``/``x_std`` standardise the node-vector part of self
    and neighbour inputs (buffers: saved with the state dict). Constructor arguments are exactly
    :meth:`config`.
    """

    def __init__(self, node_dim: int, nb_dim: int, relations: Sequence[str], k: int, hidden: int = 64,
                 aggregator: str = "mean", dropout: float = 0.1, use_neighbours: bool = True,
                 x_mean: Sequence[float] | None = None, x_std: Sequence[float] | None = None) -> None:
        super().__init__()
        if aggregator not in AGGREGATORS:
            raise ValueError(f"aggregator must be one of {AGGREGATORS}, got {aggregator!r}")
        if nb_dim < node_dim:
            raise ValueError(f"nb_dim ({nb_dim}) must be at least node_dim ({node_dim})")
        self.node_dim, self.nb_dim, self.relations, self.k = node_dim, nb_dim, tuple(relations), k
        self.hidden, self.aggregator, self.dropout_p, self.use_neighbours = hidden, aggregator, dropout, use_neighbours
        r = len(self.relations)
        mean = torch.zeros(node_dim) if x_mean is None else torch.as_tensor(list(x_mean), dtype=torch.float32)
        std = torch.ones(node_dim) if x_std is None else torch.as_tensor(list(x_std), dtype=torch.float32)
        if mean.numel() != node_dim or std.numel() != node_dim or bool((std <= 0).any()):
            raise ValueError(f"x_mean/x_std need {node_dim} values (std > 0)")
        self.register_buffer("x_mean", mean)
        self.register_buffer("x_std", std)
        self.self_mlp = nn.Sequential(nn.Linear(node_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        head_in = hidden
        if use_neighbours:
            # Relation-specific message weights as one (R, Dn, H) tensor: one einsum for all relations.
            self.msg_w = nn.Parameter(torch.empty(r, nb_dim, hidden))
            self.msg_b = nn.Parameter(torch.zeros(r, hidden))
            nn.init.xavier_uniform_(self.msg_w.view(r * nb_dim, hidden))
            if aggregator == "attention":
                self.att_a = nn.Parameter(torch.empty(r, hidden, hidden))
                self.att_b = nn.Parameter(torch.empty(r, hidden, hidden))
                self.att_v = nn.Parameter(torch.empty(r, hidden))
                for p in (self.att_a, self.att_b):
                    nn.init.xavier_uniform_(p.view(r * hidden, hidden))
                nn.init.normal_(self.att_v, std=hidden ** -0.5)
            head_in += r * (hidden + 1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(head_in, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, 1))

    def config(self) -> dict[str, Any]:
        return {"node_dim": self.node_dim, "nb_dim": self.nb_dim, "relations": list(self.relations), "k": self.k,
                "hidden": self.hidden, "aggregator": self.aggregator, "dropout": self.dropout_p,
                "use_neighbours": self.use_neighbours, "x_mean": [float(v) for v in self.x_mean],
                "x_std": [float(v) for v in self.x_std]}

    def forward(self, x: torch.Tensor, nb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, r, k = x.shape[0], len(self.relations), self.k
        if x.dim() != 2 or x.shape[1] != self.node_dim:
            raise ValueError(f"expected x of shape (B, {self.node_dim}), got {tuple(x.shape)}")
        if tuple(nb.shape) != (b, r, k, self.nb_dim) or tuple(mask.shape) != (b, r, k):
            raise ValueError(f"expected nb (B, {r}, {k}, {self.nb_dim}) and mask (B, {r}, {k}); got "
                             f"{tuple(nb.shape)} and {tuple(mask.shape)}")
        h_self = self.self_mlp((x - self.x_mean) / self.x_std)
        parts = [h_self]
        if self.use_neighbours:
            real = mask > 0.5                                                        # (B, R, K)
            d = self.node_dim
            scaled = torch.cat([(nb[..., :d] - self.x_mean) / self.x_std, nb[..., d:]], dim=-1)
            # torch.where, not multiplication: padded slots may hold anything (even NaN) and must not leak.
            scaled = torch.where(real.unsqueeze(-1), scaled, torch.zeros((), dtype=scaled.dtype, device=scaled.device))
            msg = torch.relu(torch.einsum("brkd,rdh->brkh", scaled, self.msg_w) + self.msg_b[None, :, None, :])
            if self.aggregator == "mean":
                weights = real.to(msg.dtype) / real.sum(-1, keepdim=True).clamp(min=1).to(msg.dtype)
            else:
                proj_self = torch.einsum("bh,rhg->brg", h_self, self.att_b)        # (B, R, H)
                score = torch.einsum("brkg,rg->brk",
                                     torch.tanh(torch.einsum("brkh,rhg->brkg", msg, self.att_a)
                                                + proj_self[:, :, None, :]), self.att_v)
                score = score.masked_fill(~real, float("-inf"))
                weights = torch.softmax(score, dim=-1)
                # A relation without real neighbours gives all -inf -> NaN: its weights are 0.
                weights = torch.where(real, weights, torch.zeros((), dtype=weights.dtype, device=weights.device))
            agg = torch.einsum("brk,brkh->brh", weights, torch.where(real.unsqueeze(-1), msg, torch.zeros(
                (), dtype=msg.dtype, device=msg.device)))
            has = real.any(-1).to(agg.dtype)                                         # (B, R)
            parts += [agg.reshape(b, r * self.hidden), has]
        return self.head(torch.cat(parts, dim=-1)).squeeze(-1)


GRAPH_HPARAMS: dict[str, Any] = {
    "hidden": 64, "aggregator": "mean", "dropout": 0.1, "use_neighbours": True,
    "lr": 3e-3, "weight_decay": 1e-5, "epochs": 8, "batch_size": 256, "seed": 0,
    "pos_weight": None,          # None: negatives/positives of the training labels, capped
    "pos_weight_cap": 50.0, "device": "auto", "reader_workers": 1,
}


def resolve_hparams(hparams: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with ``hparams``; unknown keys raise (a typo would silently train defaults)."""
    unknown = sorted(set(hparams or {}) - set(GRAPH_HPARAMS))
    if unknown:
        raise ValueError(f"unknown hyper-parameters {unknown}; known: {sorted(GRAPH_HPARAMS)}")
    return {**GRAPH_HPARAMS, **(hparams or {})}


def build_model(spec: GraphSpec, hp: Mapping[str, Any]) -> RelationalRiskModel:
    return RelationalRiskModel(spec.node_dim, spec.nb_dim, spec.relations, spec.k, hidden=int(hp["hidden"]),
                               aggregator=str(hp["aggregator"]), dropout=float(hp["dropout"]),
                               use_neighbours=bool(hp["use_neighbours"]),
                               x_mean=spec.x_mean or None, x_std=spec.x_std or None)


def pos_weight_of(labels: np.ndarray, cap: float) -> float:
    """negatives / positives (capped, >= 1): rebalances BCE for rare positives without resampling."""
    y = np.asarray(labels, dtype=np.float64)
    pos = float(y.sum())
    return float(np.clip((y.size - pos) / pos, 1.0, cap)) if pos > 0 else 1.0


def train_loop(model: nn.Module, loader_fn: Callable[[int], Iterable[tuple]], epochs: int, lr: float,
               pos_weight: float, device: torch.device, weight_decay: float = 0.0, grad_clip: float | None = 1.0,
               epoch_context: Callable[[], contextlib.AbstractContextManager] | None = None) -> list[dict]:
    """Adam + BCEWithLogits(pos_weight); ``loader_fn(epoch)`` yields ``(x, nb, mask, label)`` batches.

    One dict per epoch (``epoch, loss, rows, seconds, rows_per_s``). ``model`` may be a DDP
    wrapper; ``epoch_context`` wraps each epoch (DDP's ``join`` for uneven shards).
    """
    model.to(device)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(pos_weight), device=device), reduction="sum")
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history: list[dict] = []
    for epoch in range(epochs):
        model.train()
        total, rows, started = torch.zeros((), device=device), 0, time.perf_counter()
        with (epoch_context() if epoch_context else contextlib.nullcontext()):
            for x, nb, mask, y in loader_fn(epoch):
                x, nb, mask, y = (t.to(device, torch.float32, non_blocking=True) for t in (x, nb, mask, y))
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x, nb, mask), y) / x.shape[0]
                loss.backward()
                if grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                opt.step()
                total += loss.detach() * x.shape[0]
                rows += x.shape[0]
        seconds = time.perf_counter() - started
        rec = {"epoch": epoch, "loss": float(total) / rows if rows else math.nan, "rows": rows, "seconds": seconds,
               "rows_per_s": rows / seconds if seconds > 0 else math.nan}
        log.info("epoch %d: loss %.4f, %d rows in %.2fs", epoch, rec["loss"], rows, seconds)
        history.append(rec)
    return history


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, nb: np.ndarray, mask: np.ndarray,
            device: torch.device | None = None, batch_size: int = 1024) -> np.ndarray:
    """Probabilities ``(N,)`` in eval mode, batched (a whole market need not fit on the device)."""
    device = device or torch.device("cpu")
    model.eval()
    model.to(device)
    out = []
    for s in range(0, len(x), batch_size):
        t = [torch.as_tensor(np.asarray(a[s:s + batch_size], dtype=np.float32)).to(device) for a in (x, nb, mask)]
        out.append(torch.sigmoid(model(*t)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def fit_arrays(arrays: Mapping[str, np.ndarray], spec: GraphSpec, hparams: Mapping[str, Any] | None = None,
               device: torch.device | None = None) -> tuple[RelationalRiskModel, list[dict]]:
    """Train in memory (tests, quick experiments): the same model and loop as the Petastorm path."""
    hp = resolve_hparams(hparams)
    torch.manual_seed(int(hp["seed"]))
    device = device or torch.device("cpu")
    if not spec.x_mean:
        spec = spec.with_stats(arrays["x"].mean(0), np.where(arrays["x"].std(0) > 1e-6, arrays["x"].std(0), 1.0))
    model = build_model(spec, hp)
    ds = torch.utils.data.TensorDataset(*[torch.as_tensor(np.asarray(arrays[c], dtype=np.float32))
                                          for c in ("x", "nb", "mask", "label")])
    gen = torch.Generator().manual_seed(int(hp["seed"]))
    loader = torch.utils.data.DataLoader(ds, batch_size=int(hp["batch_size"]), shuffle=True, generator=gen)
    pw = hp["pos_weight"] if hp["pos_weight"] is not None else pos_weight_of(arrays["label"], hp["pos_weight_cap"])
    history = train_loop(model, lambda epoch: loader, int(hp["epochs"]), float(hp["lr"]), float(pw), device,
                         float(hp["weight_decay"]))
    return model, history


def train_graph_model(parquet_url: str, spec_dict: Mapping[str, Any], hparams: Mapping[str, Any] | None,
                      result_dir: str) -> None:
    """One rank of training (TorchDistributor): Petastorm shard -> (DDP) model -> ``rank-<r>.pt``.

    Mirrors :func:`libs.ml.distributed.train_sequence_model`: this rank's row groups
    (``cur_shard=RANK``), reshuffled each epoch; DDP over gloo/nccl when there is more than one
    rank, inside ``join()`` (uneven shards). Every rank reads the (small) label column of the
    whole dataset so that all agree on ``pos_weight``. Writes ``{rank, world_size, state_dict,
    config, history, spec, hparams, pos_weight}`` via :func:`libs.ml.distributed.write_rank_result`.
    """
    import pyarrow.parquet as pq
    import torch.distributed as dist

    from libs.ml.distributed import USE_GPU_ENV, rank_env, write_rank_result
    from libs.ml.petastorm_io import local_path

    rank, world, local_rank = rank_env()
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [rank {rank}] %(name)s: %(message)s")
        logging.getLogger("petastorm").setLevel(logging.WARNING)
    # Petastorm 0.12 warns about pyarrow's legacy dataset API from every reader thread (the pin is the project's).
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\.|$)")
    hp = resolve_hparams(hparams)
    spec = GraphSpec.from_dict(spec_dict)
    use_cuda = (torch.cuda.is_available() and hp["device"] in ("auto", "cuda")
                and os.environ.get(USE_GPU_ENV, "1") != "0")
    device = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    distributed = world > 1
    if distributed:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    try:
        torch.manual_seed(int(hp["seed"]))
        model = build_model(spec, hp).to(device)
        if hp["pos_weight"] is not None:
            pw = float(hp["pos_weight"])
        else:
            labels = pq.read_table(local_path(parquet_url), columns=["label"]).column("label").to_numpy()
            pw = pos_weight_of(labels, float(hp["pos_weight_cap"]))
        trained: nn.Module = model
        epoch_context = None
        if distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ddp = DDP(model, device_ids=[local_rank] if use_cuda else None)
            trained, epoch_context = ddp, ddp.join

        def loader_fn(epoch: int):
            return graph_batches(parquet_url, spec, batch_size=int(hp["batch_size"]), num_epochs=1, shuffle=True,
                                 cur_shard=rank if distributed else None, shard_count=world if distributed else None,
                                 seed=int(hp["seed"]) + epoch, workers_count=int(hp["reader_workers"]))

        history = train_loop(trained, loader_fn, int(hp["epochs"]), float(hp["lr"]), pw, device,
                             float(hp["weight_decay"]), epoch_context=epoch_context)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        write_rank_result(result_dir, {"rank": rank, "world_size": world, "state_dict": state,
                                       "config": model.config(), "history": history, "spec": spec.to_dict(),
                                       "hparams": dict(hp), "pos_weight": pw})
    finally:
        if distributed and dist.is_initialized():
            dist.destroy_process_group()


def model_from_payload(payload: Mapping[str, Any]) -> RelationalRiskModel:
    """Rebuild the trained model from a rank result (or the registered artifacts)."""
    model = RelationalRiskModel(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.eval()


# --------------------------------------------------------------------------------------------
# (c) The gradient-boosting baseline on the same arrays
# --------------------------------------------------------------------------------------------

def gbt_feature_names(spec: GraphSpec, with_neighbours: bool = True) -> list[str]:
    """Column names of :func:`gbt_matrix` (for importances and the model card)."""
    if not with_neighbours:
        return list(spec.own_features)
    nb_names = [*spec.node_features, *spec.edge_channels]
    names = list(spec.node_features)
    for r in spec.relations:
        names += [f"{r}.mean.{n}" for n in nb_names] + [f"{r}.max.{n}" for n in nb_names] + [f"{r}.count"]
    return names


def gbt_matrix(arrays: Mapping[str, np.ndarray], spec: GraphSpec, with_neighbours: bool = True) -> np.ndarray:
    """Flat features for boosting from the model's own arrays.

    ``with_neighbours=False``: the creator's own ``creator_signals`` features only.
    ``with_neighbours=True``: the node vector (own + per-relation neighbour counts) and, per
    relation, the masked mean and max of every neighbour channel and the sampled count. Means
    and maxima over no neighbours are 0 (the count says there were none).
    """
    x = np.asarray(arrays["x"], dtype=np.float32)
    if not with_neighbours:
        return x[:, :len(spec.own_features)]
    nb = np.asarray(arrays["nb"], dtype=np.float32)
    real = np.asarray(arrays["mask"], dtype=np.float32) > 0.5                       # (N, R, K)
    count = real.sum(-1)                                                            # (N, R)
    safe = np.where(real[..., None], nb, 0.0)
    mean = safe.sum(2) / np.maximum(count, 1)[..., None]
    mx = np.where(real[..., None], nb, -np.inf).max(2)
    mx = np.where(count[..., None] > 0, mx, 0.0)
    blocks = [x]
    for j in range(len(spec.relations)):
        blocks += [mean[:, j], mx[:, j], count[:, j:j + 1]]
    return np.concatenate(blocks, axis=1).astype(np.float32)


def fit_gbt(features: np.ndarray, labels: np.ndarray, seed: int = 0, max_iter: int = 300) -> Any:
    """``HistGradientBoostingClassifier`` with early stopping on an internal 15 % split (the hold-out
    stays untouched), the same settings as :mod:`libs.quality.baseline`."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    y = np.asarray(labels, dtype=np.float64)
    if y.min() == y.max():
        raise ValueError("labels have a single class: nothing to learn")
    few = int(y.sum()) < 20          # too few positives for a stratified validation split
    clf = HistGradientBoostingClassifier(max_iter=100 if few else max_iter, learning_rate=0.05, max_leaf_nodes=31,
                                         early_stopping=not few, validation_fraction=0.15, random_state=seed)
    return clf.fit(np.asarray(features, dtype=np.float64), y)


# --------------------------------------------------------------------------------------------
# MLflow pyfunc
# --------------------------------------------------------------------------------------------

class GraphRiskPyfunc(mlflow.pyfunc.PythonModel):
    """``predict(DataFrame[x, nb_<r>..., mask_<r>...]) -> DataFrame[p_graph_abuse]``.

    The input is the Parquet contract row (flat lists), so a scorer runs :func:`graph_rows` and
    hands the frame over without knowing tensor shapes. Artifacts: ``state_dict`` (torch file),
    ``spec`` (GraphSpec JSON), ``config`` (constructor arguments JSON). Kept here rather than in
    :mod:`libs.ml.registry`, whose pyfunc is the sequence model's contract.
    """

    def load_context(self, context: Any) -> None:
        from libs.ml.device import pick_device

        self.spec = GraphSpec.from_dict(json.loads(Path(context.artifacts["spec"]).read_text()))
        config = json.loads(Path(context.artifacts["config"]).read_text())
        self.device = pick_device()
        self.model = RelationalRiskModel(**config)
        self.model.load_state_dict(torch.load(context.artifacts["state_dict"], map_location="cpu", weights_only=True))
        self.model.to(self.device).eval()

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        arrays = frame_arrays(model_input, self.spec)
        p = predict(self.model, arrays["x"], arrays["nb"], arrays["mask"], self.device,
                    batch_size=int((params or {}).get("batch_size", 1024)))
        return pd.DataFrame({f"p_{LABEL}": p}, index=model_input.index)


def frame_arrays(frame: Any, spec: GraphSpec) -> dict[str, np.ndarray]:
    """Model tensors from a pandas frame of contract rows (flat lists); wrong lengths raise."""
    cols = array_columns(spec)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"input lacks columns {missing}")
    n = len(frame)

    def stack(col: str, width: int) -> np.ndarray:
        vals = [np.asarray(v, dtype=np.float32).reshape(-1) for v in frame[col]]
        if any(v.size != width for v in vals):
            raise ValueError(f"column {col}: every row needs {width} values")
        return np.stack(vals) if vals else np.zeros((0, width), np.float32)

    return {"x": stack("x", spec.node_dim),
            "nb": np.stack([stack(f"nb_{r}", spec.k * spec.nb_dim).reshape(n, spec.k, spec.nb_dim)
                            for r in spec.relations], axis=1),
            "mask": np.stack([stack(f"mask_{r}", spec.k) for r in spec.relations], axis=1)}


def example_frame(arrays: Mapping[str, np.ndarray], spec: GraphSpec, n: int = 3) -> Any:
    """A small pyfunc input (flat lists) from numpy arrays: the registered input example."""
    rows = min(n, len(arrays["x"]))
    data: dict[str, list] = {"x": [arrays["x"][i].astype(np.float64).tolist() for i in range(rows)]}
    for j, r in enumerate(spec.relations):
        data[f"nb_{r}"] = [arrays["nb"][i, j].reshape(-1).astype(np.float64).tolist() for i in range(rows)]
        data[f"mask_{r}"] = [arrays["mask"][i, j].astype(np.float64).tolist() for i in range(rows)]
    return pd.DataFrame(data)


def log_and_register(run: Any, model: RelationalRiskModel, spec: GraphSpec, hparams: Mapping[str, Any],
                     input_example: Any, name: str) -> str:
    """Log ``model`` as a :class:`GraphRiskPyfunc` into the active ``run`` and register it as ``name``.

    Returns the new version (string). The caller must have ``run`` active (``mlflow.start_run``).
    """
    from mlflow.models import infer_signature

    from libs.ml.registry import _pip_requirements

    with tempfile.TemporaryDirectory(prefix="graphgnn-") as tmp:
        folder = Path(tmp)
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, folder / "state_dict.pt")
        (folder / "spec.json").write_text(json.dumps(spec.to_dict(), indent=2))
        (folder / "config.json").write_text(json.dumps(model.config(), indent=2))
        (folder / "hparams.json").write_text(json.dumps(dict(hparams), indent=2, default=str))
        arrays = frame_arrays(input_example, spec)
        output = pd.DataFrame({f"p_{LABEL}": predict(model, arrays["x"], arrays["nb"], arrays["mask"])})
        signature = infer_signature(input_example, output)
        mlflow.log_dict(spec.to_dict(), "graph_spec.json")
        info = mlflow.pyfunc.log_model(
            name="model", python_model=GraphRiskPyfunc(),
            artifacts={"state_dict": str(folder / "state_dict.pt"), "spec": str(folder / "spec.json"),
                       "config": str(folder / "config.json"), "hparams": str(folder / "hparams.json")},
            signature=signature, input_example=input_example, registered_model_name=name,
            pip_requirements=_pip_requirements())
    version = str(info.registered_model_version)
    log.info("registered %s version %s from run %s", name, version, run.info.run_id)
    return version
