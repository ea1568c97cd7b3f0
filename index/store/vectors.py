"""Which FAISS index holds the passage vectors, chosen by how many there are.

Measured in ``docs/performance.md`` (2 cores, 384-dimensional e5 vectors): exact search
(``IndexFlatIP``) answers 10,000 passages in 0.7 ms but 1,000,000 in 120 ms. Above
:data:`EXACT_MAX_PASSAGES` an inverted file (IVF, flat vectors, inner product) with about
√N lists and :data:`NPROBE` lists probed per question keeps recall@10 ≥ 0.97 of exact
search at 0.8 ms (100k) to 1.5 ms (1M), with no extra memory (≈1.5 GB per million
passages, like exact search). HNSW was slower to build (126 s at 1M) and needed
efSearch 512 for the same recall.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

#: Up to this many passages the search is exact (brute force is fast enough and perfect).
EXACT_MAX_PASSAGES = 20_000
#: Lists an IVF index probes per question.
NPROBE = 16
#: Vectors used to train the IVF's coarse quantiser (k-means), at most.
TRAINING_SAMPLE = 65_536


def build_vector_index(vectors: np.ndarray) -> faiss.Index:
    """An index over L2-normalised ``vectors`` (inner product = cosine), by corpus size."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    count, dimension = vectors.shape
    if count <= EXACT_MAX_PASSAGES:
        index = faiss.IndexFlatIP(dimension)
    else:
        index = faiss.IndexIVFFlat(
            faiss.IndexFlatIP(dimension), dimension, ivf_lists(count), faiss.METRIC_INNER_PRODUCT
        )
        sample = np.random.default_rng(0).choice(count, min(count, TRAINING_SAMPLE), replace=False)
        index.train(vectors[np.sort(sample)])
        index.nprobe = NPROBE
    index.add(vectors)
    return index


def ivf_lists(count: int) -> int:
    """About √N lists, a power of two (256 at 100k passages, 1024 at 1M)."""
    return 2 ** max(6, round(math.log2(math.sqrt(count))))


def describe(index: faiss.Index) -> str:
    """A short name of the index kind for the manifest and logs."""
    if isinstance(index, faiss.IndexIVF):
        return f"IVF{index.nlist},Flat nprobe={index.nprobe}"
    return "Flat (exact)"


#: On an IVF index, a language-restricted search scans this many times as many of the
#: language's passages as an unrestricted search scans in all (nprobe lists' worth). At
#: 100k passages (bench/hybrid_scale.py) 1x kept 0.93 of the exact top 10 in the question's
#: language and 0.84 in the other among the 150 found, 2x 0.97 and 0.93, for ~0.5 ms more
#: per pool (~1.4 ms at 1M passages).
LANGUAGE_SCAN_FACTOR = 2


class LanguageFilter:
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


class PassageVectors:
    """One generation's passage vectors, searched among all passages or one language's."""

    def __init__(self, index: faiss.Index, languages: np.ndarray) -> None:
        """``languages``: each row's passage language ("en", "zh")."""
        self.index = index
        #: The rows of each language's passages, languages in order of first appearance.
        self.ids_by_language = {
            lang: np.flatnonzero(languages == lang).astype(np.int64)
            for lang in dict.fromkeys(languages.tolist())
        }
        lists = list_of_rows(index)
        self._filters = {
            lang: LanguageFilter(index, ids, lists) for lang, ids in self.ids_by_language.items()
        }

    def nearest(
        self, query: np.ndarray, k: int, language: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores and rows of the ``k`` passages nearest ``query`` (-1 rows if fewer), only
        those in ``language`` when it is given."""
        k = min(k, self.index.ntotal)
        if language:
            only = self._filters.get(language)
            if only is None:
                return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
            return only.search(query, k)
        scores, ids = self.index.search(query[None, :], k)
        return scores[0], ids[0]


def list_of_rows(index: faiss.Index) -> np.ndarray | None:
    """For an IVF index, the inverted list holding each row; None for other indexes."""
    if not isinstance(index, faiss.IndexIVF):
        return None
    owner = np.empty(index.ntotal, dtype=np.int64)
    for number in range(index.nlist):
        size = index.invlists.list_size(number)
        if size:
            owner[faiss.rev_swig_ptr(index.invlists.get_ids(number), size)] = number
    return owner
