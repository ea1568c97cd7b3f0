"""Answers as Telegram HTML, answer first: the sentence that answers, one source line set
apart from it, the passage folded away (an expandable blockquote: the sentence in bold
inside it, or only what follows when the sentence opens the passage), then at most two close results from other articles.

A further result is shown on the first screen only if it would have been an answer on its
own (its score reaches the engine's threshold) and comes from another article: a reader
sees an alternative when there is one, not three more passages at confidence 0.05 under
every answer. "More" pages through every other result.

Passages are shortened on plain text *before* escaping, so a cut can never land inside a
tag or an ``&amp;``-style escape, and every message is checked against Telegram's limit
(4096 characters of visible text) and rendered again with smaller budgets if needed.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from telegram.constants import MessageLimit

from bot.feedback import Stats
from bot.i18n import Lang, text
from corpus.records import Document
from index.retrieval.engine import Hit

ELLIPSIS = "…"
PAGE_SIZE = 3


#: Close results from other articles shown under an answer, at most.
ALSO_MAX = 2


@dataclass(frozen=True)
class Budget:
    """Most characters of plain text shown for each piece of an answer."""

    sentence: int = 400
    best: int = 1500
    other: int = 200
    title: int = 120

    def scaled(self, factor: float) -> Budget:
        return Budget(*(int(value * factor) for value in dataclasses.astuple(self)))


def render_page(
    hits: Sequence[Hit], page: int, lang: Lang, min_score: float = float("inf")
) -> str:
    """Page 0 is the answer (see the module docstring; ``min_score``: the engine's threshold,
    which a close result must reach); later pages list the other results, shortest form."""
    for factor in (1.0, 0.6, 0.35, 0.2, 0.1):
        budget = Budget().scaled(factor)
        if page == 0:
            message = _answer(hits, lang, budget, min_score)
        else:
            message = _further(hits, page, lang, budget)
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


def render_stats(stats: Stats, lang: Lang, titles: dict[str, str]) -> str:
    """``/stats``: counts, then the most asked unanswered questions, then the answers voted
    down with the start of their passages (``titles``: article titles by id); within
    Telegram's limit."""
    lines = [
        text("stats", lang, today=stats.today, week=stats.week, total=stats.total,
             answered=f"{stats.answered:.0%}"),
        "",
        text("stats_declined", lang),
    ]
    none = f"<i>{text('stats_none', lang)}</i>"
    lines += [f"• {html.escape(shorten(q, 120)[0])} ({n}×)" for q, n in stats.declined] or [none]
    lines += ["", text("stats_disliked", lang)]
    for question, doc_id, paragraph, passage, count in stats.disliked:
        title = shorten(titles.get(doc_id, doc_id), 80)[0]
        where = html.escape(title) + " · " + text("paragraph", lang, number=paragraph)
        snippet = html.escape(shorten(" ".join((passage or "").split()), 160)[0])
        lines.append(f"• {html.escape(shorten(question, 120)[0])} ({count}× 👎)\n  <i>{where}</i>: {snippet}")
    if not stats.disliked:
        lines.append(none)
    return _pack(lines)[0]


def page_count(hits: Sequence[Hit]) -> int:
    """The answer, then the other results ``PAGE_SIZE`` to a page."""
    return 1 + -(-max(len(hits) - 1, 0) // PAGE_SIZE)


def render_sources(
    documents: Sequence[Document], lang: Lang, *, with_ids: bool = False
) -> list[str]:
    """The articles, one line each (``with_ids``: each article's id, for /remove), split
    into as few messages as Telegram's limit allows."""
    if not documents:
        return [text("no_sources", lang)]
    lines = [text("sources_header", lang, count=len(documents))]
    for number, document in enumerate(documents, 1):
        details = [document.publisher, document.date]
        line = f"{number}. " + " · ".join([_title(document, 200)] + _escaped(details))
        if with_ids:
            line += f"\n   <code>{html.escape(document.doc_id)}</code>"
        lines.append(line)
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


def _answer(hits: Sequence[Hit], lang: Lang, budget: Budget, min_score: float) -> str:
    best = hits[0]
    sentence = answering_sentence(best)
    answer = "<b>" + html.escape(shorten(sentence, budget.sentence)[0]) + "</b>\n"
    answer += _source_line(best, lang, budget.title)
    if context := _context(best, budget.best):
        answer += "\n<blockquote expandable>" + context + "</blockquote>"
    parts = [answer]
    also = close_results(hits, min_score)
    if also:
        lines = [_entry(hit, lang, budget) for hit in also]
        parts.append(f"<b>{text('also', lang)}</b>\n" + "\n".join(lines))
    return "\n\n".join(parts)


def close_results(hits: Sequence[Hit], min_score: float) -> list[Hit]:
    """Results shown under the answer: from other articles (one each), each scoring at least
    the answer threshold, at most :data:`ALSO_MAX`."""
    seen = {hits[0].document.doc_id}
    close = []
    for hit in hits[1:]:
        if hit.score >= min_score and hit.document.doc_id not in seen:
            seen.add(hit.document.doc_id)
            close.append(hit)
    return close[:ALSO_MAX]


def _further(hits: Sequence[Hit], page: int, lang: Lang, budget: Budget) -> str:
    first = 1 + (page - 1) * PAGE_SIZE
    shown = hits[first : first + PAGE_SIZE]
    header = text("page_header", lang, first=first + 1, last=first + len(shown), total=len(hits))
    entries = (_entry(hit, lang, budget) for hit in shown)
    return "\n\n".join([f"<b>{header}</b>", *entries])


def answering_sentence(hit: Hit) -> str:
    """The highlighted sentence, or the passage itself when none was picked."""
    if hit.highlight and hit.highlight[1] > hit.highlight[0]:
        start, end = hit.highlight
        return hit.passage.text[start:end]
    return hit.passage.text


def _context(hit: Hit, limit: int) -> str:
    """The fold under an answer: what follows the sentence when it opens the passage (it is
    shown right above, and the fold's first lines are what Telegram shows folded), else the
    passage with the sentence in bold, so a reader sees where it sits; "" when the sentence
    is all there is."""
    passage = hit.passage.text
    if hit.highlight and not passage[: hit.highlight[0]].strip():
        return html.escape(shorten(passage[hit.highlight[1]:].strip(), limit)[0])
    if " ".join(passage.split()) == " ".join(answering_sentence(hit).split()):
        return ""
    return _highlighted(hit, limit)


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


def _entry(hit: Hit, lang: Lang, budget: Budget) -> str:
    """A short result: its best sentence (or the passage's start), then its source."""
    snippet, _ = shorten(" ".join(answering_sentence(hit).split()), budget.other)
    return f"• {html.escape(snippet)}\n{_source_line(hit, lang, budget.title)}"


def _source_line(hit: Hit, lang: Lang, title_limit: int) -> str:
    """Where a passage comes from, on its own line in italics: the article (linked when its
    address is known), publisher, date, paragraph."""
    document = hit.document
    paragraph = text("paragraph", lang, number=hit.passage.paragraph)
    details = [_title(document, title_limit), *_escaped([document.publisher, document.date]), paragraph]
    return "<i>— " + " · ".join(details) + "</i>"


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
