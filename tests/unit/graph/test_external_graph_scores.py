"""The external_graph_scores job end to end on a tiny edge list written to tmp_path.

The graph (weights on a -10..10 scale, so the default weight scale is 10):

    x -> b -10, y -> b -10, z -> b +10, x -> q +10, y -> q +10, z -> q +10
    plus z -> q -4 at an earlier ts (re-rated later to +10: collapsed) and a self-loop q -> q.

Every expected value is worked out by hand below; seeds: b bad, x good.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from schemas import external_graph_scores as out_schema

RUN = dt.date(2026, 11, 1)
EDGE_LINES = ["x,b,-10,5", "y,b,-10,5", "z,b,10,5", "x,q,10,6", "y,q,10,6", "z,q,-4,1", "z,q,10,7", "q,q,10,8"]

# PageRank (networkx semantics, alpha 0.85): x, y, z have no in-links, b and q are dangling.
# By symmetry x = y = z = p and b = q = r with 3p + 2r = 1, p = 0.15/5 + 0.85 * 2r/5 and
# r = p + 0.85 * 3p/2  ->  r = 0.455 / 1.51 = 91/302, p = 20/151.
P, R = 20 / 151, 91 / 302
# Fairness-goodness on the scaled weights (test_trust's shill case): x = y = 0.75, z = 0.6;
# goodness b = -0.3, q = 0.7.
# Trust: SybilRank over the positive links x-q, y-q, z-q, z-b (undirected), seed x, n = 5 -> 3 steps.
#   t1: q = 1; t2: x = y = z = 1/3; t3: q = 1/3 + 1/3 + 1/6 = 5/6, b = 1/6, x = y = z = 0.
#   Degree-normalised: q = 5/18 (degree 3), b = 1/6 (degree 1), others 0.
# Risk from b over the same links, decay 0.5, 3 steps (W: x 1, y 1, q 3, z 2, b 1):
#   t1: z = 0.5; t2: z = 0.5, q = 0.5 * 1/2 * 0.5 = 0.125;
#   t3: z = 1 - 0.5 * (1 - 0.5 * 1/3 * 0.125) = 49/96, q = 0.125, x = y = 0.5 * 1/3 * 0.125 = 1/48
#   (q splits its risk over its 3 links).
EXPECTED = [
    # node, in, out, pagerank, fairness, goodness, trust, risk, hops, seed
    ("x", 0, 2, P, 0.75, None, 0.0, 1 / 48, 3, "good"),
    ("y", 0, 2, P, 0.75, None, 0.0, 1 / 48, 3, None),
    ("z", 0, 2, P, 0.6, None, 0.0, 49 / 96, 1, None),
    ("b", 3, 0, R, None, -0.3, 1 / 6, 1.0, 0, "bad"),
    ("q", 3, 0, R, None, 0.7, 5 / 18, 0.125, 2, None),
]
ROW = StructType([StructField("node_id", StringType()), StructField("in_degree", LongType()),
                  StructField("out_degree", LongType()), StructField("pagerank", DoubleType()),
                  StructField("fairness", DoubleType()), StructField("goodness", DoubleType()),
                  StructField("trust", DoubleType()), StructField("risk", DoubleType()),
                  StructField("risk_hops", IntegerType()), StructField("seed_label", StringType())])


def write(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_job_scores_every_node_and_replaces_its_partition(spark, tmp_path: Path, monkeypatch, capsys):
    from jobs import external_graph_scores as job
    from libs.platform import delta_io

    # The job loads its own settings: point its lakehouse (and Spark checkpoints) at tmp_path.
    monkeypatch.setenv("CGOV__LAKEHOUSE_ROOT", str(tmp_path))
    edges = write(tmp_path / "edges.csv", EDGE_LINES)
    seeds = write(tmp_path / "seeds.csv", ["node,label", "b,bad", "x, Good", "ghost,bad"])
    out = str(tmp_path / "scores")
    args = job.arg_parser().parse_args(["--run-date", RUN.isoformat(), "--edges", edges, "--columns",
                                        "src,dst,weight,ts", "--seeds", seeds, "--output", out])
    summary = job.main(**vars(args))
    assert (summary["edges_read"], summary["self_loops_dropped"], summary["duplicate_edges_collapsed"]) == (8, 1, 1)
    assert (summary["nodes"], summary["weight_scale"], summary["rows_written"]) == (5, 10.0, 5)
    assert (summary["seeds_good"], summary["seeds_bad"], summary["seeds_not_in_graph"]) == (1, 1, 1)
    assert "1 self-loop(s) dropped, 1 duplicate(s) collapsed" in capsys.readouterr().out

    written = delta_io.read_dates(spark, out, "2026-11-01", "2026-11-01")
    assert [(f.name, f.dataType) for f in written.schema.fields] == \
        [(f.name, f.dataType) for f in out_schema.SCHEMA.fields]
    # PageRank converges to L1 < n * 1e-6, fairness-goodness to 1e-6: compare within 1e-4.
    assertDataFrameEqual(written.drop("dt"), spark.createDataFrame(EXPECTED, ROW), atol=1e-4)

    # Same date again from a header CSV without weights or seeds: the partition is replaced (not
    # appended) and every score the input cannot support is null.
    plain = write(tmp_path / "plain.csv", ["src,dst"] + [",".join(line.split(",")[:2]) for line in EDGE_LINES])
    again = job.main(RUN, "local", plain, output=out)
    assert (again["duplicate_edges_collapsed"], again["rows_written"]) == (1, 5)
    rows = {r["node_id"]: r for r in delta_io.read_dates(spark, out, "2026-11-01", "2026-11-01").collect()}
    assert sorted(rows) == ["b", "q", "x", "y", "z"]
    assert all(r[c] is None for r in rows.values() for c in ("fairness", "goodness", "trust", "risk", "seed_label"))
    assert rows["q"]["pagerank"] == pytest.approx(R, abs=1e-4)


def test_bad_edge_lists_are_clear_errors(spark, tmp_path: Path, monkeypatch):
    from jobs import external_graph_scores as job

    monkeypatch.setenv("CGOV__LAKEHOUSE_ROOT", str(tmp_path))

    def run(lines, columns=None):
        return job.main(RUN, "local", write(tmp_path / "e.csv", lines), columns=columns, output=str(tmp_path / "o"))

    with pytest.raises(ValueError, match=r"missing column\(s\) \['dst'\].*needs --columns"):
        run(["src,weight", "a,1"])
    with pytest.raises(ValueError, match=r"needs --columns"):
        run(["a,b,1", "b,c,2"])                       # headerless file without --columns
    with pytest.raises(ValueError, match=r"non-numeric weight, e.g. \['high'\]"):
        run(["src,dst,weight", "a,b,1", "b,c,high"])
    with pytest.raises(ValueError, match="different weights and no ts"):
        run(["src,dst,weight", "a,b,1", "a,b,-1"])
    with pytest.raises(ValueError, match="file has 3 column"):
        run(["a,b,1"], columns="src,dst")
    with pytest.raises(ValueError, match="empty src or dst"):
        run(["src,dst", "a,", "b,c"])
    seeds = write(tmp_path / "s.csv", ["node,label", "a,evil"])
    with pytest.raises(ValueError, match="labels must be one of"):
        job.main(RUN, "local", write(tmp_path / "ok.csv", ["src,dst", "a,b"]), seeds=seeds, output=str(tmp_path / "o"))
