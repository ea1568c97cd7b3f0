"""Which language an article is in: the front matter says so, or the share of Chinese characters decides.

qabot serves English and Chinese only, so every document ends up as "en" or "zh".
"""

from __future__ import annotations

import re

#: Han ideographs (CJK Unified Ideographs, Extension A, compatibility forms, Extension B+),
#: as a character-class body: the one definition of "a Chinese character" in qabot.
HAN_CHARACTERS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
HAN = re.compile(f"[{HAN_CHARACTERS}]")
_LATIN_LETTER = re.compile("[A-Za-z]")

#: A text is Chinese when at least this share of its letters are Han characters. Chinese
#: articles keep Latin names and numbers (e.g. "BskyB宣布"), so a majority is not needed;
#: English articles rarely carry more than a stray Chinese name.
ZH_SHARE = 0.3

_ALIASES = {
    "en": "en",
    "eng": "en",
    "english": "en",
    "zh": "zh",
    "zho": "zh",
    "chi": "zh",
    "cn": "zh",
    "chinese": "zh",
    "中文": "zh",
    "汉语": "zh",
    "英文": "en",
}


def han_share(text: str) -> float:
    """Share of Han characters among the letters of ``text`` (0.0 when it has no letters)."""
    han = len(HAN.findall(text))
    latin = len(_LATIN_LETTER.findall(text))
    return han / (han + latin) if han + latin else 0.0


def detect_language(text: str) -> str:
    """Guess "zh" or "en" from the text, for files whose metadata does not say."""
    return "zh" if han_share(text) >= ZH_SHARE else "en"


def normalize_language(value: str) -> str:
    """Map a front-matter language tag ("zh-CN", "English", "en_US") to "en"/"zh"; "" if neither."""
    tag = value.strip().lower().replace("_", "-")
    return _ALIASES.get(tag) or _ALIASES.get(tag.split("-")[0], "")
