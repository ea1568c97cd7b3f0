#!/usr/bin/env python
"""Webhook throughput: one replica, and two behind nginx, on this machine.

Each set-up is real: `qabot run` processes in webhook mode sharing a PostgreSQL database
(tests/servers.py starts Debian's server on loopback), the two replicas behind Debian's
nginx, all talking to the fake Bot API (tests/fake_telegram.py) for their replies. The load
generator here POSTs signed updates (questions from tests/data/dev_questions.jsonl, from
200 chats) straight to the bot or the proxy, ``--concurrency`` at a time, and times each
from its POST to the reply arriving at the fake Bot API. It reports updates answered per
second over the burst, and p50/p95 of those latencies. Both set-ups run side by side in
one invocation, ``--runs`` times each, alternating; medians are reported.

    .venv/bin/python bench/webhook.py            # ~3 min on 2 cores; writes docs/benchmarks-webhook.md

Note what bounds the numbers: each bot process sends at most 30 requests/s to Telegram
(python-telegram-bot's rate limiter, Telegram's own per-bot limit), and each answer costs
one (the reply; "typing…" only before an answer slower than a second).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
SECRET = "bench_secret"
NOTE = """What bounds it: each bot process sends at most 30 requests per second to Telegram (its
rate limiter, which is Telegram's own limit per bot) and an answer costs one (the reply;
"typing…" goes first only when an answer takes over a second), so one replica answers at
most 30 questions per second, and two replicas nearly twice that (55 here, where they
share the 2 cores with PostgreSQL, nginx and the load generator). The latencies are those
of a burst: all questions arrive within a second or two and wait their turn. Against the
real Telegram, replicas of one bot share that bot's limit, so they add capacity for CPU
(long questions, large indexes) and survive the loss of a machine; they do not raise the
replies per second Telegram accepts from one bot. Before the "typing…" action became
conditional (2026-12-01): 15.4 and 30.5 updates/s, p50 18.2 and 8.0 s.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=600, help="questions per burst")
    parser.add_argument("--concurrency", type=int, default=40, help="POSTs in flight (Telegram's default max_connections)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks-webhook.md")
    args = parser.parse_args()
    results = asyncio.run(_measure(args))
    _write(args, results)
    print(args.out.read_text())
    return 0


async def _measure(args) -> dict[str, list[dict]]:
    from servers import postgres_server

    results: dict[str, list[dict]] = {"1 replica": [], "2 replicas + nginx": []}
    with postgres_server() as server, tempfile.TemporaryDirectory() as folder:
        index = Path(folder) / "index"
        subprocess.run([_qabot(), "index", "build", "--index", str(index)],
                       check=True, env=_env(), capture_output=True, cwd=REPO)
        for run in range(args.runs):
            for name, replicas in (("1 replica", 1), ("2 replicas + nginx", 2)):
                result = await _burst(args, server, index, replicas, f"b{run}{replicas}")
                print(name, json.dumps(result), flush=True)
                results[name].append(result)
    return results


async def _burst(args, server: str, index: Path, replicas: int, database: str) -> dict:
    from fake_telegram import FakeTelegram
    from servers import free_port, fresh_postgres_database, nginx_proxy

    import aiohttp

    questions = [json.loads(line)["question"] for line in
                 (REPO / "tests" / "data" / "dev_questions.jsonl").read_text().splitlines()]
    ports = [free_port() for _ in range(replicas)]
    async with FakeTelegram() as telegram:
        url = fresh_postgres_database(server, database)
        with nginx_proxy(ports) if replicas > 1 else _no_proxy(ports[0]) as entry, \
                tempfile.TemporaryFile() as log:
            processes = [
                await asyncio.create_subprocess_exec(
                    _qabot(), "run", stdout=log, stderr=log, cwd=REPO,
                    env=_env(
                        TELEGRAM_BOT_TOKEN=telegram.token, TELEGRAM_API_BASE_URL=telegram.base_url,
                        QABOT_INDEX_DIR=str(index), QABOT_DATABASE_URL=url,
                        QABOT_REPLICA=f"replica-{n}", QABOT_WEBHOOK_SECRET=SECRET,
                        QABOT_WEBHOOK_URL=f"http://127.0.0.1:{entry}/hook",
                        QABOT_WEBHOOK_LISTEN=f"127.0.0.1:{port}",
                    ),
                )
                for n, port in enumerate(ports)
            ]
            try:
                async with aiohttp.ClientSession() as http:
                    await _until_healthy(http, ports)
                    return await _post_all(args, http, telegram, entry, questions)
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    await asyncio.wait_for(process.wait(), 30)


class _no_proxy:
    def __init__(self, port: int) -> None:
        self.port = port

    def __enter__(self) -> int:
        return self.port

    def __exit__(self, *_: object) -> None:
        return None


async def _until_healthy(http, ports: list[int]) -> None:
    import aiohttp

    for _ in range(600):
        healthy = 0
        for port in ports:
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    healthy += response.status == 200
            except aiohttp.ClientError:
                pass
        if healthy == len(ports):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the replicas did not become healthy within 60 s")


async def _post_all(args, http, telegram, port: int, questions: list[str]) -> dict:
    users = [telegram.user(10_000 + n) for n in range(200)]
    updates = [
        telegram.new_update(users[n % len(users)], questions[n % len(questions)])
        for n in range(args.updates)
    ]
    posted: dict[int, float] = {}
    gate = asyncio.Semaphore(args.concurrency)
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}

    async def post(update: dict) -> None:
        async with gate:
            posted[update["update_id"]] = time.monotonic()
            async with http.post(f"http://127.0.0.1:{port}/hook", json=update, headers=headers) as r:
                assert r.status == 200, r.status

    started = time.monotonic()
    await asyncio.gather(*(post(u) for u in updates))
    await telegram.wait_for(lambda: len(telegram.sent()) >= len(updates), timeout=600)
    elapsed = time.monotonic() - started
    by_chat: dict[int, list[float]] = {}
    for call in telegram.calls_to("sendMessage", ok=True):
        by_chat.setdefault(int(call.params["chat_id"]), []).append(call.at)
    latencies = []
    for update in updates:  # a chat's replies come in the order of its questions
        chat = update["message"]["chat"]["id"]
        latencies.append(by_chat[chat].pop(0) - posted[update["update_id"]])
    latencies.sort()
    return {
        "updates_per_s": round(len(updates) / elapsed, 1),
        "p50_ms": round(1000 * latencies[len(latencies) // 2]),
        "p95_ms": round(1000 * latencies[int(len(latencies) * 0.95)]),
    }


def _write(args, results: dict[str, list[dict]]) -> None:
    lines = [
        "# Webhook throughput",
        "",
        f"Written by `bench/webhook.py` on {dt.date.today()} ({os.cpu_count()} cores, "
        f"Python {platform.python_version()}): {args.updates} signed question updates from 200 "
        f"chats POSTed {args.concurrency} at a time to loopback, the bundled index, PostgreSQL "
        "on loopback, replies to the fake Bot API. Medians of "
        f"{args.runs} runs, the set-ups alternating.",
        "",
        "| set-up | updates answered / s | latency p50 | latency p95 |",
        "|---|---:|---:|---:|",
    ]
    for name, runs in results.items():
        median = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
        lines.append(f"| {name} | {median('updates_per_s'):.1f} | {median('p50_ms'):.0f} ms | "
                     f"{median('p95_ms'):.0f} ms |")
    lines += ["", NOTE, "Every run: " + json.dumps(results), ""]
    args.out.write_text("\n".join(lines), encoding="utf-8")


def _qabot() -> str:
    return str(Path(sys.executable).with_name("qabot"))


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QABOT_", "TELEGRAM_"))}
    return {**env, "HF_HUB_OFFLINE": "1", **values}


if __name__ == "__main__":
    raise SystemExit(main())
