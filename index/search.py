"""Where passages are retrieved: the question-answering engine over a stored index.

Three retrievers (``QABOT_RETRIEVER``): ``dense`` (passage embeddings only), ``lexical``
(BM25 only) and ``hybrid``, the default, which fuses both with sentence-level similarity
per language pool and decides between the pools with calibrated models (see
:mod:`index.fusion`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import faiss
import numpy as np

from corpus.language import detect_language
from corpus.records import Document, Passage
from index.embed import Embedder
from index.fusion import Signals, fuse
from index.highlight import best_sentence, sentence_spans
from index.lexical import LexicalQuery, sentence_overlap
from index.store import StoredIndex, load_index, rebuild_hint
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
    ) -> None:
        _check_same_model(embedder, stored)
        if retriever not in RETRIEVERS:
            raise QabotError(f"Unknown retriever {retriever!r}: use one of {', '.join(RETRIEVERS)}.")
        self.embedder = embedder
        self.stored = stored
        self.retriever = retriever
        self.min_score = DEFAULT_MIN_SCORE[retriever] if min_score is None else min_score
        self._ids_by_language = _ids_by_language(stored.passages)
        self._languages = np.array([p.language for p in stored.passages])
        self._vectors = _all_vectors(stored.vectors)
        spans = stored.sentence_spans
        self._sentence_owner = spans[:, 0] if len(stored.sentence_vectors) else spans[:0, 0]
        self._dedup_keys = [_dedup_key(p.text) for p in stored.passages]
        self._pid_of = {id(p): i for i, p in enumerate(stored.passages)}
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

    def ask(self, question: str, top_k: int = 3, language: str | None = None) -> Answer:
        """Answer a question: the best passages, the top one highlighted, or a decline."""
        query = self.embedder.embed_query(question)
        lexical = self.stored.lexical.query(question)
        hits = self._search(question, query, lexical, top_k, language)
        answered = self.is_good_match(hits)
        if answered:
            top = hits[0]
            span = self._highlight(top.passage, query, lexical)
            hits[0] = Hit(top.passage, top.document, top.score, span)
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

    def explain(self, question: str, vector: np.ndarray, language: str | None = None):
        """The hybrid's fused scores of every passage and the features behind them."""
        return self._fuse(question, vector, self.stored.lexical.query(question), language)

    def search_vector(
        self, query: np.ndarray, top_k: int = 10, language: str | None = None
    ) -> list[Hit]:
        """Nearest passages to a query vector (dense only), the same text never twice."""
        hits: list[Hit] = []
        seen: set[str] = set()
        fetch = top_k * 2
        while True:
            scores, ids = self._nearest(query, fetch, language)
            for score, pid in zip(scores, ids):
                if pid < 0:
                    continue
                key = self._dedup_keys[pid]
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
        else:
            scores = self._fuse(question, vector, lexical, language).scores
        return self._ranked(scores, top_k)

    def _fuse(self, question, vector, lexical: LexicalQuery, language: str | None):
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

    def _ranked(self, scores: np.ndarray, top_k: int) -> list[Hit]:
        hits: list[Hit] = []
        seen: set[str] = set()
        for pid in np.argsort(-scores, kind="stable"):
            if not np.isfinite(scores[pid]):
                break
            key = self._dedup_keys[pid]
            if key in seen:
                continue
            seen.add(key)
            hits.append(self._hit(int(pid), float(scores[pid])))
            if len(hits) == top_k:
                break
        return hits

    def _hit(self, pid: int, score: float) -> Hit:
        passage = self.stored.passages[pid]
        document = self.stored.documents.get(passage.doc_id) or Document(
            passage.doc_id, passage.doc_id
        )
        return Hit(passage, document, score)

    def _highlight(
        self, passage: Passage, query: np.ndarray, lexical: LexicalQuery
    ) -> tuple[int, int] | None:
        """The sentence of ``passage`` that best answers the question (see index.highlight)."""
        text = passage.text
        pid = self._passage_id(passage)
        rows = np.flatnonzero(self._sentence_owner == pid) if pid is not None else []
        if len(rows):
            spans = [tuple(x) for x in self.stored.sentence_spans[rows, 1:]]
            similarities = self.stored.sentence_vectors[rows] @ query
        else:  # an index written without sentence vectors: embed them now
            spans = sentence_spans(text)
            if len(spans) <= 1:
                return spans[0] if spans else None
            similarities = self.embedder.embed_passages([text[a:b] for a, b in spans]) @ query
        overlaps = [sentence_overlap(lexical, text[a:b]) for a, b in spans]
        return best_sentence(spans, similarities, overlaps)

    def _passage_id(self, passage: Passage) -> int | None:
        return self._pid_of.get(id(passage))

    def _nearest(self, query: np.ndarray, k: int, language: str | None):
        params = None
        if language:
            allowed = self._ids_by_language.get(language)
            if allowed is None or not len(allowed):
                return np.zeros(0), np.zeros(0, dtype=np.int64)
            params = _search_parameters(self.stored.vectors, faiss.IDSelectorBatch(allowed))
        k = min(k, self.stored.vectors.ntotal)
        scores, ids = self.stored.vectors.search(query[None, :], k, params=params)
        return scores[0], ids[0]


def _all_vectors(index: faiss.Index) -> np.ndarray:
    """Every passage vector, for the hybrid's scoring of whole language pools."""
    if isinstance(index, faiss.IndexIVF):
        index.make_direct_map()
    return index.reconstruct_n(0, index.ntotal)


def _search_parameters(index: faiss.Index, selector: faiss.IDSelector) -> faiss.SearchParameters:
    """Search restricted to ``selector``, keeping an IVF index's own nprobe."""
    if isinstance(index, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=selector, nprobe=index.nprobe)
    return faiss.SearchParameters(sel=selector)


def _dedup_key(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


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
