"""Matrix farms and sybil operators: connected components over shared-infrastructure projections.

A farm operator runs many accounts from few phones, one or two IP /24s and a small pool of payout
accounts. Projecting the creator-resource bipartite graph (``uses_device``, ``logs_in_from``,
``pays_to``) onto creator pairs and taking connected components finds the whole farm even when no
single resource is shared by all accounts. The naive projection over-merges, though, and the
platform's honest users are exactly what it over-merges:

* a **family** shares one phone (and therefore its home /24) and nothing else;
* an **agency** runs honest creators from one office computer (one device, one /24);
* a **NAT / public Wi-Fi / shop demo phone** is shared by many unrelated people.

So the projection is weighted and limited instead of "any shared resource links":

1. resources shared by more than ``max_sharers`` creators are not evidence of anything (carrier
   NAT, a cafe) and are skipped -- returned in ``skipped`` with their sizes, never dropped silently;
2. a creator pair's weight is the sum of ``weights[resource_type]`` over the distinct resources it
   shares; a pair links only at ``min_pair_weight`` or more. With the defaults (payment 1.0,
   device 0.5, /24 0.25, threshold 1.0) one shared device plus its /24 (0.75: a family, an office)
   does not link, one shared payout account does, and two devices plus a /24 do;
3. a component is a syndicate only with at least ``min_size`` accounts.

Member score: the member's summed pair weight to other members divided by ``size - 1`` (how
tightly it is tied in: 1.0 = one payout account with everyone); syndicate score: the mean member
score. Both are on the pair-weight scale, so a reviewer can read "1.75" as "payout account + phone
+ network with a typical sibling".
"""
from __future__ import annotations

from typing import Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from libs.graph.components import connected_components
from schemas.syndicates import DETECTOR_COLUMNS

DEFAULT_WEIGHTS: Mapping[str, float] = {"payment": 1.0, "device": 0.5, "ip": 0.25}
RESOURCE_WORDS = {"payment": "payout account", "device": "device", "ip": "IP /24"}


def _check(weights: Mapping[str, float], min_pair_weight: float, max_sharers: int, min_size: int) -> None:
    if not weights:
        raise ValueError("weights must name at least one resource type")
    bad = {k: v for k, v in weights.items() if not v > 0}
    if bad:
        raise ValueError(f"resource weights must be > 0, got {bad}")
    if min_pair_weight <= 0:
        raise ValueError(f"min_pair_weight must be > 0, got {min_pair_weight}")
    if max_sharers < 2:
        raise ValueError(f"max_sharers must be >= 2 (a resource needs two creators to link them), got {max_sharers}")
    if min_size < 2:
        raise ValueError(f"min_size must be >= 2, got {min_size}")


def creator_resource_links(edges: DataFrame, weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> DataFrame:
    """``(creator_id, resource_id, resource_type)`` from graph edges (creator -> device/ip/payment).

    Keys are the graph's natural keys (``creator_id`` without the ``creator:`` prefix); the
    resource id keeps its typed vertex id so a device and a payout account can never collide.
    """
    return (edges.where((F.col("src_type") == "creator") & F.col("dst_type").isin(list(weights)))
            .select(F.regexp_extract("src", r"^[^:]+:(.*)$", 1).alias("creator_id"),
                    F.col("dst").alias("resource_id"), F.col("dst_type").alias("resource_type"))
            .distinct())


def shared_infrastructure(spark: SparkSession, links: DataFrame, weights: Mapping[str, float] = DEFAULT_WEIGHTS,
                          min_pair_weight: float = 1.0, max_sharers: int = 50,
                          min_size: int = 3) -> tuple[DataFrame, DataFrame]:
    """``(syndicate rows in DETECTOR_COLUMNS, skipped resources)`` from creator-resource ``links``.

    ``links``: ``creator_id, resource_id, resource_type`` (duplicates are harmless). ``skipped``:
    ``resource_id, resource_type, sharers`` for every resource over ``max_sharers``.
    """
    _check(weights, min_pair_weight, max_sharers, min_size)
    unknown_types = links.select("resource_type").distinct().where(~F.col("resource_type").isin(list(weights)))
    if unknown_types.limit(1).count():
        raise ValueError(f"links carry resource types without a weight: "
                         f"{sorted(r[0] for r in unknown_types.collect())}; weights: {dict(weights)}")
    links = links.select("creator_id", "resource_id", "resource_type").distinct()
    sharers = links.groupBy("resource_id", "resource_type").agg(F.countDistinct("creator_id").alias("sharers"))
    skipped = sharers.where(F.col("sharers") > max_sharers)
    # Only resources with 2..max_sharers creators can link a pair; the cap bounds the self-join
    # below at max_sharers^2 rows per resource (never a cross join of all creators).
    usable = links.join(sharers.where((F.col("sharers") >= 2) & (F.col("sharers") <= max_sharers))
                        .select("resource_id"), "resource_id")
    w = F.create_map(*[x for k, v in weights.items() for x in (F.lit(k), F.lit(float(v)))])
    a, b = usable.alias("a"), usable.alias("b")
    shared = (a.join(b, (F.col("a.resource_id") == F.col("b.resource_id"))
                     & (F.col("a.creator_id") < F.col("b.creator_id")))
              .select(F.col("a.creator_id").alias("c1"), F.col("b.creator_id").alias("c2"),
                      F.col("a.resource_id").alias("resource_id"), F.col("a.resource_type").alias("resource_type")))
    pairs = (shared.groupBy("c1", "c2")
             .agg(F.sum(w[F.col("resource_type")]).alias("pair_weight"))
             .where(F.col("pair_weight") >= F.lit(min_pair_weight)))
    members_v = pairs.select(F.col("c1").alias("id")).union(pairs.select(F.col("c2").alias("id"))).distinct()
    comps = connected_components(spark, members_v, pairs.select(F.col("c1").alias("src"), F.col("c2").alias("dst")))
    sizes = comps.groupBy("component").agg(F.count("*").alias("syndicate_size"))
    comps = comps.join(sizes.where(F.col("syndicate_size") >= min_size), "component")
    # Member tie strength: pair weights to other members (pairs never cross components).
    ends = pairs.select(F.col("c1").alias("id"), "pair_weight").union(pairs.select(F.col("c2").alias("id"), "pair_weight"))
    strength = ends.groupBy("id").agg(F.sum("pair_weight").alias("tie"), F.count("*").alias("partners"))
    # Evidence: resources the member shares with at least one other member of its syndicate.
    in_comp = usable.join(comps.select(F.col("id").alias("creator_id"), "component"), "creator_id")
    shared_in = (in_comp.groupBy("component", "resource_id", "resource_type")
                 .agg(F.countDistinct("creator_id").alias("n")).where(F.col("n") >= 2))
    per_member = (in_comp.join(shared_in.select("component", "resource_id"), ["component", "resource_id"])
                  .groupBy("creator_id").pivot("resource_type", list(weights)).agg(F.countDistinct("resource_id")))
    parts = [F.when(F.coalesce(F.col(f"`{t}`"), F.lit(0)) > 0,
                    F.concat(F.col(f"`{t}`").cast("string"), F.lit(f" {RESOURCE_WORDS.get(t, t)}(s)")))
             for t in weights]
    members = (comps.join(strength, "id").join(per_member, F.col("id") == F.col("creator_id"), "left")
               .withColumn("score", F.col("tie") / (F.col("syndicate_size") - 1)))
    syn_score = members.groupBy("component").agg(F.avg("score").alias("syndicate_score"))
    out = members.join(syn_score, "component").select(
        F.concat(F.lit("infra:"), F.col("component")).alias("syndicate_id"),
        F.lit("creator").alias("entity_type"),
        F.col("id").alias("entity_id"),
        F.lit("account").alias("role"),
        F.round("score", 4).alias("score"),
        F.col("syndicate_size").cast("long").alias("syndicate_size"),
        F.round("syndicate_score", 4).alias("syndicate_score"),
        F.concat(F.lit("shares "), F.concat_ws(", ", *parts), F.lit(" with "), F.col("partners").cast("string"),
                 F.lit(" of "), (F.col("syndicate_size") - 1).cast("string"),
                 F.lit(" other accounts of this group (tie strength "), F.format_number(F.col("score"), 2),
                 F.lit(")")).alias("evidence"),
    )
    return out.select(*DETECTOR_COLUMNS), skipped
