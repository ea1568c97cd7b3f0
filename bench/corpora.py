#!/usr/bin/env python3
"""Answers and declines across corpora: one table -> docs/benchmarks.md.

    python bench/corpora.py [--xquad ../shared/bench/xquad] [--cmrc ../shared/bench/cmrc-trial]
                            [--out docs/benchmarks.md]

For each corpus it builds (or reuses, under data/bench-corpora/) an index with the default
settings, each calibrated against its own null (index.calibration), and asks it

* its own questions: hit@1/3/10 and the share answered;
* the off-topic questions of tests/data (far: everyday; near: other cities' economy,
  not in the bundled articles): the share declined;
* every other corpus's questions: the share declined (they must be).

Corpora: the bundled articles (dev questions), the small corpus of tests/data, CMRC trial
(its questions, and 52 translated into English by hand), and XQuAD as its README defines
the settings: en (English questions over the 240 English paragraphs), zh, mixed (all 480
paragraphs, all questions) and cross-lingual (one index per language, each question over
the other language's). XQuAD is the held-out test set: it is run, never tuned on.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qabot.eval_run import engine_over  # noqa: E402
from qabot.evaluation import Outcome, Question, metrics, read_questions  # noqa: E402
from qabot.settings import Settings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
SHARED = REPO.parent / "shared" / "bench"


def language_folder(source: Path, language: str, root: Path) -> Path:
    """A corpus folder of links to ``source``'s ``*-<language>.md`` files (XQuAD's layout)."""
    folder = root / f"{source.parent.name}-{language}"
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob(f"*-{language}.md")):
        link = folder / path.name
        if not link.exists():
            link.symlink_to(path.resolve())
    return folder


def run(engine, questions: list[Question]) -> list[Outcome]:
    vectors = engine.embedder.embed_queries([q.question for q in questions])
    outcomes = []
    for question, vector in zip(questions, vectors):
        hits = engine.search(question.question, 10, vector=vector)
        outcomes.append(Outcome(
            question, [h.passage.text for h in hits], [h.passage.doc_id for h in hits],
            declined=not engine.is_good_match(hits),
        ))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--xquad", type=Path, default=SHARED / "xquad")
    parser.add_argument("--cmrc", type=Path, default=SHARED / "cmrc-trial")
    parser.add_argument("--root", type=Path, default=REPO / "data" / "bench-corpora")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    xquad = read_questions(args.xquad / "questions.jsonl")
    by_lang = {lang: [q for q in xquad if q.lang == lang] for lang in ("en", "zh")}
    folders = {
        "bundled": REPO / "corpus" / "articles",
        "small": DATA / "small_corpus",
        "cmrc": args.cmrc / "corpus",
        "xquad-en": language_folder(args.xquad / "corpus", "en", args.root / "corpora"),
        "xquad-zh": language_folder(args.xquad / "corpus", "zh", args.root / "corpora"),
        "xquad-mixed": args.xquad / "corpus",
    }
    own = {  # setting: (corpus, its questions)
        "bundled": ("bundled", read_questions(DATA / "dev_questions.jsonl")),
        "small": ("small", read_questions(DATA / "small_questions.jsonl")),
        "CMRC trial (zh)": ("cmrc", read_questions(args.cmrc / "questions.jsonl")),
        "CMRC trial, English questions": ("cmrc", read_questions(DATA / "cmrc_questions_en.jsonl")),
        "XQuAD en": ("xquad-en", by_lang["en"]),
        "XQuAD zh": ("xquad-zh", by_lang["zh"]),
        "XQuAD mixed": ("xquad-mixed", xquad),
        "XQuAD cross-lingual en→zh": ("xquad-zh", by_lang["en"]),
        "XQuAD cross-lingual zh→en": ("xquad-en", by_lang["zh"]),
    }
    off_topic = read_questions(DATA / "dev_offtopic.jsonl") + read_questions(DATA / "offtopic_more.jsonl")
    kinds = {json.loads(line)["id"]: json.loads(line)["kind"] for path in
             ("dev_offtopic.jsonl", "offtopic_more.jsonl") for line in (DATA / path).read_text().splitlines() if line}
    pools = {"bundled": own["bundled"][1], "small": own["small"][1],
             "CMRC": own["CMRC trial (zh)"][1] + own["CMRC trial, English questions"][1], "XQuAD": xquad}
    home = {"bundled": "bundled", "small": "small", "cmrc": "CMRC", "xquad-mixed": "XQuAD"}
    engines = {}
    for name, folder in folders.items():
        settings = dataclasses.replace(Settings.from_env(), corpus_dir=folder, index_dir=args.root / "index" / name)
        engines[name] = engine_over(settings)
    rows = []
    for setting, (corpus, questions) in own.items():
        scores = metrics(run(engines[corpus], questions))
        rows.append((setting, len(questions), scores["hit@1"], scores["hit@3"], scores["hit@10"], scores["answered"]))
    declines = []
    for corpus, pool_name in home.items():
        engine = engines[corpus]
        outcomes = run(engine, off_topic)
        for kind in ("far", "near"):
            chosen = [o.declined for o in outcomes if kinds[o.question.id] == kind]
            declines.append((corpus, f"off-topic, {kind}", len(chosen), float(np.mean(chosen))))
        for other, questions in pools.items():
            if other == pool_name:
                continue
            stripped = [dataclasses.replace(q, answers=()) for q in questions]
            declined = [o.declined for o in run(engine, stripped)]
            declines.append((corpus, f"{other}'s questions", len(declined), float(np.mean(declined))))
    write(args.out, rows, declines, time.perf_counter() - started)
    print(args.out.read_text(encoding="utf-8"))
    return 0


def write(out: Path, rows, declines, seconds: float) -> None:
    lines = [
        "# Benchmarks: answers and declines across corpora",
        "",
        f"Written by `bench/corpora.py` (`make bench`) on {dt.date.today().isoformat()} in {seconds:.0f} s, "
        "default settings (`QABOT_RETRIEVER=hybrid`, `QABOT_MIN_SCORE` unset), each index calibrated "
        "against its own null (see `index/retrieval/fusion.py`, `index/calibration.py`). Tuned on: the bundled "
        "dev set, the small corpus and CMRC trial (`bench/calibrate.py`). **XQuAD is the held-out test "
        "set**, run once after the tuning was done. hit@k: a passage containing an answer string "
        "(NFKC, lower case, collapsed spaces) among the first k; answered: not declined.",
        "",
        "## Own questions",
        "",
        "| corpus / setting | n | hit@1 | hit@3 | hit@10 | answered |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {s} | {n} | {h1:.3f} | {h3:.3f} | {h10:.3f} | {a:.3f} |" for s, n, h1, h3, h10, a in rows]
    lines += [
        "",
        "## Questions that must be declined",
        "",
        "| index | questions | n | declined |",
        "|---|---|---:|---:|",
    ]
    lines += [f"| {c} | {what} | {n} | {d:.3f} |" for c, what, n, d in declines]
    notes = Path(__file__).with_name("corpora_notes.md")
    if notes.exists():
        lines += ["", notes.read_text(encoding="utf-8").rstrip()]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
