#!/usr/bin/env python3
"""Fit the hybrid's decision constants and check them on the tuning corpora.

    python bench/calibrate.py [--write]

Tuning data only, never XQuAD:

* the bundled corpus with the dev questions (``tests/data/dev_questions.jsonl``), and the
  same articles split by language (only the Chinese ones, only the English ones), asked
  the dev questions answered there: the cross-lingual setting of a one-language corpus;
* the small corpus in ``tests/data/small_corpus`` with its questions, and its parallel
  version (each article also in the other language, ``tests/data/small_parallel``);
* CMRC trial (``../shared/bench/cmrc-trial``) with its 1002 Chinese questions and 52 of
  them translated into English by hand (``tests/data/cmrc_questions_en.jsonl``);
* on every corpus, the off-topic questions (``dev_offtopic.jsonl``, ``offtopic_more.jsonl``)
  and the other corpora's questions, which must be declined.

It runs every question through each corpus's engine once (each index calibrated against
its own null), then re-evaluates the decisions from the recorded pool features for any
constants, so that the tables below cost nothing to recompute. It

1. fits the pool model (is the answer in the other language's pool?) on the answerable
   questions of the two-language corpora: an L2-regularised logistic regression (C = 1)
   on ``evidence_gap`` and ``coverage_same`` (index/retrieval/fusion.py), with leave-one-out
   accuracy; questions whose answer is in both languages (the parallel corpus) count as
   the question's own language, the pool a reader should get;
2. prints, for a grid of thresholds and cross-language offsets, the share answered of each
   group (answerable: want high; the rest: want low) and hit@1;
3. ``--write`` stores the pool model in ``index/data/decision.json``.

The other constants in decision.json (``coverage_weight``, ``cross_offset``,
``lone_cross_offset``, ``threshold``) were chosen from these tables: answer ≥ 95 % of the
answerable questions on every corpus while declining the most of the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from corpus.clean import comparable  # noqa: E402
from corpus.language import detect_language  # noqa: E402
from index.retrieval import fusion  # noqa: E402
from qabot.eval_run import engine_over  # noqa: E402
from qabot.settings import Settings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
ARTICLES = REPO / "corpus" / "articles"
CMRC = REPO.parent / "shared" / "bench" / "cmrc-trial"
ZH_ARTICLES = ("qingshan-industry-breakthrough", "wuhan-965-clusters-hanyang-wuchang-qingshan")


@dataclasses.dataclass(frozen=True)
class Corpus:
    folder: Path
    questions: list[Path]
    #: Corpora holding the same articles: their questions are not "another corpus's".
    family: str
    #: Keep only the questions answered in these articles (None: all).
    articles: tuple[str, ...] | None = None


def corpora(root: Path) -> dict[str, Corpus]:
    dev = [DATA / "dev_questions.jsonl"]
    en = tuple(p.stem for p in ARTICLES.glob("*.md") if p.stem not in ZH_ARTICLES)
    return {
        "bundled": Corpus(ARTICLES, dev, "bundled"),
        "bundled-zh": Corpus(_subset(ARTICLES, ZH_ARTICLES, root / "bundled-zh"), dev, "bundled", ZH_ARTICLES),
        "bundled-en": Corpus(_subset(ARTICLES, en, root / "bundled-en"), dev, "bundled", en),
        "small": Corpus(DATA / "small_corpus", [DATA / "small_questions.jsonl"], "small"),
        "small-parallel": Corpus(DATA / "small_parallel", [DATA / "small_parallel_questions.jsonl"], "small"),
        "cmrc": Corpus(CMRC / "corpus", [CMRC / "questions.jsonl", DATA / "cmrc_questions_en.jsonl"], "cmrc"),
    }


OFF_TOPIC = [DATA / "dev_offtopic.jsonl", DATA / "offtopic_more.jsonl"]
THRESHOLDS = (1.75, 2.0, 2.25, 2.5, 2.75)


@dataclasses.dataclass
class Row:
    """One question on one corpus: its group, each pool's evidence features and whether
    that pool's best passage holds an answer."""

    corpus: str
    group: str
    question: dict
    language: str
    pools: dict[str, dict[str, float]]
    pool_hit: dict[str, bool]
    null: fusion.NullStatistics
    #: The question's distinct words (short questions have a null of their own).
    words: int

    def decide(self, decision: fusion.Decision) -> tuple[bool, bool]:
        """(answered, top-1 holds an answer) under ``decision``."""
        short = fusion.is_short(self.words)
        evidence = {
            lang: fusion.pool_evidence(
                f, self.language, lang, self.null, decision, self.language in self.pools, short
            )
            for lang, f in self.pools.items()
        }
        answered = self.words > 0 and max(evidence.values()) >= decision.threshold
        others = [lang for lang in evidence if lang != self.language]
        chosen = self.language if not others else max(others, key=evidence.get)
        if others and self.language in evidence:
            gap = evidence[self.language] - evidence[chosen]
            coverage = self.null.z(self.language, self.language, "coverage_top",
                                   self.pools[self.language]["coverage_top"], short)
            p_other = decision.pool_model.probability({"evidence_gap": gap, "coverage_same": coverage})
            chosen = chosen if p_other > 0.5 else self.language
        return answered, self.pool_hit[chosen]


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


def collect(root: Path) -> list[Row]:
    table = corpora(root / "corpora")
    own = {
        name: [q for path in c.questions for q in read(path) if c.articles is None or q["paragraph"] in c.articles]
        for name, c in table.items()
    }
    off_topic = [q for path in OFF_TOPIC for q in read(path)]
    rows = []
    for name, corpus in table.items():
        settings = dataclasses.replace(
            Settings.from_env(), corpus_dir=corpus.folder, index_dir=root / name, retriever="hybrid"
        )
        engine = engine_over(settings)
        groups = [(f"answerable {q.get('kind', 'mono')}", q) for q in own[name]]
        groups += [(f"off-topic {q['kind']}", q) for q in off_topic]
        groups += [
            (f"from {other}", q)
            for other, c in table.items() if c.family != corpus.family and other == c.family
            for q in own[other]
        ]
        vectors = engine.embedder.embed_queries([q["question"] for _, q in groups])
        languages = np.array([p.language for p in engine.stored.passages])
        for (group, q), vector in zip(groups, vectors):
            fused = engine.explain(q["question"], vector)
            answers = [comparable(a) for a in q.get("answers", [])]
            pool_hit = {}
            for lang in fused.features["pools"]:
                scores = np.where(languages == lang, fused.scores, -np.inf)
                text = comparable(engine.stored.passages[int(np.argmax(scores))].text)
                pool_hit[lang] = any(a and a in text for a in answers)
            rows.append(Row(name, group, q, detect_language(q["question"]), fused.features["pools"],
                            pool_hit, engine.null, fused.features["words"]))
    return rows


def fit_pool_model(rows: list[Row], decision: fusion.Decision) -> fusion.Logistic:
    names = decision.pool_model.features
    data, x = [], []
    for r in rows:
        if not r.group.startswith("answerable") or len(r.pools) < 2:
            continue
        short = fusion.is_short(r.words)
        evidence = {
            lang: fusion.pool_evidence(f, r.language, lang, r.null, decision, True, short)
            for lang, f in r.pools.items()
        }
        other = max((lang for lang in evidence if lang != r.language), key=evidence.get)
        x.append([evidence[r.language] - evidence[other],
                  r.null.z(r.language, r.language, "coverage_top", r.pools[r.language]["coverage_top"], short)])
        data.append(r)
    x = np.array(x)
    y = np.array([r.question.get("kind") == "cross" for r in data], dtype=float)
    model = _as_model(names, *fit_logistic(x, y))
    right = 0
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        held_out = _as_model(names, *fit_logistic(x[keep], y[keep]))
        right += (held_out.probability(dict(zip(names, x[i]))) > 0.5) == y[i]
    print(f"Pool model on {len(y)} questions ({int(y.sum())} cross): leave-one-out accuracy {right / len(y):.3f}")
    return model


def report(rows: list[Row], decision: fusion.Decision) -> None:
    keys = sorted({(r.corpus, r.group) for r in rows})
    for offset in sorted({decision.lone_cross_offset, 0.5, 1.0, 1.5}):
        print(f"\nlone_cross_offset = {offset}: share answered by threshold; hit@1 at {decision.threshold}")
        print(f"{'corpus':15s} {'group':22s} {'n':>5s} " + " ".join(f"{t:>6.2f}" for t in THRESHOLDS) + "  hit@1")
        for corpus, group in keys:
            mine = [r for r in rows if r.corpus == corpus and r.group == group]
            cells = []
            for t in THRESHOLDS:
                d = dataclasses.replace(decision, threshold=t, lone_cross_offset=offset)
                cells.append(f"{np.mean([r.decide(d)[0] for r in mine]):6.3f}")
            d = dataclasses.replace(decision, lone_cross_offset=offset)
            hit = f"{np.mean([r.decide(d)[1] for r in mine]):.3f}" if group.startswith("answerable") else ""
            print(f"{corpus:15s} {group:22s} {len(mine):5d} {' '.join(cells)}  {hit}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-root", type=Path, default=REPO / "data" / "calibrate")
    parser.add_argument("--write", action="store_true", help="store the pool model in index/data/decision.json")
    args = parser.parse_args(argv)
    rows = collect(args.index_root)
    decision = fusion.DECISION
    model = fit_pool_model(rows, decision)
    print(f"pool model: {model}")
    decision = dataclasses.replace(decision, pool_model=model)
    if args.write:
        data = json.loads(fusion.DECISION_FILE.read_text(encoding="utf-8"))
        data["pool_model"] = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(model).items()}
        fusion.DECISION_FILE.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"written to {fusion.DECISION_FILE.relative_to(REPO)}")
    report(rows, decision)
    return 0


def _subset(folder: Path, stems: tuple[str, ...], target: Path) -> Path:
    """A corpus folder of links to some of ``folder``'s articles."""
    target.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        link = target / f"{stem}.md"
        if not link.exists():
            link.symlink_to((folder / f"{stem}.md").resolve())
    return target


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
