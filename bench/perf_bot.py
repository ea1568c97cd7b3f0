"""bench/perf.py, section ``bot``: ``qabot run`` against the fake Bot API server: start to
ready, first answers, peak RSS after a burst; then, in a bot serving XQuAD's corpus, its
peak after the same burst and after an admin's /reindex of that corpus (a first build)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import perf_common as common
from perf_common import Plan, ROOT, XQUAD, Workspace, child_env, pct, qabot_cmd, questions, run_timed, stats
from procfs import children, pss_mb, status_mb

# -- the bot -----------------------------------------------------------------------------


def section_bot(ws: Workspace, plan: Plan) -> dict:
    check = run_timed([sys.executable, "-c", "import bot.app"], child_env())
    if check["rc"] != 0:
        return {"error": "bot.app is not importable: " + check["stderr"].strip().splitlines()[-1]}
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import fake_telegram  # noqa: F401
    except ImportError as exc:
        return {"error": f"the fake Bot API server cannot be imported ({exc})"}
    ws.ensure_index()
    runs = [asyncio.run(_bot_once(ws, plan)) for _ in range(plan.bot_runs)]
    errors = [r["error"] for r in runs if "error" in r]
    ok = [r for r in runs if "error" not in r]
    out = {
        "runs": len(runs),
        "ready_s": stats(r["ready_s"] for r in ok),
        "first_answer_s": stats(r["first_answer_s"] for r in ok),
        "answer_latency_ms_p50": stats(r["answer_p50_ms"] for r in ok),
        "answer_latency_ms_p95": stats(r["answer_p95_ms"] for r in ok),
        "rss_ready_mb": stats(r["rss_ready_mb"] for r in ok),
        "rss_peak_mb": stats(r["rss_peak_mb"] for r in ok),
        "questions_per_run": plan.bot_questions,
        "burst_updates": plan.bot_burst,
        "burst_s": stats(r["burst_s"] for r in ok),
        "rss_burst_mb": stats(r["rss_burst_mb"] for r in ok),
        "anon_burst_mb": stats(r["anon_burst_mb"] for r in ok),
        "file_burst_mb": stats(r["file_burst_mb"] for r in ok),
    }
    if (XQUAD / "corpus").is_dir():
        rebuilt = asyncio.run(_bot_once(ws, plan, serving_xquad=_xquad_index(ws)))
        errors += [rebuilt["error"]] if "error" in rebuilt else []
        out["reindex"] = rebuilt
    if errors:
        out["error"] = errors[0]
    return out


def _xquad_index(ws: Workspace) -> Path:
    """An index of XQuAD's corpus, built once per run, without its embedding cache: a bot
    serving it rebuilds it from scratch on /reindex, a first build."""
    from index.build import build_index
    from index.embedding.cache import CACHE_FILE

    folder = ws.dir / "index-xquad"
    if not folder.is_dir():
        build_index(XQUAD / "corpus", folder, ws.embedder)
        (folder / CACHE_FILE).unlink(missing_ok=True)
    return folder


#: The admin who sends /reindex.
ADMIN = 4242


async def _bot_once(ws: Workspace, plan: Plan, serving_xquad: Path | None = None) -> dict:
    """One bot process: start, timed questions, the burst. With ``serving_xquad`` (an index
    of XQuAD's corpus without its embedding cache) the bot serves a copy of that index, and
    after the burst the admin sends /reindex: a first build of the corpus the bot serves, so
    that its peak before the /reindex and after it are those of one bot with one corpus."""
    from fake_telegram import FakeTelegram

    qs = questions()
    index = ws.index
    if serving_xquad:  # its own copy: the rebuild replaces it
        index = ws.dir / f"bot-index-{time.monotonic_ns()}"
        shutil.copytree(serving_xquad, index)
    async with FakeTelegram() as telegram:
        env = child_env(
            QABOT_INDEX_DIR=str(index),
            QABOT_ADMIN_IDS=str(ADMIN),
            QABOT_CORPUS_DIR=str(XQUAD / "corpus") if serving_xquad else str(ws.settings().corpus_dir),
            TELEGRAM_BOT_TOKEN=telegram.token,
            TELEGRAM_API_BASE_URL=telegram.base_url,
            # A database per run: each fake server numbers its updates from 1 again, and the
            # bot would take them for updates it has already handled.
            QABOT_DATABASE=str(ws.dir / f"bot-{time.monotonic_ns()}.db"),
        )
        with open(ws.dir / "bot.log", "ab") as bot_log:
            started = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                *qabot_cmd("run"), env=env, cwd=common.CODE, stdout=bot_log, stderr=subprocess.STDOUT
            )
            try:
                # Polled, not wait_for(): the fake server announces a call only when it has
                # answered it, and the first getUpdates is a long poll.
                deadline = time.monotonic() + 300
                while not telegram.calls_to("getUpdates"):
                    if proc.returncode is not None or time.monotonic() > deadline:
                        tail = (ws.dir / "bot.log").read_text(errors="replace")[-600:]
                        return {"error": f"the bot did not start polling (exit {proc.returncode}): {tail}"}
                    await asyncio.sleep(0.01)
                ready_at = telegram.calls_to("getUpdates")[0].at - started
                rss_ready = status_mb(proc.pid, "VmRSS")
                latencies = []
                first_answer = None
                for n, question in enumerate(qs[: plan.bot_questions]):
                    # a chat each: the bot answers 5 questions per user in 20 s (bot/fairness.py)
                    user = telegram.user(777_001 + n)
                    before = len(telegram.sent(user["id"]))
                    t = time.monotonic()
                    telegram.send(user, question)
                    await telegram.wait_for(
                        lambda before=before: len(telegram.sent(user["id"])) > before, timeout=120
                    )
                    latencies.append(time.monotonic() - t)
                    if first_answer is None:
                        first_answer = time.monotonic() - started
                peak = status_mb(proc.pid, "VmHWM")
                burst_s = await _burst(telegram, qs, plan.bot_burst)
                rss_burst = status_mb(proc.pid, "VmHWM")
                split = {"anon_burst_mb": status_mb(proc.pid, "RssAnon"), "file_burst_mb": status_mb(proc.pid, "RssFile")}
                rebuilt = await _reindex(telegram, proc.pid) if serving_xquad else {}
                return {
                    **rebuilt,
                    **split,
                    "burst_s": burst_s,
                    "rss_burst_mb": rss_burst,
                    "ready_s": ready_at,
                    "first_answer_s": first_answer,
                    "answer_p50_ms": pct(latencies, 50) * 1000,
                    "answer_p95_ms": pct(latencies, 95) * 1000,
                    "rss_ready_mb": rss_ready,
                    "rss_peak_mb": peak,
                }
            except asyncio.TimeoutError:
                return {"error": "the bot did not reach getUpdates or answer in time"}
            finally:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGINT)
                    try:
                        await asyncio.wait_for(proc.wait(), 30)
                    except asyncio.TimeoutError:
                        proc.kill()
                        await proc.wait()


#: Chats the burst comes from (each sends 5 messages: the bot answers 5 questions per user
#: in 20 s, bot/fairness.py), and what they send besides the dev questions: a long
#: question, mixed scripts and invisible characters.
BURST_CHATS = 100
BURST_EXTRA = ["武汉光谷的光电子信息产业集群有多大？" * 60, "Wuhan 青山 hydrogen 氢能 \u200b\u202e🙂 " * 20]


async def _burst(telegram, qs: list[str], count: int) -> float:
    """``count`` messages sent at once from :data:`BURST_CHATS` private chats; seconds until
    every one has been answered."""
    texts = qs + BURST_EXTRA
    users = [telegram.user(900_000 + k) for k in range(BURST_CHATS)]
    expected = {u["id"]: len(telegram.sent(u["id"])) for u in users}
    started = time.monotonic()
    for i in range(count):
        user = users[i % len(users)]
        telegram.send(user, texts[i % len(texts)])
        expected[user["id"]] += 1
    await telegram.wait_for(
        lambda: all(len(telegram.sent(chat)) >= n for chat, n in expected.items()), timeout=900
    )
    return time.monotonic() - started


async def _reindex(telegram, pid: int) -> dict:
    """/reindex from the admin; seconds until the status message says the index was
    rebuilt, the bot's peak RSS then, and the build process's (sampled every 50 ms)."""
    admin = telegram.user(ADMIN)
    before = len(telegram.sent(ADMIN))
    started = time.monotonic()
    telegram.send(admin, "/reindex")
    await telegram.wait_for(lambda: len(telegram.sent(ADMIN)) > before, timeout=60)
    status = telegram.sent(ADMIN)[before]["message_id"]

    def finished() -> bool:
        text = telegram.message(ADMIN, status)["text"]
        return text.startswith(("Index rebuilt", "The rebuild failed"))

    build_peak = together = 0.0
    deadline = time.monotonic() + 1800
    while not finished():
        if time.monotonic() > deadline:
            raise RuntimeError("/reindex did not end within 30 minutes")
        builds = children(pid)
        build_peak = max([build_peak, *(status_mb(b, "VmHWM") or 0 for b in builds)])
        together = max(together, sum(pss_mb(p) or 0 for p in (pid, *builds)))
        await asyncio.sleep(0.05)
    text = telegram.message(ADMIN, status)["text"]
    if not text.startswith("Index rebuilt"):
        raise RuntimeError(f"/reindex did not rebuild the index: {text[:200]}")
    return {
        "reindex_s": time.monotonic() - started,
        "rss_reindex_mb": status_mb(pid, "VmHWM"),
        "anon_reindex_mb": status_mb(pid, "RssAnon"),
        "file_reindex_mb": status_mb(pid, "RssFile"),
        "build_process_peak_mb": build_peak,
        "pss_with_build_mb": together,
    }
