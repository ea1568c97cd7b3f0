"""Where a sentence ends, in Chinese and English text, so long paragraphs are cut only between sentences.

Chinese sentences end at 。！？；… (plus any closing quote or bracket). English ones end
at . ! ? followed by a space and a capital, digit, quote or Chinese character, but not
after abbreviations such as "No." or "Mr.", initials like "J.", or inside "1.52".
"""

from __future__ import annotations

import re

_CLOSERS = "\"'”’」』）)】\\]"
_CJK_END = re.compile(rf"[。！？；…]+[{_CLOSERS}]*\s*")
_LATIN_END = re.compile(
    rf"(?P<word>[^\s]*?)(?P<mark>[.!?]+)[{_CLOSERS}]*\s+(?=[A-Z0-9\"'“‘(\[\u3400-\u9fff])"
)

#: Words that end with a period without ending the sentence (compared in lower case).
ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt no nos vol fig figs pp p approx ca cf vs al
    co corp inc ltd bros dept est gen gov sen rep col lt sgt capt cmdr adm rev hon
    jan feb mar apr jun jul aug sep sept oct nov dec""".split()
)


def sentence_ends(text: str) -> list[int]:
    """Offsets just after each sentence end (trailing spaces included), the last one ``len(text)``.

    Cutting ``text`` at these offsets loses nothing: the pieces join back to the text.
    """
    ends = {m.end() for m in _CJK_END.finditer(text)}
    ends.update(m.end() for m in _LATIN_END.finditer(text) if _ends_sentence(m))
    ends.discard(0)
    ends.add(len(text))
    return sorted(ends)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences in ``text``, surrounding whitespace excluded and
    blank pieces dropped: what the index embeds per sentence and the highlight picks from."""
    spans, start = [], 0
    for end in sentence_ends(text):
        span = _strip(text, start, end)
        if span[0] < span[1]:
            spans.append(span)
        start = end
    return spans


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (the texts of :func:`sentence_spans`)."""
    return [text[start:end] for start, end in sentence_spans(text)]


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _ends_sentence(match: re.Match[str]) -> bool:
    """False for "No. 5", "Mr. Liu", "U.S. Army" and "J. Smith": a period that closes a word."""
    if match["mark"] != ".":  # "!", "?", "..." always end a sentence
        return True
    word = match["word"].lstrip("\"'“‘([")
    if "." in word:  # U.S, e.g, i.e
        return False
    if len(word) == 1 and word.isalpha() and word.isupper():  # an initial
        return False
    return word.lower() not in ABBREVIATIONS
