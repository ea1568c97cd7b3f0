"""Answers as Telegram HTML: escaped text, the best sentence in bold, a citation per passage.

Passages are shortened on plain text *before* escaping, so a cut can never land inside a
tag or an ``&amp;``-style escape, and every message is checked against Telegram's limit
(4096 characters of visible text) and rendered again with smaller budgets if needed.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from telegram.constants import MessageLimit

from bot.i18n import Lang, text
from corpus.records import Document
from index.retrieval.engine import Hit

ELLIPSIS = "…"
PAGE_SIZE = 3


@dataclass(frozen=True)
class Budget:
    """Most characters of plain text shown for each piece of an answer."""

    best: int = 1500
    other: int = 320
    title: int = 200

    def scaled(self, factor: float) -> Budget:
        return Budget(int(self.best * factor), int(self.other * factor), int(self.title * factor))


def render_page(hits: Sequence[Hit], page: int, lang: Lang) -> str:
    """Page 0 is the answer (best passage, then shorter ones); later pages list further hits."""
    for factor in (1.0, 0.6, 0.35, 0.2, 0.1):
        budget = Budget().scaled(factor)
        message = _answer(hits, lang, budget) if page == 0 else _further(hits, page, lang, budget)
        if visible_length(message) <= MessageLimit.MAX_TEXT_LENGTH:
            return message
    return message


def render_decline(nearest: Sequence[Document], lang: Lang) -> str:
    """A decline: that the articles don't cover it, and the closest articles if any."""
    message = text("no_match", lang)
    if nearest:
        titles = "\n".join(f"• {_title(document, 120)}" for document in nearest)
        message += f"\n\n{text('nearest', lang)}\n{titles}"
    return message


def page_count(hits: Sequence[Hit]) -> int:
    return max(1, -(-len(hits) // PAGE_SIZE))


def render_sources(documents: Sequence[Document], lang: Lang) -> list[str]:
    """The articles, one line each, split into as few messages as Telegram's limit allows."""
    if not documents:
        return [text("no_sources", lang)]
    lines = [text("sources_header", lang, count=len(documents))]
    for number, document in enumerate(documents, 1):
        details = [document.publisher, document.date]
        lines.append(f"{number}. " + " · ".join([_title(document, 200)] + _escaped(details)))
    return _pack(lines)


def shorten(
    value: str, limit: int, keep: tuple[int, int] | None = None
) -> tuple[str, tuple[int, int] | None]:
    """At most ``limit`` characters of ``value`` around the span ``keep``, cuts marked with "…".

    Returns the shortened text and where ``keep`` is inside it. Cuts fall between words
    where there are spaces (English), anywhere otherwise (Chinese has no spaces).
    """
    limit = max(limit, 3)
    if keep is not None:
        start, end = sorted((min(max(keep[0], 0), len(value)), min(max(keep[1], 0), len(value))))
        keep = (start, end)
    if len(value) <= limit:
        return value, keep
    start, end = keep if keep and keep[1] > keep[0] else (0, 0)
    inner = limit - 2  # room for an ellipsis on both sides
    end = min(end, start + inner)
    left = max(0, start - (inner - (end - start)) // 3) if start else 0
    right = min(len(value), left + inner)
    left = max(0, right - inner)
    left, right = _word_bounds(value, left, right, start, end)
    prefix = ELLIPSIS if left > 0 else ""
    suffix = ELLIPSIS if right < len(value) else ""
    piece = prefix + value[left:right] + suffix
    if keep is None:
        return piece, None
    offset = len(prefix) - left
    return piece, (max(start + offset, len(prefix)), min(end + offset, len(prefix) + right - left))


def visible_length(message: str) -> int:
    """Length of a rendered message as Telegram counts it: text without tags, in UTF-16 units."""
    plain = html.unescape(re.sub(r"<[^>]*>", "", message))
    return len(plain.encode("utf-16-le")) // 2


def _answer(hits: Sequence[Hit], lang: Lang, budget: Budget) -> str:
    best, others = hits[0], hits[1:PAGE_SIZE]
    parts = [_highlighted(best, budget.best) + "\n— " + _citation(best, lang, budget.title)]
    if others:
        parts.append(f"<b>{text('other_results', lang)}</b>")
        parts.extend(_entry(number, hit, lang, budget) for number, hit in enumerate(others, 2))
    return "\n\n".join(parts)


def _further(hits: Sequence[Hit], page: int, lang: Lang, budget: Budget) -> str:
    first = page * PAGE_SIZE
    shown = hits[first : first + PAGE_SIZE]
    header = text("page_header", lang, first=first + 1, last=first + len(shown), total=len(hits))
    entries = (_entry(number, hit, lang, budget) for number, hit in enumerate(shown, first + 1))
    return "\n\n".join([f"<b>{header}</b>", *entries])


def _highlighted(hit: Hit, limit: int) -> str:
    piece, span = shorten(hit.passage.text, limit, hit.highlight)
    if not span or span[1] <= span[0]:
        return html.escape(piece)
    start, end = span
    return (
        html.escape(piece[:start])
        + "<b>"
        + html.escape(piece[start:end])
        + "</b>"
        + html.escape(piece[end:])
    )


def _entry(number: int, hit: Hit, lang: Lang, budget: Budget) -> str:
    """A shorter result: the passage's start on one line, then its citation."""
    snippet, _ = shorten(" ".join(hit.passage.text.split()), budget.other)
    return f"{number}. {html.escape(snippet)}\n— {_citation(hit, lang, budget.title)}"


def _citation(hit: Hit, lang: Lang, title_limit: int) -> str:
    document = hit.document
    paragraph = text("paragraph", lang, number=hit.passage.paragraph)
    return " · ".join(
        [_title(document, title_limit), *_escaped([document.publisher, document.date]), paragraph]
    )


def _title(document: Document, limit: int) -> str:
    """The article's title, escaped, linked when it has a web address."""
    title = html.escape(shorten(document.title or document.doc_id, limit)[0])
    if document.url.startswith(("https://", "http://")):
        return f'<a href="{html.escape(document.url, quote=True)}">{title}</a>'
    return title


def _escaped(values: Sequence[str]) -> list[str]:
    return [html.escape(value) for value in values if value]


def _word_bounds(value: str, left: int, right: int, start: int, end: int) -> tuple[int, int]:
    """Move cut points to spaces when a word would be split, never into the kept span."""
    if left > 0 and not value[left - 1].isspace():
        space = value.find(" ", left, start if start > left else right)
        if space != -1 and space - left < 30:
            left = space + 1
    if right < len(value) and not value[right].isspace():
        space = value.rfind(" ", max(left, end), right)
        if space != -1 and right - space < 30:
            right = space
    return left, right


def _pack(lines: list[str]) -> list[str]:
    """Join lines into messages that each stay under Telegram's limit."""
    messages: list[str] = []
    current = ""
    for line in lines:
        candidate = f"{current}\n{line}" if current else line
        if current and visible_length(candidate) > MessageLimit.MAX_TEXT_LENGTH:
            messages.append(current)
            candidate = line
        current = candidate
    messages.append(current)
    return messages
