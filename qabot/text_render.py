"""Answers rendered for the terminal (``qabot ask``/``chat``) and as JSON (``ask --json``)."""

from __future__ import annotations

from corpus.language import detect_language
from corpus.records import Document
from index.retrieval.engine import Answer, Hit

BOLD, RESET = "\033[1m", "\033[0m"


def answer_json(answer: Answer) -> dict:
    """The ``ask --json`` object. A decline lists no passages: weak matches are not answers."""
    hits = answer.hits if answer.answered else []
    result = {
        "question": answer.question,
        "answered": answer.answered,
        "confidence": round(answer.confidence, 4),
        "passages": [_hit_json(hit) for hit in hits],
    }
    if not answer.answered:
        result["nearest"] = [
            {key: getattr(doc, key) for key in ("doc_id", "title", "publisher", "date", "url")}
            for doc in answer.nearest
        ]
    return result


#: The decline, in the question's language: ({message}, {closest articles}).
DECLINE = {
    "en": (
        "The articles don't cover this: nothing in them answers it well enough. Try other "
        "words, or see {hint} for what the articles cover.",
        "Closest articles:",
    ),
    "zh": ("文章里没有涉及这个问题，找不到足够可靠的答案。请换个说法，或用 {hint} 查看文章涵盖的内容。", "最接近的文章："),
}


def answer_text(answer: Answer, *, color: bool = False, sources_hint: str = "`qabot sources`") -> str:
    """A readable answer: each passage, the best sentence marked, and its citation; or a
    decline in the question's language (``sources_hint``: how to list the articles here)."""
    if not answer.answered:
        message, closest = DECLINE[detect_language(answer.question)]
        text = message.format(hint=sources_hint)
        if answer.nearest:
            text += f"\n{closest}\n" + "\n".join(f"- {d.title or d.doc_id}" for d in answer.nearest)
        return text
    blocks = []
    for rank, hit in enumerate(answer.hits, 1):
        blocks.append(
            f"[{rank}] {citation(hit.document, hit.passage.paragraph)}  "
            f"(score {hit.score:.3f})\n    {_marked(hit, color)}"
        )
    return "\n\n".join(blocks)


def citation(document: Document, paragraph: int) -> str:
    """Title — publisher, date, ¶ n, URL: enough for a person to find the passage."""
    details = ", ".join(p for p in (document.publisher, document.date, f"¶ {paragraph}") if p)
    text = f"{document.title or document.doc_id} — {details}"
    return f"{text} <{document.url}>" if document.url else text


def sources_text(documents: list[Document]) -> str:
    lines = [f"{len(documents)} articles indexed:"]
    for doc in documents:
        details = ", ".join(p for p in (doc.publisher, doc.date, doc.language) if p)
        lines.append(f"- {doc.title or doc.doc_id}" + (f" ({details})" if details else ""))
        if doc.url:
            lines.append(f"  {doc.url}")
    return "\n".join(lines)


def _marked(hit: Hit, color: bool) -> str:
    text = hit.passage.text
    if not hit.highlight:
        return text
    start, end = hit.highlight
    left, right = (BOLD, RESET) if color else ("**", "**")
    return f"{text[:start]}{left}{text[start:end]}{right}{text[end:]}"


def _hit_json(hit: Hit) -> dict:
    doc = hit.document
    return {
        "text": hit.passage.text,
        "score": round(hit.score, 4),
        "doc": doc.doc_id,
        "title": doc.title,
        "publisher": doc.publisher,
        "date": doc.date,
        "url": doc.url,
        "paragraph": hit.passage.paragraph,
        "language": hit.passage.language,
        "highlight": list(hit.highlight) if hit.highlight else None,
    }
