"""The two records that flow out of the corpus stage: an article and a passage of it."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Document:
    """One article and what is known about it. Unknown fields stay empty, never guessed."""

    doc_id: str  # stable id: the file name without its extension
    title: str
    publisher: str = ""
    author: str = ""
    date: str = ""  # ISO 8601 (YYYY-MM-DD) when the text gives a full date
    language: str = ""  # "en" or "zh"
    url: str = ""
    source_file: str = ""  # file name inside the corpus folder

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Passage:
    """A retrievable unit: a paragraph (or a sentence-aligned piece of a long one)."""

    doc_id: str
    paragraph: int  # 1-based number of the paragraph in its article, as a reader counts
    text: str  # what is shown and cited
    language: str
    context: str = ""  # heading/caption next to it: embedded with the text, never shown alone

    @property
    def indexed_text(self) -> str:
        """What the passage is embedded and BM25-indexed as: its context, then its text."""
        return f"{self.context}\n{self.text}" if self.context else self.text

    def to_dict(self) -> dict:
        return asdict(self)
