"""Site chrome that scraped pages drag along: lines to drop before an article is cut into passages.

Each pattern must match a whole line (case-insensitive). Only short lines are tested,
so a real paragraph that merely mentions "copyright" or "cookies" is never dropped.
Add a pattern here when a new site leaves its navigation or footer in the text.
"""

from __future__ import annotations

import re

from corpus.clean import Block, trim

#: Lines longer than this are article text, whatever they contain.
MAX_CHROME_CHARS = 200

_PATTERNS = [
    # share / print / navigation widgets: nothing but these words ("Email Message TOP")
    r"(?:e-?mail|print|share|message|top|wechat|weibo|facebook|twitter|linkedin|whatsapp"
    r"|comments?|favou?rites?|font|size|a\+|a-|back|[-|/·•>»\s])+",
    r"(?:current position|you are here|location|当前位置|您的位置|所在位置)\s*[:：].*",
    r"(?:home|首页)\s*[>»/].*",
    r"(?:about us|contact us|site ?map|\s)+",
    r"leaving a message|leave a message|read more|more news|related (?:news|stories|articles)",
    r"(?:上一篇|下一篇|相关阅读|相关新闻|推荐阅读|延伸阅读)\s*[:：]?.*",
    # legal footers
    r"copyright\b.*|©.*|.*\ball rights reserved\b.*|.*版权所有.*",
    r".*\bICP\s*[备证].*|.*公网安备.*|.*互联网新闻信息服务许可证.*",
    r"internet illegal and undesirable information.*|.*违法和不良信息举报.*",
    # cookie and privacy banners
    r"i agree|i accept|accept(?: all)? cookies|.*\bprivacy (?:statement|policy)\b.*",
    r"by continuing to (?:browse|use) (?:our|this) (?:site|website).*|.*\bcookie (?:policy|settings)\b.*",
    r"for any inquiries,? please e-?mail.*",
    # newsroom credits that are not the author (the author is read in corpus.metadata)
    r"(?:原标题|责任编辑|编辑|校对|审核|审校|监制|策划|统筹|供图|摄影|图片|视频|制图|设计)\s*[:：].*",
    r".*尽在.{0,12}APP|(?:扫码|扫描二维码|长按识别).*",
    # site slogans seen in the seed pages (iChongqing's footer)
    r"new era, new journey, new chongqing",
]
_CHROME = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE)


def is_boilerplate(line: str) -> bool:
    """True for a line of site chrome (navigation, share buttons, legal footer, cookie banner)."""
    line = trim(line)
    return len(line) <= MAX_CHROME_CHARS and bool(_CHROME.fullmatch(line))


def drop_boilerplate(blocks: list[Block]) -> list[Block]:
    """The blocks with chrome lines removed; a block left empty disappears."""
    kept = []
    for block in blocks:
        lines = [line for line in block.text.split("\n") if not is_boilerplate(line)]
        text = trim("\n".join(lines))
        if text:
            kept.append(Block(text, block.kind))
    return kept
