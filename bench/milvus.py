#!/usr/bin/env python
"""Vectors in Milvus against the FAISS folder, side by side: retrieval quality on three
corpora, and speed at 100k passages. Writes docs/benchmarks-milvus.md.

    .venv/bin/python bench/milvus.py      # ~15 min on 2 cores (most of it loading 100k into milvus-lite)

Milvus is milvus-lite's server (tests/servers.py starts it on loopback): the same pymilvus
API as a Milvus cluster, in one local Python process. Its speed says little about a
cluster's; what this measures is that qabot gets the same answers through Milvus, and what
the extra network hop and Milvus's search cost here.

Quality: each corpus is indexed twice from the same embeddings (the second build takes
them from the first's embedding cache): into the folder, and with its vectors in Milvus.
Both are scored with ``qabot eval``'s scoring: the dev set and its off-topic questions on
the bundled articles, the CMRC 2018 trial, and XQuAD mixed (en and zh questions over both
languages' passages; XQuAD is the test set, here only compared with itself).

Speed: the 100k-passage synthetic index of ``bench/hybrid_scale.py`` (``data/hybrid-scale``,
run that first), its vectors copied into Milvus as a new generation; the retrieval part of
each dev question (question vectors computed once) in candidate mode, FAISS and Milvus
alternating per question in one process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
SHARED = REPO.parent / "shared" / "bench"
WORK = REPO / "data" / "milvus-bench"
NOTE = """On small corpora (here all three: below 20,000 passages every passage is scored) the engine
reads every vector from Milvus once at start, so both give the same answers by
construction; the table checks that the copy is exact. At 100k passages the hybrid scores
candidates: per question two language-filtered searches in Milvus (exact, FLAT) and the
vectors of ~600 candidates and their ~2,800 sentences fetched by row, against FAISS's
approximate IVF search and memory-mapped rows. The different top passages are those where
FAISS's approximation and the exact search disagree. milvus-lite is a Python engine in one
process; the latency is its own, not a cluster's."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks-milvus.md")
    parser.add_argument("--skip-speed", action="store_true", help="quality only")
    args = parser.parse_args()

    from servers import milvus_server

    from index.embedding.embedder import Embedder
    from qabot.settings import Settings

    embedder = Embedder.load(Settings().model_source)
    with milvus_server() as address:
        quality = [_quality(embedder, address, *corpus) for corpus in _corpora()]
        speed = None if args.skip_speed else _speed(embedder, address)
    _write(args.out, quality, speed)
    print(args.out.read_text())
    return 0


def _corpora():
    from qabot.settings import BUNDLED_CORPUS_DIR

    data, caches = REPO / "tests" / "data", REPO / "data"  # caches: earlier builds' embeddings
    yield ("bundled articles, dev set", BUNDLED_CORPUS_DIR,
           [data / "dev_questions.jsonl", data / "dev_offtopic.jsonl"], caches / "calibrate" / "bundled")
    yield ("CMRC 2018 trial", SHARED / "cmrc-trial" / "corpus",
           [SHARED / "cmrc-trial" / "questions.jsonl"], caches / "calibrate" / "cmrc")
    yield ("XQuAD mixed", SHARED / "xquad" / "corpus",
           [SHARED / "xquad" / "questions.jsonl"], caches / "bench-corpora" / "index" / "xquad-mixed")


def _quality(embedder, address: str, name: str, corpus: Path, question_files: list[Path], seed: Path) -> dict:
    """Both indexes of ``corpus`` (embeddings from ``seed``'s cache when it has them) and
    their scores on the questions."""
    from index.build import build_index
    from index.retrieval.engine import Engine
    from index.store.milvus import MilvusStore
    from qabot.eval_run import evaluate
    from qabot.evaluation import read_questions

    slug = re.sub(r"\W+", "_", name.lower()).strip("_")
    folder_index, milvus_index = WORK / f"{slug}-faiss", WORK / f"{slug}-milvus"
    for index in (folder_index, milvus_index):
        shutil.rmtree(index, ignore_errors=True)
        index.mkdir(parents=True)
    if (seed / "embedding-cache.npz").is_file():
        shutil.copy(seed / "embedding-cache.npz", folder_index)
    build_index(corpus, folder_index, embedder)
    shutil.copy(folder_index / "embedding-cache.npz", milvus_index)
    store = MilvusStore(f"{address}/bench_{slug}")
    build_index(corpus, milvus_index, embedder, vector_store=store)
    questions = [q for path in question_files for q in read_questions(path)]
    engines = {
        "FAISS folder": Engine.with_model(embedder, folder_index),
        "Milvus": Engine.with_model(embedder, milvus_index, vector_store=store),
    }
    reports = {label: evaluate(engine, questions) for label, engine in engines.items()}
    faiss_engine, milvus = engines.values()
    vectors = embedder.embed_queries([q.question for q in questions])
    same_top = same_decision = 0
    for question, vector in zip(questions, vectors):
        a = faiss_engine.search(question.question, 10, vector=vector)
        b = milvus.search(question.question, 10, vector=vector)
        same_top += [h.row for h in a[:1]] == [h.row for h in b[:1]]
        same_decision += faiss_engine.is_good_match(a) == milvus.is_good_match(b)
    return {
        "corpus": name,
        "questions": len(questions),
        "scores": {label: _summary(report.scores) for label, report in reports.items()},
        "same_top1": same_top,
        "same_decision": same_decision,
    }


def _summary(scores: dict) -> dict:
    out = {"hit@1": scores["hit@1"], "mrr@10": scores["mrr@10"]}
    if "answered" in scores:
        out["answered"] = scores["answered"]
    if "off_topic" in scores:
        out["off_topic_declined"] = scores["off_topic"]["declined"]
    return out


def _speed(embedder, address: str) -> dict:
    import numpy as np

    from index.retrieval.engine import Engine
    from index.store.generations import load_index
    from index.store.milvus import MilvusStore

    source = REPO / "data" / "hybrid-scale" / "index-100000"
    if not source.is_dir():
        return {"error": "run bench/hybrid_scale.py first (data/hybrid-scale/index-100000)"}
    started = time.perf_counter()
    folder = load_index(source)
    milvus_dir, store = _copy_to_milvus(source, folder, MilvusStore(address + "/bench100k"))
    upload_s = time.perf_counter() - started
    questions = json.loads((REPO / "data" / "hybrid-scale" / "questions.json").read_text())
    vectors = np.load(REPO / "data" / "hybrid-scale" / "question-vectors.npy")
    loaded = {}
    for label, load in (("FAISS folder", lambda: load_index(source)),
                        ("Milvus", lambda: load_index(milvus_dir, store))):
        t = time.perf_counter()
        stored = load()
        engine = Engine(embedder, stored, candidates=150, vector_store=store if label == "Milvus" else None)
        loaded[label] = (engine, time.perf_counter() - t)
    timings = {label: [] for label in loaded}
    tops = {label: [] for label in loaded}
    texts = [q["question"] if isinstance(q, dict) else q for q in questions]  # a list of strings
    for text, vector in zip(texts, vectors):
        for label, (engine, _) in loaded.items():
            t = time.perf_counter()
            hits = engine.search(text, 10, vector=vector)
            timings[label].append(1000 * (time.perf_counter() - t))
            tops[label].append(hits[0].row if hits else None)
    return {
        "passages": len(folder.passages),
        "sentences": int(len(folder.sentence_spans)),
        "upload_s": round(upload_s, 1),
        "questions": len(texts),
        "same_top1": sum(a == b for a, b in zip(*tops.values())),
        "engine": {
            label: {
                "load_and_start_s": round(seconds, 1),
                "p50_ms": round(statistics.median(timings[label]), 1),
                "p95_ms": round(sorted(timings[label])[int(0.95 * len(timings[label]))], 1),
            }
            for label, (_, seconds) in loaded.items()
        },
    }


def _copy_to_milvus(source: Path, stored, store):
    """The active generation of ``source`` with its vectors moved to Milvus, in a new index
    folder (same passages, spans, BM25 and calibration; no vector files)."""
    from index.store.generations import MANIFEST, VECTOR_FILES
    from index.store.pointer import CURRENT

    target = WORK / "index-100000-milvus"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source / stored.generation, target / stored.generation,
                    ignore=shutil.ignore_patterns(*VECTOR_FILES))
    vectors = stored.vectors.reconstruct_n(0, stored.vectors.ntotal)
    store.upload(stored.generation, vectors, [p.language for p in stored.passages],
                 np_array(stored.sentence_vectors), stored.sentence_spans[:, 0])
    manifest_path = target / stored.generation / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["vector_store"] = store.address
    manifest["vector_index"] = "Milvus FLAT (exact)"
    for name in VECTOR_FILES:
        manifest["files"].pop(name, None)
    manifest_path.write_text(json.dumps(manifest))
    (target / CURRENT).write_text(stored.generation)
    return target, store


def np_array(rows):
    import numpy as np

    return np.asarray(rows, dtype=np.float32)


def _write(out: Path, quality: list[dict], speed: dict | None) -> None:
    lines = [
        "# Vectors in Milvus against the FAISS folder",
        "",
        f"Written by `bench/milvus.py` on {dt.date.today()} ({os.cpu_count()} cores, Python "
        f"{platform.python_version()}); Milvus is milvus-lite's server on loopback. Both "
        "columns come from the same embeddings, in one run.",
        "",
        "## Quality",
        "",
        "| corpus | questions | hit@1 FAISS | hit@1 Milvus | MRR@10 FAISS | MRR@10 Milvus | answered FAISS / Milvus | off-topic declined FAISS / Milvus | same top passage | same decision |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for row in quality:
        f, m = row["scores"]["FAISS folder"], row["scores"]["Milvus"]
        pair = lambda key: f"{f[key]:.3f} / {m[key]:.3f}" if key in f else "–"  # noqa: E731
        lines.append(
            f"| {row['corpus']} | {row['questions']} | {f['hit@1']:.3f} | {m['hit@1']:.3f} | "
            f"{f['mrr@10']:.3f} | {m['mrr@10']:.3f} | {pair('answered')} | {pair('off_topic_declined')} | "
            f"{row['same_top1']} | {row['same_decision']} |"
        )
    if speed:
        lines += ["", "## Speed at 100k passages", ""]
        if "error" in speed:
            lines.append(speed["error"])
        else:
            lines += [
                f"{speed['passages']:,} passages and {speed['sentences']:,} sentence vectors "
                f"(bench/hybrid_scale.py's synthetic index), uploaded in {speed['upload_s']} s; "
                f"{speed['questions']} dev questions, the retrieval part only (question vectors "
                "given), candidate mode, FAISS and Milvus alternating.",
                "",
                "| vectors in | load + engine start | retrieval p50 | p95 |",
                "|---|---:|---:|---:|",
            ]
            for label, row in speed["engine"].items():
                lines.append(f"| {label} | {row['load_and_start_s']} s | {row['p50_ms']} ms | {row['p95_ms']} ms |")
            lines += ["", f"Same top passage for {speed['same_top1']} of {speed['questions']} questions."]
    lines += ["", NOTE]
    lines += ["", "Raw: " + json.dumps({"quality": quality, "speed": speed}), ""]
    out.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
