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
    (tmp_path / "jieba-0123456789abcdef.npz").write_bytes(b"the previous format")
    built = prefix_dictionary(jieba.Tokenizer(), tmp_path)  # no cache yet: built, then saved
    assert not list(tmp_path.glob("*.npz"))  # the previous format's cache is removed
    (cache,) = tmp_path.glob("jieba-*.marisa")
    read = prefix_dictionary(jieba.Tokenizer(), tmp_path)  # from the cache
    words, total = jiebas_own
    assert dict(read[0].items()) == dict(built[0].items()) == words and read[1] == built[1] == total
    assert len(read[0]) == 498_113 and read[0]["重庆"] > 0 and read[0]["中华人民共和"] == 0  # a prefix of 中华人民共和国
    assert "重庆" in read[0] and "重庆x" not in read[0] and read[0].get("重庆x") is None
    assert cache.stat().st_size < 5_000_000  # mapped, not a 56 MB dict


def test_text_is_segmented_as_jieba_segments_it():
    reference = jieba.Tokenizer()
    reference.initialize()
    chinese = [p.text for p in load_corpus(REPO / "corpus" / "articles").passages if p.language == "zh"]
    assert len(chinese) > 10
    for text in chinese + ["武汉光谷的光电子信息产业集群", "长江中游城市群协同发展，重庆两江新区"]:
        assert segmenter.segment(text) == reference.lcut(text)


def _damaged(data: bytes, how: str) -> bytes:
    if how == "cut short":  # as by a full disk
        return data[:10_000]
    flipped = bytearray(data)  # bits changed in place: marisa would map it without a word
    for at in range(5_000, len(flipped), 997):
        flipped[at] ^= 0xFF
    return bytes(flipped)


@pytest.mark.parametrize("how", ["cut short", "bits flipped"])
def test_a_damaged_cache_is_rebuilt(tmp_path, jiebas_own, how):
    prefix_dictionary(jieba.Tokenizer(), tmp_path)
    (cache,) = tmp_path.glob("jieba-*.marisa")
    intact = cache.read_bytes()
    cache.write_bytes(_damaged(intact, how))
    for _ in range(2):  # rebuilt, and readable again
        words, total = prefix_dictionary(jieba.Tokenizer(), tmp_path)
        assert len(words) == len(jiebas_own[0]) and total == jiebas_own[1]
        assert all(words.get(w) == f for w, f in list(jiebas_own[0].items())[::97])
    assert cache.read_bytes() == intact


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_cache_folder_others_may_write_is_not_used(tmp_path, jiebas_own):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert prefix_dictionary(jieba.Tokenizer(), shared) == jiebas_own  # jieba's own dict
    assert list(shared.iterdir()) == []


def test_without_a_dictionary_file_to_name_the_cache_after_jieba_builds_it(tmp_path, monkeypatch, jiebas_own):
    """A zipped install has no dict.txt on disk: no cache then, but the same dictionary."""
    monkeypatch.setattr(segmenter, "_dictionary_file", lambda tokenizer: tmp_path / "no-such-dict.txt")
    assert prefix_dictionary(jieba.Tokenizer(), tmp_path / "cache") == jiebas_own
    assert list((tmp_path / "cache").iterdir()) == []
