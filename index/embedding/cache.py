"""Vectors already computed, keyed by text and model: a rebuild re-embeds only what changed.

Embedding is by far the slowest step of a build (about 20 texts/s on 2 cores). Editing one
article should not re-embed the whole corpus, so every build keeps the vectors of the
texts it embedded in ``embedding-cache.npz`` beside the index generations, tagged with the
model that made them. The cache is an optimisation only: a missing, corrupt or
other-model cache is ignored (and replaced), never an error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index.embedding.embedder import Embedder, Progress

log = logging.getLogger(__name__)

CACHE_FILE = "embedding-cache.npz"
#: Texts embedded per call; after each, the cache is saved if :data:`SAVE_EVERY` seconds
#: passed: a build killed mid-way keeps what it embedded (at ~45 texts/s, 30 s of work).
CHUNK = 256
SAVE_EVERY = 30.0


def embed_with_cache(
    embedder: Embedder,
    texts: Sequence[str],
    index_dir: Path,
    progress: Progress | None = None,
    *,
    queries: Sequence[str] = (),
) -> tuple[np.ndarray, int]:
    """Vectors for ``texts`` (as passages) then ``queries`` (as questions: another prompt,
    cached apart), in order, and how many of ``texts`` had to be embedded now.

    ``progress(done, total)`` counts the texts; those found in the cache are done at once.

    The cache written back holds exactly the current texts and queries, so it never outgrows
    the corpus.
    """
    path = index_dir / CACHE_FILE
    model = model_key(embedder)
    known = _load(path, model)
    keys = [_key(text) for text in texts]
    missing = list(dict.fromkeys(key for key in keys if key not in known))
    reused = len(keys) - len(missing)
    if progress:  # cached texts count as done at once, so every build shows its progress
        progress(reused, len(keys))
    text_of = dict(zip(keys, texts))
    saved_at = time.monotonic()
    for start in range(0, len(missing), CHUNK):
        chunk = missing[start : start + CHUNK]
        done_before = reused + start
        fresh = embedder.embed_passages(
            [text_of[key] for key in chunk],
            progress=(lambda done, _: progress(done_before + done, len(keys))) if progress else None,
        )
        known.update(zip(chunk, fresh))
        if time.monotonic() - saved_at >= SAVE_EVERY and start + CHUNK < len(missing):
            _save(path, model, known)  # everything known so far: a kill loses < SAVE_EVERY
            saved_at = time.monotonic()
    query_keys = [_key(_QUERY + query) for query in queries]
    new_queries = list(dict.fromkeys(k for k in query_keys if k not in known))
    if new_queries:
        query_of = dict(zip(query_keys, queries))
        known.update(zip(new_queries, embedder.embed_queries([query_of[k] for k in new_queries])))
    keys += query_keys
    vectors = np.stack([known[key] for key in keys]) if keys else np.zeros((0, embedder.dimension), np.float32)
    _save(path, model, dict(zip(keys, vectors)))
    return vectors.astype(np.float32, copy=False), len(missing)


def model_key(embedder: Embedder) -> str:
    """Which model made the vectors: its behaviour fingerprint and, if known, its weights."""
    return f"{embedder.model_id}|{embedder.fingerprint}|{embedder.weights}"


_KEY_BYTES = 32  # sha256
#: Prefixed to a question before hashing: the same text as a question has another vector.
_QUERY = "query\0"


def _key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def _load(path: Path, model: str) -> dict[bytes, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["model"]) != model:
                return {}
            keys = data["keys"]
            if keys.dtype != np.uint8 or keys.ndim != 2:  # written before keys were raw bytes
                return {}
            return dict(zip((row.tobytes() for row in keys), data["vectors"]))
    except FileNotFoundError:
        return {}
    except Exception as exc:  # a damaged cache only costs time: say so and start afresh
        log.warning("Ignoring the embedding cache %s (%s); all texts will be embedded.", path, exc)
        return {}


def _save(path: Path, model: str, vectors: dict[bytes, np.ndarray]) -> None:
    """Write atomically, so a crash mid-write never leaves a half cache behind."""
    temporary = path.with_suffix(".tmp.npz")
    # Raw bytes, one row per key: a bytes dtype ("S32") would drop a digest's trailing zero
    # bytes, and 1 text in 256 would never be found again.
    keys = np.frombuffer(b"".join(vectors), dtype=np.uint8).reshape(len(vectors), _KEY_BYTES)
    matrix = np.stack(list(vectors.values())) if vectors else np.zeros((0, 0), np.float32)
    try:
        np.savez(temporary, model=np.array(model), keys=keys, vectors=matrix.astype(np.float32))
        os.replace(temporary, path)
    except BaseException:  # a full disk, Ctrl-C: a half-written file would only hold the space
        temporary.unlink(missing_ok=True)
        raise
