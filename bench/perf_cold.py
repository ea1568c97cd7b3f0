"""bench/perf.py, section ``cold``: process start to first answer of ``qabot ask`` (wall
clock, peak RSS) with a breakdown in a fresh process; ``qabot sources`` and ``--help``."""

from __future__ import annotations

import contextlib
import json
import sys
from collections import defaultdict

from perf_common import Plan, Workspace, child_env, log, qabot_cmd, questions, run_timed, stats

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
import onnxruntime, sentencepiece; mark("import onnxruntime, sentencepiece")
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
