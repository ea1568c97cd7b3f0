"""Per-index calibration: what questions unrelated to the articles get on *this* index.

Run by the build on every new generation, before it is swapped in; the result is stored
in the manifest (``calibration``) under the same atomic swap as everything else. The
shipped bank of reference questions (``index/data/reference_questions.jsonl``: 119 English
and 116 Chinese everyday questions — greetings, cooking, pets, health, sport, software,
travel, trivia — 64 of them of one or two words) is embedded and run through the engine;
for each (question language, passage language, short or not; see
:data:`index.retrieval.fusion.SHORT_WORDS`) the mean and spread of each pool's evidence features
become the null that :func:`index.retrieval.fusion.pool_evidence` measures real questions against.

Why not fixed thresholds: the best cosine an unrelated question reaches grows with the
number of passages and depends on the corpus's languages and subjects (measured with the
reference bank: best passage cosine of English questions 0.779 ± 0.019 on the bundled
English passages, 0.734 ± 0.023 on its Chinese ones, 0.768 ± 0.018 on CMRC's 256 Chinese
articles; Chinese questions 0.825 ± 0.015 on the bundled Chinese passages, 0.860 ± 0.012
on CMRC). Measured against the index's own null, the same evidence threshold declines
other corpora's questions and everyday questions on every corpus tried (see
docs/benchmarks.md). A few bank questions on a corpus's own subject (a cookery corpus)
raise its null a little; at 235 questions, a handful moves a mean by a few hundredths of
a spread.

Costs one search per reference question per build, and one embedding each the first time
(the build's embedding cache keeps them: a one-article rebuild stays about a second).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from corpus.language import detect_language
from index.embedding.embedder import Embedder
from index.retrieval.fusion import UNCALIBRATED, NullStatistics, is_short
from index.retrieval.engine import Engine
from index.store.generations import StoredIndex

REFERENCE_QUESTIONS = Path(__file__).resolve().parent / "data" / "reference_questions.jsonl"


def reference_questions(path: Path = REFERENCE_QUESTIONS) -> list[str]:
    """The shipped bank of questions unrelated to any news corpus."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def null_statistics(
    embedder: Embedder,
    stored: StoredIndex,
    vectors: np.ndarray | None = None,
    *,
    candidates: int | None = None,
) -> NullStatistics:
    """The evidence features the reference questions get on ``stored``, per language pair.

    ``vectors``: the reference questions' embeddings when already known (the build takes
    them from its embedding cache), else they are embedded here. ``candidates``: the
    hybrid's mode, as :class:`index.retrieval.engine.Engine` takes it (None: by index size,
    as the engine that answers will choose)."""
    engine = Engine(embedder, stored, retriever="hybrid", null=UNCALIBRATED, candidates=candidates)
    questions = reference_questions()
    if vectors is None:
        vectors = embedder.embed_queries(questions)
    samples: dict[tuple[str, str, bool], list[dict[str, float]]] = {}
    for question, vector in zip(questions, vectors):
        language = detect_language(question)
        explained = engine.explain(question, vector).features
        short = is_short(explained["words"])
        for pool, features in explained["pools"].items():
            samples.setdefault((language, pool, short), []).append(features)
    return NullStatistics.from_samples(samples, len(questions))
