"""``qabot eval``: run a question file through the engine and score it.

``--retriever dense|lexical|hybrid`` (default: QABOT_RETRIEVER, else hybrid) picks how
passages are ranked, so the benchmark can compare them on the same index.

Builds (or reuses, when the corpus is unchanged) an index over the given corpus, searches
every question with the passage-language filter that selects the benchmark setting, writes
per-question results in the XQuAD benchmark's format and prints the metrics.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
import hashlib
import json
from pathlib import Path

from index.build import build_index, corpus_fingerprint
from index.embedding.embedder import Embedder
from index.retrieval.engine import Engine
from qabot.engine import load_engine, vector_store
from qabot.errors import IndexNotReady, QabotError
from qabot.evaluation import (
    Outcome,
    Question,
    first_hit_rank,
    metrics,
    read_questions,
    results_line,
)
from qabot.progress import progress_bar
from qabot.settings import BUNDLED_CORPUS_DIR, Settings

OTHER_LANGUAGE = {"en": "zh", "zh": "en"}


@dataclass(frozen=True)
class EvalReport:
    """What ``qabot eval`` found: the metrics, and one JSONL line per question."""

    scores: dict
    results: list[str]


def run_eval(args: argparse.Namespace, settings: Settings) -> int:
    """``qabot eval``: the command line's side (which questions, which index, where the
    results go); :func:`evaluate` does the work."""
    questions = read_questions(args.questions)
    if args.questions_lang:
        questions = [q for q in questions if q.lang == args.questions_lang]
    if not questions:
        raise QabotError(f"No questions to evaluate in {args.questions}.")
    if not args.index:
        settings = dataclasses.replace(settings, index_dir=eval_index_dir(settings))
    report = evaluate(engine_over(settings), questions, top_k=args.top_k, passages=args.passages)
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text("\n".join(report.results) + "\n", encoding="utf-8")
    print(json.dumps(report.scores, ensure_ascii=False) if args.json else metrics_table(report.scores))
    return 0


def evaluate(
    engine: Engine, questions: list[Question], *, top_k: int = 10, passages: str = "all"
) -> EvalReport:
    """Search every question (``passages``: which passage languages it may retrieve from,
    see :func:`passage_language`) and score the results."""
    if engine.retriever.name == "lexical":
        vectors = [None] * len(questions)
    else:
        with progress_bar("Embedding questions", unit="question") as progress:
            vectors = _embed_in_chunks(engine.embedder, [q.question for q in questions], progress)
    outcomes, lines = [], []
    for question, vector in zip(questions, vectors):
        hits = engine.search(
            question.question, top_k, passage_language(passages, question), vector=vector
        )
        outcome = Outcome(
            question,
            texts=[h.passage.text for h in hits],
            docs=[h.passage.doc_id for h in hits],
            declined=not engine.is_good_match(hits),
        )
        outcomes.append(outcome)
        lines.append(results_line(outcome, [h.score for h in hits]))
    scores = metrics(outcomes)
    scores["paragraph_exact"] = metrics(outcomes, paragraph_exact=True)
    scores["paragraph_exact"].pop("off_topic", None)
    return EvalReport(scores, lines)


def passage_language(setting: str, question: Question) -> str | None:
    """The passage language a question may retrieve from, for the chosen setting."""
    if setting == "same":
        return question.lang or None
    if setting == "other":
        return OTHER_LANGUAGE.get(question.lang)
    return None if setting == "all" else setting


def eval_index_dir(settings: Settings) -> Path:
    """The main index for the bundled corpus; a separate, reused one for any other corpus."""
    if settings.corpus_dir.resolve() == BUNDLED_CORPUS_DIR.resolve():
        return settings.index_dir
    key = hashlib.sha256(str(settings.corpus_dir.resolve()).encode()).hexdigest()[:10]
    return settings.index_dir.parent / "eval-index" / f"{settings.corpus_dir.name}-{key}"


def metrics_table(scores: dict) -> str:
    header = "| questions | n | hit@1 | hit@3 | hit@5 | hit@10 | MRR@10 |\n|---|---:|---:|---:|---:|---:|---:|"
    rows = [_row(lang, row) for lang, row in scores["by_lang"].items()]
    rows.append(_row("all", scores))
    text = f"{header}\n" + "\n".join(rows)
    exact = scores["paragraph_exact"]
    text += f"\nparagraph-exact: hit@1 {exact['hit@1']:.3f}, MRR@10 {exact['mrr@10']:.3f}"
    if "off_topic" in scores:
        off = scores["off_topic"]
        text += f"\noff-topic: {off['declined']:.1%} of {off['n']} declined"
    if "answered" in scores:
        text += f"\nanswerable: {scores['answered']:.1%} answered (not declined)"
    return text


def _row(label: str, row: dict) -> str:
    values = " | ".join(f"{row[k]:.3f}" for k in ("hit@1", "hit@3", "hit@5", "hit@10", "mrr@10"))
    return f"| {label} | {row['n']} | {values} |"


def engine_over(settings: Settings) -> Engine:
    """An engine over an index of ``settings.corpus_dir``, building it if missing or stale."""
    embedder = None
    try:
        engine = load_engine(settings)
        same_store = engine.stored.manifest.vector_store == settings.vector_store
        if same_store and engine.corpus.fingerprint == corpus_fingerprint(settings.corpus_dir):
            return engine
        embedder = engine.embedder
    except IndexNotReady:
        pass
    embedder = embedder or Embedder.load(settings.model_source)
    with progress_bar("Embedding", unit="text") as progress:
        build_index(
            settings.corpus_dir,
            settings.index_dir,
            embedder,
            max_article_bytes=settings.max_article_bytes,
            progress=progress,
            vector_store=vector_store(settings),
        )
    return Engine.with_model(
        embedder, settings.index_dir, min_score=settings.min_score, retriever=settings.retriever,
        vector_store=vector_store(settings),
    )


def _embed_in_chunks(embedder: Embedder, texts: list[str], progress, chunk: int = 256):
    import numpy as np

    parts = []
    for start in range(0, len(texts), chunk):
        parts.append(embedder.embed_queries(texts[start : start + chunk]))
        progress(min(start + chunk, len(texts)), len(texts))
    return np.concatenate(parts)


@dataclass(frozen=True)
class FollowUpReport:
    """Answered-and-right at rank 1 for questions asked after another one."""

    n: int
    alone: int
    with_context: int


def read_follow_ups(path: Path) -> list[tuple[str, Question]]:
    """A follow-up question file: question lines with the ``previous`` question asked."""
    previous = [
        json.loads(line)["previous"]
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return list(zip(previous, read_questions(path)))


def evaluate_follow_ups(engine: Engine, pairs: list[tuple[str, Question]]) -> FollowUpReport:
    """Each (previous question, question) as the bot treats them in a private chat: the
    question continues the previous answer's article when it is short (bot.followup)."""
    from bot.followup import may_follow_up

    alone = with_context = 0
    for previous, question in pairs:
        before = engine.ask(previous, 9)
        within = before.hits[0].document.doc_id if before.answered and may_follow_up(question.question) else None
        alone += _right_at_1(engine.ask(question.question, 9), question)
        with_context += _right_at_1(engine.ask(question.question, 9, within=within), question)
    return FollowUpReport(len(pairs), alone, with_context)


def _right_at_1(answer, question: Question) -> bool:
    """Answered, and the first passage holds an answer string."""
    top = answer.hits[:1]
    outcome = Outcome(question, [h.passage.text for h in top], [h.passage.doc_id for h in top])
    return answer.answered and first_hit_rank(outcome) == 1
