"""The lexical side and the fusion, without the model: tokenisers, BM25 index, guard, pools."""

from __future__ import annotations

import numpy as np
import pytest

from corpus.records import Document, Passage
from index import fusion
from index.fusion import Logistic, Signals, fuse, lexical_guard, pool_scores, zscore
from index.highlight import best_sentence, sentence_spans
from index.lexical import LexicalIndex, tokenize
from index.store import DATA_FILES, load_index, write_index
from qabot.errors import IndexNotReady


def test_english_is_lower_cased_nfkc_words_with_numbers_kept_whole():
    assert tokenize("WISCO's Ｎｅｗ line: 1.52 billion, 260,000 firms (2024).") == [
        "wisco", "s", "new", "line", "1.52", "billion", "260,000", "firms", "2024",
    ]


def test_chinese_is_segmented_into_words_and_mixed_text_keeps_both():
    tokens = tokenize("武钢有限新能源无取向硅钢产线，年产55万吨。BskyB宣布")
    assert "硅钢" in tokens and "55" in tokens and "万吨" in tokens and "bskyb" in tokens
    assert all(t.strip() and t not in "，。" for t in tokens)


def test_bm25_scores_coverage_and_language_coverage():
    texts = ["Huanglian Port cargo throughput 1.7 million tons", "武钢硅钢产线年产55万吨", "steel line"]
    index = LexicalIndex.build(texts, ["en", "zh", "en"])
    query = index.query("Huanglian cargo 55 万吨")
    scores = query.scores()
    assert scores[0] > 0 and scores[1] > 0 and scores[2] == 0
    coverage = query.coverage()
    assert 0 < coverage[0] < 1 and 0 < coverage[1] < 1 and coverage[2] == 0
    assert query.language_coverage("en") == pytest.approx(coverage[0])
    assert query.language_coverage("zh") == pytest.approx(coverage[1])
    assert index.query("omelette").scores().tolist() == [0, 0, 0]  # unknown word: no match


def test_lexical_index_round_trips_with_the_generation_and_is_checksummed(tmp_path):
    passages = [
        Passage("a", 1, "The Huanglian Port handles 1.7 million tons of cargo.", "en"),
        Passage("b", 1, "新产线具备年产55万吨高端无取向硅钢的能力。", "zh"),
    ]
    vectors = np.eye(2, 4, dtype=np.float32)
    write_index(tmp_path, vectors, passages, [Document("a", "A"), Document("b", "B")], {})
    assert {"lexical-data.npy", "lexical-vocab.json"} <= set(DATA_FILES)
    stored = load_index(tmp_path)
    assert stored.lexical.query("硅钢 capacity").scores()[1] > 0
    folder = tmp_path / stored.generation
    (folder / "lexical-vocab.json").write_text("{}", encoding="utf-8")
    with pytest.raises(IndexNotReady, match="lexical-vocab.json"):
        load_index(tmp_path)


def test_zscore_of_constant_values_is_zero():
    assert zscore(np.zeros(4)).tolist() == [0, 0, 0, 0]
    assert zscore(np.array([1.0, 3.0])).tolist() == [-1.0, 1.0]


def test_lexical_guard_scales_with_the_share_of_words_present():
    assert lexical_guard(0.0) == 0.0
    assert lexical_guard(fusion.GUARD_FULL_COVERAGE / 2) == pytest.approx(0.5)
    assert lexical_guard(1.0) == 1.0


def _signals(dense, lexical, coverage=None, language_coverage=None):
    dense = np.asarray(dense, dtype=np.float32)
    return Signals(
        dense=dense,
        sentence=dense,
        lexical=np.asarray(lexical, dtype=np.float32),
        coverage=np.zeros(len(dense)) if coverage is None else np.asarray(coverage),
        language_coverage=language_coverage or {},
    )


def test_lexical_noise_does_not_reorder_a_pool_the_question_shares_no_words_with():
    # One shared token in the third passage: with no coverage the dense order stands.
    signals = _signals([0.80, 0.79, 0.78, 0.77, 0.76, 0.75], [0, 0, 2.5, 0, 0, 0])
    members = np.ones(6, dtype=bool)
    assert np.argmax(pool_scores(signals, members, language_coverage=0.0)) == 0
    assert np.argmax(pool_scores(signals, members, language_coverage=1.0)) == 2


def test_pools_are_ranked_separately_and_the_stronger_pool_leads():
    languages = np.array(["en", "en", "zh", "zh"])
    # Clear same-language match: big dense gap over the other pool, words covered.
    strong = _signals([0.92, 0.80, 0.79, 0.78], [9.0, 1.0, 0, 0], [0.9, 0.2, 0, 0],
                      {"en": 0.9, "zh": 0.0})
    fused = fuse(strong, languages, "en")
    assert np.argmax(fused.scores) == 0 and fused.p_other < 0.2
    # Weak same-language match, words absent: the best Chinese passage is put first.
    weak = _signals([0.84, 0.835, 0.80, 0.76], [0.5, 0.4, 0, 0], [0.1, 0.1, 0, 0],
                    {"en": 0.2, "zh": 0.0})
    fused = fuse(weak, languages, "en")
    assert np.argmax(fused.scores) == 2 and fused.p_other > 0.5
    # A language filter leaves one pool: no decision, the filter is obeyed.
    only_zh = fuse(weak, languages, "en", allowed=languages == "zh")
    assert np.isinf(only_zh.scores[:2]).all() and only_zh.p_other == 1.0


def test_logistic_imputes_missing_features_with_the_training_mean():
    model = Logistic(("a", "b"), mean=(1.0, 2.0), scale=(1.0, 1.0), weight=(1.0, 5.0), bias=0.0)
    assert model.probability({"a": 1.0, "b": None}) == pytest.approx(0.5)
    assert model.probability({"a": 3.0}) > 0.8


def test_sentence_spans_follow_the_corpus_splitter_and_overlap_breaks_near_ties():
    text = "Huanglian Port opens in August. It handles 1.7 million tons of cargo a year. 新港口。"
    spans = sentence_spans(text)
    assert [text[a:b] for a, b in spans] == [
        "Huanglian Port opens in August.", "It handles 1.7 million tons of cargo a year.", "新港口。"
    ]
    assert best_sentence(spans, np.array([0.85, 0.84, 0.80])) == spans[0]
    assert best_sentence(spans, np.array([0.85, 0.84, 0.80]), [0.1, 0.6, 0.0]) == spans[1]
    assert best_sentence([], np.array([])) is None
