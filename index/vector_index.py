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
