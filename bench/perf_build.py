"""bench/perf.py, section ``build``: index build throughput over the bundled and XQuAD
corpora, and a rebuild after one article changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from perf_common import Plan, Workspace, XQUAD, log, stats

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
