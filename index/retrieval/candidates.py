"""Candidate mode: how the hybrid ranks a large index without scoring every passage.

Above :data:`CANDIDATE_MODE_ABOVE` passages :class:`index.retrieval.engine.Engine` fuses only
candidates (per language pool, FAISS's nearest and BM25's best), while the pool statistics
the calibrated models were fitted with stay whole-pool ones (see :mod:`index.retrieval.engine` and
:class:`LanguagePool`). This module holds what that needs: the per-language summaries built
once per engine, and the array helpers that read only the candidates' sentence rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import faiss
import numpy as np

from index.retrieval.fusion import Moments, PoolSummary
from index.store.generations import StoredIndex
from index.store.vectors import EXACT_MAX_PASSAGES

#: Above this many passages the hybrid scores candidates only (see the module docstring).
#: The FAISS index turns approximate at the same size, and below it scoring every passage
#: costs a few milliseconds.
CANDIDATE_MODE_ABOVE = EXACT_MAX_PASSAGES
#: Candidates per language pool from FAISS, and as many from BM25 (~600 per question with
#: two languages). A passage reaches the hybrid's top 10 by standing out in passage cosine
#: or in BM25 (the sentence cosine weighs half and follows the passage's), so the two
#: retrievers' top lists hold such passages. Measured against scoring every passage
#: (bench/hybrid_scale.json, 100k passages, 194 dev and off-topic questions): top-1 the
#: same for 0.887 / 0.912 / 0.918 of the questions with 50 / 150 / 300, top-10 overlap
#: 0.808 / 0.875 / 0.899, the answered/declined decision the same for 0.907 / 0.918 / 0.928
#: (0.948 with 150 when full scoring decides against a null fitted in full mode, as this
#: mode's is fitted in this mode). 150 takes most of the gain; 300 added ~2 ms per question
#: (2026-11-22). What is left is not candidate recall but the pool decision (see
#: ``LanguagePool.summary``).
CANDIDATES_PER_POOL = 150
#: Passages per language (fixed, seeded) whose best-sentence cosines estimate the pool's mean
#: and spread of that signal. That signal's spread over a pool is ~0.016 (dev questions over
#: the bundled and XQuAD corpora), so the mean's standard error is ~0.0004, far below the
#: features' scales (≥ 0.0095); the cost is ~9,000 sentence vectors (14 MB) per language.
SENTENCE_SAMPLE = 2048
#: Passage vectors reconstructed at a time when computing the covariances.
_MOMENTS_CHUNK = 65_536
#: :func:`top_positive` bounds the k-th best score from below with every this many-th score.
_FLOOR_STRIDE = 16


def candidates_per_pool(candidates: int | None, passages: int) -> int:
    """Candidates per pool for an index of ``passages``: by size, unless ``candidates`` is
    given (tests and benchmarks force a mode with it; 0 scores every passage)."""
    if candidates is not None:
        return candidates
    return CANDIDATES_PER_POOL if passages > CANDIDATE_MODE_ABOVE else 0


class Found(NamedTuple):
    """Candidates of one question: their rows (may repeat), and those FAISS returned with
    their cosines (the others' are reconstructed)."""

    rows: np.ndarray
    nearest: np.ndarray
    cosines: np.ndarray

    @staticmethod
    def join(parts: list[Found]) -> Found:
        empty = Found(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
        return Found(*(np.concatenate(arrays) for arrays in zip(empty, *parts)))


@dataclass(frozen=True)
class LanguagePool:
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
        sample_sentence = best_per_group(
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
            coverage_top=float(np.take(coverage, self.ids).max()),  # faster than [self.ids]
        )


def top_positive(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest positive ``values`` (every positive one when fewer):
    the set ``np.argpartition(-values, k - 1)[:k]`` keeps once non-positive values are
    dropped, in any order, without partitioning a whole pool's BM25 scores per question.

    The k-th best of every :data:`_FLOOR_STRIDE`-th value is at most the k-th best of all,
    so only values from it up (a few thousand of ~500k) are partitioned. When ties at the
    k-th value make the set ambiguous, argpartition over all values picks it, as before.
    """
    sample = values[::_FLOOR_STRIDE]
    floor = np.partition(sample, len(sample) - k)[len(sample) - k] if len(sample) >= k else 0
    above = np.flatnonzero(values >= floor) if floor > 0 else np.flatnonzero(values > 0)
    if len(above) <= k:
        return above
    scores = values[above]
    best = np.argpartition(-scores, k - 1)[:k]
    if np.count_nonzero(scores >= scores[best].min()) > k:  # ties at the k-th value
        best = np.argpartition(-values, k - 1)[:k]
        return best[values[best] > 0]
    return above[best]


def language_pools(
    stored: StoredIndex, ids_by_language: dict[str, np.ndarray], languages: np.ndarray,
    sentence_bounds: np.ndarray,
) -> dict[str, LanguagePool]:
    """What candidate mode keeps per language: vector moments and a sentence sample."""
    index = stored.vectors
    add_direct_map(index)
    names = sorted(ids_by_language)
    rng = np.random.default_rng(0)
    samples = [
        np.sort(rng.choice(ids, min(len(ids), SENTENCE_SAMPLE), replace=False))
        for ids in (ids_by_language[lang] for lang in names)
    ]
    sample_vectors = [index.reconstruct_batch(sample) for sample in samples]
    codes = np.searchsorted(names, languages)
    shifts = np.array([v.mean(axis=0) for v in sample_vectors])  # rough means, see below
    means, covariances = vector_moments(index, codes, shifts)
    pools = {}
    for code, lang in enumerate(names):
        starts, counts = sentence_rows(sentence_bounds, samples[code])
        pools[lang] = LanguagePool(
            ids=ids_by_language[lang],
            mean=means[code],
            covariance=covariances[code],
            sample_vectors=sample_vectors[code],
            sample_sentences=np.asarray(stored.sentence_vectors[spread(starts, counts)]),
            sample_counts=counts,
        )
    return pools


def sentence_bounds(owner: np.ndarray, passages: int) -> np.ndarray:
    """Where each passage's sentence rows start, and where the last one's end (``passages``
    + 1 entries), from ``owner``, each sentence row's passage (grouped in passage order).
    Computed once per engine: per question, looking rows up here instead of two binary
    searches over millions of sentence rows saved ~0.5 ms at a million passages."""
    return np.searchsorted(owner, np.arange(passages + 1), side="left")


def sentence_rows(bounds: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first sentence row, number of sentences) of each passage in ``rows``, from
    :func:`sentence_bounds`."""
    starts = bounds[rows]
    return starts, bounds[rows + 1] - starts


def spread(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The rows of consecutive ranges [start, start + count), concatenated."""
    offsets = np.cumsum(counts) - counts
    return np.repeat(starts - offsets, counts) + np.arange(int(counts.sum()))


def best_per_group(values: np.ndarray, counts: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """The maximum of each run of ``counts`` consecutive ``values``; ``fallback`` where empty."""
    best = np.array(fallback, dtype=np.float32)
    filled = counts > 0
    if filled.any():
        starts = (np.cumsum(counts) - counts)[filled]
        best[filled] = np.maximum.reduceat(values, starts)
    return best


def vector_moments(
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


def add_direct_map(index: faiss.Index) -> None:
    """Let an IVF index reconstruct vectors by row (a flat index always can)."""
    if isinstance(index, faiss.IndexIVF):
        index.make_direct_map()
