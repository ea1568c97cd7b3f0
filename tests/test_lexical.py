"""The lexical side and the fusion, without the model: tokenisers, BM25 index, guard, pools."""

from __future__ import annotations

import numpy as np
import pytest

from corpus.records import Document, Passage
from index.retrieval import fusion
from index.retrieval.fusion import Logistic, NullStatistics, Signals, fuse, lexical_guard, summarise
from corpus.sentences import sentence_spans
from index.retrieval.highlight import best_sentence
from index.store.lexical import LexicalIndex, tokenize
from index.store.generations import DATA_FILES, load_index, write_index
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
    write_index(tmp_path, vectors, passages, [Document("a", "A"), Document("b", "B")])
    assert {"lexical-data.npy", "lexical-vocab.json"} <= set(DATA_FILES)
    stored = load_index(tmp_path)
    assert stored.lexical.query("硅钢 capacity").scores()[1] > 0
    folder = tmp_path / stored.generation
    (folder / "lexical-vocab.json").write_text("{}", encoding="utf-8")
    with pytest.raises(IndexNotReady, match="lexical-vocab.json"):
        load_index(tmp_path)


def test_a_loaded_index_scores_exactly_as_bm25s_does(tmp_path):
    """Answering reads bm25s' files without bm25s: the same scores to the last bit."""
    import bm25s

    from index.store.lexical import _FILE_NAMES

    texts = [f"passage {i} about steel 硅钢 line {i % 7} and port {i % 3} 武汉 {'hydrogen ' * (i % 4)}"
             for i in range(200)]
    LexicalIndex.build(texts, ["en"] * 200).save(tmp_path)
    ours = LexicalIndex.load(tmp_path, ["en"] * 200)
    theirs = bm25s.BM25.load(tmp_path, **_FILE_NAMES, show_progress=False)
    for question in ["steel line 3", "武汉 硅钢 hydrogen hydrogen", "port 2 passage 17", "omelette"]:
        query = ours.query(question)
        expected = theirs.get_scores(query.ids.tolist()) if len(query.ids) else np.zeros(200)
        np.testing.assert_array_equal(query.scores(), np.asarray(expected, dtype=np.float32))


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


def _pools(signals, languages, only=None):
    return {
        lang: summarise(signals, languages == lang)
        for lang in sorted(set(languages.tolist()))
        if only in (None, lang)
    }


#: A null as unrelated questions give it: best cosine 0.78 ± 0.02 in the question's language,
#: 0.73 ± 0.02 across; best word coverage 0.1 ± 0.1 in the question's language.
NULL = NullStatistics.from_dict({"pairs": {
    "en>en": {"dense_top": [0.78, 0.02], "sentence_top": [0.78, 0.02], "coverage_top": [0.1, 0.1]},
    "en>zh": {"dense_top": [0.73, 0.02], "sentence_top": [0.73, 0.02], "coverage_top": [0.0, 0.0]},
}})


def test_bm25_counts_in_the_question_language_only():
    # A rare shared token in the third passage of each pool: it reorders the English pool
    # (the question's language, its words present) but never the Chinese one.
    languages = np.array(["en"] * 6 + ["zh"] * 6)
    dense = [0.80, 0.79, 0.78, 0.77, 0.76, 0.75]
    bm25 = [0, 0, 5.0, 0, 0, 0]
    signals = _signals(dense + [d - 0.05 for d in dense], bm25 + bm25,
                       language_coverage={"en": 1.0, "zh": 1.0})
    fused = fuse(signals, languages, "en", _pools(signals, languages), NULL)
    assert np.argmax(fused.scores[:6]) == 2
    assert np.argmax(fused.scores[6:]) == 0


def test_evidence_is_measured_against_the_index_null():
    languages = np.array(["en", "en", "zh", "zh"])
    # The best English passage stands 7 spreads above the null, words covered: answered.
    strong = _signals([0.92, 0.80, 0.74, 0.73], [9.0, 1.0, 0, 0], [0.9, 0.2, 0, 0],
                      {"en": 0.9, "zh": 0.0})
    fused = fuse(strong, languages, "en", _pools(strong, languages), NULL)
    assert np.argmax(fused.scores) == 0 and fused.p_other < 0.2 and fused.confidence > 0.9
    # The same cosines, but unrelated questions reach them too on this index: declined.
    busy = NullStatistics.from_dict({"pairs": {
        pair: {"dense_top": [0.91, 0.02], "sentence_top": [0.91, 0.02], "coverage_top": [0.9, 0.1]}
        for pair, stats in NULL.to_dict()["pairs"].items()
    }})
    assert fuse(strong, languages, "en", _pools(strong, languages), busy).confidence < 0.5


def test_a_clear_match_only_in_the_other_language_is_put_first():
    languages = np.array(["en", "en", "zh", "zh"])
    # English passages no better than the null, words absent; a Chinese passage far above it.
    signals = _signals([0.79, 0.78, 0.82, 0.74], [0.5, 0.4, 0, 0], [0.05, 0.05, 0, 0],
                       {"en": 0.2, "zh": 0.0})
    fused = fuse(signals, languages, "en", _pools(signals, languages), NULL)
    assert np.argmax(fused.scores) == 2 and fused.p_other > 0.5 and fused.confidence > 0.5
    # A language filter leaves one pool: no decision, the filter is obeyed.
    only_zh = fuse(signals, languages, "en", _pools(signals, languages, "zh"), NULL)
    assert np.isinf(only_zh.scores[:2]).all() and only_zh.p_other == 1.0


def test_a_one_language_index_gives_cross_language_evidence_more_credit():
    # A Chinese-only index asked in English: the answer can only be across languages.
    languages = np.array(["zh", "zh", "zh"])
    signals = _signals([0.78, 0.74, 0.73], [0, 0, 0], language_coverage={"zh": 0.0})
    pools = _pools(signals, languages)
    decision = fusion.DECISION
    alone = fuse(signals, languages, "en", pools, NULL).features["evidence"]["zh"]
    z = (0.78 - 0.73) / 0.02
    assert alone == pytest.approx(z + decision.lone_cross_offset)
    mixed = fusion.pool_evidence(
        pools["zh"].evidence_features(), "en", "zh", NULL, decision, own_pool=True
    )
    assert mixed == pytest.approx(z + decision.cross_offset) and alone > mixed


def test_short_questions_are_measured_against_short_reference_questions():
    # One-word questions reach high cosines anywhere: their own null says so.
    null = NullStatistics.from_dict({"pairs": {
        **NULL.to_dict()["pairs"],
        "en>en/short": {"dense_top": [0.84, 0.02], "sentence_top": [0.84, 0.02], "coverage_top": [0.0, 0.0]},
    }})
    languages = np.array(["en", "en", "en"])
    signals = _signals([0.85, 0.80, 0.79], [0, 0, 0], language_coverage={"en": 0.0})
    pools = _pools(signals, languages)
    assert fuse(signals, languages, "en", pools, null, words=5).confidence > 0.5
    assert fuse(signals, languages, "en", pools, null, words=1).confidence < 0.5
    assert fuse(signals, languages, "en", pools, null, words=0).confidence == 0.0


def test_the_top_hit_score_is_the_confidence():
    languages = np.array(["en", "en", "zh", "zh"])
    signals = _signals([0.86, 0.80, 0.76, 0.73], [3.0, 1.0, 0, 0], [0.5, 0.2, 0, 0],
                       {"en": 0.6, "zh": 0.0})
    fused = fuse(signals, languages, "en", _pools(signals, languages), NULL)
    assert fused.scores.max() == pytest.approx(fused.confidence)


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
