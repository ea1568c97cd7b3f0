"""Which sentence of a passage answers the question: the one the bot and CLI put in bold."""

from __future__ import annotations

import re

import numpy as np

from index.embed import Embedder

# A sentence ends after Chinese end punctuation, or after . ! ? followed by a space or the
# end (so "3.5" and "No.1" stay whole), with any closing quotes or brackets kept with it.
_SENTENCE_END = re.compile(r"""[。！？；…]+["'”’」』）)]*\s*|[.!?]+["'”’)]*(?:\s+|$)""")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences in ``text``, surrounding whitespace excluded."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return [_strip(text, a, b) for a, b in spans if text[a:b].strip()]


def best_sentence(embedder: Embedder, query: np.ndarray, text: str) -> tuple[int, int] | None:
    """The span of the sentence most similar to the question vector, or None for no text."""
    spans = sentence_spans(text)
    if len(spans) <= 1:
        return spans[0] if spans else None
    vectors = embedder.embed_passages([text[a:b] for a, b in spans])
    return spans[int(np.argmax(vectors @ query))]


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
