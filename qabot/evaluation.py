"""Scoring retrieval on a question file: hit@k and MRR@10 by answer-string containment.

The question format is XQuAD's (``../shared/bench/xquad/questions.jsonl``): one JSON object
per line with ``id``, ``lang``, ``question`` and ``answers`` (and optionally ``paragraph``,
the gold document id prefix). A line without ``answers`` is an off-topic question: it is
scored by whether qabot declines it ("no good match").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from corpus.clean import comparable
from qabot.errors import QabotError

CUTOFFS = (1, 3, 5, 10)


@dataclass(frozen=True)
class Question:
    id: str
    lang: str
    question: str
    answers: tuple[str, ...] = ()
    paragraph: str = ""

    @property
    def off_topic(self) -> bool:
        return not self.answers


@dataclass
class Outcome:
    """What qabot returned for one question, in rank order."""

    question: Question
    texts: list[str]
    docs: list[str]
    declined: bool = False


def read_questions(path: Path) -> list[Question]:
    """Read a JSONL question file, naming the line of any malformed entry."""
    questions = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QabotError(f"Cannot read the question file {path}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            questions.append(
                Question(
                    id=str(row.get("id", f"line-{number}")),
                    lang=str(row.get("lang", "")),
                    question=str(row["question"]),
                    answers=tuple(str(a) for a in row.get("answers") or ()),
                    paragraph=str(row.get("paragraph", "")),
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise QabotError(
                f"{path}, line {number}: not a question object with a 'question' field ({exc})."
            ) from exc
    return questions


def first_hit_rank(outcome: Outcome, *, paragraph_exact: bool = False) -> int | None:
    """1-based rank of the first passage containing an answer (None for a miss)."""
    answers = [comparable(a) for a in outcome.question.answers]
    for rank, (text, doc) in enumerate(zip(outcome.texts[:10], outcome.docs[:10]), 1):
        if paragraph_exact and not _is_gold(doc, outcome.question.paragraph):
            continue
        body = comparable(text)
        if any(answer and answer in body for answer in answers):
            return rank
    return None


def metrics(outcomes: list[Outcome], *, paragraph_exact: bool = False) -> dict:
    """hit@1/3/5/10 and MRR@10 overall and by language; decline rate for off-topic lines."""
    answerable = [o for o in outcomes if not o.question.off_topic]
    result = _rates(answerable, paragraph_exact)
    result["by_lang"] = {
        lang: _rates([o for o in answerable if o.question.lang == lang], paragraph_exact)
        for lang in sorted({o.question.lang for o in answerable})
    }
    off_topic = [o for o in outcomes if o.question.off_topic]
    if off_topic:
        result["off_topic"] = {
            "n": len(off_topic),
            "declined": round(sum(o.declined for o in off_topic) / len(off_topic), 4),
        }
    if answerable:
        result["answered"] = round(sum(not o.declined for o in answerable) / len(answerable), 4)
    return result


def results_line(outcome: Outcome, scores: list[float]) -> str:
    """One line of the benchmark's results.jsonl format."""
    passages = [
        {"text": text, "doc": doc, "score": round(score, 4)}
        for text, doc, score in zip(outcome.texts, outcome.docs, scores)
    ]
    return json.dumps({"id": outcome.question.id, "passages": passages}, ensure_ascii=False)


@dataclass
class _Counter:
    n: int = 0
    hits: dict[int, int] = field(default_factory=lambda: dict.fromkeys(CUTOFFS, 0))
    reciprocal: float = 0.0


def _rates(outcomes: list[Outcome], paragraph_exact: bool) -> dict:
    counter = _Counter(n=len(outcomes))
    for outcome in outcomes:
        rank = first_hit_rank(outcome, paragraph_exact=paragraph_exact)
        if rank is None:
            continue
        counter.reciprocal += 1 / rank
        for cutoff in CUTOFFS:
            counter.hits[cutoff] += rank <= cutoff
    n = max(counter.n, 1)
    rates = {"n": counter.n}
    rates.update({f"hit@{k}": round(counter.hits[k] / n, 4) for k in CUTOFFS})
    rates["mrr@10"] = round(counter.reciprocal / n, 4)
    return rates


def _is_gold(doc: str, paragraph: str) -> bool:
    name = doc.replace("\\", "/").rsplit("/", 1)[-1]
    return bool(paragraph) and name.startswith(paragraph) and not re.match(
        r"\d", name[len(paragraph) : len(paragraph) + 1]
    )
