"""Chinese segmentation: our cache of jieba's dictionary gives exactly jieba's words."""

from __future__ import annotations

import os
from pathlib import Path

import jieba
import pytest

from corpus.load import load_corpus
from index.store import segmenter
from index.store.segmenter import prefix_dictionary

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def jiebas_own():
    """jieba's prefix dictionary as jieba builds it from its dictionary file."""
    tokenizer = jieba.Tokenizer()
    return tokenizer.gen_pfdict(tokenizer.get_dict_file())


def test_the_cached_dictionary_is_jiebas_own(tmp_path, jiebas_own):
    built = prefix_dictionary(jieba.Tokenizer(), tmp_path)  # no cache yet: built, then saved
    (cache,) = tmp_path.glob("jieba-*.npz")
    read = prefix_dictionary(jieba.Tokenizer(), tmp_path)  # from the cache
    assert built == read == jiebas_own
    assert len(read[0]) == 498_113 and read[0]["重庆"] > 0 and read[0]["中华人民共和"] == 0  # a prefix of 中华人民共和国


def test_text_is_segmented_as_jieba_segments_it():
    reference = jieba.Tokenizer()
    reference.initialize()
    chinese = [p.text for p in load_corpus(REPO / "corpus" / "articles").passages if p.language == "zh"]
    assert len(chinese) > 10
    for text in chinese + ["武汉光谷的光电子信息产业集群", "长江中游城市群协同发展，重庆两江新区"]:
        assert segmenter.segment(text) == reference.lcut(text)


def test_a_damaged_cache_is_rebuilt(tmp_path, jiebas_own):
    prefix_dictionary(jieba.Tokenizer(), tmp_path)
    (cache,) = tmp_path.glob("jieba-*.npz")
    cache.write_bytes(cache.read_bytes()[: 10_000])  # cut short, as by a full disk
    assert prefix_dictionary(jieba.Tokenizer(), tmp_path) == jiebas_own
    assert prefix_dictionary(jieba.Tokenizer(), tmp_path) == jiebas_own  # and readable again
    assert cache.stat().st_size > 1_000_000


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_cache_folder_others_may_write_is_not_used(tmp_path, jiebas_own):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert prefix_dictionary(jieba.Tokenizer(), shared) == jiebas_own
    assert list(shared.iterdir()) == []


def test_without_a_dictionary_file_to_name_the_cache_after_jieba_builds_it(tmp_path, monkeypatch, jiebas_own):
    """A zipped install has no dict.txt on disk: no cache then, but the same dictionary."""
    monkeypatch.setattr(segmenter, "_dictionary_file", lambda tokenizer: tmp_path / "no-such-dict.txt")
    assert prefix_dictionary(jieba.Tokenizer(), tmp_path / "cache") == jiebas_own
    assert list((tmp_path / "cache").iterdir()) == []
