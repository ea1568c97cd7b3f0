"""Markup out, plain blocks in: turn a Markdown/plain-text or HTML article body into paragraph blocks.

A block is one paragraph as a reader sees it. Blocks carry a kind when the markup says
what they are (``<h2>``/``## ...`` is a heading, ``<figcaption>`` or a line in single
``*asterisks*`` is a photo caption); telling headings and captions apart from plain
lines that carry no markup is done later, in :mod:`corpus.structure`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser

TEXT = "text"
HEADING = "heading"
CAPTION = "caption"


@dataclass(frozen=True)
class Block:
    """One paragraph of an article body, with what it is (text, heading or caption)."""

    text: str
    kind: str = TEXT


@dataclass
class HtmlPage:
    """The blocks of an HTML page plus what its ``<head>`` says (title, author, date, ...)."""

    blocks: list[Block]
    meta: dict[str, str] = field(default_factory=dict)


_BLANK_LINE = re.compile(r"\n[^\S\n]*\n\s*")
_ENDS = re.compile(r"^[\s\ufeff]+|[\s\ufeff]+$")
_HTML_HINT = re.compile(
    r"<!--|<(?:p|div|br|span|a|img|h[1-6]|ul|ol|li|table|section|article|script|style|html|body)\b[^>]*>",
    re.IGNORECASE,
)


#: Characters that are invisible yet split words for every tokenizer: soft hyphen, zero-width
#: spaces and joiners, direction marks, word joiners, byte-order marks, and lone surrogates
#: (which no encoder accepts). Web text and pasted questions carry them inside words.
_INVISIBLE = re.compile(
    "[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u206a-\u206f\ufeff\ud800-\udfff]"
)


def strip_invisible(text: str) -> str:
    """``text`` without invisible format characters: articles and questions alike, so a
    word reads the same on both sides (a soft hyphen inside "com\u00adpany" or a zero-width
    space between Chinese characters made a question miss its passage)."""
    return _INVISIBLE.sub("", text)


def fold(text: str) -> str:
    """``text`` as words are compared: Unicode NFKC (full-width letters and digits become
    ASCII, ligatures split), then lower case. The lexical index tokenises this."""
    return unicodedata.normalize("NFKC", text).lower()


def comparable(text: str) -> str:
    """``text`` as a reader compares passages and answers: :func:`fold`, whitespace runs
    made one space. Two passages that are equal so are shown once; an answer string
    matches a passage that contains it so (evaluation)."""
    return " ".join(fold(text).split())


def trim(text: str) -> str:
    """Strip whitespace and stray byte-order marks at the ends only: spaces inside stay as written."""
    return _ENDS.sub("", text)


def looks_like_html(text: str) -> bool:
    """True when a Markdown/text body carries HTML markup (scraped pages often do)."""
    return bool(_HTML_HINT.search(text))


# --- Markdown and plain text ------------------------------------------------------------

_ATX_HEADING = re.compile(r"#{1,6}\s+(.+?)\s*#*")
_WHOLE_EMPHASIS = re.compile(r"\*([^*]+)\*|_([^_]+)_")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_STRONG = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")


def text_to_blocks(text: str) -> list[Block]:
    """Blocks of a plain-text or Markdown body: paragraphs are separated by blank lines.

    Line breaks inside a paragraph are kept, because some sources (XQuAD) put them
    there on purpose and answers are matched against the exact text.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    blocks = []
    for raw in _BLANK_LINE.split(text):
        block = _markdown_block(trim(raw))
        if block.text:
            blocks.append(block)
    return blocks


def _markdown_block(text: str) -> Block:
    """Read the little Markdown that articles use: headings, captions, images, links, bold."""
    if "\n" not in text and (heading := _ATX_HEADING.fullmatch(text)):
        return Block(_inline(heading[1]), HEADING)
    if image := _IMAGE.fullmatch(text):
        return Block(trim(image[1]), CAPTION)
    if emphasis := _WHOLE_EMPHASIS.fullmatch(text):
        return Block(_inline(trim(emphasis[1] or emphasis[2])), CAPTION)
    return Block(_inline(text), TEXT)


def _inline(text: str) -> str:
    """Drop inline Markdown (images, link targets, bold and italic markers), keep the words."""
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _STRONG.sub(lambda m: m[1] or m[2], text)
    return trim(_EMPHASIS.sub(r"\1", text))


# --- HTML -------------------------------------------------------------------------------

#: Elements whose content is never article text.
_SKIPPED = frozenset(
    "script style noscript template nav footer aside form iframe svg button select textarea "
    "object canvas".split()
)
#: Elements that start a new paragraph.
_BLOCKS = frozenset(
    "p div section article main header h1 h2 h3 h4 h5 h6 li ul ol blockquote pre table tr td th "
    "figure figcaption dl dt dd hr address body html caption".split()
)
_HEADINGS = frozenset("h1 h2 h3 h4 h5 h6".split())
_LINE_BREAK = "\u2028"  # stands for <br> while HTML whitespace is collapsed
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")  # ASCII only: U+3000 and NBSP are text, not markup

_META_FIELDS = {
    "og:title": "title",
    "twitter:title": "title",
    "author": "author",
    "article:author": "author",
    "dc.creator": "author",
    "article:published_time": "date",
    "datepublished": "date",
    "pubdate": "date",
    "publishdate": "date",
    "date": "date",
    "dc.date": "date",
    "og:site_name": "publisher",
    "og:url": "url",
    "content-language": "language",
}


def html_to_blocks(html: str, *, markdown: bool = False) -> HtmlPage:
    """Blocks of an HTML page without scripts, styles, comments, navigation and tags.

    The ``<head>`` (title, meta tags, canonical link, ``lang``) goes into ``meta``; the
    page's first ``<h1>`` becomes ``meta["h1"]`` so the caller can use it as the title.
    With ``markdown``, text between the tags is read as Markdown too (a .md file that
    mixes in HTML).
    """
    parser = _PageParser(markdown)
    parser.feed(html)
    parser.close()
    return HtmlPage(parser.blocks, parser.meta)


class _PageParser(HTMLParser):
    """Collects paragraph blocks and head metadata; comments are dropped by not handling them."""

    def __init__(self, markdown: bool) -> None:
        super().__init__(convert_charrefs=True)
        self._markdown = markdown
        self.blocks: list[Block] = []
        self.meta: dict[str, str] = {}
        self._skipping: list[str] = []
        self._buffer: list[str] = []
        self._kind = TEXT
        self._in_head = self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value or "" for name, value in attrs}
        if self._skipping:
            if tag == self._skipping[-1]:
                self._skipping.append(tag)
            return
        if tag in _SKIPPED:
            self._skipping.append(tag)
        elif tag == "head":
            self._in_head = True
        elif tag == "title":
            self._in_title = True
        elif tag in ("meta", "link", "html"):
            self._read_head_tag(tag, values)
        elif tag == "br":
            self._buffer.append(_LINE_BREAK)
        elif tag in _BLOCKS:
            self._flush()
            self._kind = HEADING if tag in _HEADINGS else CAPTION if tag == "figcaption" else TEXT
            if tag == "h1" and "h1" not in self.meta:
                self._kind = "h1"

    def handle_endtag(self, tag: str) -> None:
        if self._skipping:
            if tag == self._skipping[-1]:
                self._skipping.pop()
            return
        if tag == "head":
            self._in_head = False
        elif tag == "title":
            self._in_title = False
        elif tag in _BLOCKS:
            self._flush()
            self._kind = TEXT

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if self._in_title:
            self.meta["html_title"] = trim(self.meta.get("html_title", "") + data)
        elif not self._in_head:
            self._buffer.append(data)

    def close(self) -> None:
        super().close()
        self._flush()

    def _read_head_tag(self, tag: str, values: dict[str, str]) -> None:
        if tag == "html" and values.get("lang"):
            self.meta.setdefault("language", values["lang"])
        elif tag == "link" and "canonical" in values.get("rel", "").lower().split():
            self.meta.setdefault("url", values.get("href", ""))
        elif tag == "meta":
            key = (values.get("property") or values.get("name") or values.get("itemprop") or "")
            key = key or values.get("http-equiv", "")
            name = _META_FIELDS.get(key.lower())
            if name and trim(values.get("content", "")):
                self.meta.setdefault(name, trim(values["content"]))

    def _flush(self) -> None:
        """End the current paragraph: blank lines inside it (Markdown around HTML) also split."""
        text, self._buffer = "".join(self._buffer), []
        for part in _BLANK_LINE.split(text):
            part = trim(_HTML_SPACE.sub(" ", part).replace(_LINE_BREAK, "\n"))
            part = "\n".join(trim(line) for line in part.split("\n") if trim(line))
            if not part:
                continue
            if self._kind == "h1":
                self.meta["h1"] = part
                self.blocks.append(Block(part, HEADING))
            elif self._markdown and self._kind == TEXT:
                self.blocks.append(_markdown_block(part))
            else:
                self.blocks.append(Block(part, self._kind))
