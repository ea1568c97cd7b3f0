"""Synthetic passage vectors at scale, and the FAISS index benchmark run on them.

Why synthetic: embedding real text runs at ~20 passages/s on 2 cores, so a million real
passages would take half a day. The vectors here are made from the real passage
embeddings of the bundled and XQuAD corpora, in a way that keeps what makes approximate
search hard on real data:

    x = normalise(mu + a * t + beta * z),   a = sqrt(1 - beta^2)

* ``t`` is the "topic" of the new passage: a random blend of 3 real passage embeddings
  (centred on ``mu``, the mean of the real passages; Dirichlet weights rescaled to keep one
  passage's variance). Not a single real passage: a million vectors made around ~600
  real ones would form ~600 tight clusters, which flatters IVF (see :func:`synthesize`);
* ``z`` is Gaussian noise with the *covariance of the real passages* (``z = g @ R /
  sqrt(m-1)``, ``R`` the centred real passages, ``g`` standard normal), so the noise lives
  in the directions real embeddings vary in, with their real magnitudes (the real
  inter-passage spread), not in arbitrary isotropic directions;
* ``a^2 + beta^2 = 1`` keeps the overall covariance of the synthetic set equal to the real
  one, so the cosine between two random synthetic passages is distributed as between two
  real ones;
* ``beta`` is chosen so that each passage's nearest-neighbour cosine matches the real
  corpus at the real corpus's size (with ``beta = 0`` every synthetic passage would be an
  exact duplicate of a real one, which makes search trivially easy; a larger ``beta`` only
  makes it harder, see :func:`choose_beta`).

Queries are real question embeddings (the dev questions and the XQuAD questions), never
synthetic ones. :func:`profile` reports the query -> passage score distribution (top-1,
top-10, their gap, the cosine to a random passage) so the synthetic sets can be compared
with the real one, and :func:`hardness_check` runs the same approximate indexes on a real
and a synthetic set of the same size to show that the synthetic one is not easier.
"""

from __future__ import annotations

import gc
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Log = Callable[[str], None]


def _faiss():
    import faiss

    faiss.omp_set_num_threads(2)
    return faiss


# -- making vectors ----------------------------------------------------------------------


def normalise(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


#: Real passages blended into one synthetic "topic" (see :func:`synthesize`).
MIX = 3


def synthesize(
    real: np.ndarray,
    n: int,
    beta: float,
    *,
    seed: int = 0,
    mix: int = MIX,
    chunk: int = 32768,
) -> np.ndarray:
    """``n`` synthetic unit vectors from the real passage vectors ``real`` (see module doc).

    The "topic" of each synthetic passage is a random blend of ``mix`` real passages
    (Dirichlet weights, rescaled so it has the variance of one real passage). With single
    real passages as topics, a million vectors would form only ~600 tight clusters, which
    makes IVF's coarse clustering unrealistically effective; blends give a continuum of
    topics, as a large real corpus has.
    """
    rng = np.random.default_rng(seed)
    real = np.asarray(real, dtype=np.float32)
    m, dim = real.shape
    mu = real.mean(axis=0)
    residuals = real - mu
    a = math.sqrt(max(0.0, 1.0 - beta * beta))
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        count = min(chunk, n - start)
        picks = rng.integers(0, m, (count, mix))
        weights = rng.dirichlet(np.ones(mix), count).astype(np.float32)
        weights /= np.sqrt((weights**2).sum(axis=1, keepdims=True))
        topic = np.einsum("ck,ckd->cd", weights, residuals[picks])
        g = rng.standard_normal((count, m), dtype=np.float32) / np.float32(math.sqrt(m - 1))
        x = mu + a * topic + np.float32(beta) * (g @ residuals)
        out[start : start + count] = normalise(x)
    return out


# -- describing a vector set -------------------------------------------------------------


def exact_knn(db: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    faiss = _faiss()
    index = faiss.IndexFlatIP(db.shape[1])
    index.add(db)
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def profile(db: np.ndarray, queries: np.ndarray, *, seed: int = 0) -> dict:
    """How a set of passage vectors looks to real queries and to its own passages.

    Medians over queries of: top-1 and top-10 cosine, the top-1 minus top-10 gap, the
    top-10 minus top-100 gap, the cosine to a random passage; and over a sample of
    passages: the cosine to the nearest other passage.
    """
    rng = np.random.default_rng(seed)
    k = min(100, len(db))
    scores, _ = exact_knn(db, queries, k)
    sample = db[rng.choice(len(db), size=min(1000, len(db)), replace=False)]
    background = queries @ sample.T
    own = db[rng.choice(len(db), size=min(500, len(db)), replace=False)]
    own_scores, _ = exact_knn(db, own, 2)
    out = {
        "passages": int(len(db)),
        "top1": float(np.median(scores[:, 0])),
        "top10": float(np.median(scores[:, min(9, k - 1)])),
        "gap_1_10": float(np.median(scores[:, 0] - scores[:, min(9, k - 1)])),
        "random": float(np.median(background)),
        "passage_nn": float(np.median(own_scores[:, 1])),
    }
    if k >= 100:
        out["gap_10_100"] = float(np.median(scores[:, 9] - scores[:, 99]))
    return out


def choose_beta(real: np.ndarray, *, grid=None, seeds: int = 3) -> tuple[float, list[dict]]:
    """The noise weight whose synthetic set matches the real passage-NN cosine.

    For each ``beta`` a synthetic set of the real set's size is drawn (bases with
    replacement, as at scale) and the median cosine of each passage to its nearest other
    passage is compared with the real corpus's. The smallest ``beta`` whose synthetic
    nearest neighbours are no closer than the real ones is returned: smaller values make
    tighter duplicates, i.e. easier search.
    """
    grid = grid or [round(0.1 * i, 2) for i in range(1, 10)] + [0.95]
    real_nn = _passage_nn(real, real)
    rows = []
    chosen = None
    for beta in grid:
        values = [_passage_nn(synthesize(real, len(real), beta, seed=s), None) for s in range(seeds)]
        nn = float(np.median(values))
        rows.append({"beta": beta, "passage_nn": nn, "real_passage_nn": real_nn})
        if chosen is None and nn <= real_nn:
            chosen = beta
    return (chosen if chosen is not None else grid[-1]), rows


def _passage_nn(db: np.ndarray, _unused) -> float:
    scores, _ = exact_knn(db, db, 2)
    return float(np.median(scores[:, 1]))


# -- the index benchmark -----------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One FAISS index configuration: how to build it and which search knobs to sweep."""

    name: str
    family: str  # flat | hnsw | ivf
    factory: str = ""
    hnsw_m: int = 0
    ef_construction: int = 0
    nlist: int = 0
    sweep: tuple = ()  # efSearch values (hnsw) or nprobe values (ivf)
    refine: int = 0  # k_factor of an exact re-ranking over the full vectors (0: none)


def candidates(n: int, quick: bool) -> list[Candidate]:
    """The index types worth comparing at ``n`` passages.

    Quick mode keeps one of each family. At a million passages the HNSW variants that the
    smaller sizes already rank (M=16, SQ8) are left out: each costs minutes to build.
    """
    nlist = _nlist(n)
    probes = (4, 8, 16, 32, 64) if not quick else (8, 32)
    probes = tuple(p for p in probes if p <= nlist)
    big = n > 300_000
    efs = (16, 32, 64, 128, 256) if not quick else (32, 128)
    if big:  # a larger graph needs a wider search for the same recall
        efs = (32, 64, 128, 256, 512) if not quick else (64, 256)
    out = [Candidate("Flat IP (exact)", "flat", "Flat")]
    out.append(Candidate("HNSW32 flat", "hnsw", "HNSW32,Flat", 32, 40, sweep=efs))
    if not quick and not big:
        out.append(Candidate("HNSW16 flat", "hnsw", "HNSW16,Flat", 16, 40, sweep=efs))
        out.append(Candidate("HNSW32 SQ8", "hnsw", "HNSW32,SQ8", 32, 40, sweep=efs))
    out.append(Candidate(f"IVF{nlist} flat", "ivf", f"IVF{nlist},Flat", nlist=nlist, sweep=probes))
    if not quick:
        out.append(Candidate(f"IVF{nlist} SQ8", "ivf", f"IVF{nlist},SQ8", nlist=nlist, sweep=probes))
        if not big:
            out.append(
                Candidate(
                    f"IVF{nlist} PQ48 + exact rerank x16", "ivf", f"IVF{nlist},PQ48",
                    nlist=nlist, sweep=tuple(p for p in (8, 32) if p <= nlist), refine=16,
                )
            )
    return out


def _nlist(n: int) -> int:
    """About sqrt(n) inverted lists (a power of two): 128 at 10k, 256 at 100k, 1024 at 1M."""
    return int(max(16, 2 ** round(math.log2(math.sqrt(n)))))


def _train_sample(n: int) -> int:
    """64 training vectors per list (FAISS wants at least 39), at most 100k, at most n."""
    return int(min(n, max(64 * _nlist(n), 20_000), 100_000))


def build(candidate: Candidate, db: np.ndarray, *, train_sample: int, seed: int = 0):
    """Build ``candidate`` over ``db``; returns (index, build seconds, train seconds)."""
    faiss = _faiss()
    dim = db.shape[1]
    started = time.perf_counter()
    train_seconds = 0.0
    index = faiss.index_factory(dim, candidate.factory, faiss.METRIC_INNER_PRODUCT)
    if candidate.family == "hnsw":
        index.hnsw.efConstruction = candidate.ef_construction
    if not index.is_trained:
        rng = np.random.default_rng(seed)
        sample = db[rng.choice(len(db), size=min(train_sample, len(db)), replace=False)]
        t = time.perf_counter()
        index.train(sample)
        train_seconds = time.perf_counter() - t
    if candidate.refine:
        index = faiss.IndexRefineFlat(index)
        index.k_factor = candidate.refine
    index.add(db)
    return index, time.perf_counter() - started, train_seconds


def set_knob(index, candidate: Candidate, value) -> None:
    faiss = _faiss()
    inner = faiss.downcast_index(index.base_index) if candidate.refine else index
    if candidate.family == "hnsw":
        faiss.downcast_index(inner).hnsw.efSearch = int(value)
    elif candidate.family == "ivf":
        faiss.extract_index_ivf(inner).nprobe = int(value)


def index_bytes(index) -> int:
    """Serialised size: what the index holds in memory, within a few percent."""
    faiss = _faiss()
    return int(faiss.serialize_index(index).nbytes)


def measure(index, queries: np.ndarray, truth: np.ndarray, latency_queries: int, k: int = 10):
    """recall@k against ``truth`` (batched search), and one-query-at-a-time latency."""
    _, found = index.search(queries, k)
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth[:, :k])]))
    lat = []
    for q in queries[:latency_queries]:
        t = time.perf_counter()
        index.search(q[None, :], k)
        lat.append(time.perf_counter() - t)
    if not lat:
        return recall, float("nan"), float("nan")
    lat_ms = np.asarray(lat) * 1000
    return recall, float(np.percentile(lat_ms, 50)), float(np.percentile(lat_ms, 95))


def bench_size(
    real: np.ndarray,
    queries: np.ndarray,
    n: int,
    beta: float,
    *,
    quick: bool,
    latency_queries: int,
    log: Log,
    seed: int = 0,
    max_build_seconds: float = 900.0,
) -> dict:
    """Every candidate index at ``n`` synthetic passages: build time, memory, recall, latency."""
    t = time.perf_counter()
    db = synthesize(real, n, beta, seed=seed)
    gen_seconds = time.perf_counter() - t
    t = time.perf_counter()
    _, truth = exact_knn(db, queries, 10)
    truth_seconds = time.perf_counter() - t
    prof = profile(db, queries)
    log(f"  {n:,} passages: made in {gen_seconds:.1f} s, exact top-10 in {truth_seconds:.1f} s")
    rows = []
    train_sample = _train_sample(n)
    for cand in candidates(n, quick):
        estimate = _estimated_build_seconds(cand, n)
        if estimate > max_build_seconds:
            rows.append({"index": cand.name, "skipped": f"build would take ~{estimate:.0f} s"})
            log(f"    {cand.name}: skipped (build ~{estimate:.0f} s)")
            continue
        try:
            index, build_s, train_s = build(cand, db, train_sample=train_sample, seed=seed)
        except MemoryError:
            rows.append({"index": cand.name, "skipped": "out of memory"})
            continue
        size = index_bytes(index)
        for value in cand.sweep or (None,):
            if value is not None:
                set_knob(index, cand, value)
            lq = latency_queries if cand.family != "flat" or n < 300_000 else min(latency_queries, 100)
            recall, p50, p95 = measure(index, queries, truth, lq)
            knob = {"hnsw": "efSearch", "ivf": "nprobe"}.get(cand.family)
            rows.append(
                {
                    "index": cand.name,
                    "knob": f"{knob}={value}" if knob else "",
                    "recall10": recall,
                    "p50_ms": p50,
                    "p95_ms": p95,
                    "build_s": build_s,
                    "train_s": train_s,
                    "bytes": size,
                    "bytes_per_million": size * 1_000_000 / n,
                }
            )
            log(
                f"    {cand.name:<34} {rows[-1]['knob']:<12} recall@10 {recall:.3f}  "
                f"p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  build {build_s:6.1f} s"
            )
        _BUILD_RATE[_rate_key(cand)] = build_s / n
        del index
        gc.collect()
    del db
    gc.collect()
    return {
        "passages": n,
        "generate_s": gen_seconds,
        "exact_truth_s": truth_seconds,
        "train_sample": train_sample,
        "profile": prof,
        "rows": rows,
    }


#: Seconds per passage of the last build of each kind, to skip builds that would be too long.
_BUILD_RATE: dict[str, float] = {}


def _rate_key(cand: Candidate) -> str:
    return re.sub(r"IVF\d+", "IVF", cand.factory) + f"/{cand.refine}"


def _estimated_build_seconds(cand: Candidate, n: int) -> float:
    rate = _BUILD_RATE.get(_rate_key(cand))
    # HNSW insertion cost grows ~log n per vector; 1.3x covers 100k -> 1M.
    return rate * n * 1.3 if rate else 0.0


def hardness_check(
    real_db: np.ndarray,
    real_queries: np.ndarray,
    beta: float,
    base_passages: np.ndarray,
    log: Log,
) -> list[dict]:
    """The same small approximate indexes on a real set and a synthetic one of equal size.

    If synthetic recall is no higher than real recall for the same settings, the synthetic
    vectors do not make search easier than the real ones.
    """
    n = len(real_db)
    synth = synthesize(base_passages, n, beta, seed=1)
    nlist = max(8, 2 ** round(math.log2(math.sqrt(n) / 2)))
    configs = [
        (Candidate("HNSW16 flat", "hnsw", "HNSW16,Flat", 16, 40), "efSearch", (10, 16)),
        (Candidate(f"IVF{nlist} flat", "ivf", f"IVF{nlist},Flat", nlist=nlist), "nprobe", (1, 2, 4)),
    ]
    rows = []
    for label, db in (("real", real_db), ("synthetic", synth)):
        _, truth = exact_knn(db, real_queries, 10)
        for cand, knob, values in configs:
            index, _, _ = build(cand, db, train_sample=n)
            for value in values:
                set_knob(index, cand, value)
                recall, _, _ = measure(index, real_queries, truth, 0)
                rows.append({"set": label, "index": cand.name, "knob": f"{knob}={value}", "recall10": recall})
    log("  hardness check: " + ", ".join(f"{r['set']} {r['index']} {r['knob']} {r['recall10']:.3f}" for r in rows))
    return rows
