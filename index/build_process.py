"""A build in a process of its own, for a long-running caller (the bot's ``/reindex``).

Why not a thread: a build holds what it used until its process ends. In the bot's own
process a first build of XQuAD's 516 passages left the bot holding 320 MB instead of 208
for as long as it ran (ONNX Runtime's buffers for batches of passages, bm25s and scipy,
the pages of the word table that XQuAD's words touch); with the build in a child, the bot
holds 236 MB afterwards (the larger index), and the child's 294 MB go back to the system
when it ends. A crash of native code, or the kernel's out-of-memory killer, takes down the
build and not the bot. The price: while it runs, the child holds a model of its own, 442 MB
(PSS) for the two processes instead of 326 MB for one (``bench/side_by_side.py
--reindexes``, docs/benchmarks-reindex.md).

The protocol is one JSON request on the child's standard input and JSON lines on its
standard output: ``{"progress": [done, total]}`` as texts are embedded, then
``{"report": {...}}`` or ``{"error": "..."}``. Its log goes to the caller's standard error.
A child whose caller is gone stops at its next progress report (the pipe is closed), and
the index stays as it was: generations are written atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import resource
import signal
import sys
import time
from pathlib import Path

from index.build import BuildReport, build_index
from index.embedding.embedder import ModelSource, Progress
from index.store.milvus import MilvusStore
from qabot.errors import QabotError

log = logging.getLogger(__name__)

#: Seconds a child has to end after SIGTERM before it is killed.
TERMINATE_GRACE = 5.0
#: Longest protocol line read (a report quoting many broken files' warnings).
LINE_LIMIT = 16 * 1024 * 1024
#: Environment variables a child does not get: the caller's settings and secrets (the bot
#: token, the database address). Everything the build needs comes in its request.
_WITHHELD_PREFIXES = ("QABOT_", "TELEGRAM_")


class BuildProcessFailed(QabotError):
    """The build process ended without a report or an error of its own (killed, crashed)."""


async def build_in_child(
    corpus_dir: Path,
    index_dir: Path,
    model: ModelSource,
    *,
    max_article_bytes: int,
    progress: Progress | None = None,
    vector_store: str = "",
) -> BuildReport:
    """What :func:`index.build.build_index` does, in a child process; raises its
    :class:`QabotError` (same message) on failure. Cancelling this coroutine ends the child
    (SIGTERM, then SIGKILL after :data:`TERMINATE_GRACE` seconds)."""
    request = {
        "corpus_dir": str(corpus_dir),
        "index_dir": str(index_dir),
        "model": {"name": model.name, "folder": str(model.folder), "backend": model.backend},
        "max_article_bytes": max_article_bytes,
        "vector_store": vector_store,
    }
    started = time.monotonic()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", __name__,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=_child_environment(),
        start_new_session=True,  # a Ctrl-C in the terminal stops the caller, which ends the child
        limit=LINE_LIMIT,
    )
    try:
        child.stdin.write(json.dumps(request).encode())
        child.stdin.close()
        outcome: dict = {}
        async for line in child.stdout:
            message = json.loads(line)
            if "progress" in message:
                if progress:
                    progress(*message["progress"])
            else:
                outcome = message
        code = await child.wait()
    finally:
        await _end(child)
    if "report" in outcome and code == 0:
        log.info(
            "Build process %d ended after %.1f s; its peak RSS was %.0f MB",
            child.pid, time.monotonic() - started, outcome["peak_rss_mb"],
        )
        return BuildReport(**outcome["report"])
    if outcome.get("error"):
        raise QabotError(outcome["error"])
    raise BuildProcessFailed(_crash_reason(code))


async def _end(child: asyncio.subprocess.Process) -> None:
    """Make sure ``child`` has ended and been waited for."""
    if child.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        child.terminate()
    try:
        await asyncio.wait_for(child.wait(), TERMINATE_GRACE)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()


def _crash_reason(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (the machine may be out of memory)" if -code == signal.SIGKILL else ""
        return f"The build process was stopped by {name}{hint}; the index was left unchanged."
    return (
        f"The build process ended with an unexpected error (exit status {code}); the log "
        "has the details, and the index was left unchanged."
    )


def _child_environment() -> dict[str, str]:
    """The caller's environment without its settings and secrets, able to import qabot."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_WITHHELD_PREFIXES)}
    code = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [code, env.get("PYTHONPATH")]))
    return env


def main() -> int:
    """The child: read the request, build, report. Exit status 0 with a report, else 1."""
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever a library prints goes to the log, not into the protocol
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    request = json.load(sys.stdin)
    model, store = request["model"], request["vector_store"]

    def send(message: dict) -> None:
        protocol.write(json.dumps(message, ensure_ascii=False) + "\n")
        protocol.flush()  # raises BrokenPipeError once the caller is gone

    try:
        report = build_index(
            Path(request["corpus_dir"]),
            Path(request["index_dir"]),
            ModelSource(model["name"], Path(model["folder"]), model["backend"]),
            max_article_bytes=request["max_article_bytes"],
            progress=lambda done, total: send({"progress": [done, total]}),
            vector_store=MilvusStore(store) if store else None,
        )
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        send({"report": dataclasses.asdict(report), "peak_rss_mb": peak_mb})
    except BrokenPipeError:
        log.warning("The process that started this build is gone; the build stopped.")
        return 1
    except QabotError as exc:
        with contextlib.suppress(BrokenPipeError):
            send({"error": str(exc)})
        return 1
    finally:
        with contextlib.suppress(BrokenPipeError):
            protocol.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
