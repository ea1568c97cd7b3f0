"""The `qabot` command as a user runs it: ask, ask --json, sources, eval, index build."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from index.retrieval.engine import NEAREST_MIN_CONFIDENCE
from qabot.cli import main

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture
def cli_env(monkeypatch, settings_with_index, embedder):
    """Point the CLI at the session's index and reuse the session's loaded model."""
    monkeypatch.setenv("QABOT_INDEX_DIR", str(settings_with_index.index_dir))
    monkeypatch.setenv("QABOT_MODEL_DIR", str(settings_with_index.model_dir))
    monkeypatch.setattr("index.embedding.embedder.Embedder.load", classmethod(lambda cls, model: embedder))
    return settings_with_index


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ask_prints_passage_with_citation(cli_env, capsys):
    code, out, _ = _run(capsys, "ask", "Huanglian Port cargo throughput")
    assert code == 0
    first = out.split("\n\n[2]")[0]
    assert "1.7 million tons" in first
    assert "Western Hydrogen Valley" in first and "iChongqing, 2024-07-07, ¶" in first


def test_ask_in_chinese_finds_chinese_passage(cli_env, capsys):
    code, out, _ = _run(capsys, "ask", "武钢新能源无取向硅钢产线什么时候全面投产？", "--top-k", "2")
    assert code == 0
    assert "青山区：以工业闯关推动发展突围" in out.split("[2]")[0]
    assert "无取向硅钢产线" in out.split("[2]")[0]


def test_ask_json_is_one_object_with_cited_passages(cli_env, capsys):
    code, out, _ = _run(capsys, "ask", "Huanglian Port cargo throughput", "--json", "--top-k", "4")
    assert code == 0
    answer = json.loads(out)  # exactly one JSON document, nothing else on stdout
    assert answer["question"] == "Huanglian Port cargo throughput"
    assert answer["answered"] is True
    assert len(answer["passages"]) == 4
    best = answer["passages"][0]
    assert set(best) >= {"text", "score", "doc", "title", "publisher", "date", "url",
                         "paragraph", "language"}
    assert best["doc"] == "jiulongpo-western-hydrogen-valley"
    assert best["publisher"] == "iChongqing" and best["language"] == "en"
    assert isinstance(best["paragraph"], int) and best["paragraph"] >= 1
    texts = [p["text"] for p in answer["passages"]]
    assert len(set(texts)) == len(texts), "the same text is never returned twice"
    scores = [p["score"] for p in answer["passages"]]
    assert scores == sorted(scores, reverse=True)
    assert answer["confidence"] == best["score"] >= 0.5  # the decision's input, shown


def test_ask_json_declines_off_topic_question(cli_env, capsys):
    code, out, _ = _run(capsys, "ask", "How do I cook spaghetti carbonara?", "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["confidence"] < NEAREST_MIN_CONFIDENCE
    assert answer == {
        "question": "How do I cook spaghetti carbonara?", "answered": False,
        "confidence": answer["confidence"], "passages": [], "nearest": [],
    }


def test_ask_json_names_the_nearest_articles_of_a_near_miss(cli_env, capsys):
    code, out, _ = _run(capsys, "ask", "重庆的平均工资是多少？", "--json")
    answer = json.loads(out)
    assert code == 0 and answer["answered"] is False and answer["passages"] == []
    assert NEAREST_MIN_CONFIDENCE <= answer["confidence"] < 0.5
    assert len(answer["nearest"]) >= 2 and all(n["title"] and n["doc_id"] for n in answer["nearest"])


def test_sources_lists_the_bundled_articles(cli_env, capsys):
    code, out, _ = _run(capsys, "sources")
    assert code == 0
    assert out.startswith("5 articles indexed")
    assert "Yangtze River middle reaches: Building competitive industrial clusters" in out
    assert "China Daily, 2019-02-20" in out


def test_ask_with_nothing_visible_asks_for_a_question(cli_env, capsys):
    """Zero-width spaces, a word joiner and a soft hyphen are no question: the usage hint,
    not "the articles don't cover this"."""
    code, out, err = _run(capsys, "ask", "\u200b\u2060", "\u00ad")
    assert code == 1 and out == ""
    assert "Ask a question" in err and "don't cover" not in err


def test_chat_skips_a_line_with_nothing_visible(cli_env, capsys, monkeypatch):
    lines = iter(["\u200b\ufeff", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    code, out, _ = _run(capsys, "chat")
    assert code == 0 and "don't cover" not in out


def test_missing_index_is_one_clear_error_not_a_traceback(tmp_path, capsys):
    code, out, err = _run(capsys, "ask", "anything", "--index", str(tmp_path / "none"))
    assert code == 1 and out == ""
    assert "no index" in err and "qabot index build" in err and "Traceback" not in err


def test_eval_scores_a_small_benchmark_and_writes_results(cli_env, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "steel.md").write_text(
        "---\ntitle: Steel\nlanguage: en\n---\n\nThe new line makes 550,000 tonnes of "
        "silicon steel a year for electric car motors.\n", encoding="utf-8")
    (corpus / "port.md").write_text(
        "---\ntitle: 港口\nlanguage: zh\n---\n\n黄桷坪港将于八月启动，年货物吞吐量目标为一百七十万吨。\n",
        encoding="utf-8")
    questions = tmp_path / "q.jsonl"
    rows = [
        {"id": "1-en", "lang": "en", "question": "How much silicon steel does the line make?",
         "answers": ["550,000 tonnes"], "paragraph": "steel"},
        {"id": "2-zh", "lang": "zh", "question": "黄桷坪港的年吞吐量目标是多少？",
         "answers": ["一百七十万吨"], "paragraph": "port"},
        {"id": "3-en", "lang": "en", "question": "What is the port's annual cargo target?",
         "answers": ["一百七十万吨"], "paragraph": "port"},
    ]
    questions.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    results = tmp_path / "out" / "results.jsonl"
    code, out, _ = _run(capsys, "eval", str(questions), "--corpus", str(corpus),
                        "--index", str(tmp_path / "idx"), "--results", str(results), "--json")
    assert code == 0
    scores = json.loads(out)
    assert scores["n"] == 3 and scores["hit@1"] == 1.0 and scores["mrr@10"] == 1.0
    assert set(scores["by_lang"]) == {"en", "zh"} and scores["by_lang"]["en"]["n"] == 2
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["1-en", "2-zh", "3-en"]
    assert lines[0]["passages"][0]["doc"] == "steel"
    # Cross-lingual setting: English questions may only retrieve Chinese passages.
    code, out, _ = _run(capsys, "eval", str(questions), "--corpus", str(corpus),
                        "--index", str(tmp_path / "idx"), "--passages", "other", "--json")
    assert json.loads(out)["by_lang"]["en"]["hit@1"] == 0.5  # only the port answer is in zh


def test_index_build_prints_summary(tmp_path, cli_env, capsys, monkeypatch):
    monkeypatch.setenv("QABOT_INDEX_DIR", str(tmp_path / "idx"))
    code, out, err = _run(capsys, "index", "build")
    assert code == 0
    assert "Indexed 5 documents" in out and "passages" in out
    assert "Embedding" in err  # the progress bar goes to stderr
    embedded, texts = re.search(r"\((\d+) of (\d+) texts embedded", out).groups()
    assert 0 < int(embedded) <= int(texts)  # a first build embeds every distinct text
    code, out, err = _run(capsys, "index", "build")
    assert code == 0 and f"(0 of {texts} texts embedded" in out  # nothing changed


def test_console_script_answers_end_to_end(settings_with_index):
    """The installed `qabot` entry point, in a fresh process (real model load)."""
    env = {**os.environ, "QABOT_INDEX_DIR": str(settings_with_index.index_dir),
           "QABOT_MODEL_DIR": str(settings_with_index.model_dir), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONUNBUFFERED", None)  # output to a pipe is buffered, as for most users
    qabot = Path(sys.executable).with_name("qabot")
    done = subprocess.run([str(qabot), "ask", "Huanglian Port cargo throughput", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["passages"][0]["doc"] == "jiulongpo-western-hydrogen-valley"


@pytest.mark.parametrize(
    ("corpus", "said"), [("no/such/folder", "does not exist"), ("README.md", "is a file, not a folder")]
)
def test_a_wrong_corpus_folder_is_one_clear_line(tmp_path, cli_env, capsys, corpus, said):
    (tmp_path / "README.md").write_text("not a folder", encoding="utf-8")
    questions = Path(__file__).parent / "data" / "small_questions.jsonl"
    for argv in (["index", "build"], ["eval", str(questions)]):
        code, _, err = _run(capsys, *argv, "--corpus", str(tmp_path / corpus), "--index", str(tmp_path / "i"))
        assert code == 1 and said in err and "Traceback" not in err
        assert err.count("\n") == 1


def test_an_unwritable_index_folder_is_one_clear_line(tmp_path, cli_env, capsys):
    (tmp_path / "file").write_text("x", encoding="utf-8")
    code, _, err = _run(capsys, "index", "build", "--index", str(tmp_path / "file" / "index"))
    assert code == 1 and "Cannot write the index" in err and "--index" in err


def test_a_bad_top_k_says_what_is_expected(cli_env, capsys):
    with pytest.raises(SystemExit):
        main(["ask", "steel", "--top-k", "abc"])
    assert "must be a whole number, not 'abc'" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["sources"], ["ask", "Huanglian Port cargo throughput"]])
def test_a_closed_pipe_ends_quietly(settings_with_index, command):
    """`qabot sources | head` where head has already gone: no traceback, also when the
    output is buffered (`ask` then ends the process itself: cli._exit_now)."""
    env = {**os.environ, "QABOT_INDEX_DIR": str(settings_with_index.index_dir),
           "QABOT_MODEL_DIR": str(settings_with_index.model_dir), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONUNBUFFERED", None)  # output to a pipe is buffered, as for most users
    qabot = Path(sys.executable).with_name("qabot")
    read, write = os.pipe()
    os.close(read)  # the reader is gone before qabot writes a byte
    done = subprocess.run([str(qabot), *command], stdout=write, stderr=subprocess.PIPE,
                          text=True, env=env, timeout=120)
    os.close(write)
    assert "Traceback" not in done.stderr and "Broken" not in done.stderr
    assert done.returncode == 141


def test_index_build_says_each_thing_once_and_in_good_english(tmp_path, settings_with_index):
    """A warning once (not logged and printed), no library debug lines, singular nouns."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text("Qingshan builds a new steel line, to open next year.\n", encoding="utf-8")
    (corpus / "b.md").write_bytes(b"\x00\x01binary")
    (corpus / "c.pdf").write_bytes(b"not a pdf")  # pypdf logs its own warnings about it
    env = {**os.environ, "QABOT_MODEL_DIR": str(settings_with_index.model_dir), "HF_HUB_OFFLINE": "1"}
    qabot = Path(sys.executable).with_name("qabot")
    argv = [str(qabot), "index", "build", "--corpus", str(corpus), "--index", str(tmp_path / "i")]
    first = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("binary data") == 1 and "DEBUG" not in first.stderr
    assert first.stderr.count("c.pdf") == 1 and "pypdf" not in first.stderr
    assert "Indexed 1 document, 1 passage in" in first.stdout
    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert "texts embedded: nothing changed" in again.stdout


def test_chat_declines_in_the_question_language_and_points_at_its_own_command(cli_env, capsys, monkeypatch):
    lines = iter(["红烧肉怎么做才好吃？", "How do I bake sourdough bread?", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    code, out, _ = _run(capsys, "chat")
    assert code == 0 and "qabot sources" not in out
    assert "文章里没有涉及这个问题" in out and "或用 /sources 查看" in out
    assert "The articles don't cover this" in out and "see /sources for" in out
    assert "readline" in sys.modules  # arrow keys edit the line, and history works


def test_index_build_if_stale_rebuilds_when_the_articles_or_their_folder_change(tmp_path, cli_env, capsys):
    articles = tmp_path / "articles"
    shutil.copytree(REPO / "corpus" / "articles", articles)
    argv = ["index", "build", "--if-stale", "--corpus", str(articles), "--index", str(tmp_path / "i")]
    code, out, _ = _run(capsys, *argv)
    assert code == 0 and "there is no usable index yet" in out and "Indexed 5 documents" in out
    code, out, _ = _run(capsys, *argv)
    assert "is up to date" in out and "Indexed" not in out
    (articles / ".notes.md").write_text("a hidden scratch file the reader skips", encoding="utf-8")
    assert "is up to date" in _run(capsys, *argv)[1]
    with open(articles / "qingshan-industry-breakthrough.md", "a", encoding="utf-8") as article:
        article.write("\n青山区今年新增一条生产线。\n")
    code, out, _ = _run(capsys, *argv)
    assert "the articles changed since it was built" in out and "Indexed 5 documents" in out
    assert "texts embedded; the others were unchanged" in out  # only what changed
    other = tmp_path / "other"
    shutil.copytree(articles, other)
    argv[4] = str(other)
    assert "it was built from" in _run(capsys, *argv)[1]


def test_liked_answers_export_as_a_question_file_that_eval_scores(
    cli_env, capsys, engine, tmp_path, monkeypatch
):
    """Real questions become a test set: a liked answer's sentence is the answer string."""
    from bot.database import open_database
    from bot.feedback import FeedbackStore

    database = tmp_path / "qabot.db"
    monkeypatch.setenv("QABOT_DATABASE", str(database))
    store = FeedbackStore(open_database(database))
    for question, vote in [
        ("How much will the Huanglian Port cargo throughput be?", 1),
        ("中韩石化航煤加氢项目投资多少", 1),
        ("Which industries does Qingshan plan to grow?", -1),
    ]:
        store.vote(store.record(7, "private", "en", engine.ask(question)), 7, 70, vote)
    store.record(7, "private", "en", engine.ask("Who won the football world cup?"))

    code, out, err = _run(capsys, "feedback", "export")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and "2 liked answers" in err
    assert [r["question"][:5] for r in rows] == ["How m", "中韩石化航"]
    assert all(r["answers"][0] and r["paragraph"] for r in rows)
    exported = tmp_path / "liked.jsonl"
    exported.write_text(out, encoding="utf-8")
    code, out, _ = _run(capsys, "eval", str(exported), "--json", "--index", str(cli_env.index_dir))
    assert code == 0 and json.loads(out)["hit@1"] == 1.0

    assert _run(capsys, "feedback", "export", "--since", "2999-01-01")[1] == ""
    code, out, _ = _run(capsys, "feedback", "purge", "--yes")
    assert code == 0 and "Deleted 4 logged questions" in out
    assert FeedbackStore(open_database(database)).stats().total == 0


def test_health_says_whether_an_index_is_in_place_for_the_bot(cli_env, capsys, monkeypatch, tmp_path):
    code, out, _ = _run(capsys, "health")
    assert code == 0 and out.startswith(f"index {cli_env.index_dir}: gen-")
    monkeypatch.setenv("QABOT_INDEX_DIR", str(tmp_path / "nothing-built-yet"))
    code, out, _ = _run(capsys, "health")
    assert code == 1 and out.strip().endswith(": missing")


def test_the_chinese_segmenter_is_loaded_with_the_model(cli_env):
    """jieba's dictionary takes 0.24 s to load: over an index with Chinese passages it loads
    while the model does, so that no question (a Chinese one to search, an English one to
    highlight a Chinese passage) waits for it."""
    import os
    import subprocess
    import sys

    probe = (
        "from qabot.engine import load_engine; from qabot.settings import Settings; "
        "from index.store import segmenter; load_engine(Settings.from_env()); "
        "print('jieba loaded:', segmenter.is_loaded())"
    )
    env = {**os.environ, "QABOT_INDEX_DIR": str(cli_env.index_dir), "QABOT_MODEL_DIR": str(cli_env.model_dir)}
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert loaded.returncode == 0 and "jieba loaded: True" in loaded.stdout, loaded.stderr


@pytest.mark.parametrize("command", [["ask", "What is Wuhan's hydrogen plan?"], ["run"]])
def test_without_an_index_the_model_is_never_loaded(command, tmp_path, monkeypatch, capsys):
    """ask and run start loading the model before their imports, but only over an index:
    without one they say how to build it, and no model is loaded or prepared for nothing."""
    loads = []
    monkeypatch.setattr("index.embedding.embedder.Embedder.load", classmethod(lambda cls, model: loads.append(model)))
    monkeypatch.setenv("QABOT_INDEX_DIR", str(tmp_path / "nothing-built-yet"))
    monkeypatch.setenv("QABOT_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:" + "A" * 35)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", "http://127.0.0.1:9/bot")  # never reached
    code, out, err = _run(capsys, *command)
    assert code != 0 and "There is no index in" in out + err and "qabot index build" in out + err
    assert loads == [] and not (tmp_path / "model").exists()
