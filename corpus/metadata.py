"""Metadata written in the article text itself: page headers, bylines, datelines, credits, copyright.

Scraped pages have no front matter, but their first and last lines say who published
the article, who wrote it and when: "iChongqing Title", "By HUXIN LUO|Jul 07,2024",
"Updated: Feb 20, 2019", "撰文：李亦中 魏涵玉", "Copyright©2024 China Daily.". Those
lines are read here and taken out of the body; nothing is guessed beyond them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from corpus.clean import HEADING, Block, trim
from corpus.dates import to_iso_date
from corpus.tokens import estimate_tokens

#: Datelines and bylines are only looked for in the first blocks of an article.
HEAD_BLOCKS = 6
#: Credit and copyright lines are short; longer lines are article text.
MAX_CREDIT_CHARS = 80
#: A title is one line of at most this many estimated tokens.
TITLE_MAX_TOKENS = 60


@dataclass
class TextMetadata:
    """What the text says about the article; empty strings where it says nothing."""

    publisher: str = ""
    author: str = ""
    date: str = ""


_PAGE_HEADER = re.compile(r"(?P<publisher>[A-Za-z][\w&.' -]{1,40}?)\s+Title")
_BYLINE = re.compile(r"[Bb]y\s+(?P<author>[A-Z][^|｜\d,.;:]{1,60}?)\s*(?:[|｜]\s*(?P<date>.+))?")
_DATELINE = re.compile(
    r"(?:updated|published|posted|released|date|time|发布时间|发布日期|更新时间|日期|时间)\s*[:：]\s*(?P<date>.+)",
    re.IGNORECASE,
)
_BARE_DATE = re.compile(r"(?P<date>\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}\s*日?(?:\s+[\d:]+)?)")
_CREDIT = re.compile(
    r"[（(]?\s*(?:作者|撰文|文字|文|记者|author|written by)\s*[:：/｜|]\s*(?P<author>[^（()）]{1,40}?)\s*[）)]?",
    re.IGNORECASE,
)
_SOURCE = re.compile(r"(?:来源|source)\s*[:：]\s*(?P<publisher>.{2,40})", re.IGNORECASE)
_COPYRIGHT = re.compile(
    r"(?:copyright|©|\(c\))[\s©]*(?:\d{4}(?:\s*[-–]\s*\d{4})?)?\s*(?P<publisher>[^©]+?)\.?"
    r"\s*(?:all rights reserved\.?)?",
    re.IGNORECASE,
)


def read_text_metadata(blocks: list[Block]) -> tuple[TextMetadata, list[Block]]:
    """Metadata found in header, byline, dateline, credit and copyright lines, and the blocks
    without those lines (copyright lines stay: :mod:`corpus.boilerplate` drops them)."""
    found = TextMetadata()
    kept: list[Block] = []
    for index, block in enumerate(blocks):
        lines = [
            line
            for number, line in enumerate(block.text.split("\n"))
            if not _consume(found, trim(line), first=index == 0 and number == 0, head=index < HEAD_BLOCKS)
        ]
        if lines:
            kept.append(Block("\n".join(lines), block.kind))
    return found, kept


def _consume(found: TextMetadata, line: str, *, first: bool, head: bool) -> bool:
    """Record what ``line`` says; True when the line is metadata only and leaves the body."""
    if first and (match := _PAGE_HEADER.fullmatch(line)):
        found.publisher = found.publisher or match["publisher"]
        return True
    if head and (match := _BYLINE.fullmatch(line)) and len(match["author"].split()) <= 6:
        found.author = found.author or trim(match["author"])
        found.date = found.date or to_iso_date(match["date"] or "")
        return True
    dateline = (_DATELINE.fullmatch(line) or _BARE_DATE.fullmatch(line)) if head else None
    if dateline and (date := to_iso_date(dateline["date"])):
        found.date = found.date or date
        return True
    if len(line) > MAX_CREDIT_CHARS:
        return False
    if match := _CREDIT.fullmatch(line):
        found.author = found.author or trim(match["author"])
        return True
    if match := _SOURCE.fullmatch(line):
        found.publisher = found.publisher or trim(match["publisher"])
        return True
    if match := _COPYRIGHT.fullmatch(line):
        found.publisher = found.publisher or trim(match["publisher"])
    return False


def take_title(blocks: list[Block]) -> tuple[str, list[Block]]:
    """The article's title from its first line, and the blocks after it.

    The first block is the title when it is a single short line that does not end like
    a sentence ("!" and "?" are fine) and more text follows. A site section name that
    the title merely repeats ("Yangtze River Middle Reaches" above "Yangtze River middle
    reaches: Building ...") is skipped. Returns "" and the blocks unchanged otherwise.
    """
    if len(blocks) < 2 or not _could_be_title(blocks[0]):
        return "", blocks
    first, second = blocks[0].text, blocks[1].text
    if len(blocks) > 2 and _could_be_title(blocks[1]) and second.casefold().startswith(first.casefold()):
        return second, blocks[2:]
    return first, blocks[1:]


def _could_be_title(block: Block) -> bool:
    text = block.text
    if block.kind == HEADING:
        return True
    return (
        "\n" not in text
        and estimate_tokens(text) <= TITLE_MAX_TOKENS
        and not text.endswith((".", "。", ";", "；", ",", "，", ":", "："))
    )
