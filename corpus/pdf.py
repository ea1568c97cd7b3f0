"""The text of a PDF article, as the Markdown-with-front-matter the rest of the reader parses.

PDF has no paragraphs, only glyphs placed on pages. pypdf's layout mode keeps the page's
vertical gaps as blank lines, so a gap between paragraphs becomes a blank line and the
lines of one paragraph are joined again here (with a space in Latin text, with nothing
between two Chinese characters). A bare page number is dropped; a paragraph cut by a page
break (its last line has no sentence end) is joined with the next page's first one. The
document title (and author) from the PDF's metadata go into front matter.

Only PDFs with a text layer can be read: a scan is reported as such, not indexed empty.
"""

from __future__ import annotations

import io
import json
import logging
import re

from corpus.language import HAN

#: A paragraph that ends in one of these has ended; otherwise a page break cut it.
_SENTENCE_END = re.compile(r"[.!?。！？…:：;；\"'”’)）」』]$")
_PAGE_NUMBER = re.compile(r"(?:page\s*)?\d{1,4}(?:\s*(?:/|of)\s*\d{1,4})?|[-–—]\s*\d{1,4}\s*[-–—]|第\s*\d{1,4}\s*页", re.I)
_SPACES = re.compile(r"[^\S\n]{2,}")
_BLANK = re.compile(r"\n[^\S\n]*\n\s*")


class PdfUnreadable(ValueError):
    """The bytes are not a PDF whose text can be read; the message says why."""


def pdf_to_markdown(data: bytes) -> str:
    """The article in ``data`` (a PDF file) as front matter plus paragraphs separated by blank lines."""
    from pypdf import PdfReader  # imported here: only PDF articles pay for it

    # pypdf logs what it finds wrong ("invalid pdf header", "EOF marker not found") before
    # it raises; the reader's own warning names the file and says it was skipped.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise PdfUnreadable("a password-protected PDF; save it without the password")
        pages = [page.extract_text(extraction_mode="layout") for page in reader.pages]
        meta = reader.metadata or {}
        fields = {"title": meta.get("/Title"), "author": meta.get("/Author")}
    except PdfUnreadable:
        raise
    except Exception as error:  # pypdf raises many kinds for a broken file
        raise PdfUnreadable(f"not a readable PDF ({type(error).__name__}: {error})"[:200]) from error
    paragraphs = _paragraphs(pages)
    if not paragraphs:
        raise PdfUnreadable("a PDF without a text layer (a scan?); run it through OCR first")
    front = "".join(
        f"{key}: {json.dumps(str(value).strip(), ensure_ascii=False)}\n"
        for key, value in fields.items()
        if value and str(value).strip()
    )
    body = "\n\n".join(paragraphs) + "\n"
    return f"---\n{front}---\n\n{body}" if front else body


def _paragraphs(pages: list[str]) -> list[str]:
    paragraphs: list[str] = []
    for page in pages:
        found = [_joined_lines(chunk) for chunk in _BLANK.split(page)]
        found = [p for p in found if p and not _PAGE_NUMBER.fullmatch(p)]
        if found and paragraphs and not _SENTENCE_END.search(paragraphs[-1]):
            paragraphs[-1] = _join(paragraphs[-1], found.pop(0))
        paragraphs.extend(found)
    return paragraphs


def _joined_lines(chunk: str) -> str:
    text = ""
    for line in chunk.splitlines():
        line = _SPACES.sub(" ", line).strip()
        if line:
            text = _join(text, line) if text else line
    return text


def _join(before: str, after: str) -> str:
    """Two pieces of one paragraph: no space between Chinese characters or after a hyphen."""
    if (HAN.match(before[-1]) and HAN.match(after[0])) or before.endswith("-"):
        return before + after
    return f"{before} {after}"
