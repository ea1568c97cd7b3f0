#!/usr/bin/env python
"""Follow-up questions: hit@1 (answered, and the first passage holds the answer) with and
without the previous question's article as context, and the check that standalone
questions are not made worse. Writes docs/benchmarks-followups.md.

    .venv/bin/python bench/followups.py            # ~1 min on 2 cores

Sets: tests/data/followup_questions.jsonl (38 hand-made follow-ups over the bundled
articles: 12 English, 18 Chinese, 8 switching language), and every dev-set and CMRC-trial
question asked after an unrelated one (the question 45 or 500 places further on), where
context must change nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
CMRC = REPO.parent / "shared" / "bench" / "cmrc-trial"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks-followups.md")
    args = parser.parse_args()

    from qabot.eval_run import engine_over, evaluate_follow_ups, read_follow_ups
    from qabot.evaluation import read_questions
    from qabot.settings import BUNDLED_CORPUS_DIR, Settings

    bundled = engine_over(Settings(index_dir=REPO / "data" / "calibrate" / "bundled",
                                   corpus_dir=BUNDLED_CORPUS_DIR))
    follow = evaluate_follow_ups(bundled, read_follow_ups(REPO / "tests" / "data" / "followup_questions.jsonl"))
    dev = read_questions(REPO / "tests" / "data" / "dev_questions.jsonl")
    rows = [("follow-ups (38, bundled)", follow),
            ("dev set after an unrelated question", evaluate_follow_ups(
                bundled, [(dev[(i + 45) % len(dev)].question, q) for i, q in enumerate(dev)]))]
    if CMRC.is_dir():
        cmrc = engine_over(Settings(index_dir=REPO / "data" / "calibrate" / "cmrc",
                                    corpus_dir=CMRC / "corpus"))
        questions = read_questions(CMRC / "questions.jsonl")
        rows.append(("CMRC trial after an unrelated question", evaluate_follow_ups(
            cmrc, [(questions[(i + 500) % len(questions)].question, q) for i, q in enumerate(questions)])))
    lines = [
        "# Follow-up questions",
        "",
        f"Written by `bench/followups.py` on {dt.date.today()}. hit@1 counts a question as right "
        "when it is answered (not declined) and the first passage holds an answer string. "
        "*With context* is what the bot does in a private chat: a short question (at most 6 "
        "words, or 12 Chinese characters and words; `bot/followup.py`) continues the article of "
        "the previous answer (`Engine.ask(within=...)`). Replies to an answer always do.",
        "",
        "| set | questions | hit@1 alone | hit@1 with context |",
        "|---|---:|---:|---:|",
    ]
    for name, report in rows:
        lines.append(f"| {name} | {report.n} | {report.alone / report.n:.3f} "
                     f"| {report.with_context / report.n:.3f} |")
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
