"""Where passages are retrieved: the question-answering engine over a stored index."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import faiss
import numpy as np

from corpus.records import Document, Passage
from index.embed import Embedder
from index.store import StoredIndex, load_index, rebuild_hint
from index.highlight import best_sentence
from qabot.errors import IndexNotReady
from qabot.settings import Settings

#: Below this cosine similarity between the index's recorded probe embedding and the
#: loaded model's, the index was built with another model.
SAME_MODEL_MIN_COSINE = 0.99


@dataclass(frozen=True)
class Hit:
    """One retrieved passage with its article and why it was chosen."""

    passage: Passage
    document: Document
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

    def __init__(self, embedder: Embedder, stored: StoredIndex, min_score: float) -> None:
        _check_same_model(embedder, stored)
        self.embedder = embedder
        self.stored = stored
        self.min_score = min_score
        self._ids_by_language = _ids_by_language(stored.passages)

    @classmethod
    def load(cls, settings: Settings) -> "Engine":
        """Load index first (cheap, fails fast with a clear message), then the model."""
        stored = load_index(settings.index_dir)
        return cls(Embedder.load(settings), stored, settings.min_score)

    @classmethod
    def with_model(cls, embedder: Embedder, settings: Settings) -> "Engine":
        """An engine over the index in ``settings`` using an already loaded model."""
        return cls(embedder, load_index(settings.index_dir), settings.min_score)

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
        hits = self.search_vector(query, top_k, language)
        answered = self.is_good_match(hits)
        if answered:
            top = hits[0]
            span = best_sentence(self.embedder, query, top.passage.text)
            hits[0] = Hit(top.passage, top.document, top.score, span)
        return Answer(question=question, answered=answered, hits=hits)

    def search(self, question: str, top_k: int = 10, language: str | None = None) -> list[Hit]:
        """The ``top_k`` best distinct passages, optionally only those in ``language``."""
        return self.search_vector(self.embedder.embed_query(question), top_k, language)

    def search_vector(
        self, query: np.ndarray, top_k: int = 10, language: str | None = None
    ) -> list[Hit]:
        """Nearest passages to a query vector, the same text never twice."""
        hits: list[Hit] = []
        seen: set[str] = set()
        fetch = top_k * 2
        while True:
            scores, ids = self._nearest(query, fetch, language)
            for score, pid in zip(scores, ids):
                if pid < 0:
                    continue
                passage = self.stored.passages[pid]
                key = _dedup_key(passage.text)
                if key in seen:
                    continue
                seen.add(key)
                document = self.stored.documents.get(passage.doc_id) or Document(
                    passage.doc_id, passage.doc_id
                )
                hits.append(Hit(passage, document, float(score)))
                if len(hits) == top_k:
                    return hits
            if len(ids) < fetch or fetch >= self.stored.vectors.ntotal:
                return hits
            hits, seen, fetch = [], set(), fetch * 4

    def _nearest(self, query: np.ndarray, k: int, language: str | None):
        params = None
        if language:
            allowed = self._ids_by_language.get(language)
            if allowed is None or not len(allowed):
                return np.zeros(0), np.zeros(0, dtype=np.int64)
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
        k = min(k, self.stored.vectors.ntotal)
        scores, ids = self.stored.vectors.search(query[None, :], k, params=params)
        return scores[0], ids[0]


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
