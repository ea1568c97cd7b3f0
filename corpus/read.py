"""Which files in a corpus folder are articles, and their text as a string (or why there is none)."""

from __future__ import annotations

import codecs
from pathlib import Path

from corpus.clean import strip_invisible

#: Extensions the loader reads; everything else in the folder is ignored.
ARTICLE_SUFFIXES = frozenset({".md", ".txt", ".html", ".htm", ".pdf"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
PDF_SUFFIX = ".pdf"

#: Articles larger than this are skipped with a warning unless the caller allows more: a
#: news article is tens of KB, and a 50 MB file (473,774 texts) would take ~7 hours to embed.
MAX_ARTICLE_BYTES = 2_000_000  # QABOT_MAX_ARTICLE_MB's default


class UnreadableFile(Exception):
    """The file cannot be used as an article; the message says why, for the warning."""


def find_article_files(folder: Path) -> list[Path]:
    """Article files under ``folder`` (subfolders included) in a stable order.

    Hidden files and folders (".git", ".DS_Store", editor swap files) are skipped.
    """
    return [path for path in _article_names(folder) if path.is_file()]


def find_unreadable_names(folder: Path) -> list[Path]:
    """Names under ``folder`` that look like articles but are no regular file: a link to
    nothing (its article moved), a named pipe (reading it would block), a device."""
    return [path for path in _article_names(folder) if not path.is_file() and not path.is_dir()]


def _article_names(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in ARTICLE_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def read_text(path: Path) -> str:
    """The file's text: UTF-8 (with or without BOM), or UTF-16 when it starts with a BOM; a
    PDF's text layer as Markdown with front matter (:mod:`corpus.pdf`).

    Raises UnreadableFile for empty files, binary data and bytes that are not UTF-8, so
    one bad file is reported instead of filling the index with mojibake.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UnreadableFile(f"cannot be read ({error.strerror or error})") from error
    if path.suffix.lower() == PDF_SUFFIX:
        return _pdf_text(data)
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if b"\x00" in data and not utf16:
        raise UnreadableFile("binary data (NUL bytes), not a text file")
    encoding, label = ("utf-16", "UTF-16") if utf16 else ("utf-8-sig", "UTF-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        raise UnreadableFile(
            f"not {label} text (byte 0x{data[error.start]:02x} at offset {error.start}); "
            "save it as UTF-8"
        ) from error
    text = strip_invisible(text)
    if not text.strip():
        raise UnreadableFile("empty file")
    return text


def _pdf_text(data: bytes) -> str:
    from corpus.pdf import PdfUnreadable, pdf_to_markdown

    try:
        return strip_invisible(pdf_to_markdown(data))
    except PdfUnreadable as error:
        raise UnreadableFile(str(error)) from error
