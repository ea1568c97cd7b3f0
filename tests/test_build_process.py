"""A build in a child process (index/build_process.py): the index it writes, its errors,
and that it ends with whatever started it, leaving the index as it was."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from processes import alive, children, environment

from index.build_process import BuildProcessFailed, build_in_child
from index.store.generations import load_index
from index.store.pointer import current_generation
from qabot.errors import QabotError

pytestmark = pytest.mark.slow

CHILD = "index.build_process"


def build(settings, corpus_dir, index_dir, progress=None):
    return build_in_child(
        corpus_dir, index_dir, settings.model_source,
        max_article_bytes=settings.max_article_bytes, progress=progress,
    )


async def wait_for_child(timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while not (found := children(os.getpid(), CHILD)):
        assert time.monotonic() < deadline, "no build process started"
        await asyncio.sleep(0.05)
    return found[0]


@pytest.mark.asyncio
async def test_the_child_writes_the_index_an_in_process_build_writes(settings_with_index, tmp_path):
    reports = []
    report = await build(
        settings_with_index, settings_with_index.corpus_dir, tmp_path, lambda *p: reports.append(p)
    )
    expected, built = load_index(settings_with_index.index_dir), load_index(tmp_path)
    assert (report.documents, report.passages) == (len(expected.documents), len(expected.passages))
    assert [p.text for p in built.passages] == [p.text for p in expected.passages]
    everything = np.arange(len(expected.passages))
    assert np.allclose(
        built.vectors.reconstruct_batch(everything), expected.vectors.reconstruct_batch(everything), atol=1e-5
    )
    assert np.allclose(built.sentence_vectors, expected.sentence_vectors, atol=1e-5)
    assert reports[-1][0] == reports[-1][1] >= report.embedded > 0  # all of it, in the child
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)


@pytest.mark.asyncio
async def test_a_failed_build_brings_its_message_back_and_leaves_the_index(settings_with_index, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(QabotError, match="No passages found in .*empty"):
        await build(settings_with_index, empty, tmp_path / "index")
    assert current_generation(tmp_path / "index") is None


@pytest.mark.asyncio
async def test_cancelling_the_build_ends_its_process(settings_with_index, long_corpus, tmp_path):
    task = asyncio.ensure_future(build(settings_with_index, long_corpus, tmp_path))
    child = await wait_for_child()
    await asyncio.sleep(2)  # loading the model or embedding
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert children(os.getpid(), CHILD) == [] and not alive(child)
    assert current_generation(tmp_path) is None


@pytest.mark.asyncio
async def test_a_killed_child_is_reported_as_such(settings_with_index, long_corpus, tmp_path):
    progress = []
    task = asyncio.ensure_future(
        build(settings_with_index, long_corpus, tmp_path, lambda *p: progress.append(p))
    )
    child = await wait_for_child()
    while not progress:
        await asyncio.sleep(0.05)
    os.kill(child, signal.SIGKILL)  # what the kernel's out-of-memory killer does
    with pytest.raises(BuildProcessFailed, match="stopped by SIGKILL .*out of memory.*left unchanged"):
        await task
    assert current_generation(tmp_path) is None


CALLER = """
import asyncio, sys
from pathlib import Path
from qabot.settings import Settings
from index.build_process import build_in_child

settings = Settings.from_env()
def show(done, total):
    print(done, total, flush=True)
asyncio.run(build_in_child(Path(sys.argv[1]), Path(sys.argv[2]), settings.model_source,
                           max_article_bytes=settings.max_article_bytes, progress=show))
"""


def test_a_build_whose_caller_is_killed_stops_and_never_saw_its_secrets(
    settings_with_index, long_corpus, tmp_path
):
    """The caller (a bot) is SIGKILLed mid-build: its child stops at its next progress
    report, without writing a generation; it was never given the token or the database."""
    env = {
        **os.environ,
        "QABOT_MODEL_DIR": str(settings_with_index.model_dir),
        "TELEGRAM_BOT_TOKEN": "123456:SECRET-token",
        "QABOT_DATABASE": "postgresql://qabot:hunter2@localhost/qabot",
    }
    caller = subprocess.Popen(
        [sys.executable, "-c", CALLER, str(long_corpus), str(tmp_path)],
        env=env, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert caller.stdout.readline()  # the first progress report: the child is building
        [child] = children(caller.pid, CHILD)
        withheld = environment(child)
        caller.kill()
        caller.wait(10)
        deadline = time.monotonic() + 60
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(child), "the build went on without its caller"
    finally:
        caller.kill()
    assert not {"TELEGRAM_BOT_TOKEN", "QABOT_DATABASE", "QABOT_MODEL_DIR"} & set(withheld)
    assert not any("hunter2" in v or "secret-token" in v.lower() for v in withheld.values())
    assert current_generation(tmp_path) is None
