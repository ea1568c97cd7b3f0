"""bench/perf.py, section ``ann``: FAISS index types at 10k/100k/1M synthetic passages."""

from __future__ import annotations

import hashlib
import time

import numpy as np

from perf_common import CACHE, Plan, Workspace, XQUAD, log, questions, xquad_questions

# -- FAISS at scale ----------------------------------------------------------------------


def section_ann(ws: Workspace, plan: Plan, sizes: list[int]) -> dict:
    import faiss

    import synthetic  # bench/, the script's folder, is on sys.path

    faiss.omp_set_num_threads(2)
    real, real_label = _real_passages(ws)
    queries = _real_queries(ws)
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(queries), size=min(plan.ann_queries, len(queries)), replace=False)
    q = np.ascontiguousarray(queries[chosen])
    log(f"  real passages: {len(real)} ({real_label}); queries: {len(q)} of {len(queries)}")
    t = time.perf_counter()
    beta, beta_rows = synthetic.choose_beta(real)
    log(f"  beta = {beta} (chosen in {time.perf_counter() - t:.1f} s)")
    out: dict = {
        "real_passages": len(real),
        "real_source": real_label,
        "queries": len(q),
        "latency_queries": plan.ann_latency_queries,
        "beta": beta,
        "beta_grid": beta_rows,
        "profiles": {
            "real": synthetic.profile(real, q),
            f"synthetic at {len(real)}": synthetic.profile(
                synthetic.synthesize(real, len(real), beta, seed=5), q
            ),
        },
    }
    out["hardness_check"] = synthetic.hardness_check(real, q, beta, real, log)
    out["sizes"] = []
    for n in sizes:
        result = synthetic.bench_size(
            real, q, n, beta, quick=plan.quick, latency_queries=plan.ann_latency_queries, log=log
        )
        out["profiles"][f"synthetic at {n:,}"] = result.pop("profile")
        out["sizes"].append(result)
    return out


def _real_passages(ws: Workspace) -> tuple[np.ndarray, str]:
    """Real passage embeddings of the bundled + XQuAD corpora (cached by model and corpus)."""
    from corpus import load_corpus
    from index.build import corpus_fingerprint

    folders = [ws.settings().corpus_dir]
    if (XQUAD / "corpus").is_dir():
        folders.append(XQUAD / "corpus")
    embedder = ws.embedder
    key = hashlib.sha256(
        ("|".join(corpus_fingerprint(f) for f in folders) + embedder.fingerprint).encode()
    ).hexdigest()[:16]
    path = CACHE / f"real-passages-{key}.npy"
    if path.is_file():
        return np.load(path), "bundled + XQuAD corpora (cached embeddings)"
    texts = [p.indexed_text for f in folders for p in load_corpus(f).passages]
    log(f"  embedding {len(texts)} real passages (cached afterwards)")
    vectors = embedder.embed_passages(texts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors, "bundled + XQuAD corpora"


def _real_queries(ws: Workspace) -> np.ndarray:
    """Real question embeddings: the dev questions and the XQuAD questions (cached)."""
    texts = questions() + xquad_questions()
    embedder = ws.embedder
    key = hashlib.sha256(("\n".join(texts) + embedder.fingerprint).encode()).hexdigest()[:16]
    path = CACHE / f"real-queries-{key}.npy"
    if path.is_file():
        return np.load(path)
    log(f"  embedding {len(texts)} real questions (cached afterwards)")
    vectors = embedder.embed_queries(texts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors
