"""How passages are ranked for a question: one small class per retriever (``QABOT_RETRIEVER``).

Every retriever turns a :class:`Query` into a :class:`Ranking` (rows of the index and
their scores); the engine then keeps the best distinct passages. ``dense`` and ``lexical``
are here; ``hybrid``, the default, fuses both and lives in :mod:`index.retrieval.hybrid`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from index.store.lexical import LexicalQuery
from index.store.vectors import PassageVectors


@dataclass(frozen=True)
class Query:
    """A question as the retrievers see it."""

    text: str
    #: Its embedding; None when the retriever does not use one.
    vector: np.ndarray | None
    #: Its words against the BM25 index; None when the retriever does not use them.
    words: LexicalQuery | None
    #: Only passages in this language ("en", "zh"); None for all.
    language: str | None = None


class Ranking(NamedTuple):
    """Rows of the index with their scores (higher is better, -inf: not a candidate)."""

    rows: np.ndarray
    scores: np.ndarray
    #: False when a deeper search could bring more rows (see :meth:`Retriever.rank`).
    complete: bool


class Retriever(Protocol):
    """What the engine needs of a retriever."""

    #: Its ``QABOT_RETRIEVER`` name.
    name: str
    #: The top score under which a question is declined when ``QABOT_MIN_SCORE`` is unset.
    default_min_score: float
    #: Whether its scores are calibrated confidences, so that a decline may name articles.
    calibrated: bool
    #: Which parts of a :class:`Query` it reads.
    needs_vector: bool
    needs_words: bool

    def rank(self, query: Query, depth: int) -> Ranking:
        """Scored rows; at least ``depth`` of them unless the index has fewer."""
        ...


class DenseRetriever:
    """Passage embeddings only: FAISS's nearest passages by cosine similarity."""

    name = "dense"
    #: e5 cosines are compressed (~0.8 to 0.95); not calibrated per corpus.
    default_min_score = 0.80
    calibrated = False
    needs_vector = True
    needs_words = False

    def __init__(self, vectors: PassageVectors) -> None:
        self.vectors = vectors

    def rank(self, query: Query, depth: int) -> Ranking:
        scores, rows = self.vectors.nearest(query.vector, depth, query.language)
        found = rows >= 0
        complete = len(rows) < depth or depth >= self.vectors.index.ntotal
        return Ranking(rows[found], scores[found], complete)


class LexicalRetriever:
    """BM25 only: every passage scored by the question's words."""

    name = "lexical"
    #: Any word in common.
    default_min_score = 1e-6
    calibrated = False
    needs_vector = False
    needs_words = True

    def __init__(self, languages: np.ndarray) -> None:
        """``languages``: each row's passage language."""
        self.languages = languages

    def rank(self, query: Query, depth: int) -> Ranking:
        scores = query.words.scores().astype(np.float64)
        if query.language:
            scores[self.languages != query.language] = -np.inf
        return Ranking(np.arange(len(scores)), scores, True)
