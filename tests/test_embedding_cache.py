"""Rebuilds re-embed only what changed, and a bad cache never breaks a build."""

from __future__ import annotations

import errno
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from index.embedding.cache import CACHE_FILE, embed_with_cache


class CountingEmbedder:
    """Deterministic stand-in for the model that counts what it is asked to embed."""

    model_id, fingerprint, weights, dimension = "counting", "f", "w", 4

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed_passages(self, texts, progress=None):
        self.seen.extend(texts)
        if progress:
            progress(len(texts), len(texts))
        return np.array([[len(t), t.count("a"), 1.0, 0.0] for t in texts], dtype=np.float32)

    def embed_queries(self, texts):
        self.seen.extend(f"query: {t}" for t in texts)
        return np.array([[len(t), t.count("a"), 0.0, 1.0] for t in texts], dtype=np.float32)


def test_questions_are_cached_apart_from_passages_of_the_same_text(tmp_path):
    model = CountingEmbedder()
    vectors, embedded = embed_with_cache(model, ["alpha"], tmp_path, queries=["alpha", "beta"])
    assert embedded == 1 and model.seen == ["alpha", "query: alpha", "query: beta"]
    assert vectors.shape == (3, 4) and vectors[0, 2] == 1.0 and vectors[1, 3] == 1.0
    again = CountingEmbedder()  # a rebuild: neither the passage nor the questions again
    same, embedded = embed_with_cache(again, ["alpha"], tmp_path, queries=["alpha", "beta"])
    assert embedded == 0 and again.seen == [] and np.array_equal(same, vectors)


def test_only_new_texts_are_embedded_and_order_is_kept(tmp_path):
    model = CountingEmbedder()
    first, embedded = embed_with_cache(model, ["alpha", "beta", "gamma"], tmp_path)
    assert embedded == 3
    model.seen.clear()
    second, embedded = embed_with_cache(model, ["gamma", "delta", "alpha", "alpha"], tmp_path)
    assert embedded == 1 and model.seen == ["delta"]
    assert np.array_equal(second[0], first[2]) and np.array_equal(second[2], first[0])
    assert np.array_equal(second[2], second[3])


def test_every_text_is_found_again_whatever_its_digest(tmp_path):
    """Digests ending in zero bytes (1 text in 256) used to be lost by the cache file."""
    texts = [f"passage {i}" for i in range(2000)]
    assert any(hashlib.sha256(t.encode()).digest().endswith(b"\0") for t in texts)
    embed_with_cache(CountingEmbedder(), texts, tmp_path)
    model = CountingEmbedder()
    _, embedded = embed_with_cache(model, texts, tmp_path)
    assert embedded == 0 and model.seen == []


def test_another_model_does_not_reuse_vectors(tmp_path):
    embed_with_cache(CountingEmbedder(), ["alpha"], tmp_path)
    other = CountingEmbedder()
    other.fingerprint = "g"
    _, embedded = embed_with_cache(other, ["alpha"], tmp_path)
    assert embedded == 1 and other.seen == ["alpha"]


def test_corrupt_cache_is_ignored_and_replaced(tmp_path, caplog):
    (tmp_path / CACHE_FILE).write_bytes(b"not a numpy archive")
    model = CountingEmbedder()
    vectors, embedded = embed_with_cache(model, ["alpha", "beta"], tmp_path)
    assert embedded == 2 and vectors.shape == (2, 4)
    assert "Ignoring the embedding cache" in caplog.text
    _, embedded = embed_with_cache(CountingEmbedder(), ["alpha", "beta"], tmp_path)
    assert embedded == 0


@pytest.mark.slow
def test_rebuild_after_editing_one_article_embeds_only_its_changes(
    tmp_path, settings_with_index, embedder
):
    import dataclasses

    from index.build import build_index
    from index.retrieval.engine import Engine

    corpus = tmp_path / "corpus"
    shutil.copytree(settings_with_index.corpus_dir, corpus)
    settings = dataclasses.replace(settings_with_index, corpus_dir=corpus, index_dir=tmp_path / "i")
    first = build_index(settings.corpus_dir, settings.index_dir, embedder)
    assert 0.9 * first.texts <= first.embedded <= first.texts  # identical texts embed once
    article = corpus / "jiulongpo-western-hydrogen-valley.md"
    article.write_text(
        article.read_text(encoding="utf-8")
        + "\nThe district also plans a robotics park next to Huanglian Port by 2030.\n",
        encoding="utf-8",
    )
    second = build_index(settings.corpus_dir, settings.index_dir, embedder)
    assert 0 < second.embedded <= 3  # the changed passage and its new sentence(s)
    top = Engine.with_model(embedder, settings.index_dir).ask("robotics park next to Huanglian Port").hits[0]
    assert "robotics park" in top.passage.text


@pytest.mark.parametrize("while_writing", ["the embedding cache", "the new generation"])
def test_a_full_disk_fails_the_build_with_one_clear_message_and_leaves_nothing_behind(
    tmp_path, settings_with_index, embedder, monkeypatch, while_writing
):
    """ENOSPC part way through a write: a message a person can act on (not a traceback), no
    temporary file or half-written generation left holding the space, the old index answers."""
    import faiss

    from index.build import build_index
    from index.store.generations import load_index
    from qabot.errors import QabotError

    index_dir = tmp_path / "i"
    build_index(settings_with_index.corpus_dir, index_dir, embedder)
    active, files = load_index(index_dir).generation, sorted(p.name for p in index_dir.iterdir())

    def disk_full(path, *args, **kwargs):
        Path(path).write_bytes(b"the first blocks")  # what a write cut short leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    if while_writing == "the embedding cache":
        monkeypatch.setattr(np, "savez", disk_full)
    else:
        monkeypatch.setattr(faiss, "write_index", lambda index, path: disk_full(path))
    with pytest.raises(QabotError) as failure:
        build_index(settings_with_index.corpus_dir, index_dir, embedder)
    message = str(failure.value)
    assert f"Could not write the index in {index_dir} (No space left on device; " in message
    assert "left unchanged" in message and "Free some disk space" in message
    assert sorted(p.name for p in index_dir.iterdir()) == files
    assert load_index(index_dir).generation == active


def test_progress_counts_cached_texts_as_done(tmp_path):
    embed_with_cache(CountingEmbedder(), ["alpha", "beta"], tmp_path)
    reports = []
    embed_with_cache(CountingEmbedder(), ["alpha", "beta", "gamma"], tmp_path,
                     progress=lambda done, total: reports.append((done, total)))
    assert reports[0] == (2, 3) and reports[-1] == (3, 3)
    reports.clear()
    embed_with_cache(CountingEmbedder(), ["alpha", "beta", "gamma"], tmp_path,
                     progress=lambda done, total: reports.append((done, total)))
    assert reports == [(3, 3)]  # nothing to embed: the bar still shows the build done


def test_a_build_killed_mid_way_keeps_what_it_embedded(tmp_path, monkeypatch):
    monkeypatch.setattr("index.embedding.cache.CHUNK", 2)
    monkeypatch.setattr("index.embedding.cache.SAVE_EVERY", 0.0)

    class KilledAfterTwoChunks(CountingEmbedder):
        def embed_passages(self, texts, progress=None):
            if len(self.seen) >= 4:
                raise KeyboardInterrupt  # what a kill looks like to the build
            return super().embed_passages(texts, progress)

    texts = [f"text {n}" for n in range(7)]
    with pytest.raises(KeyboardInterrupt):
        embed_with_cache(KilledAfterTwoChunks(), texts, tmp_path)
    again = CountingEmbedder()
    _, embedded = embed_with_cache(again, texts, tmp_path)
    assert embedded == 3 and again.seen == texts[4:]  # the first two chunks were kept
