"""One article from raw text to metadata plus labelled paragraph blocks: the cleaning pipeline.

Order matters: metadata lines (bylines, datelines, credits) are read before chrome is
dropped, chrome is dropped before the title is taken from the first line, and
paragraphs broken by the page layout are rejoined before headings are guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from corpus.boilerplate import drop_boilerplate
from corpus.clean import Block, HtmlPage, html_to_blocks, looks_like_html, text_to_blocks, trim
from corpus.dates import to_iso_date
from corpus.front_matter import split_front_matter
from corpus.language import detect_language, normalize_language
from corpus.metadata import read_text_metadata, take_title
from corpus.structure import join_broken_lines, label_blocks


@dataclass
class Article:
    """An article's metadata (empty where unknown) and its body as labelled blocks."""

    title: str = ""
    publisher: str = ""
    author: str = ""
    date: str = ""
    language: str = ""
    url: str = ""
    blocks: list[Block] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def parse_article(text: str, *, html: bool = False) -> Article:
    """Clean ``text`` (a whole file) into an Article.

    Metadata comes from, in order of trust: the front matter (Markdown/text) or the
    ``<head>`` (HTML), then lines of the text itself. ``problems`` lists what was wrong
    but did not stop the article from being read.
    """
    front = split_front_matter("" if html else text)
    fields = {key: _plain(value) for key, value in front.fields.items()}
    body = text if html else front.body
    if html or looks_like_html(body):
        page = html_to_blocks(body, markdown=not html)
    else:
        page = HtmlPage(text_to_blocks(body))
    found, blocks = read_text_metadata(page.blocks)
    blocks = drop_boilerplate(blocks)

    title = fields.get("title") or page.meta.get("title") or page.meta.get("h1") or page.meta.get("html_title", "")
    if not title:
        title, blocks = take_title(blocks)
    if blocks and blocks[0].text == title:  # the title repeated as the first heading
        blocks = blocks[1:]
    blocks = label_blocks(join_broken_lines(blocks))

    problems = list(front.problems)
    date = _date(front.fields.get("date"), problems) or to_iso_date(page.meta.get("date", "")) or found.date
    language = _language(fields.get("language") or fields.get("lang", ""), problems)
    language = language or normalize_language(page.meta.get("language", ""))
    return Article(
        title=title,
        publisher=fields.get("publisher") or fields.get("source") or page.meta.get("publisher") or found.publisher,
        author=fields.get("author") or page.meta.get("author") or found.author,
        date=date,
        language=language or detect_language(" ".join(b.text for b in blocks)),
        url=fields.get("url") or page.meta.get("url", ""),
        blocks=blocks,
        problems=problems,
    )


def _plain(value: object) -> str:
    """A front-matter value as one line of text ("a, b" for a list, "" for nothing)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(item) for item in value if _plain(item))
    return trim(str(value))


def _date(value: object, problems: list[str]) -> str:
    """The front-matter date as YYYY-MM-DD; a date that is not a full date is reported."""
    if value is None or _plain(value) == "":
        return ""
    iso = to_iso_date(value)
    if not iso:
        problems.append(f"date {_plain(value)!r} is not a full date; left empty")
    return iso


def _language(value: str, problems: list[str]) -> str:
    """The front-matter language as "en"/"zh"; any other language is reported and detected."""
    language = normalize_language(value) if value else ""
    if value and not language:
        problems.append(f"language {value!r} is neither English nor Chinese; detected from the text")
    return language
