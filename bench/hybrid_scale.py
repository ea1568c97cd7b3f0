#!/usr/bin/env python
"""The hybrid retriever at scale: candidate mode against scoring every passage.

    .venv/bin/python bench/hybrid_scale.py            # 100k and 1M passages (~15 min, 2 cores)
    .venv/bin/python bench/hybrid_scale.py --quick    # 20k and 100k (a few minutes)
    .venv/bin/python bench/hybrid_scale.py --sizes 100000 --out /tmp/h.json

For each size it writes a synthetic index with qabot's own ``index.store.generations.write_index``
(cached in ``data/hybrid-scale/``), then measures it in fresh processes, one per mode, so
that each process's memory is the engine's alone:

* ``candidates``: ``Engine(..., candidates=CANDIDATES_PER_POOL)``, what the hybrid uses
  above ``CANDIDATE_MODE_ABOVE`` passages (forced at sizes below it);
* ``full``: ``candidates=0``, every passage scored (the brute force below the threshold).

Each process loads the index (``load_index``), builds the engine, then times
``Engine.search(question, 10, vector=...)`` per dev question (tests/data: 92 answerable +
32 off-topic; their embeddings are computed once, here, so the timing is the retrieval
part of ``Engine.ask``: tokenising, BM25, FAISS, fusion and ranking, without the question's
embedding and the highlight). It reports p50/p95, its RSS after building the engine and
its peak, and every question's top 10 and answered/declined decision; this script then
compares the two modes (top-1 and top-10 agreement). The index's null (the reference
questions' evidence, ``index.calibration``) is fitted in candidate mode, as a build at
this size fits it; so full mode decides once against that null and once against a null
fitted in full mode (``answered_same_own_null``: each mode against its own null).
Agreement is also measured for a few other candidate counts, to show how it depends on
the choice. Above 200k passages brute force takes about a second per question, so full
mode answers an evenly spaced ~32 of the questions only there (every 7th of 194).

Memory, from /proc/self/status: ``RssAnon`` is the process's own memory (index, engine);
``RssFile`` counts the page-cache pages of the memory-mapped sentence vectors that are
mapped into the process. Those are clean, shared with the page cache and reclaimable, and
grow beyond the rows actually read: on each page fault Linux maps up to 64 KB of
neighbouring pages that are already cached (``load_index`` reads every file once for its
checksum, so they are).

The data. The real passages (bundled corpus + XQuAD, with their real vectors, sentences,
sentence vectors and texts) come first, so the dev questions' answers are there. The rest
is synthetic:

* passage vectors: ``bench/synthetic.py``'s :func:`synthesize`, per language from that
  language's real passages (blends of real passage embeddings plus noise with their real
  covariance; see its docstring on why it is not easier than real data). Per language,
  because the model's embeddings cluster by language: an English question's nearest IVF
  lists hold few Chinese passages, which a language-blind synthesis would hide;
* texts: 3 or more real sentences of one language, drawn at random and joined (the
  number drawn from the real passages' sentence counts), so BM25 sees the real
  vocabulary and word statistics at the new size;
* sentence vectors: the passage's vector plus Gaussian noise with the covariance of the
  real sentences' offsets from their own passage's vector (per language), normalised:
  they vary around their passage as real sentences do, in the same directions and by the
  same amounts (their cosine to their passage is reported beside the real one). Not
  the real offsets themselves: an offset carries its sentence's content, so a synthetic
  passage would get a sentence as relevant to a dev question as the gold sentence, in an
  otherwise unrelated passage, something a real corpus does not have and that no
  passage-level candidate search could find.

``beta`` (the noise weight of :func:`synthesize`) is chosen per language with
:func:`choose_beta`, so that passages are no closer to their nearest neighbour than real
ones.

Text and vectors of a synthetic passage are unrelated (the dense and the lexical signals
are independent there), which makes the fused ranking *harder* to reproduce from a few
candidates than on real data, where the signals agree on the best passages. Because the
texts are concatenations of known sentences, the bench gives ``write_index`` their
sentence spans and BM25 tokens instead of letting it split and tokenise a million texts
again (exactly equal: sentences are joined by a space, which no sentence or token spans).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import gc
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

from index.store.manifest import ModelRecord

WORK = ROOT / "data" / "hybrid-scale"
XQUAD_CORPUS = ROOT.parent / "shared" / "bench" / "xquad" / "corpus"
DEV = [ROOT / "tests" / "data" / name for name in ("dev_questions.jsonl", "dev_offtopic.jsonl", "offtopic_more.jsonl")]
OUT = ROOT / "bench" / "hybrid_scale.json"
FULL_SIZES = (100_000, 1_000_000)
QUICK_SIZES = (20_000, 100_000)
#: Candidate counts besides the default whose agreement with full scoring is reported.
SWEEP = (50, 300)
#: Above LARGE passages brute force costs about a second per question: it answers about
#: this many of the questions (every n-th, so all kinds of question are among them).
FULL_MODE_QUESTIONS_LARGE = 32
LARGE = 200_000
#: The fewest real sentences joined into one synthetic passage (fewer makes duplicates).
MIN_SENTENCES = 3
#: Bump when the synthetic data changes, so cached indexes are rebuilt.
DATA_VERSION = 5


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- real material -----------------------------------------------------------------------


@dataclasses.dataclass
class Real:
    """The real passages of the bundled and XQuAD corpora, as their indexes hold them."""

    passages: list
    documents: list
    vectors: np.ndarray
    spans: np.ndarray  # (passage row, start, end) per sentence, grouped by passage
    sentence_vectors: np.ndarray
    model: ModelRecord  # what the real index was built with
    reference: dict  # reference question -> its embedding (see index.calibration)

    @property
    def languages(self) -> np.ndarray:
        return np.array([p.language for p in self.passages])

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.spans[:, 0], minlength=len(self.passages))


def real_material(embedder, settings) -> Real:
    """Both real corpora indexed with this model (built into data/hybrid-scale once)."""
    from index.calibration import reference_questions
    from index.store.generations import load_index

    parts = []
    for name, corpus in (("bundled", settings.corpus_dir), ("xquad", XQUAD_CORPUS)):
        folder = WORK / f"real-{name}"
        # bench/xquad.py's indexes serve as well when they are current.
        stored = _loadable(folder, corpus, embedder) or _loadable(ROOT / "data" / "bench-index" / name, corpus, embedder)
        if stored is None:
            from index.build import build_index

            log(f"  indexing the {name} corpus with this model (once; cached in {folder})")
            build_index(corpus, folder, embedder)
            stored = load_index(folder)
        parts.append(stored)
    reference = reference_questions()
    offset, spans = 0, []
    for stored in parts:
        spans.append(stored.sentence_spans + np.array([offset, 0, 0]))
        offset += len(stored.passages)
    return Real(
        passages=[p for s in parts for p in s.passages],
        documents=[d for s in parts for d in s.documents.values()],
        vectors=np.vstack([s.vectors.reconstruct_n(0, s.vectors.ntotal) for s in parts]),
        spans=np.vstack(spans),
        sentence_vectors=np.vstack([np.asarray(s.sentence_vectors) for s in parts]),
        model=parts[0].manifest.model,
        reference=dict(zip(reference, embedder.embed_queries(reference))),
    )


def _loadable(folder: Path, corpus: Path, embedder):
    """The index in ``folder`` if it holds ``corpus`` embedded by this model, else None."""
    from index.build import corpus_fingerprint
    from index.store.generations import load_index

    with contextlib.suppress(Exception):
        stored = load_index(folder)
        probe = np.asarray(stored.manifest.model.probe, dtype=np.float32)
        same_model = float(probe @ embedder.probe) >= 0.99
        same_corpus = stored.manifest.corpus.fingerprint == corpus_fingerprint(corpus)
        if same_model and same_corpus and len(stored.sentence_vectors):
            return stored
    return None


def dev_questions() -> list[dict]:
    return [json.loads(line) for path in DEV for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -- the synthetic index -----------------------------------------------------------------


def ensure_index(real: Real, n: int, beta: dict[str, float], folder: Path) -> dict:
    """A synthetic index of ``n`` passages in ``folder`` (reused when its parameters match)."""
    params = {"passages": n, "beta": beta, "real_passages": len(real.passages),
              "model": real.model.fingerprint, "version": DATA_VERSION}
    stamp = folder / "bench-params.json"
    with contextlib.suppress(Exception):
        saved = json.loads(stamp.read_text())
        if saved["params"] == params:
            log(f"  reusing the index in {folder}")
            return saved["build"]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    build = write_synthetic(real, n, beta, folder)
    build["seconds"] = round(time.perf_counter() - started, 1)
    stamp.write_text(json.dumps({"params": params, "build": build}, indent=1))
    return build


def write_synthetic(real: Real, n: int, beta: dict[str, float], folder: Path) -> dict:
    """Generate ``n`` passages (the real ones first) and write them with write_index,
    calibrated as a build calibrates (index.calibration), with the recorded reference
    question embeddings."""
    from corpus.records import Document, Passage
    from index.store import lexical
    from index.store import generations as store
    from index.calibration import null_statistics
    from index.store.generations import index_size_bytes, write_index

    import synthetic  # bench/, the script's folder, is on sys.path

    rng = np.random.default_rng(n)
    m, dim = real.vectors.shape
    count = n - m
    languages = rng.choice(np.array([p.language for p in real.passages]), count)
    texts, tokens, spans, owners = _synthetic_texts(real, languages, rng, m)
    log(f"  {n:,} passages: {count:,} synthetic texts, {len(owners):,} synthetic sentences")
    passages = real.passages + [
        Passage(f"synthetic-{i // 10}", i % 10 + 1, text, lang)
        for i, (text, lang) in enumerate(zip(texts, languages.tolist()))
    ]
    documents = real.documents + [
        Document(f"synthetic-{j}", f"Synthetic article {j}") for j in range((count + 9) // 10)
    ]
    vectors = np.empty((n, dim), dtype=np.float32)
    vectors[:m] = real.vectors
    for code, lang in enumerate(sorted(beta)):
        rows = m + np.flatnonzero(languages == lang)
        vectors[rows] = synthetic.synthesize(real.vectors[real.languages == lang], len(rows), beta[lang], seed=n + code)
    scratch = folder.parent / f"scratch-sentences-{n}.npy"
    sentence_vectors = _synthetic_sentences(real, vectors, languages, owners, scratch, rng)
    all_spans = np.vstack([real.spans, spans])
    cosines = {
        "real (median)": _sentence_cosine(real.vectors, real.spans, real.sentence_vectors, rng),
        "synthetic (median)": _sentence_cosine(vectors, all_spans, sentence_vectors, rng, start=m),
    }
    by_text = dict(zip(texts, tokens))
    original_tokenize, original_sentences = lexical.tokenize, store.passage_sentences
    lexical.tokenize = lambda text: by_text.get(text) or original_tokenize(text)
    store.passage_sentences = lambda _passages: all_spans
    try:
        model = RecordedModel(real.model.id, real.model.fingerprint,
                              np.asarray(real.model.probe, dtype=np.float32), real.reference)
        written = write_index(folder, vectors, passages, documents, model=real.model,
                              sentence_vectors=sentence_vectors,
                              calibrate=lambda stored: null_statistics(model, stored).to_dict())
    finally:
        lexical.tokenize, store.passage_sentences = original_tokenize, original_sentences
        del sentence_vectors
        scratch.unlink(missing_ok=True)
    return {
        "sentences": len(all_spans),
        "index_bytes": index_size_bytes(written),
        "vector_index": json.loads((written / "manifest.json").read_text())["vector_index"],
        "sentence_passage_cosine": cosines,
    }


def _synthetic_texts(real: Real, languages: np.ndarray, rng, first_row: int):
    """Texts of real sentences joined by a space, their spans, BM25 tokens and owners."""
    from index.store.lexical import tokenize

    pieces = {}
    for lang in sorted(set(languages.tolist())):
        rows = [i for i, (pid, _, _) in enumerate(real.spans.tolist()) if real.passages[pid].language == lang]
        texts = [real.passages[pid].text[a:b] for pid, a, b in real.spans[rows].tolist()]
        counts = real.counts[[i for i, p in enumerate(real.passages) if p.language == lang]]
        pieces[lang] = (texts, [tokenize(t) for t in texts], np.maximum(counts, MIN_SENTENCES))
    out_texts, out_tokens, spans, owners = [], [], [], []
    for i, lang in enumerate(languages.tolist()):
        texts, tokens, counts = pieces[lang]
        chosen = rng.integers(0, len(texts), int(counts[rng.integers(len(counts))]))
        start = 0
        for j in chosen:
            spans.append((first_row + i, start, start + len(texts[j])))
            start += len(texts[j]) + 1
        out_texts.append(" ".join(texts[j] for j in chosen))
        out_tokens.append(list(itertools.chain.from_iterable(tokens[j] for j in chosen)))
        owners.append(np.full(len(chosen), i))
    return out_texts, out_tokens, np.asarray(spans, dtype=np.int64), np.concatenate(owners)


def _synthetic_sentences(
    real: Real, vectors: np.ndarray, languages: np.ndarray, owners: np.ndarray, path: Path, rng
) -> np.ndarray:
    """Real sentence vectors, then for each synthetic sentence: normalise(its passage's
    vector + noise with the covariance of the real offsets of its language), written to a
    memory-mapped file."""
    m, dim = real.vectors.shape
    offsets = real.sentence_vectors - real.vectors[real.spans[:, 0]]
    offset_language = real.languages[real.spans[:, 0]]
    shape = (len(real.spans) + len(owners), dim)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    out[: len(real.spans)] = real.sentence_vectors
    for lang in sorted(set(languages.tolist())):
        mine = offsets[offset_language == lang]
        root = _covariance_root(mine)
        rows = np.flatnonzero(languages[owners] == lang)
        for start in range(0, len(rows), 262_144):
            part = rows[start : start + 262_144]
            noise = rng.standard_normal((len(part), dim), dtype=np.float32) @ root
            x = vectors[m + owners[part]] + mine.mean(axis=0) + noise
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            out[len(real.spans) + part] = x
    out.flush()
    return out


def _covariance_root(x: np.ndarray) -> np.ndarray:
    """R with Rᵀ·R = cov(x): standard normal rows times R have x's covariance."""
    values, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
    return (vectors * np.sqrt(np.clip(values, 0, None))).T.astype(np.float32)


def _sentence_cosine(vectors, spans, sentence_vectors, rng, start: int = 0) -> float:
    rows = np.flatnonzero(spans[:, 0] >= start)
    rows = np.sort(rng.choice(rows, min(20_000, len(rows)), replace=False))
    own = vectors[spans[rows, 0]]
    return round(float(np.median(np.einsum("ij,ij->i", own, np.asarray(sentence_vectors[rows])))), 4)


# -- measuring (one fresh process per mode) ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RecordedModel:
    """Stands in for the model in a measuring process: the questions come embedded, and the
    engine only checks that the index was built by the same model. ``recorded`` holds the
    embeddings of the texts it can still embed (the reference questions, for calibration)."""

    model_id: str
    fingerprint: str
    probe: np.ndarray
    recorded: dict = dataclasses.field(default_factory=dict)

    def embed_queries(self, texts) -> np.ndarray:
        return np.stack([self.recorded[text] for text in texts])


def memory_mb() -> dict[str, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return fields


def worker(args) -> int:
    """Load the index, build an engine in one mode, answer the questions, dump the figures."""
    from index.retrieval.engine import Engine
    from index.store.generations import load_index

    spec = json.loads(Path(args.worker).read_text())
    vectors = np.load(spec["vectors"])[:: spec["every"]]
    questions = json.loads(Path(spec["questions"]).read_text())[:: spec["every"]]
    before = memory_mb()
    started = time.perf_counter()
    stored = load_index(Path(spec["index"]))
    loaded = time.perf_counter()
    index_loaded = memory_mb()
    model = stored.manifest.model
    stand_in = RecordedModel(model.id, model.fingerprint, np.asarray(model.probe, dtype=np.float32))
    engine = Engine(stand_in, stored, candidates=spec["candidates"])
    built = time.perf_counter()
    gc.collect()
    after = memory_mb()
    for text, vector in zip(questions[:5], vectors):  # warm up
        engine.search(text, 10, vector=vector)
    latencies, tops, answered, texts = [], [], [], []
    for repeat in range(spec["passes"]):
        for text, vector in zip(questions, vectors):
            t = time.perf_counter()
            hits = engine.search(text, 10, vector=vector)
            latencies.append((time.perf_counter() - t) * 1000)
            if repeat == 0:
                tops.append([hit.row for hit in hits])
                answered.append(engine.is_good_match(hits))
                texts.append(hits[0].passage.text if hits else "")
    result = {
        "mode": spec["mode"],
        "candidates_per_pool": spec["candidates"],
        "candidate_mode": engine.candidate_mode,
        "questions": len(questions),
        "passes": spec["passes"],
        "load_s": round(loaded - started, 1),
        "engine_s": round(built - loaded, 1),
        "memory_mb": {
            "before_load": before,
            "index_loaded": index_loaded,
            "engine_built": after,
            "after_questions": memory_mb(),
        },
        "latency_ms": _percentiles(latencies),
        "top10": tops,
        "answered": answered,
        "top1_texts": texts,
        "load_average": os.getloadavg()[0],
    }
    if engine.candidate_mode:  # how many passages a question scores
        scored = [np.isfinite(engine.explain(t, v).scores).sum() for t, v in zip(questions[:20], vectors)]
        result["passages_scored_median"] = float(np.median(scored))
    else:  # the index's null was fitted in candidate mode, as a build fits it: also its own
        from index.calibration import null_statistics

        own = null_statistics(stand_in, stored, np.load(spec["reference"]), candidates=0)
        fair = Engine(stand_in, stored, candidates=0, null=own)
        result["answered_own_null"] = [fair.is_good_match(fair.search(t, 10, vector=v)) for t, v in zip(questions, vectors)]
    result["sweep"] = {}
    for k in spec["sweep"]:
        other = Engine(stand_in, stored, candidates=k)
        runs = [other.search(t, 10, vector=v) for t, v in zip(questions, vectors)]
        result["sweep"][k] = ([[h.row for h in hits] for hits in runs], [other.is_good_match(h) for h in runs])
    Path(spec["out"]).write_text(json.dumps(result))
    return 0


def _percentiles(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(values, 50)), 2),
        "p95": round(float(np.percentile(values, 95)), 2),
        "mean": round(float(np.mean(values)), 2),
        "n": len(values),
    }


def run_worker(spec: dict) -> dict:
    spec_path = WORK / f"worker-{spec['mode']}.json"
    spec_path.write_text(json.dumps(spec))
    log(f"  {spec['mode']}: measuring in a fresh process")
    started = time.perf_counter()
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_path)], check=True)
    result = json.loads(Path(spec["out"]).read_text())
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


# -- comparing ---------------------------------------------------------------------------


def agreement(candidate_tops, candidate_answered, full_tops, full_answered) -> dict:
    """How often candidate mode gives full scoring's top 1, how much of its top 10, and
    the same answered/declined decision (on the questions both modes ran)."""
    n = min(len(candidate_tops), len(full_tops))
    pairs = list(zip(candidate_tops[:n], full_tops[:n]))
    return {
        "questions": n,
        "top1": round(float(np.mean([bool(c) and bool(f) and c[0] == f[0] for c, f in pairs])), 3),
        "top10_overlap": round(float(np.mean([len(set(c) & set(f)) / max(1, len(f)) for c, f in pairs])), 3),
        "answered_same": round(float(np.mean([a == b for a, b in zip(candidate_answered[:n], full_answered[:n])])), 3),
    }


def declined_by_kind(questions: list[dict], answered: list[bool]) -> dict[str, float]:
    """Share declined of the answerable dev questions and of the off-topic ones by kind."""
    groups: dict[str, list[bool]] = {}
    for question, was_answered in zip(questions, answered):
        kind = "answerable" if "answers" in question else f"off-topic {question['kind']}"
        groups.setdefault(kind, []).append(not was_answered)
    return {kind: round(float(np.mean(values)), 3) for kind, values in sorted(groups.items())}


def dev_hit_at_1(questions: list[dict], top_texts: list[str]) -> float:
    """Share of the answerable dev questions whose top hit holds an answer string (a
    synthetic passage can: its text is made of real sentences)."""
    from corpus.clean import comparable

    hits = [
        any(comparable(a) in comparable(text) for a in question["answers"])
        for question, text in zip(questions, top_texts)
        if "answers" in question
    ]
    return round(float(np.mean(hits)), 3)


# -- main --------------------------------------------------------------------------------


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout

    result, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    return result.strip() + ("+uncommitted changes" if dirty.strip() else "")


def measure_size(real: Real, n: int, beta: dict[str, float], files: dict, questions: list[dict], quick: bool) -> dict:
    from index.retrieval.candidates import CANDIDATES_PER_POOL

    folder = WORK / f"index-{n}"
    log(f"{n:,} passages")
    build = ensure_index(real, n, beta, folder)
    common = {"index": str(folder), **files}
    candidates = run_worker({
        **common, "mode": "candidates", "candidates": CANDIDATES_PER_POOL, "every": 1,
        "passes": 1 if quick else 2, "sweep": list(SWEEP), "out": str(WORK / "result-candidates.json"),
    })
    every = 1 if n <= LARGE else -(-len(questions) // FULL_MODE_QUESTIONS_LARGE)
    full = run_worker({
        **common, "mode": "full", "candidates": 0, "every": every, "passes": 1, "sweep": [],
        "out": str(WORK / "result-full.json"),
    })
    out = {"passages": n, "build": build, "full_mode_questions": f"every {every}: {full['questions']}"}
    out["agreement"] = {
        str(CANDIDATES_PER_POOL): agreement(
            candidates["top10"][::every], candidates["answered"][::every], full["top10"], full["answered"]
        )
    }
    for k, (tops, answered) in candidates["sweep"].items():
        out["agreement"][k] = agreement(tops[::every], answered[::every], full["top10"], full["answered"])
    # Against full scoring with a null fitted in full mode: each mode measured by its own null.
    own = full["answered_own_null"]
    out["answered_same_own_null"] = round(float(np.mean([a == b for a, b in zip(candidates["answered"][::every], own)])), 3)
    subset = questions[::every]
    out["declined"] = {
        mode: declined_by_kind(questions[:: result_every], answered)
        for mode, answered, result_every in (
            ("candidates", candidates["answered"], 1), ("full", full["answered"], every),
            ("full, its own null", own, every),
        )
    }
    out["dev_hit@1"] = {
        "candidates, all questions": dev_hit_at_1(questions, candidates["top1_texts"]),
        "candidates, full mode's questions": dev_hit_at_1(subset, candidates["top1_texts"][::every]),
        "full": dev_hit_at_1(subset, full["top1_texts"]),
    }
    for result in (candidates, full):
        for key in ("top10", "answered", "answered_own_null", "top1_texts", "sweep"):
            result.pop(key, None)
    out["candidates"], out["full"] = candidates, full
    log(json.dumps({k: out[k] for k in ("agreement", "answered_same_own_null", "dev_hit@1", "declined")}))
    log(f"  latency candidates {candidates['latency_ms']}, full {full['latency_ms']}")
    return out


#: The docstring without its title and usage lines.
METHOD = __doc__.split("\n\n", 2)[2].strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}, one timing pass")
    parser.add_argument("--sizes", help="comma-separated passage counts (default: 100000,1000000)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)

    from index.embedding.embedder import Embedder
    from index.retrieval.candidates import CANDIDATE_MODE_ABOVE, CANDIDATES_PER_POOL, SENTENCE_SAMPLE
    from qabot.settings import Settings

    try:
        import synthetic
    except ImportError:
        import synthetic  # bench/, the script's folder, is on sys.path

    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(QUICK_SIZES if args.quick else FULL_SIZES)
    started = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env()
    embedder = Embedder.load(settings.model_source)
    real = real_material(embedder, settings)
    questions = dev_questions()
    files = {"questions": str(WORK / "questions.json"), "vectors": str(WORK / "question-vectors.npy"),
             "reference": str(WORK / "reference-vectors.npy")}
    Path(files["questions"]).write_text(json.dumps([q["question"] for q in questions], ensure_ascii=False))
    np.save(files["vectors"], embedder.embed_queries([q["question"] for q in questions]))
    np.save(files["reference"], np.stack(list(real.reference.values())))  # in reference_questions() order
    beta = {lang: synthetic.choose_beta(real.vectors[real.languages == lang])[0] for lang in sorted(set(real.languages.tolist()))}
    log(f"real: {len(real.passages)} passages, {len(real.spans)} sentences; beta = {beta}")
    del embedder
    gc.collect()
    results = [measure_size(real, n, beta, files, questions, args.quick) for n in sizes]
    report = {
        "date": dt.date.today().isoformat(),
        "commit": git_commit(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "quick": args.quick,
        "settings": {
            "candidate_mode_above": CANDIDATE_MODE_ABOVE,
            "candidates_per_pool": CANDIDATES_PER_POOL,
            "sentence_sample": SENTENCE_SAMPLE,
            "questions": len(questions),
            "real_passages": len(real.passages),
            "real_sentences": len(real.spans),
            "beta": beta,
        },
        "method": METHOD,
        "sizes": results,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    log(f"wrote {args.out} in {report['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
