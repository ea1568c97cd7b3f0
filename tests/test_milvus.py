"""Vectors in Milvus (index/store/milvus.py) against a real Milvus API: milvus-lite's server.

The same bundled corpus is indexed twice, into the folder (FAISS) and with its vectors in
Milvus; every dev and off-topic question must get the same passages, scores and decision
from both.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from index.build import build_index, stale_reason
from index.retrieval.engine import Engine
from index.store.generations import VECTORS, SENTENCE_VECTORS, active_manifest, load_index
from index.store.milvus import MilvusStore
from qabot.errors import QabotError

from conftest import REPO

DATA = REPO / "tests" / "data"


@pytest.fixture(scope="module")
def milvus_index(tmp_path_factory, settings_with_index, embedder, milvus_address):
    """The bundled corpus indexed with its vectors in Milvus (the session index's embedding
    cache makes the build seconds)."""
    folder = tmp_path_factory.mktemp("milvus-index")
    shutil.copy(settings_with_index.index_dir / "embedding-cache.npz", folder)
    store = MilvusStore(milvus_address + "/qabot_test")
    build_index(settings_with_index.corpus_dir, folder, embedder, vector_store=store)
    return folder, store


def _questions() -> list[str]:
    return [json.loads(line)["question"] for name in ("dev_questions.jsonl", "dev_offtopic.jsonl")
            for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def test_answers_with_the_vectors_in_milvus_are_the_folders(milvus_index, engine, embedder):
    folder, store = milvus_index
    milvus = Engine.with_model(embedder, folder, vector_store=store)
    assert not (folder / milvus.generation / VECTORS).exists()  # the folder has no vectors
    assert not (folder / milvus.generation / SENTENCE_VECTORS).exists()
    questions = _questions()
    assert len(questions) > 100
    for question in questions:
        expected, got = engine.ask(question, 5), milvus.ask(question, 5)
        assert got.answered == expected.answered, question
        assert [h.row for h in got.hits] == [h.row for h in expected.hits], question
        assert [h.highlight for h in got.hits] == [h.highlight for h in expected.hits], question
        assert np.allclose([h.score for h in got.hits], [h.score for h in expected.hits], atol=1e-5)


def test_candidate_mode_searches_milvus_and_keeps_the_answers(milvus_index, embedder, settings_with_index):
    """Above 20,000 passages the hybrid scores candidates: Milvus's nearest per language and
    the vectors of the rest fetched by row. Forced here on the small index."""
    folder, store = milvus_index
    faiss_engine = Engine(embedder, load_index(settings_with_index.index_dir), candidates=50)
    milvus = Engine(embedder, load_index(folder, store), candidates=50, vector_store=store)
    for question in _questions()[::4]:
        expected, got = faiss_engine.ask(question, 3), milvus.ask(question, 3)
        assert got.answered == expected.answered, question
        assert [h.row for h in got.hits[:1]] == [h.row for h in expected.hits[:1]], question


def test_a_rebuild_writes_new_collections_and_moves_the_aliases(milvus_index, settings_with_index, embedder):
    folder, store = milvus_index
    first = load_index(folder, store).generation
    build_index(settings_with_index.corpus_dir, folder, embedder, vector_store=store)
    second = load_index(folder, store).generation
    third_build = build_index(settings_with_index.corpus_dir, folder, embedder, vector_store=store)
    third = load_index(folder, store).generation
    assert len({first, second, third}) == 3 and third_build.passages == len(load_index(folder, store).passages)
    names = set(store.client.list_collections())
    assert set(store.collections(third)) <= names and set(store.collections(second)) <= names
    assert not set(store.collections(first)) & names  # two generations back: dropped
    alias = store.client.describe_alias("qabot_test_passages")
    assert alias["collection_name"] == store.collections(third)[0]
    assert active_manifest(folder).vector_store == store.address


def test_an_index_with_its_vectors_in_milvus_says_what_it_needs(milvus_index, settings_with_index):
    folder, _ = milvus_index
    with pytest.raises(QabotError, match="keeps its vectors in Milvus .*set QABOT_VECTOR_STORE"):
        load_index(folder)
    assert "its vectors are in milvus://" in stale_reason(folder, settings_with_index.corpus_dir)
    with pytest.raises(QabotError, match="Cannot reach Milvus at http://127.0.0.1:9 "):
        MilvusStore("milvus://127.0.0.1:9").client.list_collections()
    with pytest.raises(QabotError, match="QABOT_VECTOR_STORE must look like"):
        MilvusStore("postgres://x")
