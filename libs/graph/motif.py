"""Motif finding (GraphFrames' ``GraphFrame.find``) as plain DataFrame joins.

The graph follows GraphFrames' data model: a vertices DataFrame with an ``id`` column plus any
attributes, and an edges DataFrame with ``src`` and ``dst`` plus any attributes.

Pattern language (GraphFrames' motif DSL)
-----------------------------------------
A pattern is one or more *terms* separated by ``;``. A term is

* an edge ``(a)-[e]->(b)``: an edge ``e`` from vertex ``a`` to vertex ``b``;
* a lone vertex ``(a)``: every vertex of the graph, bound to ``a``;
* a negated edge ``!(a)-[]->(b)``: there is *no* edge from ``a`` to ``b``.

Names match ``[A-Za-z0-9_]+``; whitespace between tokens is ignored. Vertices and edges may be
anonymous (``()`` / ``[]``): they constrain the match but get no output column. A vertex name
used in several terms binds to the same vertex in all of them (that is how paths, cycles and
self-loops are written). The result has one struct column per named element, in order of first
appearance (``(a)-[e]->(b)`` gives ``a, e, b``): a vertex struct holds every vertex column
(``a.id``, ``a.<attr>``), an edge struct every edge column (``e.src``, ``e.dst``, ``e.<attr>``).

Rejected, as GraphFrames rejects them (``ValueError`` quoting the offending term): syntax errors,
an empty pattern or empty term, a lone ``()``, a completely anonymous ``()-[]->()`` (negated or
not), a negated *named* edge, an edge name used twice, a name used for both a vertex and an edge.
Additionally a named vertex of a negated term must be bound by some positive term: "no edge from
``a`` to some unconstrained ``b``" has no finite, meaningful answer as a match table.

Semantics worth knowing
-----------------------
* It is a homomorphism search, like GraphFrames: two *different* names may bind the same vertex
  (``(a)-[]->(b); (b)-[]->(c)`` matches ``x->y->x``). Filter ``a.id != c.id`` if you need that.
* Matches are a bag: duplicate edges (parallel ``src -> dst`` rows) give duplicate matches, as in
  GraphFrames. Negation removes matches with a left-anti join and so keeps the surviving
  duplicates (GraphFrames uses ``EXCEPT``, which would also collapse them; we do not silently
  dedup).
* A named vertex must exist in the vertices DataFrame (inner join, as in GraphFrames); an
  anonymous endpoint is not checked against it, so edges to dangling ids still count there.
* Terms are joined in pattern order, but negations are applied after all positive terms, so a
  negation may mention a vertex bound by a later term (GraphFrames would fail on that order).

Plan shape
----------
Matching works on internal id columns only: each edge term contributes just the ``src``/``dst``
ids it needs (plus the flat columns of a *named* edge, which are the payload). Vertex attributes
are joined once per named vertex at the very end, and structs are assembled in the last select.
This keeps the intermediate rows narrow through what is typically a chain of shuffling joins.
The only Python loops are over pattern terms, never over data.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

__all__ = ["find"]

ID = "id"
SRC = "src"
DST = "dst"

_NAME = r"[A-Za-z0-9_]*"
_VERTEX = rf"\(\s*({_NAME})\s*\)"
_EDGE_RE = re.compile(rf"^(!?)\s*{_VERTEX}\s*-\s*\[\s*({_NAME})\s*\]\s*->\s*{_VERTEX}$")
_LONE_VERTEX_RE = re.compile(rf"^{_VERTEX}$")

# Internal column names contain '#', which pattern names ([A-Za-z0-9_]+) cannot, so they never
# collide with the output columns or with one another.
_PREFIX = "_m#"


@dataclass(frozen=True)
class _Vertex:
    """A vertex slot of a term; ``name`` is None for an anonymous ``()``."""

    name: str | None


@dataclass(frozen=True)
class _LoneVertex:
    """A term that is a single named vertex ``(a)``: binds ``a`` to every vertex."""

    name: str | None
    text: str  # the term as written, for error messages


@dataclass(frozen=True)
class _Edge:
    """An edge term ``(src)-[name]->(dst)``, possibly negated with a leading ``!``."""

    src: _Vertex
    name: str | None
    dst: _Vertex
    negated: bool
    text: str  # the term as written, for error messages


_Term = _LoneVertex | _Edge


def _quote(column: str) -> str:
    """Backtick-quote a column name so dots in source column names are not read as nesting."""
    return "`" + column.replace("`", "``") + "`"


def _vid(name: str) -> str:
    """Internal id column of the named vertex ``name`` in the match table."""
    return f"{_PREFIX}v#{name}"


def _vstruct(name: str) -> str:
    """Internal struct column of the named vertex ``name`` (once its attributes are joined)."""
    return f"{_PREFIX}vs#{name}"


def _ecol(name: str, index: int) -> str:
    """Internal flat column holding the ``index``-th edge column of the named edge ``name``."""
    return f"{_PREFIX}e#{name}#{index}"


def _bad(term: str, pattern: str, why: str) -> ValueError:
    return ValueError(f"Invalid motif term {term!r} in pattern {pattern!r}: {why}")


def _parse(pattern: str) -> list[_Term]:
    """Split the pattern into terms and parse each; syntax errors name the offending term."""
    if not isinstance(pattern, str):
        raise TypeError(f"Motif pattern must be a string, got {type(pattern).__name__}")
    if not pattern.strip():
        raise ValueError(f"Empty motif pattern {pattern!r}: give at least one term such as '(a)-[e]->(b)'")
    terms: list[_Term] = []
    # ';' cannot occur inside a valid term, so a plain split is an exact tokenisation.
    for raw in pattern.split(";"):
        text = raw.strip()
        if not text:
            raise _bad(raw, pattern, "empty term (stray ';'?)")
        edge = _EDGE_RE.match(text)
        if edge:
            bang, src, name, dst = edge.groups()
            terms.append(
                _Edge(_Vertex(src or None), name or None, _Vertex(dst or None), bool(bang), text)
            )
            continue
        vertex = _LONE_VERTEX_RE.match(text)
        if vertex:
            terms.append(_LoneVertex(vertex.group(1) or None, text))
            continue
        raise _bad(
            text,
            pattern,
            "syntax error; expected '(v)', '(u)-[e]->(v)' or '!(u)-[]->(v)' with names made of "
            "letters, digits and '_' (or empty for anonymous)",
        )
    return terms


def _validate(terms: list[_Term], pattern: str) -> None:
    """Reject patterns GraphFrames rejects, plus negations over vertices no positive term binds."""
    vertex_names: set[str] = set()
    edge_names: set[str] = set()
    for term in terms:
        if isinstance(term, _LoneVertex):
            if term.name is None:
                raise _bad(
                    term.text, pattern,
                    "a lone anonymous vertex matches nothing specific; use the vertices DataFrame",
                )
            if term.name in edge_names:
                raise _bad(term.text, pattern, f"name {term.name!r} is already used for an edge")
            vertex_names.add(term.name)
            continue
        if term.src.name is None and term.dst.name is None and term.name is None:
            raise _bad(
                term.text, pattern,
                "completely anonymous edge terms are not supported; use the edges DataFrame",
            )
        if term.negated and term.name is not None:
            raise _bad(term.text, pattern, "negated terms cannot name their edge; use '[]'")
        if term.name is not None:
            if term.name in edge_names:
                raise _bad(term.text, pattern, f"edge name {term.name!r} is used more than once")
            if term.name in vertex_names:
                raise _bad(term.text, pattern, f"name {term.name!r} is already used for a vertex")
            edge_names.add(term.name)
        for v in (term.src, term.dst):
            if v.name is not None:
                if v.name in edge_names:
                    raise _bad(term.text, pattern, f"name {v.name!r} is already used for an edge")
                vertex_names.add(v.name)

    positive: set[str] = set()
    for term in terms:
        if isinstance(term, _LoneVertex):
            if term.name is not None:
                positive.add(term.name)
        elif not term.negated:
            positive.update(v.name for v in (term.src, term.dst) if v.name is not None)
    for term in terms:
        if isinstance(term, _Edge) and term.negated:
            unbound = [v.name for v in (term.src, term.dst) if v.name is not None and v.name not in positive]
            if unbound:
                raise _bad(
                    term.text, pattern,
                    f"vertex {unbound[0]!r} of a negated term must also appear in a positive term",
                )


def _output_names(terms: list[_Term]) -> list[tuple[str, bool]]:
    """Named elements in order of first appearance as ``(name, is_edge)``; edges sit between
    their endpoints, matching GraphFrames' column order."""
    seen: dict[str, bool] = {}
    for term in terms:
        slots: list[tuple[str | None, bool]]
        if isinstance(term, _LoneVertex):
            slots = [(term.name, False)]
        else:
            slots = [(term.src.name, False), (term.name, True), (term.dst.name, False)]
        for name, is_edge in slots:
            if name is not None and name not in seen:
                seen[name] = is_edge
    return list(seen.items())


def _endpoint_frame(
    edges: DataFrame, term: _Edge, bound: set[str], tag: str
) -> tuple[DataFrame, list[Column], list[str], list[str]]:
    """Project the edges to what one edge term needs.

    Returns the projected edges, the join conditions against already bound vertices, the
    temporary columns to drop after that join, and the vertex names this term newly binds.
    A self-loop term ``(a)-[]->(a)`` is filtered here to ``src = dst`` and then binds ``a`` once.
    """
    e = edges
    endpoints: list[tuple[_Vertex, str, str]] = [(term.src, SRC, "src"), (term.dst, DST, "dst")]
    if term.src.name is not None and term.src.name == term.dst.name:
        e = e.where(F.col(SRC) == F.col(DST))
        endpoints = endpoints[:1]

    cols: list[Column] = []
    conds: list[Column] = []
    temps: list[str] = []
    newly: list[str] = []
    for vertex, source_col, role in endpoints:
        if vertex.name is None:
            continue  # anonymous endpoint: no constraint beyond the edge existing
        if vertex.name in bound or term.negated:
            tmp = f"{_PREFIX}{tag}#{role}"
            cols.append(F.col(source_col).alias(tmp))
            conds.append(F.col(_vid(vertex.name)) == F.col(tmp))
            temps.append(tmp)
        else:
            cols.append(F.col(source_col).alias(_vid(vertex.name)))
            newly.append(vertex.name)
    if term.name is not None and not term.negated:
        cols.extend(F.col(_quote(c)).alias(_ecol(term.name, i)) for i, c in enumerate(edges.columns))
    return e.select(*cols), conds, temps, newly


def _check_inputs(vertices: DataFrame, edges: DataFrame) -> None:
    if ID not in vertices.columns:
        raise ValueError(f"vertices DataFrame needs an {ID!r} column; it has {vertices.columns}")
    missing = [c for c in (SRC, DST) if c not in edges.columns]
    if missing:
        raise ValueError(f"edges DataFrame needs columns {missing}; it has {edges.columns}")


def find(vertices: DataFrame, edges: DataFrame, pattern: str) -> DataFrame:
    """All matches of a GraphFrames motif ``pattern`` in the graph ``(vertices, edges)``.

    One row per match (a bag: parallel edges give repeated matches); one struct column per named
    vertex or edge, in order of first appearance in ``pattern``. See the module docstring for the
    pattern language and its exact semantics.

    Raises:
        ValueError: malformed or unsupported pattern (the message quotes the offending term), or
            inputs missing ``id`` / ``src`` / ``dst``.
    """
    terms = _parse(pattern)
    _validate(terms, pattern)
    _check_inputs(vertices, edges)

    positive_edge_vertices = {
        v.name
        for t in terms
        if isinstance(t, _Edge) and not t.negated
        for v in (t.src, t.dst)
        if v.name is not None
    }

    match: DataFrame | None = None
    bound: set[str] = set()
    # Lone vertices not touched by any edge term are cross-joined with the full vertex table;
    # their struct is built right there so the final attribute join can skip them.
    with_struct: set[str] = set()

    for k, term in enumerate(terms):
        if isinstance(term, _LoneVertex):
            name = term.name
            assert name is not None  # _validate rejects a lone '()'
            if name in bound or name in positive_edge_vertices:
                continue  # an edge term binds it (and the final join checks it exists)
            all_vertices = vertices.select(
                F.col(ID).alias(_vid(name)),
                F.struct(*[F.col(_quote(c)).alias(c) for c in vertices.columns]).alias(_vstruct(name)),
            )
            match = all_vertices if match is None else match.crossJoin(all_vertices)
            bound.add(name)
            with_struct.add(name)
            continue
        if term.negated:
            continue  # applied below, once every positive term has bound its vertices

        part, conds, temps, newly = _endpoint_frame(edges, term, bound, f"t{k}")
        if match is None:
            match = part
        elif conds:
            match = match.join(part, reduce(lambda x, y: x & y, conds), "inner").drop(*temps)
        else:
            # Disconnected component of the pattern: every combination is a match.
            match = match.crossJoin(part)
        bound.update(newly)

    assert match is not None  # a valid pattern has at least one positive term

    for k, term in enumerate(terms):
        if isinstance(term, _Edge) and term.negated:
            # Left-anti (not EXCEPT) so surviving duplicate matches are kept, not collapsed.
            part, conds, _, _ = _endpoint_frame(edges, term, bound, f"n{k}")
            match = match.join(part, reduce(lambda x, y: x & y, conds), "left_anti")

    outputs = _output_names(terms)
    for name, is_edge in outputs:
        if is_edge or name in with_struct:
            continue
        key = f"{_PREFIX}k#{name}"
        attrs = vertices.select(
            F.col(ID).alias(key),
            F.struct(*[F.col(_quote(c)).alias(c) for c in vertices.columns]).alias(_vstruct(name)),
        )
        match = match.join(attrs, F.col(_vid(name)) == F.col(key), "inner").drop(key)

    final: list[Column] = []
    for name, is_edge in outputs:
        if is_edge:
            fields = [F.col(_ecol(name, i)).alias(c) for i, c in enumerate(edges.columns)]
            final.append(F.struct(*fields).alias(name))
        else:
            final.append(F.col(_vstruct(name)).alias(name))
    return match.select(*final)
