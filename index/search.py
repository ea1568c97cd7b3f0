"""Where passages are retrieved: the question-answering engine over a stored index.

Three retrievers (``QABOT_RETRIEVER``): ``dense`` (passage embeddings only), ``lexical``
(BM25 only) and ``hybrid``, the default, which fuses both with sentence-level similarity
per language pool and decides between the pools with calibrated models (see
:mod:`index.fusion`).

**Large indexes.** Up to :data:`CANDIDATE_MODE_ABOVE` passages the hybrid scores every
passage. Above it, it scores *candidates* only: per language pool, the
:data:`CANDIDATES_PER_POOL` nearest passages by FAISS and as many best by BM25. The pool
statistics the calibrated models were fitted with stay whole-pool ones, cheaply: the
passage-cosine mean and variance are exact from each language's mean vector and covariance
(mean(v·q) = mean(v)·q, var(v·q) = qᵀ·cov(v)·q, computed once when the engine starts),
BM25's come from the scores of every passage (bm25s computes them anyway), and the
best-sentence signal's from a fixed sample of :data:`SENTENCE_SAMPLE` passages per language.
No copy of the passage vectors is kept then, and the sentence vectors stay memory-mapped
(only candidates' rows are read). ``bench/hybrid_scale.py`` measures both modes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

import faiss
import numpy as np

from corpus.language import detect_language
from corpus.records import Document, Passage
from index.embed import Embedder
from index.fusion import Fused, Moments, PoolSummary, Signals, fuse, fuse_candidates
from index.highlight import best_sentence, sentence_spans
from index.lexical import LexicalQuery, sentence_overlap
from index.store import StoredIndex, load_index, rebuild_hint
from index.vector_index import EXACT_MAX_PASSAGES
from qabot.errors import IndexNotReady, QabotError
from qabot.settings import RETRIEVERS, Settings

#: Below this cosine similarity between the index's recorded probe embedding and the
#: loaded model's, the index was built with another model.
SAME_MODEL_MIN_COSINE = 0.99

#: The "no good match" threshold on the top hit's score when QABOT_MIN_SCORE is not set.
#: dense: cosine similarity (e5 scores are compressed: ~0.8 to 0.95). lexical: any word
#: in common. hybrid: the calibrated P(answerable) x P(pool) of the top hit, chosen on the
#: dev set (bench/calibrate.py).
DEFAULT_MIN_SCORE = {"dense": 0.80, "lexical": 1e-6, "hybrid": 0.45}

#: Above this many passages the hybrid scores candidates only (see the module docstring).
#: The FAISS index turns approximate at the same size, and below it scoring every passage
#: costs a few milliseconds.
CANDIDATE_MODE_ABOVE = EXACT_MAX_PASSAGES
#: Candidates per language pool from FAISS, and as many from BM25 (~600 per question with
#: two languages). A passage reaches the hybrid's top 10 by standing out in passage cosine
#: or in BM25 (the sentence cosine weighs half and follows the passage's), so the two
#: retrievers' top lists hold such passages. Measured against scoring every passage
#: (bench/hybrid_scale.json, 100k passages, 124 dev questions): top-1 the same for 0.85 /
#: 0.87 / 0.90 of the questions with 50 / 150 / 300, top-10 overlap 0.75 / 0.84 / 0.88, the
#: answered/declined decision always the same. 150 takes most of the gain; 300 adds ~2 ms
#: per question. What is left is not candidate recall but the pool decision (see
#: ``_LanguagePool.summary``).
CANDIDATES_PER_POOL = 150
#: Passages per language (fixed, seeded) whose best-sentence cosines estimate the pool's mean
#: and spread of that signal. That signal's spread over a pool is ~0.016 (dev questions over
#: the bundled and XQuAD corpora), so the mean's standard error is ~0.0004, far below the
#: features' scales (≥ 0.0095); the cost is ~9,000 sentence vectors (14 MB) per language.
SENTENCE_SAMPLE = 2048
#: On an IVF index, a language-restricted search scans this many times as many of the
#: language's passages as an unrestricted search scans in all (nprobe lists' worth). At
#: 100k passages (bench/hybrid_scale.py) 1x kept 0.93 of the exact top 10 in the question's
#: language and 0.84 in the other among the 150 found, 2x 0.97 and 0.93, for ~0.5 ms more
#: per pool (~1.4 ms at 1M passages).
LANGUAGE_SCAN_FACTOR = 2
#: Passage vectors reconstructed at a time when computing the covariances.
_MOMENTS_CHUNK = 65_536


@dataclass(frozen=True)
class Hit:
    """One retrieved passage with its article and why it was chosen."""

    passage: Passage
    document: Document
    #: The retriever's score: cosine (dense), BM25 (lexical) or, for hybrid, the calibrated
    #: probability-like confidence in (0, 1] (see index.fusion).
    score: float
    #: Character offsets (start, end) in ``passage.text`` of the sentence that best
    #: matches the question; None when not computed (only the top hit gets one).
    highlight: tuple[int, int] | None = None
    #: The passage's row in the index (vector and passage order); None for hits made elsewhere.
    row: int | None = None


@dataclass(frozen=True)
class Answer:
    """The outcome of a question: ``answered`` is False when nothing matched well enough."""

    question: str
    answered: bool
    hits: list[Hit]


class Engine:
    """A loaded model and index. Thread-safe for concurrent ``ask`` calls."""

    def __init__(
        self,
        embedder: Embedder,
        stored: StoredIndex,
        min_score: float | None = None,
        retriever: str = "hybrid",
        *,
        candidates: int | None = None,
    ) -> None:
        """``candidates``: the hybrid's candidates per pool; None chooses by index size (see
        :data:`CANDIDATE_MODE_ABOVE`), 0 scores every passage. Tests and benchmarks force
        either mode with it."""
        _check_same_model(embedder, stored)
        if retriever not in RETRIEVERS:
            raise QabotError(f"Unknown retriever {retriever!r}: use one of {', '.join(RETRIEVERS)}.")
        self.embedder = embedder
        self.stored = stored
        self.retriever = retriever
        self.min_score = DEFAULT_MIN_SCORE[retriever] if min_score is None else min_score
        self._ids_by_language = _ids_by_language(stored.passages)
        lists = _list_of_rows(stored.vectors)
        self._filters = {
            lang: _LanguageFilter(stored.vectors, ids, lists)
            for lang, ids in self._ids_by_language.items()
        }
        self._languages = np.array([p.language for p in stored.passages])
        spans = stored.sentence_spans
        owner = spans[:, 0] if len(stored.sentence_vectors) else spans[:0, 0]
        self._sentence_owner = np.ascontiguousarray(owner)  # sorted: rows grouped by passage
        self._dedup_keys = np.array([_dedup_key(p.text) for p in stored.passages], dtype=np.uint64)
        hybrid = retriever == "hybrid"
        self._candidates = _candidates_per_pool(candidates, len(stored.passages)) if hybrid else 0
        self._vectors = _all_vectors(stored.vectors) if hybrid and not self._candidates else None
        self._pools = self._language_pools() if self._candidates else {}
        if retriever != "dense" and (self._languages == "zh").any():
            stored.lexical.query("预热")  # load jieba's dictionary now, not on the first question

    @classmethod
    def load(cls, settings: Settings) -> "Engine":
        """Load index first (cheap, fails fast with a clear message), then the model."""
        stored = load_index(settings.index_dir)
        return cls(Embedder.load(settings), stored, settings.min_score, settings.retriever)

    @classmethod
    def with_model(cls, embedder: Embedder, settings: Settings) -> "Engine":
        """An engine over the index in ``settings`` using an already loaded model."""
        return cls(embedder, load_index(settings.index_dir), settings.min_score, settings.retriever)

    def with_index(self, settings: Settings) -> "Engine":
        """The same model over a freshly loaded index (after a rebuild)."""
        return Engine.with_model(self.embedder, settings)

    def is_good_match(self, hits: list[Hit]) -> bool:
        """Whether the best hit is strong enough to be shown as an answer."""
        return bool(hits) and hits[0].score >= self.min_score

    @property
    def documents(self) -> list[Document]:
        return list(self.stored.documents.values())

    @property
    def generation(self) -> str:
        return self.stored.generation

    @property
    def candidate_mode(self) -> bool:
        """Whether the hybrid scores candidates only (a large index; see the module docstring)."""
        return self._candidates > 0

    def ask(self, question: str, top_k: int = 3, language: str | None = None) -> Answer:
        """Answer a question: the best passages, the top one highlighted, or a decline."""
        query = self.embedder.embed_query(question)
        lexical = self.stored.lexical.query(question)
        hits = self._search(question, query, lexical, top_k, language)
        answered = self.is_good_match(hits)
        if answered:
            hits[0] = dataclasses.replace(
                hits[0], highlight=self._highlight(hits[0].row, query, lexical)
            )
        return Answer(question=question, answered=answered, hits=hits)

    def search(
        self,
        question: str,
        top_k: int = 10,
        language: str | None = None,
        *,
        vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """The ``top_k`` best distinct passages, optionally only those in ``language``.

        ``vector`` is the question's embedding when already computed (batch evaluation).
        """
        if vector is None and self.retriever != "lexical":
            vector = self.embedder.embed_query(question)
        lexical = self.stored.lexical.query(question) if self.retriever != "dense" else None
        return self._search(question, vector, lexical, top_k, language)

    def explain(self, question: str, vector: np.ndarray, language: str | None = None) -> Fused:
        """The hybrid's fused scores of every passage (−inf where not scored) and the features."""
        rows, fused = self._fuse(question, vector, self.stored.lexical.query(question), language)
        scores = np.full(len(self.stored.passages), -np.inf)
        scores[rows] = fused.scores
        return dataclasses.replace(fused, scores=scores)

    def search_vector(
        self, query: np.ndarray, top_k: int = 10, language: str | None = None
    ) -> list[Hit]:
        """Nearest passages to a query vector (dense only), the same text never twice."""
        hits: list[Hit] = []
        seen: set[int] = set()
        fetch = top_k * 2
        while True:
            scores, ids = self._nearest(query, fetch, language)
            for score, pid in zip(scores, ids):
                if pid < 0:
                    continue
                key = int(self._dedup_keys[pid])
                if key in seen:
                    continue
                seen.add(key)
                hits.append(self._hit(int(pid), float(score)))
                if len(hits) == top_k:
                    return hits
            if len(ids) < fetch or fetch >= self.stored.vectors.ntotal:
                return hits
            hits, seen, fetch = [], set(), fetch * 4

    def _search(
        self,
        question: str,
        vector: np.ndarray | None,
        lexical: LexicalQuery | None,
        top_k: int,
        language: str | None,
    ) -> list[Hit]:
        if self.retriever == "dense":
            return self.search_vector(vector, top_k, language)
        if self.retriever == "lexical":
            scores = lexical.scores().astype(np.float64)
            if language:
                scores[self._languages != language] = -np.inf
            return self._ranked(np.arange(len(scores)), scores, top_k)
        rows, fused = self._fuse(question, vector, lexical, language)
        return self._ranked(rows, fused.scores, top_k)

    def _fuse(
        self, question: str, vector: np.ndarray, lexical: LexicalQuery, language: str | None
    ) -> tuple[np.ndarray, Fused]:
        """The rows the hybrid scored (every passage, or the candidates) and their fusion."""
        if self._candidates:
            return self._fuse_candidates(question, vector, lexical, language)
        return np.arange(len(self._languages)), self._fuse_all(question, vector, lexical, language)

    def _fuse_all(self, question, vector, lexical: LexicalQuery, language: str | None) -> Fused:
        dense = self._vectors @ vector
        sentence = dense.copy()
        if len(self._sentence_owner):
            best = np.full(len(dense), -np.inf, dtype=np.float32)
            np.maximum.at(best, self._sentence_owner, self.stored.sentence_vectors @ vector)
            sentence = np.where(np.isfinite(best), best, dense)
        languages = sorted(set(self._languages.tolist()))
        signals = Signals(
            dense=dense,
            sentence=sentence,
            lexical=lexical.scores(),
            coverage=lexical.coverage(),
            language_coverage={lang: lexical.language_coverage(lang) for lang in languages},
        )
        allowed = self._languages == language if language else None
        return fuse(signals, self._languages, detect_language(question), allowed)

    def _fuse_candidates(
        self, question: str, vector: np.ndarray, lexical: LexicalQuery, language: str | None
    ) -> tuple[np.ndarray, Fused]:
        """Candidate mode: FAISS ∪ BM25 top candidates per pool, whole-pool statistics."""
        bm25, coverage = lexical.scores(), lexical.coverage()
        pools = {lang: pool for lang, pool in self._pools.items() if language in (None, lang)}
        pool_bm25 = {lang: bm25[pool.ids] for lang, pool in pools.items()}
        found = _Found.join(
            [
                self._language_candidates(lang, pool, vector, pool_bm25[lang])
                for lang, pool in pools.items()
            ]
        )
        rows = np.unique(found.rows)
        dense = self._dense_scores(rows, vector, found.nearest, found.cosines)
        sentence = self._best_sentences(rows, vector, dense)
        languages = self._languages[rows]
        summaries = {
            lang: pool.summary(
                vector,
                pool_bm25[lang],
                coverage,
                dense[languages == lang],
                sentence[languages == lang],
            )
            for lang, pool in pools.items()
        }
        signals = Signals(
            dense=dense,
            sentence=sentence,
            lexical=bm25[rows],
            coverage=coverage[rows],
            language_coverage={lang: lexical.language_coverage(lang) for lang in pools},
        )
        return rows, fuse_candidates(signals, languages, detect_language(question), summaries)

    def _language_candidates(
        self, language: str, pool: _LanguagePool, vector: np.ndarray, pool_bm25: np.ndarray
    ) -> _Found:
        """One language's candidates: its nearest passages and its best by BM25
        (``pool_bm25``: its passages' scores), or all of them when there are no more."""
        k = self._candidates
        if len(pool.ids) <= k:
            return _Found(pool.ids, np.zeros(0, np.int64), np.zeros(0, np.float32))
        cosines, nearest = self._nearest(vector, k, language)
        found = nearest >= 0
        best = np.argpartition(-pool_bm25, k - 1)[:k]
        best = pool.ids[best[pool_bm25[best] > 0]]
        return _Found(np.concatenate([nearest[found], best]), nearest[found], cosines[found])

    def _dense_scores(
        self, rows: np.ndarray, vector: np.ndarray, scored_rows: np.ndarray, scored: np.ndarray
    ) -> np.ndarray:
        """Passage cosines of ``rows``: FAISS's where it returned them, else reconstructed."""
        dense = np.zeros(len(rows), dtype=np.float32)
        known = np.zeros(len(rows), dtype=bool)
        at = np.searchsorted(rows, scored_rows)
        dense[at], known[at] = scored, True
        missing = np.flatnonzero(~known)
        if len(missing):
            dense[missing] = self.stored.vectors.reconstruct_batch(rows[missing]) @ vector
        return dense

    def _best_sentences(
        self, rows: np.ndarray, vector: np.ndarray, dense: np.ndarray
    ) -> np.ndarray:
        """Best sentence cosine of each of ``rows`` (its ``dense`` when it has no sentences),
        reading only their sentence vectors."""
        starts, counts = _sentence_ranges(self._sentence_owner, rows)
        similarities = self.stored.sentence_vectors[_spread(starts, counts)] @ vector
        return _best_per_group(similarities, counts, dense)

    def _language_pools(self) -> dict[str, _LanguagePool]:
        """What candidate mode keeps per language: vector moments and a sentence sample."""
        index = self.stored.vectors
        _add_direct_map(index)
        names = sorted(self._ids_by_language)
        rng = np.random.default_rng(0)
        samples = [
            np.sort(rng.choice(ids, min(len(ids), SENTENCE_SAMPLE), replace=False))
            for ids in (self._ids_by_language[lang] for lang in names)
        ]
        sample_vectors = [index.reconstruct_batch(sample) for sample in samples]
        codes = np.searchsorted(names, self._languages)
        shifts = np.array([v.mean(axis=0) for v in sample_vectors])  # rough means, see below
        means, covariances = _vector_moments(index, codes, shifts)
        pools = {}
        for code, lang in enumerate(names):
            starts, counts = _sentence_ranges(self._sentence_owner, samples[code])
            pools[lang] = _LanguagePool(
                ids=self._ids_by_language[lang],
                mean=means[code],
                covariance=covariances[code],
                sample_vectors=sample_vectors[code],
                sample_sentences=np.asarray(self.stored.sentence_vectors[_spread(starts, counts)]),
                sample_counts=counts,
            )
        return pools

    def _ranked(self, rows: np.ndarray, scores: np.ndarray, top_k: int) -> list[Hit]:
        """The best distinct passages among ``rows``, by their ``scores``."""
        hits: list[Hit] = []
        seen: set[int] = set()
        for i in np.argsort(-scores, kind="stable"):
            if not np.isfinite(scores[i]):
                break
            pid = int(rows[i])
            key = int(self._dedup_keys[pid])
            if key in seen:
                continue
            seen.add(key)
            hits.append(self._hit(pid, float(scores[i])))
            if len(hits) == top_k:
                break
        return hits

    def _hit(self, pid: int, score: float) -> Hit:
        passage = self.stored.passages[pid]
        document = self.stored.documents.get(passage.doc_id) or Document(
            passage.doc_id, passage.doc_id
        )
        return Hit(passage, document, score, row=pid)

    def _highlight(
        self, pid: int, query: np.ndarray, lexical: LexicalQuery
    ) -> tuple[int, int] | None:
        """The sentence of passage ``pid`` that best answers the question (see index.highlight)."""
        text = self.stored.passages[pid].text
        start, end = np.searchsorted(self._sentence_owner, [pid, pid + 1])
        if end > start:
            spans = [tuple(x) for x in self.stored.sentence_spans[start:end, 1:]]
            similarities = self.stored.sentence_vectors[start:end] @ query
        else:  # an index written without sentence vectors: embed them now
            spans = sentence_spans(text)
            if len(spans) <= 1:
                return spans[0] if spans else None
            similarities = self.embedder.embed_passages([text[a:b] for a, b in spans]) @ query
        overlaps = [sentence_overlap(lexical, text[a:b]) for a, b in spans]
        return best_sentence(spans, similarities, overlaps)

    def _nearest(self, query: np.ndarray, k: int, language: str | None):
        k = min(k, self.stored.vectors.ntotal)
        if language:
            only = self._filters.get(language)
            if only is None:
                return np.zeros(0), np.zeros(0, dtype=np.int64)
            return only.search(query, k)
        scores, ids = self.stored.vectors.search(query[None, :], k)
        return scores[0], ids[0]


class _Found(NamedTuple):
    """Candidates of one question: their rows (may repeat), and those FAISS returned with
    their cosines (the others' are reconstructed)."""

    rows: np.ndarray
    nearest: np.ndarray
    cosines: np.ndarray

    @staticmethod
    def join(parts: list[_Found]) -> _Found:
        empty = _Found(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
        return _Found(*(np.concatenate(arrays) for arrays in zip(empty, *parts)))


@dataclass(frozen=True)
class _LanguagePool:
    """One language's passages as candidate mode summarises them for each question: the
    exact moments of their vectors and a fixed sample for the best-sentence signal."""

    ids: np.ndarray  # its rows, ascending
    mean: np.ndarray  # mean passage vector (float64)
    covariance: np.ndarray  # covariance of the passage vectors (float64, d × d)
    sample_vectors: np.ndarray  # passage vectors of the sample (every passage when few)
    sample_sentences: np.ndarray  # the sample's sentence vectors, grouped by passage
    sample_counts: np.ndarray  # sentences per sampled passage

    def summary(
        self,
        vector: np.ndarray,
        pool_bm25: np.ndarray,
        coverage: np.ndarray,
        dense: np.ndarray,
        sentence: np.ndarray,
    ) -> PoolSummary:
        """This language's statistics for one question, from the BM25 scores of all its
        passages (``pool_bm25``), every passage's ``coverage``, and its candidates' ``dense``
        and ``sentence`` signals (their maxima count with the sample's).

        All are exact but two maxima: the passage cosine's (FAISS's best, approximate on
        IVF) and the best-sentence cosine's, the best of the candidates and the sample.
        The latter is what makes candidate mode differ from full scoring at 100k passages
        and more: the best sentence over *all* of the other language's passages is an
        extreme over hundreds of thousands of sentences, usually in a passage no
        passage-level search ranks high, and the pool model weighs its gap heavily. Only a
        sentence-level index would find it.
        """
        count = len(self.ids)
        sample_dense = self.sample_vectors @ vector
        sample_sentence = _best_per_group(
            self.sample_sentences @ vector, self.sample_counts, sample_dense
        ).astype(np.float64)
        bm25 = pool_bm25.astype(np.float64)
        bm25_mean = float(bm25.mean())
        return PoolSummary(
            dense=Moments(
                count,
                float(self.mean @ vector),
                float(vector @ self.covariance @ vector),
                float(np.concatenate([dense, sample_dense]).max()),
            ),
            sentence=Moments(
                count,
                float(sample_sentence.mean()),
                float(sample_sentence.var()),
                float(max(sentence.max(initial=-np.inf), sample_sentence.max())),
            ),
            lexical=Moments(
                count, bm25_mean, float(bm25 @ bm25) / count - bm25_mean**2, float(bm25.max())
            ),
            coverage_top=float(coverage[self.ids].max()),
        )


class _LanguageFilter:
    """FAISS search among one language's passages only, set up once per language.

    A bitmap selector restricts the search (O(1) per test). On an IVF index the lists to
    probe are chosen here too: the ones nearest the question *among those holding this
    language's passages*, until they hold :data:`LANGUAGE_SCAN_FACTOR` times as many of its
    passages as an unrestricted search scans (``nprobe`` lists' worth). FAISS's own choice,
    the lists nearest the question whatever they hold, fails for the other language's pool:
    embeddings cluster by language, so an English question's nearest lists hold few Chinese
    passages (in bench/hybrid_scale.py at 100k passages, candidate mode then kept full
    scoring's top-1 for 0.57 of the dev questions, against 0.86 with this choice at 1x).
    """

    def __init__(
        self, index: faiss.Index, ids: np.ndarray, list_of_row: np.ndarray | None
    ) -> None:
        members = np.zeros(index.ntotal, dtype=bool)
        members[ids] = True
        self._bitmap = np.packbits(members, bitorder="little")  # FAISS reads it: keep it alive
        self._selector = faiss.IDSelectorBitmap(len(self._bitmap), faiss.swig_ptr(self._bitmap))
        self._index = index
        if list_of_row is not None:
            sizes = np.bincount(list_of_row[ids], minlength=index.nlist)
            self._lists = np.flatnonzero(sizes)
            self._sizes = sizes[self._lists]
            self._centroids = index.quantizer.reconstruct_n(0, index.nlist)[self._lists]
            self._budget = LANGUAGE_SCAN_FACTOR * index.nprobe * index.ntotal / index.nlist

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and rows of the ``k`` nearest passages of the language (-1 rows if fewer)."""
        if not isinstance(self._index, faiss.IndexIVF):
            params = faiss.SearchParameters(sel=self._selector)
            scores, ids = self._index.search(query[None, :], k, params=params)
            return scores[0], ids[0]
        closeness = self._centroids @ query
        order = np.argsort(-closeness)
        probe = order[: int(np.searchsorted(np.cumsum(self._sizes[order]), self._budget)) + 1]
        lists = np.ascontiguousarray(self._lists[probe][None, :], dtype=np.int64)
        centroid_scores = np.ascontiguousarray(closeness[probe][None, :], dtype=np.float32)
        query = np.ascontiguousarray(query[None, :], dtype=np.float32)
        scores, ids = np.empty((1, k), dtype=np.float32), np.empty((1, k), dtype=np.int64)
        params = faiss.SearchParametersIVF(sel=self._selector, nprobe=len(probe))
        # The Python wrapper of search_preassigned takes no parameters; its C entry does.
        self._index.search_preassigned_c(
            1, faiss.swig_ptr(query), k, faiss.swig_ptr(lists), faiss.swig_ptr(centroid_scores),
            faiss.swig_ptr(scores), faiss.swig_ptr(ids), False, params,
        )
        return scores[0], ids[0]


def _list_of_rows(index: faiss.Index) -> np.ndarray | None:
    """For an IVF index, the inverted list holding each row; None for other indexes."""
    if not isinstance(index, faiss.IndexIVF):
        return None
    owner = np.empty(index.ntotal, dtype=np.int64)
    for number in range(index.nlist):
        size = index.invlists.list_size(number)
        if size:
            owner[faiss.rev_swig_ptr(index.invlists.get_ids(number), size)] = number
    return owner


def _candidates_per_pool(candidates: int | None, passages: int) -> int:
    if candidates is not None:
        return candidates
    return CANDIDATES_PER_POOL if passages > CANDIDATE_MODE_ABOVE else 0


def _sentence_ranges(owner: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first sentence row, number of sentences) of each passage in ``rows``: sentence rows
    are grouped by passage in passage order, so two binary searches find them."""
    starts = np.searchsorted(owner, rows, side="left")
    return starts, np.searchsorted(owner, rows, side="right") - starts


def _spread(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The rows of consecutive ranges [start, start + count), concatenated."""
    offsets = np.cumsum(counts) - counts
    return np.repeat(starts - offsets, counts) + np.arange(int(counts.sum()))


def _best_per_group(values: np.ndarray, counts: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """The maximum of each run of ``counts`` consecutive ``values``; ``fallback`` where empty."""
    best = np.array(fallback, dtype=np.float32)
    filled = counts > 0
    if filled.any():
        starts = (np.cumsum(counts) - counts)[filled]
        best[filled] = np.maximum.reduceat(values, starts)
    return best


def _vector_moments(
    index: faiss.Index, codes: np.ndarray, shifts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean vector and covariance of the passage vectors of each language code, in one
    chunked pass over the index (no full copy). Vectors are shifted by a rough mean of their
    language first, so the float32 products do not cancel catastrophically."""
    languages, dimension = shifts.shape
    counts = np.bincount(codes, minlength=languages).astype(np.float64)
    sums = np.zeros((languages, dimension))
    products = np.zeros((languages, dimension, dimension))
    for start in range(0, index.ntotal, _MOMENTS_CHUNK):
        chunk = index.reconstruct_n(start, min(_MOMENTS_CHUNK, index.ntotal - start))
        chunk_codes = codes[start : start + len(chunk)]
        for code in np.unique(chunk_codes):
            shifted = chunk[chunk_codes == code] - shifts[code]
            sums[code] += shifted.sum(axis=0, dtype=np.float64)
            products[code] += shifted.T @ shifted
    offsets = sums / counts[:, None]
    covariances = products / counts[:, None, None] - offsets[:, :, None] * offsets[:, None, :]
    return shifts + offsets, covariances


def _add_direct_map(index: faiss.Index) -> None:
    """Let an IVF index reconstruct vectors by row (a flat index always can)."""
    if isinstance(index, faiss.IndexIVF):
        index.make_direct_map()


def _all_vectors(index: faiss.Index) -> np.ndarray:
    """Every passage vector, for the hybrid's scoring of whole language pools."""
    _add_direct_map(index)
    return index.reconstruct_n(0, index.ntotal)


def _dedup_key(text: str) -> int:
    """A 64-bit digest of the text as readers compare it (case, spacing and width ignored):
    8 bytes per passage instead of a normalised copy of every text."""
    normalised = " ".join(unicodedata.normalize("NFKC", text).lower().split())
    return int.from_bytes(hashlib.blake2b(normalised.encode(), digest_size=8).digest(), "little")


def _ids_by_language(passages: list[Passage]) -> dict[str, np.ndarray]:
    by_language: dict[str, list[int]] = {}
    for pid, passage in enumerate(passages):
        by_language.setdefault(passage.language, []).append(pid)
    return {lang: np.array(ids, dtype=np.int64) for lang, ids in by_language.items()}


def _check_same_model(embedder: Embedder, stored: StoredIndex) -> None:
    recorded = stored.manifest.get("model", {})
    probe = np.asarray(recorded.get("probe", []), dtype=np.float32)
    same = probe.shape == embedder.probe.shape and float(probe @ embedder.probe) >= SAME_MODEL_MIN_COSINE
    if not same:
        raise IndexNotReady(
            f"The index was built with the model {recorded.get('id', 'unknown')!r} "
            f"(fingerprint {recorded.get('fingerprint', '?')}), but the configured model is "
            f"{embedder.model_id!r} (fingerprint {embedder.fingerprint}). Its answers would be "
            f"wrong. {rebuild_hint(stored.index_dir)}"
        )
