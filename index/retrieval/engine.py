"""Where passages are retrieved: the question-answering engine over a stored index.

The engine embeds the question, lets its retriever (:mod:`index.retrieval.retrievers`;
``hybrid`` in :mod:`index.retrieval.hybrid`) rank the passages, keeps the best distinct
ones, decides whether the best is good enough to answer, and highlights its best sentence.
"""

from __future__ import annotations

import dataclasses
import hashlib
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corpus.clean import comparable, strip_invisible
from corpus.records import Document, Passage
from corpus.sentences import sentence_spans
from index.embedding.embedder import Embedder, ModelSource
from index.retrieval import RETRIEVERS
from index.retrieval.candidates import sentence_bounds
from index.retrieval.fusion import Fused, NullStatistics, is_short
from index.retrieval.highlight import best_sentence
from index.retrieval.hybrid import HybridRetriever
from index.retrieval.retrievers import DenseRetriever, LexicalRetriever, Query, Retriever
from index.store.generations import StoredIndex, active_manifest, load_index
from index.store.pointer import rebuild_hint
from index.store.lexical import LexicalQuery, sentence_overlap
from index.store.manifest import CorpusRecord
from index.store.milvus import MilvusPassageVectors, MilvusStore, MilvusVectorIndex
from index.store.segmenter import load_segmenter
from index.store.vectors import PassageVectors
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
#: A follow-up's best passage in the article it continues answers it from this score on.
#: Fitted on the follow-up dev set (0.2: hit@1 0.526, 0.1: 0.632, 0.05: 0.684), checked on
#: the dev set and CMRC trial after unrelated questions (0.05 lowered the dev set from 0.728
#: to 0.717; 0.1 changed neither).
FOLLOW_UP_MIN_SCORE = 0.1
#: How deep a follow-up looks for its best passage in the article it continues.
FOLLOW_UP_DEPTH = 50



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
        vector_store: MilvusStore | None = None,
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
        #: Milvus, when the index keeps its vectors there (index.store.milvus); else None.
        self.vector_store = vector_store
        self.min_score = DEFAULT_MIN_SCORE[retriever] if min_score is None else min_score
        self.null = null if null is not None else _null_statistics(stored)
        languages = np.array([p.language for p in stored.passages])
        if isinstance(stored.vectors, MilvusVectorIndex):
            self.vectors = MilvusPassageVectors(stored.vectors, languages)
        else:
            self.vectors = PassageVectors(stored.vectors, languages)
        spans = stored.sentence_spans
        owner = spans[:, 0] if len(stored.sentence_vectors) else spans[:0, 0]
        #: Passage p's sentence rows are bounds[p]:bounds[p + 1] (rows are grouped by passage).
        self._sentence_bounds = sentence_bounds(owner, len(stored.passages))
        self._dedup_keys = np.array([_dedup_key(p.text) for p in stored.passages], dtype=np.uint64)
        self.retriever: Retriever = self._retriever(retriever, languages, candidates)

    def _retriever(self, name: str, languages: np.ndarray, candidates: int | None) -> Retriever:
        if name == "dense":
            return DenseRetriever(self.vectors)
        if name == "lexical":
            return LexicalRetriever(languages)
        return HybridRetriever(
            self.stored, self.vectors, self._sentence_bounds, self.null, candidates
        )

    @classmethod
    def load(
        cls,
        index_dir: Path,
        model: ModelSource | Future[Embedder],
        *,
        min_score: float | None = None,
        retriever: str = "hybrid",
        vector_store: MilvusStore | None = None,
    ) -> "Engine":
        """Load the model while the index loads. ``model``: what to load, or a load already
        under way (:meth:`Embedder.load_in_background`, started before the caller's own
        imports). ``vector_store``: Milvus, when the index keeps its vectors there.

        A missing index is reported before anything loads. Over an index with Chinese
        passages, jieba's dictionary is loaded too (mapped: a few milliseconds): any question
        may need it (a Chinese one to search, an English one to highlight a Chinese passage).
        Most of the model's loading (SentencePiece, ONNX Runtime) does not hold Python's lock,
        so the index loads meanwhile."""
        if not isinstance(model, Future):
            active_manifest(index_dir)
            model = Embedder.load_in_background(model)
        stored = load_index(index_dir, vector_store)
        if _has_chinese(stored):
            load_segmenter()
        return cls(model.result(), stored, min_score, retriever, vector_store=vector_store)

    @classmethod
    def with_model(
        cls,
        embedder: Embedder,
        index_dir: Path,
        *,
        min_score: float | None = None,
        retriever: str = "hybrid",
        vector_store: MilvusStore | None = None,
    ) -> "Engine":
        """An engine over the index in ``index_dir`` using an already loaded model."""
        return cls(embedder, load_index(index_dir, vector_store), min_score, retriever,
                   vector_store=vector_store)

    def with_index(self, index_dir: Path) -> "Engine":
        """The same model, threshold, retriever and vector store over a freshly loaded index
        (after a rebuild)."""
        return Engine(self.embedder, load_index(index_dir, self.vector_store), self.min_score,
                      self.retriever.name, vector_store=self.vector_store)

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
    def corpus(self) -> CorpusRecord:
        """What the index records of the articles it was built from (folder, fingerprint)."""
        return self.stored.manifest.corpus

    @property
    def candidate_mode(self) -> bool:
        """Whether the hybrid scores candidates only (a large index; see index.retrieval.hybrid)."""
        return isinstance(self.retriever, HybridRetriever) and self.retriever.candidate_mode

    def ask(
        self,
        question: str,
        top_k: int = 3,
        language: str | None = None,
        *,
        within: str | None = None,
    ) -> Answer:
        """Answer a question: the best passages, the top one highlighted, or a decline.

        ``within``: the article a follow-up question continues (the one the previous answer
        came from). The question's own best passage in that article, when one is among its
        ``top_k`` and scores at least :data:`FOLLOW_UP_MIN_SCORE`, becomes the answer: "and
        the district head?" after a question about Jiulongpo's party secretary is about
        Jiulongpo. On tests/data/followup_questions.jsonl (38 pairs) this lifts hit@1 from
        0.421 to 0.632 and cuts wrong answers from 17 to 11 (docs/benchmarks-followups.md)."""
        question = strip_invisible(question)
        query = self.embedder.embed_query(question)
        lexical = self.stored.lexical.query(question)
        depth = max(top_k, FOLLOW_UP_DEPTH) if within is not None else top_k
        hits = self._search(question, query, lexical, depth, language)
        if within is not None:
            hits = _continuing(hits, within)[:top_k]
        answered = self.is_good_match(hits) or (
            within is not None and bool(hits) and hits[0].document.doc_id == within
        )
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
        if not self.retriever.calibrated or not hits or hits[0].score < NEAREST_MIN_CONFIDENCE:
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
        if vector is None and self.retriever.needs_vector:
            vector = self.embedder.embed_query(question)
        lexical = self.stored.lexical.query(question) if self.retriever.needs_words else None
        return self._search(question, vector, lexical, top_k, language)

    def explain(self, question: str, vector: np.ndarray, language: str | None = None) -> Fused:
        """The hybrid's fused scores of every passage (−inf where not scored) and the features."""
        if not isinstance(self.retriever, HybridRetriever):
            raise QabotError(f"Only the hybrid retriever explains its scores, not {self.retriever.name}.")
        words = self.stored.lexical.query(question)
        return self.retriever.explain(Query(question, vector, words, language))

    def search_vector(
        self, query: np.ndarray, top_k: int = 10, language: str | None = None
    ) -> list[Hit]:
        """Nearest passages to a query vector (dense only), the same text never twice."""
        return self._distinct_best(DenseRetriever(self.vectors), Query("", query, None, language), top_k)

    def _search(
        self,
        question: str,
        vector: np.ndarray | None,
        lexical: LexicalQuery | None,
        top_k: int,
        language: str | None,
    ) -> list[Hit]:
        return self._distinct_best(self.retriever, Query(question, vector, lexical, language), top_k)

    def _distinct_best(self, retriever: Retriever, query: Query, top_k: int) -> list[Hit]:
        """The ``top_k`` best passages ``retriever`` ranks, the same text never twice; a
        retriever that returned too few distinct ones is asked again, four times deeper."""
        depth = top_k * 2
        while True:
            ranking = retriever.rank(query, depth)
            hits = self._ranked(ranking.rows, ranking.scores, top_k)
            if len(hits) == top_k or ranking.complete:
                return hits
            depth *= 4

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
            hits.append(self.hit(pid, float(scores[i])))
            if len(hits) == top_k:
                break
        return hits

    def hit(self, row: int, score: float, highlight: tuple[int, int] | None = None) -> Hit:
        """The hit for passage ``row`` of this index (also how an answer stored by its rows,
        ``bot.feedback``, is read back)."""
        passage = self.stored.passages[row]
        document = self.stored.documents.get(passage.doc_id) or Document(
            passage.doc_id, passage.doc_id
        )
        return Hit(passage, document, score, highlight, row=row)

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


def _continuing(hits: list[Hit], document: str) -> list[Hit]:
    """``hits`` with the best one from ``document`` first, if it scores enough to be meant."""
    for i, hit in enumerate(hits):
        if hit.document.doc_id == document and hit.score >= FOLLOW_UP_MIN_SCORE:
            return [hit, *hits[:i], *hits[i + 1 :]]
    return hits


def _has_chinese(stored: StoredIndex) -> bool:
    return any(p.language == "zh" for p in stored.passages)


def _dedup_key(text: str) -> int:
    """A 64-bit digest of the text as readers compare it (case, spacing and width ignored):
    8 bytes per passage instead of a normalised copy of every text."""
    return int.from_bytes(hashlib.blake2b(comparable(text).encode(), digest_size=8).digest(), "little")


def _null_statistics(stored: StoredIndex) -> NullStatistics:
    """The null statistics the build stored in the manifest (see index.calibration)."""
    try:
        return NullStatistics.from_dict(stored.manifest.calibration)
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexNotReady(
            f"The index in {stored.index_dir} lacks the calibration that tells qabot when to "
            f"answer (damaged, or written by other software). {rebuild_hint(stored.index_dir)}"
        ) from exc


def _check_same_model(embedder: Embedder, stored: StoredIndex) -> None:
    recorded = stored.manifest.model
    probe = np.asarray(recorded.probe, dtype=np.float32)
    same = probe.shape == embedder.probe.shape and float(probe @ embedder.probe) >= SAME_MODEL_MIN_COSINE
    if not same:
        raise IndexNotReady(
            f"The index was built with the model {recorded.id or 'unknown'!r} "
            f"(fingerprint {recorded.fingerprint or '?'}), but the configured model is "
            f"{embedder.model_id!r} (fingerprint {embedder.fingerprint}). Its answers would be "
            f"wrong. {rebuild_hint(stored.index_dir)}"
        )
