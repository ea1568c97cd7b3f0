"""Lexical retrieval beside the dense one: BM25 (bm25s) over words.

Tokenising, the same for passages and questions whatever their language:

* Unicode NFKC, then lower case;
* runs of Han characters are segmented into words with jieba (default dictionary,
  accurate mode); character bigrams were tried on the dev set and did not help;
* everything else is cut into words of letters and digits, keeping decimal numbers whole
  ("1.52", "260,000") so that a number matches across languages ("1.52亿元" and
  "1.52 billion" share the token "1.52").

No stop words and no stemming: BM25's IDF weighs function words down on its own.

The index is built with the FAISS vectors and saved in the same generation folder (the
``lexical-*`` files, listed in :data:`FILES`), so the manifest's checksums and the atomic
swap cover it too. Besides BM25 scores it answers how much of a question it *covers*: the
IDF-weighted share of the question's words found in a passage, or anywhere in one
language's passages. :mod:`index.retrieval.fusion` uses that to keep lexical noise out of the
cross-lingual case.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path

import numpy as np

from corpus.clean import fold
from corpus.language import HAN_CHARACTERS
from index.store.segmenter import segment

#: The files this index adds to a generation folder (bm25s' own format, our names).
DATA = "lexical-data.npy"
INDICES = "lexical-indices.npy"
INDPTR = "lexical-indptr.npy"
VOCAB = "lexical-vocab.json"
PARAMS = "lexical-params.json"
_FILE_NAMES = dict(
    data_name=DATA, indices_name=INDICES, indptr_name=INDPTR, vocab_name=VOCAB, params_name=PARAMS
)
_ARRAYS = {"data": DATA, "indices": INDICES, "indptr": INDPTR}
FILES = (DATA, INDICES, INDPTR, VOCAB, PARAMS)

_HAN_RUN = re.compile(f"([{HAN_CHARACTERS}]+)")
#: A decimal or grouped number kept whole, else a run of letters/digits.
_WORD = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+")
_HAS_WORD = re.compile(r"[^\W_]")

def tokenize(text: str) -> list[str]:
    """The lexical tokens of ``text`` (English, Chinese or both mixed), in order."""
    text = fold(text)
    tokens: list[str] = []
    for i, piece in enumerate(_HAN_RUN.split(text)):
        if not piece:
            continue
        if i % 2:  # a run of Han characters
            tokens.extend(w for w in segment(piece) if _HAS_WORD.search(w))
        else:
            tokens.extend(_WORD.findall(piece))
    return tokens


class LexicalIndex:
    """A BM25 index over the passages (in the vector store's order), plus word statistics."""

    def __init__(self, scores: dict, vocab: dict[str, int], languages: list[str], built=None) -> None:
        """``scores``: the BM25 matrix as bm25s keeps it (``data``, ``indices``, ``indptr``: a
        column per word, a row per passage; ``num_docs``). ``built``: the bm25s model, when
        this process built the index (what :meth:`save` writes)."""
        self._built = built
        self.size = int(scores["num_docs"])
        self.vocab = vocab
        indptr = np.asarray(scores["indptr"], dtype=np.int64)
        self._indptr = indptr
        self._indices = np.asarray(scores["indices"], dtype=np.int64)
        self._scores = np.asarray(scores["data"], dtype=np.float32)
        frequency = np.diff(indptr).astype(np.float64)
        #: Lucene's IDF of every vocabulary entry (its column in the BM25 matrix).
        self.idf = np.log1p((self.size - frequency + 0.5) / (frequency + 0.5))
        #: The IDF a word unknown to the index gets: that of a word in no passage.
        self.unknown_idf = math.log1p((self.size + 0.5) / 0.5)
        self.languages = np.asarray(languages)
        self._in_language = {
            lang: self._columns_present(self.languages == lang) for lang in set(languages)
        }

    @classmethod
    def build(cls, texts: list[str], languages: list[str]) -> LexicalIndex:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each build at DEBUG
        bm25 = bm25s.BM25()  # Lucene BM25, k1 = 1.5, b = 0.75
        bm25.index([tokenize(t) or [""] for t in texts], show_progress=False)
        return cls(bm25.scores, bm25.vocab_dict, languages, built=bm25)

    def save(self, folder: Path) -> None:
        """Write the files of :data:`FILES` (an index this process built)."""
        self._built.save(folder, **_FILE_NAMES, show_progress=False)

    @classmethod
    def load(cls, folder: Path, languages: list[str]) -> LexicalIndex:
        """Read the files bm25s wrote with numpy alone: importing bm25s (and the scipy it
        pulls in) takes 0.2 s, a fifth of a cold question, and answering needs only the
        matrix of Lucene BM25 scores, summed per question as bm25s sums it."""
        params = json.loads((folder / PARAMS).read_text(encoding="utf-8"))
        if params.get("method") != "lucene":
            raise ValueError(f"{PARAMS}: BM25 method {params.get('method')!r}, not 'lucene'")
        scores = {"num_docs": int(params["num_docs"])}
        scores.update((key, np.load(folder / name)) for key, name in _ARRAYS.items())
        if scores["num_docs"] != len(languages):
            raise ValueError(
                f"{PARAMS}: the lexical index holds {scores['num_docs']} passages, not {len(languages)}"
            )
        vocab = json.loads((folder / VOCAB).read_text(encoding="utf-8"))
        _check_matrix(scores, len(vocab), len(languages))
        return cls(scores, vocab, languages)

    def query(self, question: str) -> LexicalQuery:
        """Tokenise a question once; scores and coverage come from the result."""
        words = list(dict.fromkeys(tokenize(question)))
        columns = len(self.idf)
        ids = [self.vocab[w] for w in words if self.vocab.get(w, columns) < columns]
        total = sum(self.idf[i] for i in ids) + self.unknown_idf * (len(words) - len(ids))
        return LexicalQuery(self, words, np.asarray(ids, dtype=np.int64), float(total))

    def _columns_present(self, mask: np.ndarray) -> np.ndarray:
        """For each vocabulary column, whether a passage selected by ``mask`` contains it."""
        starts, ends = self._indptr[:-1], self._indptr[1:]
        present = np.zeros(len(starts), dtype=bool)
        if len(self._indices):
            hits = mask[self._indices].astype(np.int64)
            counts = np.add.reduceat(hits, np.minimum(starts, len(hits) - 1))
            present = (counts > 0) & (ends > starts)  # reduceat misreports empty columns
        return present


def _check_matrix(scores: dict, words: int, passages: int) -> None:
    """bm25s' sparse matrix (a column per word, a row per passage) as a build writes it:
    anything else would index out of bounds on some question, long after loading. (The
    vocabulary may hold one entry more than there are columns: bm25s' empty token.)"""
    indptr, indices, data = (np.asarray(scores[k]) for k in ("indptr", "indices", "data"))
    if not 1 <= len(indptr) <= words + 1 or indptr[0] != 0 or (np.diff(indptr) < 0).any():
        raise ValueError(f"{INDPTR}: not the column offsets of a vocabulary of {words} words")
    if indptr[-1] != len(indices) or len(indices) != len(data):
        raise ValueError(f"{INDICES}/{DATA}: {len(indices)} rows and {len(data)} scores for {indptr[-1]}")
    if len(indices) and not (0 <= indices.min() and indices.max() < passages):
        raise ValueError(f"{INDICES}: passage numbers outside 0-{passages - 1}")


class LexicalQuery:
    """One tokenised question against one :class:`LexicalIndex`."""

    def __init__(self, index: LexicalIndex, words: list[str], ids: np.ndarray, total_idf: float):
        self.index = index
        self.words = words
        self.ids = ids
        self.total_idf = total_idf

    def scores(self) -> np.ndarray:
        """BM25 score of every passage (0 for passages sharing no word with the question):
        each word's column added in the question's order, in float32, as bm25s does."""
        index = self.index
        scores = np.zeros(index.size, dtype=np.float32)
        for column in self.ids:
            start, end = index._indptr[column], index._indptr[column + 1]
            scores[index._indices[start:end]] += index._scores[start:end]  # a passage once per column
        return scores

    def coverage(self) -> np.ndarray:
        """Per passage: the IDF-weighted share of the question's words that it contains.

        Summed with ``np.add.at`` and divided in place: the same values as ``+=`` on fancy
        indices and ``/``, without their temporaries, which cost milliseconds per question
        at a million passages."""
        covered = np.zeros(self.index.size)
        if self.total_idf <= 0:
            return covered
        index = self.index
        for column in self.ids:
            start, end = index._indptr[column], index._indptr[column + 1]
            np.add.at(covered, index._indices[start:end], index.idf[column])
        covered /= self.total_idf
        return covered

    def language_coverage(self, language: str) -> float:
        """The IDF-weighted share of the question's words found in any passage in ``language``."""
        present = self.index._in_language.get(language)
        if present is None or self.total_idf <= 0 or not len(self.ids):
            return 0.0
        return float(self.index.idf[self.ids][present[self.ids]].sum() / self.total_idf)


def sentence_overlap(query: LexicalQuery, sentence: str) -> float:
    """The IDF-weighted share of the question's words that occur in ``sentence``."""
    if query.total_idf <= 0:
        return 0.0
    words = set(tokenize(sentence))
    index = query.index
    weight = 0.0
    for word in query.words:
        if word in words:
            column = index.vocab.get(word)
            weight += index.idf[column] if column is not None else index.unknown_idf
    return weight / query.total_idf

