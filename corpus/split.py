"""Where a passage is cut: article paragraphs become passages sized for the embedding model.

multilingual-e5-small reads at most 512 tokens, and retrieval works best on passages
of a few sentences. So, in estimated tokens (:mod:`corpus.tokens`):

* a paragraph of up to ``HARD_MAX_TOKENS`` stays whole, so a reader's paragraph is
  not broken without need; a longer one is cut between sentences (between clauses,
  then words, only for a sentence that alone is too long) into about equal pieces of
  at most ``TARGET_MAX_TOKENS``. Pieces keep the paragraph's number.
* a paragraph under ``MIN_TOKENS`` is merged with its neighbours in the same section
  (up to ``TARGET_MAX_TOKENS`` while the passage is still short, else up to
  ``MERGE_MAX_TOKENS``): a one-line passage is a poor hit. A passage never spans a heading.
* headings and captions never become passages; they are the ``context`` of the
  passages next to them (a heading for its whole section, a caption for the next
  passage in its section, else the one before it). The index embeds the context with
  the text; the bot shows only the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from corpus.clean import CAPTION, HEADING, Block, trim
from corpus.records import Passage
from corpus.sentences import sentence_ends
from corpus.tokens import estimate_tokens

TARGET_MAX_TOKENS = 250
HARD_MAX_TOKENS = 300
MIN_TOKENS = 60
MERGE_MAX_TOKENS = 160

#: The gap between two merged paragraphs in a passage's text.
PARAGRAPH_BREAK = "\n\n"


@dataclass
class _Unit:
    """A paragraph or a piece of one, on its way to becoming a passage."""

    paragraph: int
    text: str
    tokens: int
    section: int
    context: list[str] = field(default_factory=list)


def split_into_passages(blocks: list[Block], doc_id: str, language: str) -> list[Passage]:
    """The passages of one article, in reading order. ``paragraph`` counts text paragraphs
    only (headings and captions are not paragraphs a reader would count)."""
    return [
        Passage(doc_id, unit.paragraph, unit.text, language, "\n".join(unit.context))
        for unit in _merge_short(_units(blocks))
    ]


def _units(blocks: list[Block]) -> list[_Unit]:
    """Number the text paragraphs, cut the long ones, and hang headings and captions on them."""
    units: list[_Unit] = []
    section, heading, captions, number = 0, "", [], 0
    for block in blocks:
        if block.kind == HEADING:
            if captions and units:  # a caption belongs to its own section
                units[-1].context.extend(captions)
                captions = []
            section, heading = section + 1, block.text
        elif block.kind == CAPTION:
            captions.append(block.text)
        else:
            number += 1
            for piece in cut_paragraph(block.text):
                context = ([heading] if heading else []) + captions
                units.append(_Unit(number, piece, estimate_tokens(piece), section, context))
                captions = []
    if captions and units:  # captions after the last paragraph belong to it
        units[-1].context.extend(captions)
    return units


def _merge_short(units: list[_Unit]) -> list[_Unit]:
    """Join each unit to the passage before it when :func:`_can_merge` allows."""
    merged: list[_Unit] = []
    for unit in units:
        last = merged[-1] if merged else None
        if last and _can_merge(last, unit):
            context = last.context + [c for c in unit.context if c not in last.context]
            text = last.text + PARAGRAPH_BREAK + unit.text
            merged[-1] = _Unit(last.paragraph, text, last.tokens + unit.tokens, last.section, context)
        else:
            merged.append(unit)
    return merged


def _can_merge(last: _Unit, unit: _Unit) -> bool:
    """A short passage grows up to the target; a short paragraph joins a passage that is
    already long enough only up to ``MERGE_MAX_TOKENS``, so a run of short paragraphs
    gives several mid-sized passages instead of one full one and a stub."""
    if last.section != unit.section or last.paragraph == unit.paragraph:
        return False  # never across a heading; pieces of one paragraph were cut on purpose
    size = last.tokens + unit.tokens
    if last.tokens < MIN_TOKENS:
        return size <= TARGET_MAX_TOKENS
    return unit.tokens < MIN_TOKENS and size <= MERGE_MAX_TOKENS


# --- cutting one long paragraph ---------------------------------------------------------

_CLAUSE_END = re.compile(r"[，,；;：:、]\s*")
_SPACE_RUN = re.compile(r"\s+")


def cut_paragraph(text: str) -> list[str]:
    """``text`` itself when it fits, else sentence-aligned pieces of about equal size.

    The pieces are slices of ``text``: joined with the whitespace between them they
    give the paragraph back, so an answer quoted from the article is still found in
    one piece unless it crosses a sentence end.
    """
    if estimate_tokens(text) <= HARD_MAX_TOKENS:
        return [text]
    spans = _spans(text, 0, len(text), 0)
    sizes = [estimate_tokens(text[start:end]) for start, end in spans]
    pieces = [text[spans[first][0] : spans[last][1]] for first, last in _balanced_groups(sizes)]
    return [trim(piece) for piece in pieces if trim(piece)]


def _balanced_groups(sizes: list[int]) -> list[tuple[int, int]]:
    """Cut a run of sentence sizes into the fewest consecutive groups of at most
    ``TARGET_MAX_TOKENS``, then shrink the size limit as far as that number of groups
    allows, so the pieces come out about equal instead of full ones plus a stub.
    Returns (first, last) index pairs."""
    fewest = len(_pack(sizes, TARGET_MAX_TOKENS))
    low, high = max(sizes), TARGET_MAX_TOKENS
    while low < high:
        middle = (low + high) // 2
        if len(_pack(sizes, middle)) <= fewest:
            high = middle
        else:
            low = middle + 1
    return _pack(sizes, low)


def _pack(sizes: list[int], limit: int) -> list[tuple[int, int]]:
    """Greedy groups of consecutive sizes, each summing to at most ``limit`` (a single
    size over the limit gets a group of its own)."""
    groups, first, total = [], 0, 0
    for index, size in enumerate(sizes):
        if index > first and total + size > limit:
            groups.append((first, index - 1))
            first, total = index, 0
        total += size
    groups.append((first, len(sizes) - 1))
    return groups


def _spans(text: str, start: int, end: int, level: int) -> list[tuple[int, int]]:
    """Cut ``text[start:end]`` into spans of at most ``TARGET_MAX_TOKENS``: at sentence ends
    first, then clause ends, then spaces, then (a last resort) every few characters."""
    segment = text[start:end]
    if level == len(_CUTTERS) or estimate_tokens(segment) <= TARGET_MAX_TOKENS:
        return [(start, end)]
    spans, previous = [], 0
    for offset in _CUTTERS[level](segment):
        spans.extend(_spans(text, start + previous, start + offset, level + 1))
        previous = offset
    return spans


def _ends_after(pattern: re.Pattern[str]) -> Callable[[str], list[int]]:
    def ends(segment: str) -> list[int]:
        inner = [m.end() for m in pattern.finditer(segment) if m.end() < len(segment)]
        return inner + [len(segment)]

    return ends


def _every_few_chars(segment: str) -> list[int]:
    step = max(1, len(segment) * TARGET_MAX_TOKENS // (2 * estimate_tokens(segment)))
    return list(range(step, len(segment), step)) + [len(segment)]


_CUTTERS: list[Callable[[str], list[int]]] = [
    sentence_ends,
    _ends_after(_CLAUSE_END),
    _ends_after(_SPACE_RUN),
    _every_few_chars,
]
