"""The corpus stage as a user meets it: articles in a folder -> documents, passages, warnings."""

from __future__ import annotations

import json
import logging
import os
import re
import unicodedata
from collections import defaultdict
from pathlib import Path

import pytest

from corpus import Corpus, Passage, estimate_tokens, load_corpus, split_sentences
from corpus.import_seeds import SEEDS, import_seed
from corpus.split import HARD_MAX_TOKENS, MIN_TOKENS, TARGET_MAX_TOKENS

REPO = Path(__file__).resolve().parents[1]
SEEDS_DIR = REPO / "tests" / "data" / "seeds"
ARTICLES_DIR = REPO / "corpus" / "articles"
XQUAD_DIR = Path(__file__).resolve().parents[2] / "shared" / "bench" / "xquad"

TITLE_965 = "武汉“965”产业集群建设加速落地：汉阳、武昌、青山规划出炉 意在打造千亿、百亿产业集群"

#: What the loader reads from each raw seed page (no hand corrections).
RAW_METADATA = {
    "000_8f1471f55a3e2867": dict(
        title='The "hydrogen capital" of Wuhan, Hubei is coming!',
        publisher="", author="", date="", language="en", url="",
    ),
    "001_73fb2b42e3148d8e": dict(
        title=TITLE_965.replace("“965”", "_965_"),
        publisher="", author="新浪财经", date="2021-07-02", language="zh", url="",
    ),
    "002_002c5586f1920877": dict(
        title="青山区：以工业闯关推动发展突围",
        publisher="", author="李亦中 魏涵玉", date="", language="zh", url="",
    ),
    "003_64b3a3d2f97f6a63": dict(
        title="Robust Industrial District Targets 'Western Hydrogen Valley' by 2027 with 20 Billion Yuan Output",
        publisher="iChongqing", author="HUXIN LUO", date="2024-07-07", language="en", url="",
    ),
    "004_513aef5028e67c49": dict(
        title="Yangtze River middle reaches: Building competitive industrial clusters",
        publisher="China Daily", author="", date="2019-02-20", language="en", url="",
    ),
}

#: The bundled articles: the same, plus what import_seeds reads from the Sina page's own lines.
BUNDLED_METADATA = {
    "wuhan-hydrogen-capital-qingshan": RAW_METADATA["000_8f1471f55a3e2867"],
    "wuhan-965-clusters-hanyang-wuchang-qingshan": dict(
        RAW_METADATA["001_73fb2b42e3148d8e"], title=TITLE_965, publisher="新浪财经", author="陈红霞，井然"
    ),
    "qingshan-industry-breakthrough": RAW_METADATA["002_002c5586f1920877"],
    "jiulongpo-western-hydrogen-valley": RAW_METADATA["003_64b3a3d2f97f6a63"],
    "yangtze-middle-reaches-industrial-clusters": RAW_METADATA["004_513aef5028e67c49"],
}

#: Site chrome, markup and credits that must never reach a passage (text or context).
CHROME = [
    "Current position", "HomeNews", "Email Message", "TOP", "Print", "WeChat", "iChongqing Title",
    "By HUXIN", "Updated:", "Copyright", "All rights reserved", "ICP", "公网安备", "许可证",
    "Privacy", "cookie", "I Agree", "About Us", "Leaving a message", "inquiries", "67158993",
    "New Era, New Journey", "原标题", "责任编辑", "张亚楠", "新浪财经APP", "作者：", "撰文", "策划",
    "供图", "**",
    "<", ">", "{", "}", "&#", "&nbsp", "appendQr", "font-size", "cms-style", "sinaimg", "-->",
]

#: Photo captions and headings of the seed pages: context of a passage, never a passage.
CAPTIONS_AND_HEADINGS = [
    "The Southwest Aluminum heavy plate production line is transferring aluminum alloy sheets. "
    "(Photo/Jiulongpo District)",
    "Minzhucun community. (Photo/Jiulongpo District)",
    "青山江滩。",
    "武汉万众创城项目效果图。",
    "青山区赴长三角招商。",
    "以奔跑之姿推进主导产业转型升级",
    "数读青山",
    "Equipment manufacturing",
    "Metallurgical industry",
    "Strategic emerging industries",
    "Warden of\xa0Qingshan district",
]


@pytest.fixture(scope="module")
def raw() -> Corpus:
    return load_corpus(SEEDS_DIR)


@pytest.fixture(scope="module")
def bundled() -> Corpus:
    return load_corpus(ARTICLES_DIR)


def passages_of(corpus: Corpus, doc_id: str) -> list[Passage]:
    return [p for p in corpus.passages if p.doc_id == doc_id]


def load_files(folder: Path, files: dict[str, str | bytes]) -> Corpus:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return load_corpus(folder)


def warnings_for(corpus: Corpus, name: str) -> list[str]:
    return [w.removeprefix(f"{name}: ") for w in corpus.warnings if w.startswith(f"{name}: ")]


# --- the seed pages and the bundled corpus ----------------------------------------------


@pytest.mark.parametrize("doc_id", sorted(RAW_METADATA))
def test_raw_seed_metadata_is_read_from_the_page(raw: Corpus, doc_id: str) -> None:
    document = next(d for d in raw.documents if d.doc_id == doc_id)
    got = {field: getattr(document, field) for field in RAW_METADATA[doc_id]}
    assert got == RAW_METADATA[doc_id]
    assert document.source_file == f"{doc_id}.txt"


@pytest.mark.parametrize("doc_id", sorted(BUNDLED_METADATA))
def test_bundled_article_metadata(bundled: Corpus, doc_id: str) -> None:
    document = next(d for d in bundled.documents if d.doc_id == doc_id)
    got = {field: getattr(document, field) for field in BUNDLED_METADATA[doc_id]}
    assert got == BUNDLED_METADATA[doc_id]
    assert document.source_file == f"{doc_id}.md"


def test_every_seed_and_article_loads_without_warnings(raw: Corpus, bundled: Corpus) -> None:
    assert raw.warnings == [] and bundled.warnings == []
    assert len(raw.documents) == 5 and len(bundled.documents) == 5
    assert {d.doc_id for d in bundled.documents} == {s.slug for s in SEEDS.values()}


@pytest.mark.parametrize("which", ["raw", "bundled"])
def test_no_chrome_markup_or_credits_in_passages(request: pytest.FixtureRequest, which: str) -> None:
    corpus = request.getfixturevalue(which)
    for passage in corpus.passages:
        for text in (passage.text, passage.context):
            found = [chrome for chrome in CHROME if chrome in text]
            assert not found, f"{passage.doc_id} ¶{passage.paragraph}: {found} in {text[:80]!r}"


@pytest.mark.parametrize("which", ["raw", "bundled"])
def test_captions_and_headings_are_context_not_passages(request: pytest.FixtureRequest, which: str) -> None:
    corpus = request.getfixturevalue(which)
    texts = {p.text for p in corpus.passages}
    contexts = "\n".join(p.context for p in corpus.passages)
    for line in CAPTIONS_AND_HEADINGS:
        if which == "raw" and line.startswith("Warden"):
            continue  # marked as a caption by import_seeds; the raw page reads it as a heading
        assert line not in texts
        assert not any(line in t for t in texts), f"{line!r} shown inside a passage"
        assert line in contexts.split("\n")
    assert not any("(Photo/" in t for t in texts)


def test_raw_and_bundled_give_the_same_passages(raw: Corpus, bundled: Corpus) -> None:
    """The bundled files are the cleaned seeds: reading either gives the same passages
    (except where import_seeds marked two of seed 000's lines as captions)."""
    for name, seed in SEEDS.items():
        if name.startswith("000"):
            continue
        ours = [(p.paragraph, p.text, p.context) for p in passages_of(bundled, seed.slug)]
        theirs = [(p.paragraph, p.text, p.context) for p in passages_of(raw, Path(name).stem)]
        assert ours == theirs, seed.slug


def test_bundled_articles_are_what_import_seeds_writes() -> None:
    """corpus/articles is reproducible from tests/data/seeds (no hand edits to drift)."""
    for name, seed in SEEDS.items():
        written = (ARTICLES_DIR / f"{seed.slug}.md").read_text(encoding="utf-8")
        assert written == import_seed(SEEDS_DIR / name, seed)
        assert f"source_file: {name}\n" in written


def test_article_text_survives_cleaning(raw: Corpus) -> None:
    everything = "\n".join(p.text for p in raw.passages)
    for sentence in [
        "Qingshan District is speeding up the construction of WISCO modern industrial park.",
        "针对“965”产业集群的落地规划，武汉市再一步细化。",
        "支持苏泊尔、金牛、味好美等龙头企业建设智慧工厂",  # text inside a link, tags removed
        "以实干之姿推动新兴产业聚链成势，青山区一大批亿元以上新兴产业项目纷纷开工建设。",  # rejoined
        "坚持“一月一主题”，开展楚材聚汉、产业空间载体等专题招商活动。",  # rejoined mid-word
        "地区生产总值增长6.5%",  # Markdown bold removed
        "Chongqing—Qin Changde, secretary of the CPC Chongqing Jiulongpo District Committee",
        "explore a wider international market.",
    ]:
        assert sentence in everything


def test_paragraph_numbers_count_text_paragraphs_in_reading_order(raw: Corpus) -> None:
    yangtze = passages_of(raw, "004_513aef5028e67c49")
    assert yangtze[0].paragraph == 1 and yangtze[0].text.startswith("According to the latest planning")
    numbers = [p.paragraph for p in yangtze]
    assert numbers == sorted(set(numbers))
    # 13 text paragraphs; the 6 headings are not counted
    assert yangtze[-1].paragraph == 13 and yangtze[-1].text.startswith("Making full use")


@pytest.mark.parametrize("which", ["raw", "bundled"])
def test_passage_sizes_suit_the_embedding_model(request: pytest.FixtureRequest, which: str) -> None:
    sizes = [estimate_tokens(p.text) for p in request.getfixturevalue(which).passages]
    assert max(sizes) <= TARGET_MAX_TOKENS
    assert min(sizes) >= 40


# --- cutting passages -------------------------------------------------------------------


def test_sentence_splitting_english() -> None:
    text = (
        "Plant No. 1 grew 1.52 percent in 2024. Mr. Liu said the U.S. market matters! "
        "Did J. Smith agree? \"Yes,\" he said. It costs approx. USD 5 million."
    )
    assert split_sentences(text) == [
        "Plant No. 1 grew 1.52 percent in 2024.",
        "Mr. Liu said the U.S. market matters!",
        "Did J. Smith agree?",
        '"Yes," he said.',
        "It costs approx. USD 5 million.",
    ]


def test_sentence_splitting_chinese() -> None:
    text = "上半年增长20.3%。他说：“欢迎投资！”项目何时开工？明年；资金已到位……后续再议"
    assert split_sentences(text) == [
        "上半年增长20.3%。",
        "他说：“欢迎投资！”",
        "项目何时开工？",
        "明年；",
        "资金已到位……",
        "后续再议",
    ]


def test_long_paragraphs_are_cut_between_sentences(tmp_path: Path) -> None:
    english = " ".join(f"Sentence {i} says that the plant in district No. {i} grew 2.5 percent." for i in range(60))
    chinese = "".join(f"第{i}个项目总投资1.5亿元，建成后年产值约17亿元。" for i in range(80))
    corpus = load_files(tmp_path, {"long.md": f"# Long\n\n{english}\n\n## 中文\n\n{chinese}\n"})
    by_paragraph = defaultdict(list)
    for passage in corpus.passages:
        by_paragraph[passage.paragraph].append(passage.text)
        assert estimate_tokens(passage.text) <= TARGET_MAX_TOKENS
    assert len(by_paragraph[1]) > 2 and len(by_paragraph[2]) > 2
    for pieces in by_paragraph.values():  # about equal pieces, no stub left at the end
        sizes = [estimate_tokens(piece) for piece in pieces]
        assert min(sizes) >= 0.7 * max(sizes), sizes
    assert " ".join(by_paragraph[1]) == english  # nothing lost, cut at sentence ends only
    assert "".join(by_paragraph[2]) == chinese
    assert all(piece.endswith("。") for piece in by_paragraph[2])
    assert all(piece.endswith("percent.") for piece in by_paragraph[1])  # not after "No."


def test_a_sentence_too_long_for_the_model_is_still_cut(tmp_path: Path) -> None:
    run_on = "，".join(["青山区将重点发展新材料产业"] * 80) + "。"
    corpus = load_files(tmp_path, {"run-on.txt": f"标题\n\n{run_on}\n"})
    assert len(corpus.passages) > 1
    assert all(estimate_tokens(p.text) <= TARGET_MAX_TOKENS for p in corpus.passages)
    assert "".join(p.text for p in corpus.passages) == run_on


def test_short_paragraphs_merge_but_never_across_a_heading(tmp_path: Path) -> None:
    text = (
        "---\ntitle: Notes\n---\n\n"
        "The plant opened in May.\n\nIt employs 300 people.\n\n"
        "## Outlook\n\nOutput should double by 2027.\n"
    )
    passages = load_files(tmp_path, {"notes.md": text}).passages
    assert [(p.paragraph, p.text, p.context) for p in passages] == [
        (1, "The plant opened in May.\n\nIt employs 300 people.", ""),
        (3, "Output should double by 2027.", "Outlook"),
    ]


def test_token_estimate_tracks_script() -> None:
    chinese, english = "青山区工业投资增长" * 20, "industrial investment grew " * 20
    assert 0.5 * len(chinese) <= estimate_tokens(chinese) <= len(chinese)
    assert 1.0 * 60 <= estimate_tokens(english) <= 2.0 * 60


# --- metadata and formats ---------------------------------------------------------------


def test_front_matter_variants(tmp_path: Path) -> None:
    corpus = load_files(
        tmp_path,
        {
            "a.md": "---\ntitle: A\nsource: Xinhua\nauthor: [Li Lei, Han Meimei]\ndate: 2024-07-07\n"
            "language: zh-CN\nurl: https://example.org/a\n---\n\n中文正文，内容足够长。\n",
            "b.md": "\ufeff\n---\ntitle: 'B'\npublisher: China Daily\ndate: Fri, 02 Jul 2021 11:59:33 GMT\n"
            "lang: English\n---\nBody of B.\n",
            "c.txt": "---\ntitle: C\ndate: 2021年7月2日\n---\n\nBody of C.\n",
            "d.md": "---\ntitle: D\nlanguage: fr\ndate: 2021\n---\n\nBody of D.\n",
        },
    )
    docs = {d.doc_id: d for d in corpus.documents}
    assert (docs["a"].publisher, docs["a"].author, docs["a"].date) == ("Xinhua", "Li Lei, Han Meimei", "2024-07-07")
    assert (docs["a"].language, docs["a"].url) == ("zh", "https://example.org/a")
    assert (docs["b"].title, docs["b"].publisher, docs["b"].date, docs["b"].language) == (
        "B", "China Daily", "2021-07-02", "en",
    )
    assert docs["c"].date == "2021-07-02"
    assert (docs["d"].language, docs["d"].date) == ("en", "")
    assert any("'fr'" in reason for reason in warnings_for(corpus, "d.md"))
    assert any("'2021'" in reason for reason in warnings_for(corpus, "d.md"))
    assert [p.text for p in corpus.passages if p.doc_id == "b"] == ["Body of B."]


def test_files_without_front_matter_get_title_and_language_from_the_text(tmp_path: Path) -> None:
    corpus = load_files(
        tmp_path,
        {
            "zh.txt": "武汉“氢都”建设提速\n\n"
            "武汉市政府举行新闻发布会， 发布 青山区产业地图，Bosch和Baowu Steel参与。\n",
            "en.txt": "Wuhan speeds up\n\nThe Qingshan (青山) district held a press conference.\n",
            "one.txt": "Just one paragraph without a title line.\n",
        },
    )
    docs = {d.doc_id: d for d in corpus.documents}
    assert (docs["zh"].title, docs["zh"].language) == ("武汉“氢都”建设提速", "zh")
    assert (docs["en"].title, docs["en"].language) == ("Wuhan speeds up", "en")
    assert docs["one"].title == ""  # not invented
    texts = {p.doc_id: p.text for p in corpus.passages}
    assert texts["zh"] == "武汉市政府举行新闻发布会， 发布 青山区产业地图，Bosch和Baowu Steel参与。"  # spaces kept
    assert texts["one"] == "Just one paragraph without a title line."


def test_html_files(tmp_path: Path) -> None:
    page = """<!DOCTYPE html>
<html lang="zh-CN"><head>
<title>青山区产业地图发布 - 长江网</title>
<meta name="author" content="李亦中">
<meta property="og:site_name" content="长江日报">
<meta property="article:published_time" content="2024-08-05T09:00:00+08:00">
<link rel="canonical" href="https://example.cn/qingshan.html">
<style>.x { color: red; }</style><script>var tracker = "secret";</script>
</head><body>
<nav><a href="/">首页</a> &gt; 新闻</nav>
<h1>青山区产业地图发布</h1>
<!-- 广告位 -->
<p>7月2日，武汉市政府举行新闻发布会，&nbsp;发布青山区产业地图。该区将建设氢能产业园，打造武汉“氢都”，2025年实现产值200亿元以上。</p>
<figure><img src="a.jpg"><figcaption>青山江滩。</figcaption></figure>
<h2>钢铁产业</h2>
<p>武钢有限新能源无取向硅钢产线全面投产运行，<b>新产线</b>具备年产55万吨高端无取向硅钢的能力。<br>数据显示，新产线整体效率提升50%以上。</p>
<footer>Copyright © 2024 长江网 版权所有</footer>
</body></html>"""
    corpus = load_files(tmp_path, {"qingshan.html": page, "other.htm": "<p>Hello from an htm page, long enough.</p>"})
    doc = next(d for d in corpus.documents if d.doc_id == "qingshan")
    assert (doc.title, doc.author, doc.publisher, doc.date, doc.language, doc.url) == (
        "青山区产业地图发布", "李亦中", "长江日报", "2024-08-05", "zh", "https://example.cn/qingshan.html",
    )
    passages = passages_of(corpus, "qingshan")
    assert [p.text for p in passages] == [
        "7月2日，武汉市政府举行新闻发布会，\xa0发布青山区产业地图。该区将建设氢能产业园，打造武汉“氢都”，2025年实现产值200亿元以上。",
        "武钢有限新能源无取向硅钢产线全面投产运行，新产线具备年产55万吨高端无取向硅钢的能力。\n数据显示，新产线整体效率提升50%以上。",
    ]
    assert [p.context for p in passages] == ["青山江滩。", "钢铁产业"]  # caption stays in its section
    assert "secret" not in str(corpus.passages) and "color" not in str(corpus.passages)
    assert [p.text for p in passages_of(corpus, "other")] == ["Hello from an htm page, long enough."]


# --- bad files --------------------------------------------------------------------------


def test_bad_files_are_named_in_warnings_and_the_rest_still_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files: dict[str, str | bytes] = {
        "good.md": "---\ntitle: Good\n---\n\nA good article about hydrogen.\n",
        "empty.md": b"",
        "blank.txt": "  \n\n \n",
        "binary.txt": b"PK\x03\x04\x00\x00junk\x00",
        "latin1.txt": "Caf\u00e9 au lait".encode("latin-1"),
        "broken-yaml.md": "---\ntitle: [unclosed\n---\n\nBody after broken front matter.\n",
        "unclosed.md": "---\ntitle: Unclosed\n\nBody after an unclosed front matter.\n",
        "only-chrome.txt": "Email Message TOP\n\nCopyright©2024 China Daily. All rights reserved.\n",
        "picture.png": b"\x89PNG\r\n\x1a\n\x00\x00",
        ".hidden.md": "---\ntitle: Hidden\n---\n\nShould not be read.\n",
    }
    # Logged at INFO: the callers show corpus.warnings themselves (the CLI once, /reindex).
    with caplog.at_level(logging.INFO, logger="corpus"):
        corpus = load_files(tmp_path, files)

    expected = {
        "empty.md": "empty",
        "blank.txt": "empty",
        "binary.txt": "NUL",
        "latin1.txt": "not UTF-8",
        "broken-yaml.md": "not valid YAML",
        "unclosed.md": "no closing '---'",
        "only-chrome.txt": "no article text",
    }
    for name, reason in expected.items():
        reasons = warnings_for(corpus, name)
        assert any(reason in r for r in reasons), (name, reasons)
        assert any(name in record.getMessage() and reason in record.getMessage() for record in caplog.records)
    assert {w.split(": ", 1)[0] for w in corpus.warnings} == set(expected)
    assert "latin1.txt: not UTF-8 text (byte 0xe9 at offset 3); save it as UTF-8; skipped" in corpus.warnings

    texts = {p.doc_id: p.text for p in corpus.passages}
    assert texts == {
        "good": "A good article about hydrogen.",
        "broken-yaml": "Body after broken front matter.",
        "unclosed": "Body after an unclosed front matter.",
    }
    assert {d.doc_id: d.title for d in corpus.documents}["unclosed"] == "Unclosed"


def test_article_names_that_are_not_files_are_named_in_warnings(tmp_path: Path) -> None:
    """A link whose article moved, a named pipe, a device: each is said, none is read (a
    pipe would block the build), and the real article still loads."""
    corpus_dir = tmp_path / "articles"
    corpus_dir.mkdir()
    (corpus_dir / "good.md").write_text("A good article about hydrogen.\n", encoding="utf-8")
    (corpus_dir / "moved.md").symlink_to(tmp_path / "elsewhere" / "moved.md")
    os.mkfifo(corpus_dir / "pipe.txt")
    (corpus_dir / "zero.md").symlink_to("/dev/zero")
    (corpus_dir / "loop.md").symlink_to(corpus_dir / "loop.md")
    corpus = load_corpus(corpus_dir)
    assert [d.doc_id for d in corpus.documents] == ["good"]
    for name in ("loop.md", "moved.md", "pipe.txt", "zero.md"):
        assert warnings_for(corpus, name) == [
            "not a regular file (a link to nothing, a named pipe or a device); skipped"
        ], name


def test_two_files_with_one_document_id(tmp_path: Path) -> None:
    corpus = load_files(tmp_path, {"a.md": "First article text.\n", "a.txt": "Second article text.\n"})
    assert [d.source_file for d in corpus.documents] == ["a.md"]
    assert "same document id 'a'" in warnings_for(corpus, "a.txt")[0]


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_corpus(tmp_path / "nope")
    (tmp_path / "a.md").write_text("text", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="is a file, not a folder"):
        load_corpus(tmp_path / "a.md")


# --- the XQuAD benchmark corpus ---------------------------------------------------------

xquad = pytest.mark.skipif(not (XQUAD_DIR / "corpus").is_dir(), reason="shared/bench/xquad not present")


def _normalize(text: str) -> str:
    """As the benchmark's score.py does."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).lower()).strip()


@pytest.fixture(scope="module")
def xquad_corpus() -> Corpus:
    return load_corpus(XQUAD_DIR / "corpus")


@xquad
def test_xquad_corpus_is_read_as_is(xquad_corpus: Corpus) -> None:
    assert xquad_corpus.warnings == []
    assert len(xquad_corpus.documents) == 480
    by_doc = defaultdict(list)
    for passage in xquad_corpus.passages:
        by_doc[passage.doc_id].append(passage)
        assert estimate_tokens(passage.text) <= HARD_MAX_TOKENS
    split = 0
    for document in xquad_corpus.documents:
        raw = (XQUAD_DIR / "corpus" / document.source_file).read_text(encoding="utf-8")
        body = raw.split("\n---\n", 1)[1].strip().lstrip("\ufeff").strip()
        assert document.language == document.doc_id[-2:]
        assert document.title.startswith(re.sub(r" \(\d\)$", "", document.title))
        assert document.publisher == "XQuAD (deepmind/xquad), CC BY-SA 4.0"
        pieces = [p.text for p in by_doc[document.doc_id]]
        assert all(p.paragraph == 1 for p in by_doc[document.doc_id])
        if len(pieces) == 1:
            assert pieces[0] == body
            continue
        split += 1
        assert min(estimate_tokens(piece) for piece in pieces) >= MIN_TOKENS
        position = 0  # the pieces are the body, in order, cut only at whitespace or after 。
        for piece in pieces:
            found = body.index(piece, position)
            assert body[position:found].strip() == ""
            position = found + len(piece)
        assert position == len(body)
    assert split <= 0.1 * 480  # only paragraphs over HARD_MAX_TOKENS are cut (30 at present)
    assert len(xquad_corpus.passages) == 480 + sum(len(v) - 1 for v in by_doc.values())


@xquad
def test_xquad_answers_stay_inside_one_passage(xquad_corpus: Corpus) -> None:
    """Cutting a long paragraph must not break the benchmark's answer-containment scoring."""
    texts = defaultdict(list)
    for passage in xquad_corpus.passages:
        texts[passage.doc_id].append(_normalize(passage.text))
    for line in (XQUAD_DIR / "questions.jsonl").read_text(encoding="utf-8").splitlines():
        question = json.loads(line)
        answers = [_normalize(a) for a in question["answers"]]
        doc_id = f"{question['paragraph']}-{question['lang']}"
        assert any(a in t for t in texts[doc_id] for a in answers), question["id"]


def test_invisible_characters_are_removed_from_articles(tmp_path: Path) -> None:
    (tmp_path / "en.md").write_text(
        "The com\u00adpany\u200b builds steel in Qingshan, and its new line opens next year.\n",
        encoding="utf-8",
    )
    (tmp_path / "zh.md").write_text(
        "青山\u200b区钢\u2060铁\ufeff产业今年继续增长，新的生产线明年投产。\n", encoding="utf-8"
    )
    texts = [p.text for p in load_corpus(tmp_path).passages]
    assert texts == [
        "The company builds steel in Qingshan, and its new line opens next year.",
        "青山区钢铁产业今年继续增长，新的生产线明年投产。",
    ]


def test_an_article_over_the_size_limit_is_skipped_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "small.md").write_text("A short article about steel in Qingshan.\n", encoding="utf-8")
    (tmp_path / "huge.md").write_text("Steel. " * 2000, encoding="utf-8")  # 14 KB
    corpus = load_corpus(tmp_path, max_article_bytes=10_000)
    assert [d.doc_id for d in corpus.documents] == ["small"]
    [warning] = corpus.warnings
    assert warning.startswith("huge.md: 0.0 MB, over the limit of 0.01 MB") and "QABOT_MAX_ARTICLE_MB" in warning


# -- PDF articles ------------------------------------------------------------------------

def test_a_pdf_article_is_read_paragraph_by_paragraph(tmp_path: Path) -> None:
    from pdf_files import make_pdf

    first = (
        "Wuhan's Optics Valley hosts more than 16,000 companies in optoelectronics, and the "
        "cluster grew 12 percent in 2023 according to the city government."
    )
    cut = "Chongqing builds more cars than any other Chinese city, and its Liangjiang district"
    rest = "alone assembled 1.2 million vehicles last year."
    (tmp_path / "clusters.pdf").write_bytes(
        make_pdf([[first, cut, "1"], [rest, "2"]], title="Clusters on the “Yangtze”")
    )
    (tmp_path / "光谷.pdf").write_bytes(make_pdf([[
        "武汉光谷聚集了一万六千多家光电子企业，二零二三年产业规模增长百分之十二，成为全国最大的光纤光缆研发生产基地。",
        "重庆是中国汽车产量最高的城市。",
    ]], chinese=True))
    corpus = load_corpus(tmp_path)
    assert corpus.warnings == []
    english, chinese = sorted(corpus.documents, key=lambda d: d.doc_id)
    assert english.title == "Clusters on the “Yangtze”" and english.language == "en"
    assert chinese.language == "zh" and chinese.source_file == "光谷.pdf"
    texts = [p.text for p in corpus.passages]
    assert first in texts[0]  # lines wrapped by the page are one paragraph again
    assert f"{cut} {rest}" in "\n".join(texts)  # joined across the page break, page numbers gone
    assert not any(text.strip() in {"1", "2"} for text in texts)
    assert any("武汉光谷聚集了一万六千多家光电子企业，二零二三年" in text for text in texts)


def test_pdfs_without_readable_text_are_skipped_with_the_reason(tmp_path: Path) -> None:
    from pdf_files import make_pdf

    (tmp_path / "scan.pdf").write_bytes(make_pdf([[]]))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not a PDF body")
    (tmp_path / "fine.md").write_text("A short article about steel in Qingshan.\n", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert [d.doc_id for d in corpus.documents] == ["fine"]
    broken, scan = sorted(corpus.warnings)
    assert broken.startswith("broken.pdf: not a readable PDF (") and broken.endswith("; skipped")
    assert scan == "scan.pdf: a PDF without a text layer (a scan?); run it through OCR first; skipped"
