"""Cross-scenario risk propagation from enforced accounts, and where enforced operators migrate.

Risk (:func:`entity_risk`) starts at accounts with standing enforcement (moderation decisions not
overturned; a ban counts more than a warning) and spreads over typed relations with *configured*
weights (``graph.relation_weights``: a shared payout account says more than a shared /24, and a
relation not in the map does not carry risk at all -- an explicit decision, never a default).
Content-scenario and shelf-scenario edges are different relations (``lists/shelf``,
``buys/shelf`` vs ``posts/video``, ``features/video``), and the propagation runs three times:
over account + content relations, over account + shelf relations, and over all of them, so a
reviewer sees whether an entity's risk comes from the storefront or the feed. Each entity keeps
its market, so risk can be read per market. The diffusion itself is
:func:`libs.graph.propagation.propagate_risk` (noisy-OR with restart, hub-normalised).

Migration (:func:`migration_predictions`): an operator banned in one market or scenario comes
back with new accounts -- and brings its phones, its network and sometimes its payout accounts.
Banned accounts are grouped into operators by the infrastructure they shared; every account that
is not banned and shares infrastructure with an operator is a candidate, scored by the weighted
resources it shares (a payout account > a phone > a /24), with later first use of the shared
resource scoring higher (a phone that reappears *after* the ban is the migration signature; an
account that shared it all along is a sibling that was not caught). From the ranked candidates
follow the operator's most likely markets and scenarios (score-weighted votes of its candidates).
"""
from __future__ import annotations

from typing import Mapping

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from libs.graph.components import connected_components
from libs.graph.propagation import propagate_risk

CONTENT_SCENARIOS = ("video", "live", "content", "profile")
SHELF_SCENARIOS = ("shelf",)
ACCOUNT_SCENARIO = "account"
RESOURCE_TYPES = ("device", "ip", "payment")
DEFAULT_RESOURCE_WEIGHTS: Mapping[str, float] = {"payment": 1.0, "device": 0.6, "ip": 0.3}


def relation(edge_type: Column, scenario: Column) -> Column:
    """``edge_type`` for account relations, ``edge_type/scenario-group`` for traffic relations."""
    group = (F.when(scenario.isin(*SHELF_SCENARIOS), F.lit("shelf"))
             .when(scenario.isin(*CONTENT_SCENARIOS), F.lit("content")))
    return F.when(scenario == ACCOUNT_SCENARIO, edge_type).otherwise(F.concat_ws("/", edge_type, group))


def relation_edges(edges: DataFrame, relation_weights: Mapping[str, float]) -> DataFrame:
    """``(src, dst, relation)`` once per relation between two vertices, only relations with weight > 0.

    Presence, not volume: a phone used for 40 logins is as much a shared phone as one used twice,
    and the device snapshot rows (weight 0: no login in the window) are exactly the links a banned
    account leaves behind.
    """
    live = [r for r, w in relation_weights.items() if w > 0]
    return (edges.select("src", "dst", relation(F.col("edge_type"), F.col("scenario")).alias("relation"))
            .where(F.col("relation").isin(live)).distinct())


def moderation_seeds(moderation: DataFrame, ban_risk: float = 1.0, other_risk: float = 0.5) -> DataFrame:
    """``(id, risk)`` of creators with standing (not overturned) enforcement: bans ``ban_risk``, else ``other_risk``."""
    if not (0 < other_risk <= ban_risk <= 1):
        raise ValueError(f"need 0 < other_risk <= ban_risk <= 1, got {other_risk}, {ban_risk}")
    standing = moderation.where(~F.coalesce(F.col("overturned"), F.lit(False)))
    return (standing.groupBy("creator_id")
            .agg(F.max(F.when(F.col("action") == "ban", F.lit(ban_risk)).otherwise(F.lit(other_risk))).alias("risk"))
            .select(F.concat(F.lit("creator:"), F.col("creator_id")).alias("id"), "risk"))


def entity_risk(spark: SparkSession, edges: DataFrame, vertices: DataFrame, seeds: DataFrame,
                relation_weights: Mapping[str, float], steps: int = 3, decay: float = 0.5) -> DataFrame:
    """``(id, vertex_type, market, risk, risk_content, risk_shelf, hops)`` for every reached vertex or seed.

    ``risk`` uses every weighted relation; ``risk_content`` / ``risk_shelf`` only account relations
    plus the content (resp. shelf) ones. A relation name in ``relation_weights`` must be
    ``edge_type`` (account relations) or ``edge_type/content|shelf``.
    """
    rel = relation_edges(edges, relation_weights)
    present = {r[0] for r in rel.select("relation").distinct().collect()}
    weights = {r: float(w) for r, w in relation_weights.items() if r in present}
    if not weights:
        raise ValueError(f"no edge carries a weighted relation {sorted(relation_weights)}: nothing to propagate over")

    def run(keep: tuple[str, ...] | None) -> DataFrame:
        sub = rel if keep is None else rel.where(~F.col("relation").contains("/") | F.col("relation").endswith(keep[0]))
        ws = {r: w for r, w in weights.items() if keep is None or "/" not in r or r.endswith(keep[0])}
        return propagate_risk(spark, sub, seeds, relation_weights=ws, steps=steps, decay=decay, weight_col=None)

    every = run(None)
    content = run(("/content",)).select("id", F.col("risk").alias("risk_content"))
    shelf = run(("/shelf",)).select("id", F.col("risk").alias("risk_shelf"))
    return (every.join(content, "id", "left").join(shelf, "id", "left")
            .join(vertices.select("id", "vertex_type", "market"), "id", "left")
            .select("id", F.coalesce("vertex_type", F.regexp_extract("id", r"^([^:]+):", 1)).alias("vertex_type"),
                    "market", "risk", F.coalesce("risk_content", F.lit(0.0)).alias("risk_content"),
                    F.coalesce("risk_shelf", F.lit(0.0)).alias("risk_shelf"), "hops"))


def _resource_links(edges: DataFrame) -> DataFrame:
    """``(creator, resource, resource_type, first_ts)``: a creator's use of a device/ip/payout account."""
    return (edges.where((F.col("src_type") == "creator") & F.col("dst_type").isin(*RESOURCE_TYPES))
            .groupBy(F.col("src").alias("creator"), F.col("dst").alias("resource"), F.col("dst_type").alias("resource_type"))
            .agg(F.min("first_ts").alias("first_ts")))


def migration_predictions(spark: SparkSession, edges: DataFrame, creators: DataFrame, banned: DataFrame,
                          resource_weights: Mapping[str, float] = DEFAULT_RESOURCE_WEIGHTS,
                          after_ban_boost: float = 2.0, max_sharers: int = 50, top_k: int = 20) -> DataFrame:
    """Ranked predictions per enforced operator: ``operator_id, prediction, target, score, rank, evidence``.

    * ``creators``: the snapshot (``creator_id, market, status``); ``banned``: ``creator_id,
      banned_at`` (timestamp of the standing ban) -- the enforced accounts.
    * ``prediction`` is ``account`` (target = candidate creator id), ``market`` (ISO code) or
      ``scenario`` (``shelf`` / ``content``): the first ``top_k`` accounts, every market and both
      scenarios, each ranked 1.. by score within the operator.
    * A shared resource counts ``resource_weights[type]``, times ``after_ban_boost`` when the
      candidate first used it after the operator's earliest ban. Resources shared by more than
      ``max_sharers`` creators (NAT, public devices) are ignored.
    """
    if set(resource_weights) - set(RESOURCE_TYPES) or any(w <= 0 for w in resource_weights.values()):
        raise ValueError(f"resource_weights: positive weights for {RESOURCE_TYPES} only, got {dict(resource_weights)}")
    if after_ban_boost < 1 or top_k < 1 or max_sharers < 2:
        raise ValueError("need after_ban_boost >= 1, top_k >= 1, max_sharers >= 2")
    links = _resource_links(edges).where(F.col("resource_type").isin(list(resource_weights)))
    sharers = links.groupBy("resource").agg(F.countDistinct("creator").alias("sharers"))
    links = links.join(sharers.where(F.col("sharers").between(2, max_sharers)), "resource").drop("sharers")
    ban = banned.select(F.concat(F.lit("creator:"), F.col("creator_id")).alias("creator"), "banned_at")
    banned_links = links.join(ban, "creator")
    # Operators: banned accounts connected through any shared (non-hub) resource.
    bb = (banned_links.alias("a").join(banned_links.alias("b"), (F.col("a.resource") == F.col("b.resource"))
                                       & (F.col("a.creator") < F.col("b.creator")))
          .select(F.col("a.creator").alias("src"), F.col("b.creator").alias("dst")).distinct())
    operators = connected_components(spark, ban.select(F.col("creator").alias("id")).distinct(), bb) \
        .select(F.col("id").alias("creator"), F.regexp_extract("component", r"^creator:(.*)$", 1).alias("operator_id"))
    op_ban = (operators.join(ban, "creator").groupBy("operator_id")
              .agg(F.min("banned_at").alias("op_banned_at"), F.count("*").alias("banned_accounts")))
    op_res = (banned_links.join(operators, "creator").select("operator_id", "resource", "resource_type").distinct())
    w = F.create_map(*[x for k, v in resource_weights.items() for x in (F.lit(k), F.lit(float(v)))])
    cand = (links.join(ban.select("creator"), "creator", "left_anti")
            .join(op_res.drop("resource_type"), "resource")
            .join(op_ban, "operator_id")
            .withColumn("after", F.col("first_ts") > F.col("op_banned_at"))
            .withColumn("s", w[F.col("resource_type")] * F.when(F.col("after"), F.lit(after_ban_boost)).otherwise(F.lit(1.0))))
    scored = (cand.groupBy("operator_id", "creator")
              .agg(F.sum("s").alias("score"),
                   F.sum(F.col("after").cast("int")).alias("after_ban"),
                   F.count("*").alias("shared"),
                   F.concat_ws(", ", F.sort_array(F.collect_set("resource_type"))).alias("types")))
    snap = creators.select(F.concat(F.lit("creator:"), F.col("creator_id")).alias("creator"), "market")
    # A candidate's scenario: where it sells -- shelf listings/orders vs videos.
    shelf_w = (edges.where(F.col("src_type") == "creator")
               .groupBy(F.col("src").alias("creator"))
               .agg(F.sum(F.when(F.col("scenario") == "shelf", F.col("weight") + 1)).alias("shelf"),
                    F.sum(F.when(F.col("edge_type") == "posts", F.col("weight"))).alias("content")))
    scored = (scored.join(snap, "creator", "left").join(shelf_w, "creator", "left")
              .withColumn("scenario", F.when(F.coalesce("shelf", F.lit(0)) > F.coalesce("content", F.lit(0)),
                                             F.lit("shelf")).otherwise(F.lit("content"))))
    by_op = Window.partitionBy("operator_id", "prediction").orderBy(F.desc("score"), "target")
    accounts = scored.select(
        "operator_id", F.lit("account").alias("prediction"),
        F.regexp_extract("creator", r"^creator:(.*)$", 1).alias("target"), "score",
        F.concat(F.lit("shares "), F.col("shared").cast("string"), F.lit(" resource(s) ("), F.col("types"),
                 F.lit(") with the operator's banned accounts, "), F.col("after_ban").cast("string"),
                 F.lit(" first used after the ban; market "), F.coalesce("market", F.lit("?")),
                 F.lit(", sells via "), F.col("scenario")).alias("evidence"))
    markets = (scored.groupBy("operator_id", F.coalesce("market", F.lit("unknown")).alias("target"))
               .agg(F.sum("score").alias("score"), F.count("*").alias("n"))
               .select("operator_id", F.lit("market").alias("prediction"), "target", "score",
                       F.concat(F.col("n").cast("string"), F.lit(" candidate account(s) in this market")).alias("evidence")))
    scenarios = (scored.groupBy("operator_id", F.col("scenario").alias("target"))
                 .agg(F.sum("score").alias("score"), F.count("*").alias("n"))
                 .select("operator_id", F.lit("scenario").alias("prediction"), "target", "score",
                         F.concat(F.col("n").cast("string"), F.lit(" candidate account(s) selling via this scenario"))
                         .alias("evidence")))
    ranked = (accounts.unionByName(markets).unionByName(scenarios)
              .withColumn("rank", F.row_number().over(by_op))
              .where((F.col("prediction") != "account") | (F.col("rank") <= top_k)))
    return ranked.join(op_ban, "operator_id").select(
        "operator_id", "banned_accounts", "prediction", "target", F.round("score", 4).alias("score"),
        F.col("rank").cast("int").alias("rank"), "evidence")
