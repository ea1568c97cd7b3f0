#!/usr/bin/env python3
"""Fit the hybrid's pool model and check its decisions on the tuning corpora.

    python bench/calibrate.py [--write]

Tuning data only, never XQuAD: the bundled corpus with the dev questions
(``tests/data/dev_questions.jsonl``) and off-topic ones (``dev_offtopic.jsonl``,
``offtopic_more.jsonl``); the small corpus in ``tests/data/small_corpus`` with its
questions; CMRC trial (``../shared/bench/cmrc-trial``) with its 1002 Chinese questions and
52 of them translated into English by hand (``tests/data/cmrc_questions_en.jsonl``). Each
corpus's questions are also asked of the others, which must decline them.

It

1. builds (or reuses) an index of each corpus (so each has its own null statistics);
2. fits the pool model (is the answer in the other language's pool?) on the answerable
   questions of the two-language corpora: an L2-regularised logistic regression (C = 1)
   on ``evidence_gap`` and ``coverage_same`` (see index/fusion.py), with leave-one-out
   accuracy; ``--write`` puts it into ``index/data/decision.json``;
3. prints, for a range of evidence thresholds, the share of answerable questions answered
   and of the other groups declined on every corpus, and hit@1 per group.

The evidence weights (``coverage_weight``, ``cross_offset``) and the threshold in
decision.json were chosen from these tables: the threshold that keeps ≥ 95 % of the
answerable questions answered on every corpus while declining the most off-topic ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from index import fusion  # noqa: E402
from qabot.eval_run import engine_over  # noqa: E402
from qabot.evaluation import normalise  # noqa: E402
from qabot.settings import Settings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
CMRC = REPO.parent / "shared" / "bench" / "cmrc-trial"
#: corpus name: (folder, its answerable question files)
CORPORA = {
    "bundled": (REPO / "corpus" / "articles", [DATA / "dev_questions.jsonl"]),
    "small": (DATA / "small_corpus", [DATA / "small_questions.jsonl"]),
    "cmrc": (CMRC / "corpus", [CMRC / "questions.jsonl", DATA / "cmrc_questions_en.jsonl"]),
}
OFF_TOPIC = [DATA / "dev_offtopic.jsonl", DATA / "offtopic_more.jsonl"]
THRESHOLDS = (1.75, 2.0, 2.25, 2.5, 2.75)


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = 1.0, steps: int = 50):
    """Newton's method for L2-regularised logistic regression on standardised ``x``."""
    mean, scale = x.mean(0), x.std(0) + 1e-12
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    w = np.zeros(z.shape[1])
    penalty = np.eye(z.shape[1]) / c
    penalty[0, 0] = 0.0  # the bias is not penalised
    for _ in range(steps):
        p = 1 / (1 + np.exp(-z @ w))
        step = np.linalg.solve(z.T @ (z * (p * (1 - p))[:, None]) + penalty, z.T @ (p - y) + penalty @ w)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return mean, scale, w


@dataclasses.dataclass
class Row:
    """One question on one corpus: its group, the fusion's outcome and whether top-1 is right."""

    corpus: str
    group: str
    question: dict
    fused: fusion.Fused
    hit: bool


def collect(index_root: Path) -> list[Row]:
    questions = {name: [q for path in files for q in read(path)] for name, (_, files) in CORPORA.items()}
    off_topic = [q for path in OFF_TOPIC for q in read(path)]
    rows = []
    for name, (folder, _) in CORPORA.items():
        settings = dataclasses.replace(
            Settings.from_env(), corpus_dir=folder, index_dir=index_root / name, retriever="hybrid"
        )
        engine = engine_over(settings)
        groups = [(f"answerable {q.get('kind', 'mono')}", q) for q in questions[name]]
        groups += [(f"off-topic {q['kind']}", q) for q in off_topic]
        groups += [(f"from {other}", q) for other in CORPORA if other != name for q in questions[other]]
        vectors = engine.embedder.embed_queries([q["question"] for _, q in groups])
        for (group, q), vector in zip(groups, vectors):
            fused = engine.explain(q["question"], vector)
            hits = engine.search(q["question"], 1, vector=vector)
            answers = [normalise(a) for a in q.get("answers", [])]
            hit = bool(hits) and any(a and a in normalise(hits[0].passage.text) for a in answers)
            rows.append(Row(name, group, q, fused, hit))
    return rows


def fit_pool_model(rows: list[Row]) -> fusion.Logistic:
    names = fusion.DECISION.pool_model.features
    data = [r for r in rows if r.group.startswith("answerable") and "evidence_gap" in r.fused.features]
    x = np.array([[r.fused.features[n] for n in names] for r in data])
    y = np.array([r.question.get("kind") == "cross" for r in data], dtype=float)
    model = _as_model(names, *fit_logistic(x, y))
    right = 0
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        held_out = _as_model(names, *fit_logistic(x[keep], y[keep]))
        right += (held_out.probability(dict(zip(names, x[i]))) > 0.5) == y[i]
    print(f"Pool model on {len(y)} questions ({int(y.sum())} cross): leave-one-out accuracy {right / len(y):.3f}")
    return model


def report(rows: list[Row]) -> None:
    print("\nShare answered at each evidence threshold (answerable rows: want high; others: want low),"
          " and hit@1 at the default:")
    print(f"{'corpus':8s} {'group':22s} {'n':>5s} " + " ".join(f"{t:>6.2f}" for t in THRESHOLDS) + "  hit@1")
    keys = sorted({(r.corpus, r.group) for r in rows})
    for corpus, group in keys:
        mine = [r for r in rows if r.corpus == corpus and r.group == group]
        best = np.array([max(r.fused.features["evidence"].values()) for r in mine])
        cells = " ".join(f"{np.mean(best >= t):6.3f}" for t in THRESHOLDS)
        hit = f"{np.mean([r.hit for r in mine]):.3f}" if group.startswith("answerable") else ""
        print(f"{corpus:8s} {group:22s} {len(mine):5d} {cells}  {hit}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-root", type=Path, default=REPO / "data" / "calibrate")
    parser.add_argument("--write", action="store_true", help="write the pool model into index/data/decision.json")
    args = parser.parse_args(argv)
    rows = collect(args.index_root)
    model = fit_pool_model(rows)
    print(f"pool model: {model}")
    if args.write:
        data = json.loads(fusion.DECISION_FILE.read_text(encoding="utf-8"))
        data["pool_model"] = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(model).items()}
        fusion.DECISION_FILE.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        print(f"written to {fusion.DECISION_FILE.relative_to(REPO)}; rerun to see its figures")
    report(rows)
    return 0


def _as_model(names, mean, scale, w) -> fusion.Logistic:
    return fusion.Logistic(
        features=tuple(names),
        mean=tuple(round(float(v), 5) for v in mean),
        scale=tuple(round(float(v), 5) for v in scale),
        weight=tuple(round(float(v), 4) for v in w[1:]),
        bias=round(float(w[0]), 4),
    )


if __name__ == "__main__":
    raise SystemExit(main())
