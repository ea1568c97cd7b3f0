"""The scaled set-up end to end: two `qabot run` replicas in webhook mode behind Debian's
nginx, sharing a PostgreSQL database, Milvus (milvus-lite's server: the vectors) and an
index folder (passages, BM25), fed by the fake Bot API.

Telegram's side (the fake) POSTs a few hundred signed updates to nginx, sends some of them
again as Telegram does when it missed an answer, and an admin rebuilds the index midway.
Every question must be answered exactly once, with the right answer, and both replicas
must end up serving the rebuilt index without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import sys
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from fake_telegram import FakeTelegram
from servers import fresh_postgres_database, free_port, nginx_proxy

from index.build import build_index
from index.store.pointer import current_generation
from index.store.milvus import MilvusStore

ADMIN = 4242
SECRET = "scale-test_secret"
#: Questions and what their answers must contain.
QUESTIONS = {
    "What industrial clusters are planned in the middle reaches of the Yangtze River?": "Yangtze",
    "中韩石化航煤加氢项目投资多少": "中韩石化",
    "Who won the football world cup?": "don't cover",
}


@pytest_asyncio.fixture
async def telegram():
    async with FakeTelegram() as server:
        yield server


async def _replica(name: str, port: int, proxy_port: int, env: dict, log_file) -> asyncio.subprocess.Process:
    env = {
        **env,
        "QABOT_REPLICA": name,
        "QABOT_WEBHOOK_URL": f"http://127.0.0.1:{proxy_port}/telegram/hook",
        "QABOT_WEBHOOK_LISTEN": f"127.0.0.1:{port}",
        "QABOT_WEBHOOK_SECRET": SECRET,
    }
    qabot = Path(sys.executable).with_name("qabot")
    return await asyncio.create_subprocess_exec(
        str(qabot), "run", env=env, stdout=log_file, stderr=log_file
    )


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    try:
        async with http.get(url) as response:
            return response.status, await response.text()
    except aiohttp.ClientError:
        return 0, ""


@pytest.mark.asyncio
async def test_two_webhook_replicas_behind_nginx_answer_every_update_once(
    telegram, settings_with_index, embedder, postgres_server_url, milvus_address, tmp_path
):
    index_dir, corpus_dir = tmp_path / "index", tmp_path / "corpus"
    index_dir.mkdir()
    shutil.copy(settings_with_index.index_dir / "embedding-cache.npz", index_dir)
    shutil.copytree(settings_with_index.corpus_dir, corpus_dir)
    vector_store = f"{milvus_address}/scale"
    build_index(corpus_dir, index_dir, embedder, vector_store=MilvusStore(vector_store))
    database = fresh_postgres_database(postgres_server_url, "scale")
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": telegram.token,
        "TELEGRAM_API_BASE_URL": telegram.base_url,
        "QABOT_INDEX_DIR": str(index_dir),
        "QABOT_CORPUS_DIR": str(corpus_dir),
        "QABOT_MODEL_DIR": str(settings_with_index.model_dir),
        "QABOT_DATABASE_URL": database,
        "QABOT_VECTOR_STORE": vector_store,
        "QABOT_ADMIN_IDS": str(ADMIN),
        "HF_HUB_OFFLINE": "1",
    }
    ports = [free_port(), free_port()]
    log_path = tmp_path / "replicas.log"
    with nginx_proxy(ports) as proxy_port, open(log_path, "ab") as log_file:
        replicas = [
            await _replica(f"replica-{n}", port, proxy_port, env, log_file)
            for n, port in enumerate(ports)
        ]
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                await _until_healthy(http, ports, log_path)
                health = await asyncio.create_subprocess_exec(  # Docker's health check
                    str(Path(sys.executable).with_name("qabot")), "health",
                    env={**env, "QABOT_WEBHOOK_URL": "https://bot.example.com/hook",
                         "QABOT_WEBHOOK_SECRET": SECRET, "QABOT_WEBHOOK_LISTEN": f"0.0.0.0:{ports[0]}"},
                    stdout=asyncio.subprocess.PIPE,
                )
                assert (await health.communicate())[0].decode().startswith(f"webhook on port {ports[0]}: answering")
                assert health.returncode == 0
                await telegram.wait_for(lambda: telegram.webhook, timeout=30)
                await _burst(telegram, http, ports, index_dir, log_path, milvus_address)
        finally:
            for replica in replicas:
                with contextlib.suppress(ProcessLookupError):  # one that failed has exited
                    replica.terminate()
            for replica in replicas:
                try:
                    await asyncio.wait_for(replica.wait(), 30)
                except asyncio.TimeoutError:
                    replica.kill()
                    await replica.wait()
    assert all(r.returncode == 0 for r in replicas), log_path.read_text()[-3000:]


async def _until_healthy(http, ports: list[int], log_path: Path) -> None:
    for _ in range(600):  # bounded: two cold starts take a few seconds each
        statuses = [(await _get(http, f"http://127.0.0.1:{p}/healthz"))[0] for p in ports]
        if statuses == [200, 200]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"replicas not healthy: {statuses}\n{log_path.read_text()[-3000:]}")


async def _burst(telegram, http, ports: list[int], index_dir: Path, log_path: Path, milvus: str) -> None:
    rng = random.Random(7)
    old_generation = current_generation(index_dir)
    users = [telegram.user(7000 + n) for n in range(100)]
    questions = list(QUESTIONS)
    asked: dict[int, list[str]] = {}
    sent = []
    for round_ in range(3):
        for n, user in enumerate(users):
            question = questions[(n + round_) % len(questions)]
            asked.setdefault(user["id"], []).append(question)
            sent.append(telegram.send(user, question))
        if round_ == 1:  # midway: an admin rebuilds the index
            telegram.send(telegram.user(ADMIN), "/reindex")
        await asyncio.sleep(0.5)
    for update in rng.sample(sent, 40):  # Telegram sends these again
        telegram.redeliver(update)

    def all_answered() -> bool:
        return all(len(telegram.sent(uid)) >= 3 for uid in asked)

    await telegram.wait_for(all_answered, timeout=240)
    [status] = await telegram.replies(ADMIN, timeout=60)
    await telegram.wait_for(
        lambda: telegram.message(ADMIN, status["message_id"])["text"].startswith("Index rebuilt"),
        timeout=240,
    )
    await telegram.quiet(2.0)

    for uid, questions_asked in asked.items():  # the three questions, each answered once
        replies = [r["text"] for r in telegram.sent(uid)]
        assert len(replies) == 3, f"user {uid}: {replies}\n{log_path.read_text()[-3000:]}"
        for question in questions_asked:
            assert sum(QUESTIONS[question] in text for text in replies) == 1, (question, replies)

    new_generation = current_generation(index_dir)
    assert new_generation != old_generation
    store = MilvusStore(f"{milvus}/scale")
    assert store.client.describe_alias("scale_passages")["collection_name"] == store.collections(new_generation)[0]
    metrics = [(await _get(http, f"http://127.0.0.1:{p}/metrics"))[1] for p in ports]
    answered = [_counter(m, 'qabot_questions_total{outcome="answered"}')
                + _counter(m, 'qabot_questions_total{outcome="declined"}') for m in metrics]
    assert sum(answered) == 300 and min(answered) > 0, answered  # both replicas took a share
    redelivered = sum(_counter(m, 'qabot_webhook_updates_total{result="redelivered"}') for m in metrics)
    assert redelivered >= 40
    for _ in range(300):  # the replica that did not rebuild picks the new index up by itself
        metrics = [(await _get(http, f"http://127.0.0.1:{p}/metrics"))[1] for p in ports]
        if all(f'generation="{new_generation}"' in m for m in metrics):
            break
        await asyncio.sleep(0.1)
    assert all(f'generation="{new_generation}"' in m for m in metrics)


def _counter(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0
