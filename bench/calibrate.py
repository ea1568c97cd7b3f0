#!/usr/bin/env python3
"""Fit the hybrid retriever's two calibrated models on the dev set, and score the dev set.

    python bench/calibrate.py [--index DIR] [--write]

Only tests/data/dev_questions.jsonl and dev_offtopic.jsonl are used (never XQuAD). It

1. runs every dev question through the hybrid's features (index.fusion);
2. fits the pool model (is the answer in the other language's pool?) on the answerable
   questions and the answerability model on all of them: L2-regularised logistic
   regressions (C = 1) on standardised features, with leave-one-out estimates of how well
   they generalise;
3. prints the fitted constants in the form of index/fusion.py (``--write`` puts them there);
4. prints hit@1/3/10 per kind for the dense, lexical and hybrid retrievers, and the
   answered / declined rates for a range of thresholds on the hybrid's top-hit score.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from index import fusion
from qabot.evaluation import normalise

DEV = REPO / "tests" / "data" / "dev_questions.jsonl"
OFF = REPO / "tests" / "data" / "dev_offtopic.jsonl"
KINDS = ("mono-en", "mono-zh", "cross-en", "cross-zh")


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
        gradient = z.T @ (p - y) + penalty @ w
        hessian = z.T @ (z * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return mean, scale, w


def as_model(names, mean, scale, w) -> fusion.Logistic:
    return fusion.Logistic(
        features=tuple(names),
        mean=tuple(round(float(v), 5) for v in mean),
        scale=tuple(round(float(v), 5) for v in scale),
        weight=tuple(round(float(v), 4) for v in w[1:]),
        bias=round(float(w[0]), 4),
    )


def leave_one_out(x: np.ndarray, y: np.ndarray, names) -> np.ndarray:
    out = np.zeros(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        model = as_model(names, *fit_logistic(x[keep], y[keep]))
        out[i] = model.probability(dict(zip(names, x[i])))
    return out


def features_matrix(rows: list[dict], names) -> np.ndarray:
    """Missing features (a pool without passages) are imputed with the column mean."""
    x = np.array([[np.nan if r[n] is None else r[n] for n in names] for r in rows], dtype=float)
    means = np.nanmean(x, 0)
    return np.where(np.isnan(x), means, x)


def rank_of_answer(hits, answers) -> int | None:
    wanted = [normalise(a) for a in answers]
    for rank, hit in enumerate(hits[:10], 1):
        body = normalise(hit.passage.text)
        if any(a and a in body for a in wanted):
            return rank
    return None


def kind_of(q: dict) -> str:
    return f"{q.get('kind', 'off')}-{q['lang']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, help="index of the bundled corpus (default: QABOT_INDEX_DIR)")
    parser.add_argument("--write", action="store_true", help="write the fitted constants into index/fusion.py")
    args = parser.parse_args(argv)

    from index.search import Engine
    from qabot.eval_run import _engine_over
    from qabot.settings import Settings

    settings = Settings.from_env()
    if args.index:
        settings = dataclasses.replace(settings, index_dir=args.index)
    engine = _engine_over(dataclasses.replace(settings, retriever="hybrid"))
    questions = read(DEV) + read(OFF)
    vectors = engine.embedder.embed_queries([q["question"] for q in questions])

    rows = [engine.explain(q["question"], v).features for q, v in zip(questions, vectors)]
    answerable = np.array(["answers" in q for q in questions])
    cross = np.array([q.get("kind") == "cross" for q in questions])

    pool_names = fusion.POOL_MODEL.features
    x_pool = features_matrix([r for r, a in zip(rows, answerable) if a], pool_names)
    y_pool = cross[answerable].astype(float)
    pool = as_model(pool_names, *fit_logistic(x_pool, y_pool))
    loo = leave_one_out(x_pool, y_pool, pool_names)
    kinds = np.array([kind_of(q) for q in questions])[answerable]
    print("Pool model, leave-one-out accuracy:")
    for kind in KINDS:
        want = kind.startswith("cross")
        print(f"  {kind}: {np.mean((loo[kinds == kind] > 0.5) == want):.2f}")

    # The answerability model sees the pool decision the fitted pool model makes.
    for r in rows:
        r["p_other"] = pool.probability(r) if r["dense_gap"] is not None else r["p_other"]
    answer_names = fusion.ANSWER_MODEL.features
    x_answer = features_matrix(rows, answer_names)
    y_answer = answerable.astype(float)
    answer = as_model(answer_names, *fit_logistic(x_answer, y_answer))
    loo = leave_one_out(x_answer, y_answer, answer_names)
    print("Answerability model, leave-one-out (P >= 0.5): "
          f"answered {np.mean(loo[answerable] >= 0.5):.2f} of in-domain, "
          f"declined {np.mean(loo[~answerable] < 0.5):.2f} of off-topic")

    text = (
        f"POOL_MODEL = {pool!r}\nANSWER_MODEL = {answer!r}\n"
    )
    print("\nFitted constants:\n" + text)
    if args.write:
        _write_constants(pool, answer)
        fusion.POOL_MODEL, fusion.ANSWER_MODEL = pool, answer
        print("written to index/fusion.py")

    print("Dev set, hit@1/hit@3/hit@10 per kind:")
    scored = {}
    for retriever in ("dense", "lexical", "hybrid"):
        eng = Engine(engine.embedder, engine.stored, None, retriever)
        ranks, tops = {}, []
        for q, v in zip(questions, vectors):
            hits = eng.search(q["question"], 10, vector=v)
            tops.append(hits[0].score if hits else 0.0)
            if "answers" in q:
                ranks.setdefault(kind_of(q), []).append(rank_of_answer(hits, q["answers"]))
        cells = []
        for kind in KINDS:
            r = np.array([x or 99 for x in ranks[kind]])
            cells.append(f"{kind} {np.mean(r <= 1):.3f}/{np.mean(r <= 3):.3f}/{np.mean(r <= 10):.3f}")
        print(f"  {retriever:8s} " + " | ".join(cells))
        scored[retriever] = (eng, np.array(tops))
    eng, tops = scored["hybrid"]
    print("\nHybrid abstention on the dev set (top-hit score >= threshold answers):")
    for threshold in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6):
        print(f"  {threshold:.2f}: in-domain answered {np.mean(tops[answerable] >= threshold):.3f} "
              f"(mono {np.mean(tops[answerable & ~cross] >= threshold):.3f}, "
              f"cross {np.mean(tops[cross] >= threshold):.3f}); "
              f"off-topic declined {np.mean(tops[~answerable] < threshold):.3f}")
    eng, tops = scored["dense"]
    print(f"Dense at its threshold {eng.min_score}: in-domain answered "
          f"{np.mean(tops[answerable] >= eng.min_score):.3f}, off-topic declined "
          f"{np.mean(tops[~answerable] < eng.min_score):.3f}")
    return 0


def _write_constants(pool: fusion.Logistic, answer: fusion.Logistic) -> None:
    path = REPO / "index" / "fusion.py"
    source = path.read_text(encoding="utf-8")
    for name, model in (("POOL_MODEL", pool), ("ANSWER_MODEL", answer)):
        block = (
            f"{name} = Logistic(\n"
            f"    features={model.features!r},\n"
            f"    mean={model.mean!r},\n"
            f"    scale={model.scale!r},\n"
            f"    weight={model.weight!r},\n"
            f"    bias={model.bias!r},\n"
            ")"
        )
        source, count = re.subn(rf"^{name} = Logistic\(\n(?:    .*\n)*?\)", block, source, flags=re.MULTILINE)
        if count != 1:
            raise SystemExit(f"could not find {name} in {path}")
    path.write_text(source, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
