"""Tell body text from headings and photo captions in blocks that carry no markup (scraped text).

Headings and captions are kept only as context of the passages next to them: a
passage that is just "Minzhucun community. (Photo/Jiulongpo District)" or "Metallurgical
industry" would be a useless search hit.
"""

from __future__ import annotations

import re

from corpus.clean import CAPTION, HEADING, TEXT, Block
from corpus.language import HAN, han_share
from corpus.tokens import estimate_tokens

#: A heading is one line of at most this many estimated tokens with no sentence-ending mark.
HEADING_MAX_TOKENS = 50
#: Longest bare Chinese caption, in characters ("武汉万众创城项目效果图。").
CAPTION_MAX_CHARS = 40

_SENTENCE_END = re.compile(r"[.。!！?？…;；:：,，、][\"'”’」』)）\]】]*$")
_PHOTO_CREDIT = re.compile(
    r".*[(（\[【]\s*(?:photos?|images?|pic|图|图片|摄影|供图)\s*(?:/|:|：|by\b).{0,60}[)）\]】]"
    r"|.*[(（][^()（）]{1,30}摄[)）]"
    r"|(?:photos?\s*[:：/]|图为|图\s*[:：/]).{1,200}",
    re.IGNORECASE,
)
_CLAUSE_MARK = re.compile(r"[，、；：,;:！？!?]")


def join_broken_lines(blocks: list[Block]) -> list[Block]:
    """Glue Chinese paragraphs that a page layout broke mid-sentence ("亿元以上" / "新兴产业项目...").

    A Chinese block that ends in a Han character after a comma clause has not ended its
    sentence, so the next block that starts with a Han character is its continuation.
    """
    joined: list[Block] = []
    for block in blocks:
        previous = joined[-1] if joined else None
        if previous and _is_broken(previous) and block.kind == TEXT and HAN.match(block.text):
            joined[-1] = Block(previous.text + block.text, TEXT)
        else:
            joined.append(block)
    return joined


def _is_broken(block: Block) -> bool:
    last_line = block.text.rsplit("\n", 1)[-1]
    return block.kind == TEXT and bool(HAN.fullmatch(last_line[-1])) and "，" in last_line


def label_blocks(blocks: list[Block]) -> list[Block]:
    """Mark plain blocks that look like headings or photo captions.

    If nothing would be left as text (a one-line note), the guesses are dropped: a file
    always keeps its words as passages unless its markup says otherwise.
    """
    labelled = [Block(b.text, _guess_kind(b.text)) if b.kind == TEXT else b for b in blocks]
    if any(b.kind == TEXT for b in labelled):
        return labelled
    return blocks


def _guess_kind(text: str) -> str:
    if "\n" in text:
        return TEXT
    if is_caption(text):
        return CAPTION
    if estimate_tokens(text) <= HEADING_MAX_TOKENS and not _SENTENCE_END.search(text):
        return HEADING
    return TEXT


def is_caption(line: str) -> bool:
    """True for a photo caption: a photo credit "(Photo/...)", "（新华社记者 张三 摄）", or a
    short Chinese line of one clause ending in 。 ("青山江滩。"), which body prose never is."""
    if _PHOTO_CREDIT.fullmatch(line):
        return True
    return (
        han_share(line) > 0.5
        and len(line) <= CAPTION_MAX_CHARS
        and line.endswith("。")
        and line.count("。") == 1
        and not _CLAUSE_MARK.search(line)
    )
