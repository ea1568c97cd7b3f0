"""Where passages are retrieved: the question-answering engine over a stored index.

Three retrievers (``QABOT_RETRIEVER``): ``dense`` (passage embeddings only), ``lexical``
(BM25 only) and ``hybrid``, the default, which fuses both with sentence-level similarity
per language pool and decides between the pools with calibrated models (see
:mod:`index.retrieval.fusion`).

**Large indexes.** Above :data:`index.retrieval.candidates.CANDIDATE_MODE_ABOVE` passages the hybrid
scores *candidates* only: per language pool, FAISS's nearest passages and BM25's best. The
pool statistics the calibrated models were fitted with stay whole-pool ones, cheaply: the
passage-cosine mean and variance are exact from each language's mean vector and covariance
(mean(v·q) = mean(v)·q, var(v·q) = qᵀ·cov(v)·q, computed once when the engine starts),
BM25's come from the scores of every passage (bm25s computes them anyway), and the
best-sentence signal's from a fixed sample of passages per language (see
:mod:`index.retrieval.candidates`). No copy of the passage vectors is kept then, and the sentence
vectors stay memory-mapped (only candidates' rows are read). ``bench/hybrid_scale.py``
measures both modes.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from corpus.clean import comparable, strip_invisible
from corpus.language import detect_language
from corpus.records import Document, Passage
from corpus.sentences import sentence_spans
from index.embedding.embedder import Embedder, ModelSource
from index.retrieval.candidates import (
    Found,
    LanguagePool,
    add_direct_map,
    best_per_group,
    candidates_per_pool,
    language_pools,
    sentence_bounds,
    sentence_rows,
    spread,
    top_positive,
)
from index.retrieval.fusion import Fused, NullStatistics, Signals, fuse, is_short, summarise
from index.retrieval.highlight import best_sentence
from index.store.lexical import LexicalQuery, sentence_overlap
from index.store.generations import StoredIndex, load_index, rebuild_hint
from index.store.vectors import LanguageFilter, list_of_rows
from index.retrieval import RETRIEVERS
from qabot.errors import IndexNotReady, QabotError

#: Below this cosine similarity between the index's recorded probe embedding and the
#: loaded model's, the index was built with another model.
SAME_MODEL_MIN_COSINE = 0.99

#: The "no good match" threshold on the top hit's score when QABOT_MIN_SCORE is not set.
#: dense: cosine similarity (e5 scores are compressed: ~0.8 to 0.95). lexical: any word
#: in common. hybrid: the confidence, σ(evidence − threshold) measured against this
#: index's own null (see index.retrieval.fusion): 0.5 is where the fitted threshold lies.
DEFAULT_MIN_SCORE = {"dense": 0.80, "lexical": 1e-6, "hybrid": 0.5}
#: A declined question names the articles of its best passages when its confidence is at
#: least this (evidence ≥ 1.1 null spreads above the mean of unrelated questions, which
#: about one in seven of them reach), and, for a question of one or two words, its best
#: passage shares a word with it: otherwise nothing in the articles is about it ("hi"
#: reached 0.36 on the bundled corpus), and naming articles would mislead.
NEAREST_MIN_CONFIDENCE = 0.2



@dataclass(frozen=True)
class Hit:
    """One retrieved passage with its article and why it was chosen."""

    passage: Passage
    document: Document
    #: The retriever's score: cosine (dense), BM25 (lexical) or, for hybrid, the calibrated
    #: probability-like confidence in (0, 1] (see index.retrieval.fusion).
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
    #: The top hit's score, what the decision compared with the threshold (hybrid: the
    #: calibrated confidence in [0, 1]).
    confidence: float = 0.0
    #: On a decline: the articles of the best passages, when some stand out at all.
    nearest: list[Document] = dataclasses.field(default_factory=list)


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
        null: NullStatistics | None = None,
    ) -> None:
        """``candidates``: the hybrid's candidates per pool; None chooses by index size (see
        :data:`index.retrieval.candidates.CANDIDATE_MODE_ABOVE`), 0 scores every passage. Tests and benchmarks force
        either mode with it. ``null``: what unrelated questions get on this index; None
        reads it from the index's manifest (the build computes it; see index.calibration)."""
        _check_same_model(embedder, stored)
        if retriever not in RETRIEVERS:
            raise QabotError(f"Unknown retriever {retriever!r}: use one of {', '.join(RETRIEVERS)}.")
        self.embedder = embedder
        self.stored = stored
        self.retriever = retriever
        self.min_score = DEFAULT_MIN_SCORE[retriever] if min_score is None else min_score
        self.null = null if null is not None else _null_statistics(stored)
        self._ids_by_language = _ids_by_language(stored.passages)
        lists = list_of_rows(stored.vectors)
        self._filters = {
            lang: LanguageFilter(stored.vectors, ids, lists)
            for lang, ids in self._ids_by_language.items()
        }
        self._languages = np.array([p.language for p in stored.passages])
        spans = stored.sentence_spans
        owner = spans[:, 0] if len(stored.sentence_vectors) else spans[:0, 0]
        #: Passage p's sentence rows are bounds[p]:bounds[p + 1] (rows are grouped by passage).
        self._sentence_bounds = sentence_bounds(owner, len(stored.passages))
        self._dedup_keys = np.array([_dedup_key(p.text) for p in stored.passages], dtype=np.uint64)
        hybrid = retriever == "hybrid"
        self._candidates = candidates_per_pool(candidates, len(stored.passages)) if hybrid else 0
        self._vectors = _all_vectors(stored.vectors) if hybrid and not self._candidates else None
        self._pools = (
            language_pools(stored, self._ids_by_language, self._languages, self._sentence_bounds)
            if self._candidates
            else {}
        )
        if retriever != "dense" and (self._languages == "zh").any():
            stored.lexical.query("预热")  # load jieba's dictionary now, not on the first question

    @classmethod
    def load(
        cls,
        index_dir: Path,
        model: ModelSource,
        *,
        min_score: float | None = None,
        retriever: str = "hybrid",
    ) -> "Engine":
        """Load the index first (cheap, fails fast with a clear message), then the model."""
        stored = load_index(index_dir)
        return cls(Embedder.load(model), stored, min_score, retriever)

    @classmethod
    def with_model(
        cls,
        embedder: Embedder,
        index_dir: Path,
        *,
        min_score: float | None = None,
        retriever: str = "hybrid",
    ) -> "Engine":
        """An engine over the index in ``index_dir`` using an already loaded model."""
        return cls(embedder, load_index(index_dir), min_score, retriever)

    def with_index(self, index_dir: Path) -> "Engine":
        """The same model, threshold and retriever over a freshly loaded index (after a
        rebuild)."""
        return Engine(self.embedder, load_index(index_dir), self.min_score, self.retriever)

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
    def corpus(self) -> dict:
        """What the index records of the articles it was built from (folder, fingerprint)."""
        return self.stored.manifest.get("corpus", {})

    @property
    def candidate_mode(self) -> bool:
        """Whether the hybrid scores candidates only (a large index; see the module docstring)."""
        return self._candidates > 0

    def ask(self, question: str, top_k: int = 3, language: str | None = None) -> Answer:
        """Answer a question: the best passages, the top one highlighted, or a decline."""
        question = strip_invisible(question)
        query = self.embedder.embed_query(question)
        lexical = self.stored.lexical.query(question)
        hits = self._search(question, query, lexical, top_k, language)
        answered = self.is_good_match(hits)
        confidence = hits[0].score if hits else 0.0
        if answered:
            hits[0] = dataclasses.replace(
                hits[0], highlight=self._highlight(hits[0].row, query, lexical)
            )
            return Answer(question, True, hits, confidence)
        return Answer(question, False, hits, confidence, self._nearest_documents(hits, lexical))

    def _nearest_documents(
        self, hits: list[Hit], lexical: LexicalQuery, count: int = 3
    ) -> list[Document]:
        """The distinct articles of the best hits of a declined question (see
        :data:`NEAREST_MIN_CONFIDENCE`); only the hybrid's scores are calibrated for it."""
        if self.retriever != "hybrid" or not hits or hits[0].score < NEAREST_MIN_CONFIDENCE:
            return []
        best = self.stored.passages[hits[0].row].text
        if is_short(len(lexical.words)) and not sentence_overlap(lexical, best):
            return []
        documents: dict[str, Document] = {}
        for hit in hits:
            documents.setdefault(hit.document.doc_id, hit.document)
        return list(documents.values())[:count]

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
        question = strip_invisible(question)
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
        counts = np.diff(self._sentence_bounds)
        sentence = best_per_group(self.stored.sentence_vectors @ vector, counts, dense)
        languages = [lang for lang in sorted(self._ids_by_language) if language in (None, lang)]
        signals = Signals(
            dense=dense,
            sentence=sentence,
            lexical=lexical.scores(),
            coverage=lexical.coverage(),
            language_coverage={lang: lexical.language_coverage(lang) for lang in languages},
        )
        pools = {lang: summarise(signals, self._languages == lang) for lang in languages}
        return fuse(
            signals, self._languages, detect_language(question), pools, self.null,
            words=len(lexical.words),
        )

    def _fuse_candidates(
        self, question: str, vector: np.ndarray, lexical: LexicalQuery, language: str | None
    ) -> tuple[np.ndarray, Fused]:
        """Candidate mode: FAISS ∪ BM25 top candidates per pool, whole-pool statistics."""
        bm25, coverage = lexical.scores(), lexical.coverage()
        pools = {lang: pool for lang, pool in self._pools.items() if language in (None, lang)}
        # np.take: the same gather as bm25[pool.ids], ~30% faster over ~500k rows per pool.
        pool_bm25 = {lang: np.take(bm25, pool.ids) for lang, pool in pools.items()}
        found = Found.join(
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
        return rows, fuse(
            signals, languages, detect_language(question), summaries, self.null,
            words=len(lexical.words),
        )

    def _language_candidates(
        self, language: str, pool: LanguagePool, vector: np.ndarray, pool_bm25: np.ndarray
    ) -> Found:
        """One language's candidates: its nearest passages and its best by BM25
        (``pool_bm25``: its passages' scores), or all of them when there are no more."""
        k = self._candidates
        if len(pool.ids) <= k:
            return Found(pool.ids, np.zeros(0, np.int64), np.zeros(0, np.float32))
        cosines, nearest = self._nearest(vector, k, language)
        found = nearest >= 0
        best = pool.ids[top_positive(pool_bm25, k)]
        return Found(np.concatenate([nearest[found], best]), nearest[found], cosines[found])

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
        starts, counts = sentence_rows(self._sentence_bounds, rows)
        similarities = self.stored.sentence_vectors[spread(starts, counts)] @ vector
        return best_per_group(similarities, counts, dense)

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
        """The sentence of passage ``pid`` that best answers the question (see index.retrieval.highlight)."""
        text = self.stored.passages[pid].text
        start, end = self._sentence_bounds[pid], self._sentence_bounds[pid + 1]
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


def _all_vectors(index: faiss.Index) -> np.ndarray:
    """Every passage vector, for the hybrid's scoring of whole language pools."""
    add_direct_map(index)
    return index.reconstruct_n(0, index.ntotal)


def _dedup_key(text: str) -> int:
    """A 64-bit digest of the text as readers compare it (case, spacing and width ignored):
    8 bytes per passage instead of a normalised copy of every text."""
    return int.from_bytes(hashlib.blake2b(comparable(text).encode(), digest_size=8).digest(), "little")


def _ids_by_language(passages: list[Passage]) -> dict[str, np.ndarray]:
    by_language: dict[str, list[int]] = {}
    for pid, passage in enumerate(passages):
        by_language.setdefault(passage.language, []).append(pid)
    return {lang: np.array(ids, dtype=np.int64) for lang, ids in by_language.items()}


def _null_statistics(stored: StoredIndex) -> NullStatistics:
    """The null statistics the build stored in the manifest (see index.calibration)."""
    try:
        return NullStatistics.from_dict(stored.manifest["calibration"])
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexNotReady(
            f"The index in {stored.index_dir} lacks the calibration that tells qabot when to "
            f"answer (damaged, or written by other software). {rebuild_hint(stored.index_dir)}"
        ) from exc


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
