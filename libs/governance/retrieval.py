"""Policy-clause retrieval: Okapi BM25, dense cosine (all-MiniLM-L6-v2), and their RRF fusion.

Why two retrievers: the governance agent turns evidence ("12 accounts share one payout
account", "video is a screen recording of another creator's post") into a query and must cite
the clauses that govern it. Lexical matching (BM25) is precise when the evidence uses the
policy's own words ("slideshow", "payout account") but blind to paraphrase; the sentence encoder
finds paraphrases ("selling my account" ~ "transfer of ownership for money") but can rank a
clause about a neighbouring concept too high. Reciprocal-rank fusion (Cormack et al., 2009)
combines the two *rankings* -- not their scores, which live on incomparable scales -- so a
clause near the top of either list surfaces, and one near the top of both wins.

Why the index can be serialised (:meth:`PolicyIndex.to_rows` / :meth:`PolicyIndex.from_rows`):
a Spark job embeds the corpus once on the driver, writes it as a Delta table, and executors
rebuild the index from that table instead of re-embedding per task. Each row records the
encoder's ``model_id``; :meth:`PolicyIndex.from_rows` refuses rows embedded by another model,
because comparing a query vector with document vectors from a different embedding space gives
confident-looking nonsense rather than an error.

Sizes: a policy corpus is tens to a few hundred clauses, so everything here is a dense numpy
array held in memory (term-frequency matrix ``n_docs x vocab``, embeddings ``n_docs x 384``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Protocol, Sequence

import numpy as np
import pandas as pd

CHUNK_COLUMNS = ("chunk_id", "clause_id", "violation_type", "severity", "title", "text")
# Spark DDL of one to_rows() row, for the job that stores the index as a Delta table.
INDEX_ROW_SCHEMA = ("chunk_id string, clause_id string, violation_type string, severity string, "
                    "title string, text string, embedding array<float>, corpus_version string, "
                    "model_id string")
MODES = ("hybrid", "dense", "bm25")
K_RRF = 60            # RRF constant from Cormack et al. (2009); damps the weight of top ranks
_NORM_TOL = 1e-3      # |norm - 1| above this means the vector was not L2-normalised

# --------------------------------------------------------------------------------------------
# Tokeniser
# --------------------------------------------------------------------------------------------

# Unicode letters and digits; underscore splits (``[^\W_]`` = \w minus "_"): evidence text names
# signals in snake_case ("copied_video_share"), and policy prose never contains such identifiers,
# so an unsplit identifier could never match while its parts ("copi", "video", "share") can.
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Function words only: they occur in every clause, carry no policy meaning, and would otherwise
# add small noisy scores to every document. Deliberately short -- words such as "not", "own",
# "other", "same" or "new" can matter in policy language ("another creator's video",
# "new accounts") and are kept.
STOP_WORDS = frozenset("""
a an and are as at be been being but by can could did do does for from had has have he her his
i if in into is it its me my of on or our she so such than that the their them then there these
they this those to was we were what when where which who will with would you your
""".split())
_VOWELS = set("aeiouy")
_NO_UNDOUBLE = set("lsz")  # "sell", "miss", "buzz": the doubled letter belongs to the stem


def _has_vowel(s: str) -> bool:
    return any(c in _VOWELS for c in s)


def stem(word: str) -> str:
    """Light, conservative English suffix stripping (a much-reduced Porter step 1 + final e).

    Why stem at all: clause text and evidence-derived queries inflect the same concept
    differently ("reposts"/"reposting"/"reposted", "accounts"/"account", "licensed"/"licence
    holder"), and an unstemmed BM25 would miss those matches entirely.

    Why not full Porter/Snowball: those conflate unrelated policy terms ("general"/"generate"
    -> "gener", "organ"/"organization") and would add a dependency. Here only inflections are
    removed, and only when a plausible stem (>= 3 letters containing a vowel) remains:

    1. plural: ``-ies`` -> ``-y``; ``-sses`` -> ``-ss``; ``-es`` after s/x/z/ch/sh; else a final
       ``-s`` unless the word ends in ss/us/is ("status", "analysis", "class" stay);
    2. ``-ing`` / ``-ed`` (not ``-eed``: "need", "feed"); a doubled final consonant left behind
       is undoubled ("banned" -> "ban", "shipping" -> "ship"; not l/s/z: "selling" -> "sell");
    3. a final ``-e`` (not ``-ee``) on words of 4+ letters, so "create"/"created"/"creating"
       all become "creat" and "license"/"licensed"/"licensing" become "licens".

    Known misses, accepted: irregular forms ("made"/"make", "sold"/"sell") are not unified.
    """
    w = word
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif len(w) > 4 and w.endswith("es") and (w[-3] in "sxz" or w[-4:-2] in ("ch", "sh")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix in ("ing", "ed"):
        if w.endswith(suffix) and not w.endswith("eed"):
            base = w[: -len(suffix)]
            if len(base) >= 3 and _has_vowel(base):
                if len(base) >= 4 and base[-1] == base[-2] and base[-1] not in _VOWELS | _NO_UNDOUBLE:
                    base = base[:-1]
                w = base
            break
    if len(w) >= 4 and w.endswith("e") and not w.endswith("ee"):
        w = w[:-1]
    return w


def tokenize(text: str) -> list[str]:
    """Lower-case unicode word tokens, stop words dropped, each lightly stemmed (:func:`stem`).

    Tokens are runs of unicode letters/digits, so accented and non-Latin words survive;
    punctuation, apostrophes and underscores split words, and one-character tokens are dropped, so
    "creator's" -> ["creator"].
    """
    if not isinstance(text, str):
        raise TypeError(f"tokenize() needs a string, got {type(text).__name__}")
    return [stem(t) for t in _WORD.findall(text.lower()) if t not in STOP_WORDS and len(t) > 1]


# --------------------------------------------------------------------------------------------
# BM25
# --------------------------------------------------------------------------------------------


class BM25:
    """Okapi BM25 over a fixed document set.

    ``score(D, Q) = sum_{t in set(Q)} idf(t) * tf(t, D) * (k1 + 1) /
    (tf(t, D) + k1 * (1 - b + b * |D| / avgdl))`` with
    ``idf(t) = ln((N - n_t + 0.5) / (n_t + 0.5) + 1)``.

    The ``+ 1`` inside the log (Lucene's form) keeps idf positive for terms in more than half
    the documents; the classic Robertson form goes negative there, so a query word that is
    common in the corpus would *lower* a matching clause's score. Each distinct query term
    counts once: a query built from templated evidence may repeat words, and repetition should
    not reweight them. ``k1`` (term-frequency saturation) and ``b`` (length normalisation) are
    the usual defaults.
    """

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        if not (k1 >= 0 and math.isfinite(k1)):
            raise ValueError(f"k1 must be a finite number >= 0, got {k1}")
        if not 0.0 <= b <= 1.0:
            raise ValueError(f"b must be in [0, 1], got {b}")
        self.k1 = float(k1)
        self.b = float(b)
        self.vocab: dict[str, int] = {}
        self._tf = np.zeros((0, 0), dtype=np.float64)
        self._idf = np.zeros(0, dtype=np.float64)
        self._denom_len = np.zeros(0, dtype=np.float64)

    def fit(self, texts: Sequence[str]) -> "BM25":
        """Index ``texts`` (one per document); returns ``self``."""
        if isinstance(texts, str):
            raise TypeError("fit() takes a sequence of documents, not a single string")
        docs = [tokenize(t) for t in texts]
        if not docs:
            raise ValueError("BM25.fit() needs at least one document")
        vocab: dict[str, int] = {}
        for doc in docs:
            for t in doc:
                vocab.setdefault(t, len(vocab))
        tf = np.zeros((len(docs), len(vocab)), dtype=np.float64)
        for i, doc in enumerate(docs):
            for t in doc:
                tf[i, vocab[t]] += 1.0
        n_docs = len(docs)
        df = (tf > 0).sum(axis=0)
        lengths = tf.sum(axis=1)
        avgdl = lengths.mean()
        # All-empty documents (avgdl 0): every tf is 0 and every score 0 whatever the length
        # term, so use ratio 1 instead of dividing by zero.
        rel_len = lengths / avgdl if avgdl > 0 else np.ones_like(lengths)
        self.vocab = vocab
        self._tf = tf
        self._idf = np.log((n_docs - df + 0.5) / (df + 0.5) + 1.0)
        self._denom_len = self.k1 * (1.0 - self.b + self.b * rel_len)
        return self

    @property
    def n_docs(self) -> int:
        return int(self._tf.shape[0])

    def idf(self, term: str) -> float:
        """idf of an already-tokenised term (0.0 if it is not in the corpus)."""
        j = self.vocab.get(term)
        return 0.0 if j is None else float(self._idf[j])

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query``: float64 array of length ``n_docs``."""
        if self._tf.shape[0] == 0:
            raise ValueError("BM25 is not fitted; call fit(texts) first")
        cols = sorted({self.vocab[t] for t in tokenize(query) if t in self.vocab})
        out = np.zeros(self.n_docs, dtype=np.float64)
        for j in cols:
            tf = self._tf[:, j]
            out += self._idf[j] * tf * (self.k1 + 1.0) / (tf + self._denom_len)
        return out


# --------------------------------------------------------------------------------------------
# Index
# --------------------------------------------------------------------------------------------


class TextEncoder(Protocol):
    """What the index needs from an encoder (:class:`libs.governance.embedding.Encoder`)."""

    model_id: str
    dim: int

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray: ...


@dataclass(frozen=True)
class Hit:
    """One retrieved clause. ``score``: cosine (dense), BM25 score (bm25) or RRF score (hybrid);
    ``rank``: 1-based position in the returned list."""

    chunk_id: str
    clause_id: str
    violation_type: str
    score: float
    rank: int


def _competition_ranks(scores: np.ndarray) -> np.ndarray:
    """1-based "1224" ranks, higher score first; equal scores share the best rank.

    Why shared ranks for RRF: BM25 gives every clause without a query word the same score 0.
    Ranking those ties by id would hand some of them a larger RRF share for no reason; with
    shared ranks, equal evidence contributes equally.
    """
    # rank = 1 + (number of strictly higher scores); searchsorted on the ascending sort counts
    # the scores <= each value.
    higher = len(scores) - np.searchsorted(np.sort(scores), scores, side="right")
    return (higher + 1).astype(np.int64)


def rrf_scores(rankings: Sequence[np.ndarray], k_rrf: int = K_RRF) -> np.ndarray:
    """Reciprocal-rank fusion: ``sum_r 1 / (k_rrf + rank_r(d))`` over 1-based rank arrays."""
    if not rankings:
        raise ValueError("rrf_scores() needs at least one ranking")
    return np.sum([1.0 / (k_rrf + np.asarray(r, dtype=np.float64)) for r in rankings], axis=0)


def _normalised(emb: np.ndarray, what: str) -> np.ndarray:
    emb = np.asarray(emb, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1)
    if emb.size and (not np.all(np.isfinite(emb)) or np.any(norms == 0)):
        raise ValueError(f"{what}: embeddings contain zero or non-finite vectors")
    # Cosine = dot product only for unit vectors; renormalising is a no-op for a correct encoder
    # and keeps a slightly-off one (float16 storage, another library) from skewing scores.
    return (emb / norms[:, None]).astype(np.float32) if emb.size else emb


class PolicyIndex:
    """Searchable policy clauses: BM25 + dense embeddings over one chunk per clause.

    Chunks are held sorted by ``chunk_id``, and every ranking breaks score ties by that order,
    so the same query on the same corpus always returns the same list.
    """

    def __init__(self, chunks: pd.DataFrame, embeddings: np.ndarray, encoder: TextEncoder,
                 corpus_version: str | None = None) -> None:
        """Prefer :meth:`build` or :meth:`from_rows`; this trusts its (already checked) inputs."""
        self._chunks = chunks.reset_index(drop=True)
        self._emb = embeddings
        self._encoder = encoder
        self.corpus_version = corpus_version
        self.model_id: str = encoder.model_id
        self._bm25 = BM25().fit(self._chunks["text"].tolist())
        self._ids = self._chunks["chunk_id"].to_numpy()
        self._types = self._chunks["violation_type"].to_numpy()
        # Query embeddings encoded ahead by prime(): one batched encoder call for many queries is
        # ~30x cheaper per query than one call each (the agent explains creators in batches).
        self._primed: dict[str, np.ndarray] = {}

    # -- construction -------------------------------------------------------------------------

    @staticmethod
    def _check_chunks(chunks: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(chunks, pd.DataFrame):
            raise TypeError(f"chunks must be a pandas DataFrame, got {type(chunks).__name__}")
        missing = [c for c in CHUNK_COLUMNS if c not in chunks.columns]
        if missing:
            raise ValueError(f"chunks are missing columns {missing}; need {list(CHUNK_COLUMNS)}")
        if chunks.empty:
            raise ValueError("chunks are empty: nothing to index")
        df = chunks.loc[:, list(CHUNK_COLUMNS)].copy()
        for c in CHUNK_COLUMNS:
            bad = df[c].map(lambda v: not isinstance(v, str) or not v.strip())
            if bad.any():
                raise ValueError(f"column {c!r} has null/blank/non-string values at rows "
                                 f"{df.index[bad].tolist()[:5]}")
        dup = df["chunk_id"][df["chunk_id"].duplicated()].unique().tolist()
        if dup:
            raise ValueError(f"duplicate chunk_id values: {dup[:5]}")
        return df

    @classmethod
    def build(cls, chunks: pd.DataFrame, encoder: TextEncoder, corpus_version: str | None = None,
              batch_size: int = 64) -> "PolicyIndex":
        """Index ``chunks`` (columns :data:`CHUNK_COLUMNS`), embedding ``text`` with ``encoder``."""
        df = cls._check_chunks(chunks).sort_values("chunk_id", kind="stable").reset_index(drop=True)
        emb = np.asarray(encoder.encode(df["text"].tolist(), batch_size=batch_size))
        if emb.shape != (len(df), encoder.dim):
            raise ValueError(f"encoder returned shape {emb.shape}, expected {(len(df), encoder.dim)}")
        return cls(df, _normalised(emb, "encoder output"), encoder, corpus_version)

    def to_rows(self, version: str) -> list[dict[str, Any]]:
        """One dict per chunk (see :data:`INDEX_ROW_SCHEMA`), to store the index as a table."""
        if not isinstance(version, str) or not version.strip():
            raise ValueError("to_rows() needs the corpus version the index was built from")
        rows = []
        for rec, vec in zip(self._chunks.to_dict("records"), self._emb):
            rec = {c: rec[c] for c in CHUNK_COLUMNS}
            # float32 -> Python float is exact, and Spark's array<float> stores it back exactly,
            # so from_rows() rebuilds bit-identical vectors.
            rec["embedding"] = [float(x) for x in vec]
            rec["corpus_version"] = version
            rec["model_id"] = self.model_id
            rows.append(rec)
        return rows

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any] | Any], encoder: TextEncoder) -> "PolicyIndex":
        """Rebuild an index from :meth:`to_rows` output (dicts, or Spark ``Row`` objects).

        Raises ValueError if any row was embedded by a model other than ``encoder`` (different
        ``model_id``) or has an embedding of the wrong dimension, or if the rows mix corpus
        versions: each would make search results silently wrong.
        """
        recs = [r.asDict() if hasattr(r, "asDict") else dict(r) for r in rows]
        if not recs:
            raise ValueError("from_rows() got no rows")
        for key in ("embedding", "corpus_version", "model_id"):
            if any(key not in r for r in recs):
                raise ValueError(f"rows lack {key!r}; were they written by PolicyIndex.to_rows()?")
        foreign = sorted({str(r["model_id"]) for r in recs} - {encoder.model_id})
        if foreign:
            raise ValueError(f"index rows were embedded with {foreign}, but the encoder is "
                             f"{encoder.model_id!r}; re-embed the corpus with this encoder")
        bad_dim = sorted({len(r["embedding"] or []) for r in recs} - {encoder.dim})
        if bad_dim:
            raise ValueError(f"index rows have embedding dimension(s) {bad_dim}, encoder has {encoder.dim}")
        versions = sorted({str(r["corpus_version"]) for r in recs})
        if len(versions) != 1:
            raise ValueError(f"index rows mix corpus versions {versions}")
        df = cls._check_chunks(pd.DataFrame.from_records(recs))
        df["_emb"] = [r["embedding"] for r in recs]
        df = df.sort_values("chunk_id", kind="stable").reset_index(drop=True)
        emb = _normalised(np.array(df.pop("_emb").tolist(), dtype=np.float32), "index rows")
        return cls(df, emb, encoder, versions[0])

    # -- queries ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._chunks)

    @property
    def chunks(self) -> pd.DataFrame:
        """A copy of the indexed chunks (sorted by chunk_id)."""
        return self._chunks.copy()

    @property
    def clause_ids(self) -> frozenset[str]:
        return frozenset(self._chunks["clause_id"])

    def _candidates(self, violation_types: Iterable[str] | None) -> np.ndarray:
        if violation_types is None:
            return np.arange(len(self._chunks))
        if isinstance(violation_types, str):
            violation_types = [violation_types]
        wanted = set(violation_types)
        if not wanted:
            raise ValueError("violation_types is empty; pass None to search every clause")
        unknown = sorted(wanted - set(self._types))
        if unknown:
            # A typo'd type would otherwise silently return nothing.
            raise ValueError(f"no clause has violation_type {unknown}; indexed types: "
                             f"{sorted(set(self._types))}")
        return np.flatnonzero(np.isin(self._types, list(wanted)))

    def prime(self, queries: Iterable[str], batch_size: int = 64, max_cached: int = 100_000) -> int:
        """Encode ``queries`` in batches now so later :meth:`search` calls skip the encoder; returns
        how many were newly encoded. The cache is dropped whole when it would exceed ``max_cached``.
        Results are identical with or without priming (same encoder, same normalisation)."""
        new = sorted({q for q in queries if isinstance(q, str) and q.strip()} - self._primed.keys())
        if not new:
            return 0
        if len(self._primed) + len(new) > max_cached:
            self._primed.clear()
        emb = _normalised(np.asarray(self._encoder.encode(new, batch_size=batch_size)), "query embeddings")
        self._primed.update(zip(new, emb))
        return len(new)

    def search(self, query: str, k: int = 3, mode: str = "hybrid",
               violation_types: Iterable[str] | None = None) -> list[Hit]:
        """Top-``k`` clauses for ``query``, best first.

        ``mode``: ``"dense"`` (cosine of normalised embeddings), ``"bm25"``, or ``"hybrid"``
        (RRF with ``k_rrf = 60`` over the full dense and BM25 rankings of the candidates, ties
        sharing a rank). ``violation_types`` restricts the candidates to those types (BM25 idf
        still comes from the whole corpus, so scores do not depend on the filter).

        In ``"bm25"`` mode clauses scoring 0 (no query word in common) are not returned, so
        fewer than ``k`` hits is possible: a zero-score "match" would be an arbitrary clause.
        Score ties are broken by ``chunk_id``.
        """
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-blank string")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        cand = self._candidates(violation_types)
        if mode in ("dense", "hybrid"):
            q = self._primed.get(query)
            if q is None:
                q = _normalised(np.asarray(self._encoder.encode([query])).reshape(1, -1), "query embedding")[0]
            dense = (self._emb[cand] @ q).astype(np.float64)
        if mode in ("bm25", "hybrid"):
            lexical = self._bm25.scores(query)[cand]
        if mode == "dense":
            scores = dense
        elif mode == "bm25":
            keep = lexical > 0
            cand, scores = cand[keep], lexical[keep]
        else:
            scores = rrf_scores([_competition_ranks(dense), _competition_ranks(lexical)])
        # cand is in chunk_id order, so a stable sort on -score breaks ties by chunk_id.
        order = np.argsort(-scores, kind="stable")[:k]
        return [Hit(chunk_id=str(self._ids[cand[i]]),
                    clause_id=str(self._chunks.at[int(cand[i]), "clause_id"]),
                    violation_type=str(self._types[cand[i]]),
                    score=float(scores[i]), rank=r + 1)
                for r, i in enumerate(order)]


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def recall_at_k(index: PolicyIndex, items: Sequence[Mapping[str, Any]], k: int = 3,
                mode: str = "hybrid") -> dict[str, Any]:
    """Retrieval quality on labelled queries ``{"query": str, "relevant": [clause ids]}``.

    Returns ``recall`` (fraction of items with at least one relevant clause in the top ``k``),
    ``mrr`` (mean reciprocal rank of the first relevant clause within the top ``k``, 0 when
    none -- i.e. MRR@k), ``n`` and ``misses`` (``query``, ``relevant``, ``retrieved`` of every
    item with no relevant clause in the top ``k``). Labels naming a clause the index does not
    hold raise ValueError: a stale label would otherwise read as a retrieval failure.
    """
    if not items:
        raise ValueError("recall_at_k() needs at least one labelled item")
    known = index.clause_ids
    hits_total, rr_total, misses = 0, 0.0, []
    for n, item in enumerate(items):
        query, relevant = item.get("query"), item.get("relevant")
        if isinstance(relevant, str) or not relevant:
            raise ValueError(f"item {n}: 'relevant' must be a non-empty list of clause ids")
        unknown = sorted(set(relevant) - known)
        if unknown:
            raise ValueError(f"item {n}: relevant clause(s) {unknown} are not in the index")
        retrieved = [h.clause_id for h in index.search(query, k=k, mode=mode)]
        first = next((r for r, cid in enumerate(retrieved, start=1) if cid in set(relevant)), None)
        if first is None:
            misses.append({"query": query, "relevant": list(relevant), "retrieved": retrieved})
        else:
            hits_total += 1
            rr_total += 1.0 / first
    return {"recall": hits_total / len(items), "mrr": rr_total / len(items), "n": len(items),
            "k": k, "mode": mode, "misses": misses}
