"""The heterogeneous Creator-Product-Video-User graph: built from silver, read back as one graph object.

Why one typed graph instead of one projection per detector: the abuse this platform fights
crosses entity types -- a matrix farm is creators sharing *devices*, *IP /24s* and *payout
accounts*; a fake-engagement ring is *users* acting on *videos* of a few *creators*; a migrated
operator is a banned creator whose devices reappear on new accounts. Every detector is a query over
the same vertices and typed edges (``schemas/graph_edges.py`` lists the relations), so a new
relation is added in one place and every detector can use it.

Build (:func:`build_edges`, :func:`vertices_of`) is per observation day: the day's event partitions
(engagement, logins, withdrawals, video publications) plus, when the day has one, the snapshot
feeds of that day (creators, users, devices, listings). Edges are aggregated per
``(src, dst, edge_type, kind, scenario)`` and day, so a re-run of a day replaces exactly that
day's partition (``jobs/graph_edges.py``) and older days never need recomputing: the graph is
rebuilt incrementally.

Read (:func:`load_graph`) unions the days of a window and folds them into one edge per
``(src, dst, edge_type, kind, scenario)``: weights add up (for snapshot relations that counts the
days the relation was observed), first/last timestamps widen. The result is a
:class:`libs.graph.frame.Graph` -- or GraphFrames' own object when its jar is on the classpath
(:func:`libs.graph.frame.make_graph`).
"""
from __future__ import annotations

import datetime as dt
from typing import Iterable, Mapping

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from libs.graph.frame import Graph, make_graph
from libs.platform import delta_io
from libs.platform.config import Settings
from libs.quality.copies import window_bounds
from schemas import graph_edges as edges_schema
from schemas import graph_vertices as vertices_schema

EDGE_COLUMNS = [f.name for f in edges_schema.SCHEMA.fields]
VERTEX_COLUMNS = [f.name for f in vertices_schema.SCHEMA.fields]
# Where a relation has no scenario of its own (a login, a payout) it is an account relation.
ACCOUNT_SCENARIO = "account"
# Silver feeds the build reads: per-day event feeds and per-day snapshots.
EVENT_FEEDS = ("silver_engagement_events", "silver_videos", "silver_logins", "silver_withdrawals")
SNAPSHOT_FEEDS = ("silver_creators", "silver_users", "silver_devices", "silver_listings")


def vid(vertex_type: str, key: Column | str) -> Column:
    """``"<vertex_type>:<key>"``: one id space for every type (null key -> null id)."""
    key_col = F.col(key) if isinstance(key, str) else key
    return F.when(key_col.isNotNull(), F.concat(F.lit(f"{vertex_type}:"), key_col))


def key_of(id_col: Column | str) -> Column:
    """The natural id back from a vertex id (everything after the first ``:``; keys may contain ``:``)."""
    c = F.col(id_col) if isinstance(id_col, str) else id_col
    return F.regexp_extract(c, r"^[^:]+:(.*)$", 1)


def _edge(df: DataFrame, edge_type: str, src: Column, dst: Column, kind: Column | None = None,
          scenario: Column | None = None, market: Column | None = None, weight: Column | None = None,
          amount: Column | None = None, first_ts: Column | None = None, last_ts: Column | None = None) -> DataFrame:
    """Rows of one relation in the edge layout (not yet aggregated); rows with a null endpoint are dropped
    by the caller and counted (see :func:`build_edges`)."""
    src_type, dst_type, _ = edges_schema.EDGE_TYPES[edge_type]
    ts_first = first_ts if first_ts is not None else F.lit(None).cast("timestamp")
    return df.select(
        src.alias("src"), dst.alias("dst"), F.lit(edge_type).alias("edge_type"),
        F.lit(src_type).alias("src_type"), F.lit(dst_type).alias("dst_type"),
        (kind if kind is not None else F.lit(edge_type)).alias("kind"),
        (scenario if scenario is not None else F.lit(ACCOUNT_SCENARIO)).alias("scenario"),
        (market if market is not None else F.lit(None).cast("string")).alias("market"),
        (weight if weight is not None else F.lit(1.0)).cast("double").alias("weight"),
        (amount if amount is not None else F.lit(None)).cast("double").alias("amount_usd"),
        ts_first.alias("first_ts"),
        (last_ts if last_ts is not None else ts_first).alias("last_ts"),
        F.col("dt"),
    )


def aggregate_edges(rows: DataFrame, by_day: bool = True) -> DataFrame:
    """One edge per ``(src, dst, edge_type, kind, scenario)`` (and ``dt`` when ``by_day``): weights
    and amounts add, times widen.

    ``market`` is the relation's market when it has exactly one; an edge seen from several markets
    (a user engaging while travelling) keeps the smallest code -- markets of vertices are on the
    vertices, the edge's is a hint for per-market propagation.
    """
    keys = ["src", "dst", "edge_type", "src_type", "dst_type", "kind", "scenario"] + (["dt"] if by_day else [])
    return rows.groupBy(*keys).agg(
        F.min("market").alias("market"),
        F.sum("weight").alias("weight"),
        F.sum("amount_usd").alias("amount_usd"),
        F.min("first_ts").alias("first_ts"),
        F.max("last_ts").alias("last_ts"),
    )


def build_edges(events: DataFrame, videos: DataFrame, logins: DataFrame, withdrawals: DataFrame,
              creators: DataFrame | None, users: DataFrame | None, devices: DataFrame | None,
              listings: DataFrame | None) -> tuple[DataFrame, DataFrame]:
    """``(edges, dropped)`` per observation day (``dt``) from the silver rows of those days.

    Every input carries its silver ``dt``, which becomes the edge's day; a snapshot frame is
    ``None`` when no day of the range has a snapshot partition. ``dropped`` has one row per
    relation and kind with the number of source rows that could not become an edge (a null
    endpoint): the build reports them instead of losing them silently.
    """
    ev = events
    has_video = F.col("video_id").isNotNull()
    parts: list[DataFrame] = [
        _edge(videos, "posts", vid("creator", "creator_id"), vid("video", "video_id"),
              kind=F.col("scenario"), scenario=F.col("scenario"), first_ts=F.col("published_at")),
        _edge(videos.where(F.col("product_id").isNotNull()), "features", vid("video", "video_id"),
              vid("product", "product_id"), scenario=F.col("scenario"), first_ts=F.col("published_at")),
        # Engagement on a video (purchases from a video included): the lockstep detectors' input.
        _edge(ev.where(has_video & (F.col("event_type") != "follow")), "engages", vid("user", "user_key"),
              vid("video", "video_id"), kind=F.col("event_type"), scenario=F.col("scenario"),
              market=F.col("market"), amount=F.col("gmv_usd"), first_ts=F.col("ts")),
        _edge(ev.where(F.col("event_type") == "follow"), "follows", vid("user", "user_key"),
              vid("creator", "creator_id"), kind=F.lit("follow"), scenario=F.col("scenario"),
              market=F.col("market"), first_ts=F.col("ts")),
        _edge(ev.where((F.col("event_type") == "purchase") & F.col("product_id").isNotNull()), "buys",
              vid("user", "user_key"), vid("product", "product_id"), kind=F.lit("purchase"),
              scenario=F.col("scenario"), market=F.col("market"),
              weight=F.coalesce(F.col("quantity"), F.lit(1)), amount=F.col("gmv_usd"), first_ts=F.col("ts")),
        _edge(logins, "uses_device", vid("creator", "creator_id"), vid("device", "device_id"),
              market=F.col("geo"), first_ts=F.col("ts")),
        _edge(logins, "logs_in_from", vid("creator", "creator_id"), vid("ip", "ip24"),
              market=F.col("geo"), first_ts=F.col("ts")),
        _edge(withdrawals, "pays_to", vid("creator", "creator_id"), vid("payment", "payment_account_id"),
              kind=F.lit("withdrawal"), amount=F.col("amount_usd"), first_ts=F.col("requested_at")),
    ]
    if creators is not None:
        parts.append(_edge(creators, "pays_to", vid("creator", "creator_id"), vid("payment", "payment_account_id"),
                           kind=F.lit("profile"), market=F.col("market")))
    if users is not None:
        parts.append(_edge(users.where(F.col("creator_id").isNotNull()), "persona_of", vid("user", "user_key"),
                           vid("creator", "creator_id"), market=F.col("market")))
    if devices is not None:
        # The device snapshot carries devices without a login in the window (a banned account's
        # phone): exactly the link a migrated operator leaves, so it is an edge too.
        parts.append(_edge(devices, "uses_device", vid("creator", "creator_id"), vid("device", "device_id"),
                           kind=F.lit("device_snapshot"), market=F.col("geo"), weight=F.lit(0.0),
                           first_ts=F.col("first_seen"), last_ts=F.col("last_seen")))
        parts.append(_edge(devices, "logs_in_from", vid("creator", "creator_id"), vid("ip", "ip24"),
                           kind=F.lit("device_snapshot"), market=F.col("geo"), weight=F.lit(0.0),
                           first_ts=F.col("first_seen"), last_ts=F.col("last_seen")))
    if listings is not None:
        parts.append(_edge(listings, "lists", vid("creator", "creator_id"), vid("product", "product_id"),
                           kind=F.col("listing_status"), scenario=F.lit("shelf"), first_ts=F.col("listed_at")))
    rows = parts[0]
    for p in parts[1:]:
        rows = rows.unionByName(p)
    bad = F.col("src").isNull() | F.col("dst").isNull()
    dropped = rows.where(bad).groupBy("dt", "edge_type", "kind").count().withColumn("reason", F.lit("null endpoint"))
    return aggregate_edges(rows.where(~bad)), dropped


def vertices_of(edges: DataFrame, creators: DataFrame | None, users: DataFrame | None) -> DataFrame:
    """Every endpoint of ``edges`` plus every snapshot creator/user, one row per id and day, with its market.

    A creator's/user's market comes from its snapshot row; other vertices (devices, IPs,
    products, videos) take the smallest market of the edges that touch them -- a hint, e.g. the
    geo an IP /24 was seen from.
    """
    ends = (edges.select(F.col("src").alias("id"), F.col("src_type").alias("vertex_type"), "market", "dt")
            .unionByName(edges.select(F.col("dst").alias("id"), F.col("dst_type").alias("vertex_type"), "market", "dt")))
    known: list[DataFrame] = []
    if creators is not None:
        known.append(creators.select(vid("creator", "creator_id").alias("id"), F.lit("creator").alias("vertex_type"),
                                     F.col("market").alias("known_market"), "dt"))
    if users is not None:
        known.append(users.select(vid("user", "user_key").alias("id"), F.lit("user").alias("vertex_type"),
                                  F.col("market").alias("known_market"), "dt"))
    out = ends.groupBy("id", "vertex_type", "dt").agg(F.min("market").alias("edge_market"))
    if known:
        k = known[0]
        for other in known[1:]:
            k = k.unionByName(other)
        k = (k.where(F.col("id").isNotNull()).groupBy("id", "vertex_type", "dt")
             .agg(F.min("known_market").alias("known_market")))
        out = out.join(k, ["id", "vertex_type", "dt"], "full_outer")
    else:
        out = out.withColumn("known_market", F.lit(None).cast("string"))
    return out.select("id", "vertex_type", key_of("id").alias("key"),
                      F.coalesce("known_market", "edge_market").alias("market"), "dt")


def load_graph(spark: SparkSession, vertices_path: str, edges_path: str, first: str, last: str,
               edge_types: Iterable[str] | None = None, backend: str = "auto") -> Graph:
    """The graph of observation days ``first..last`` (inclusive): edges folded over the days.

    ``edge_types`` restricts the relations (vertices are then the endpoints of those edges plus
    nothing else, so an algorithm never iterates over vertices it cannot reach). A window without
    any edge partition raises: an empty graph from a missing build must not look like a quiet day.
    """
    edges = delta_io.read_dates(spark, edges_path, first, last, "graph_edges")
    if edge_types is not None:
        wanted = list(edge_types)
        unknown = set(wanted) - set(edges_schema.EDGE_TYPES)
        if unknown:
            raise ValueError(f"unknown edge types {sorted(unknown)}; known: {sorted(edges_schema.EDGE_TYPES)}")
        edges = edges.where(F.col("edge_type").isin(wanted))
    if not edges.limit(1).count():
        raise ValueError(f"no graph edges between {first} and {last} in {edges_path}: run graph_edges for those dates")
    folded = aggregate_edges(edges, by_day=False)
    vertices = (delta_io.read_dates(spark, vertices_path, first, last, "graph_vertices")
                .groupBy("id", "vertex_type", "key").agg(F.min("market").alias("market")))
    if edge_types is not None:
        ends = folded.select(F.col("src").alias("id")).union(folded.select(F.col("dst").alias("id"))).distinct()
        vertices = vertices.join(ends, "id", "left_semi")
    return make_graph(vertices, folded, backend=backend)


def load_window(spark: SparkSession, settings: Settings, run_date: dt.date,
                edge_types: Iterable[str] | None = None) -> tuple[str, str, Graph]:
    """``(first, last, graph)``: the graph of the ``graph.lookback_days`` days ending at ``run_date``.

    The one place the graph jobs (syndicates, entity_risk, migration_predictions) turn the run
    date and the setting into a window and read it, so they always look at the same days.
    """
    first, last = window_bounds(run_date, int(settings.section("graph")["lookback_days"]))
    graph = load_graph(spark, settings.table("graph_vertices"), settings.table("graph_edges"), first, last,
                       edge_types=edge_types)
    return first, last, graph


def relation_counts(edges: DataFrame) -> Mapping[str, int]:
    """``edge_type -> rows``: the build's summary line (a handful of scalars)."""
    return {r["edge_type"]: int(r["count"]) for r in edges.groupBy("edge_type").count().collect()}


def engagements(edges: DataFrame) -> DataFrame:
    """``(user_id, creator_id, video_id, kind, ts)`` -- the ring detectors' input -- from typed edges.

    Video engagement reaches its creator through ``posts``; follows name the creator directly
    (``video_id`` null). ``ts`` is the relation's first time in the window (lockstep compares first
    touches). Keys are natural ids (``user_key``, ``creator_id``), as detectors report them.
    """
    posts = edges.where(F.col("edge_type") == "posts").select(F.col("dst").alias("video"), F.col("src").alias("creator"))
    on_video = (edges.where(F.col("edge_type") == "engages")
                .select(F.col("src").alias("user"), F.col("dst").alias("video"), "kind", F.col("first_ts").alias("ts"))
                .join(posts, "video"))
    follows = (edges.where(F.col("edge_type") == "follows")
               .select(F.col("src").alias("user"), F.lit(None).cast("string").alias("video"), "kind",
                       F.col("first_ts").alias("ts"), F.col("dst").alias("creator")))
    both = on_video.unionByName(follows)
    return both.select(key_of("user").alias("user_id"), key_of("creator").alias("creator_id"),
                       key_of("video").alias("video_id"), "kind", "ts")
