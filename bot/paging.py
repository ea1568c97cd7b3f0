"""The buttons under an answer: 👍 / 👎 and "More".

Callback data is at most 64 bytes. A vote carries ``v:<question id>:<u|d>`` (the question is
in the bot's database, ``bot.feedback``). "More" carries ``p:<generation>:<key>:<page>``;
the hits stay in a bounded cache. The generation (bumped by every rebuild) tells a press on
a button from before a rebuild apart from one whose results were simply evicted.
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Lang, plain
from index.retrieval.engine import Hit

#: Answers whose pages can still be turned; the least recently used are forgotten first.
CACHE_SIZE = 1000

#: Numbers of at most 12 digits: longer ones are not ours (and int() refuses 4,300+ digits).
_CALLBACK = re.compile(r"^p:(\d{1,12}):([A-Za-z0-9_-]{1,16}):(\d{1,12})$")
CALLBACK_PATTERN = r"^p:"
_VOTE = re.compile(r"^v:(\d{1,12}):([ud])$")
VOTE_PATTERN = r"^v:"


@dataclass(frozen=True)
class Results:
    """The hits of one answer, in the language of the person who asked, and the chat it
    was given in: only presses from that chat may page through them."""

    generation: int
    language: Lang
    hits: tuple[Hit, ...]
    chat_id: int = 0
    #: The question's id in the bot's database (for the vote buttons); None if not logged.
    question_id: int | None = None


@dataclass(frozen=True)
class PageRequest:
    """A decoded button press."""

    generation: int
    key: str
    page: int


class ResultCache:
    """Recent results by short random key, bounded: an LRU of at most ``capacity`` entries."""

    def __init__(self, capacity: int = CACHE_SIZE) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, Results] = OrderedDict()

    def add(self, results: Results) -> str:
        key = secrets.token_urlsafe(6)
        self._entries[key] = results
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return key

    def get(self, key: str) -> Results | None:
        results = self._entries.get(key)
        if results is not None:
            self._entries.move_to_end(key)
        return results

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def callback_data(generation: int, key: str, page: int) -> str:
    return f"p:{generation}:{key}:{page}"


def parse_callback(data: str | None) -> PageRequest | None:
    match = _CALLBACK.match(data or "")
    if not match:
        return None
    return PageRequest(int(match[1]), match[2], int(match[3]))


def parse_vote(data: str | None) -> tuple[int, int] | None:
    """(question id, +1 or -1) of a vote button's data, None if it is not one of ours."""
    match = _VOTE.match(data or "")
    return (int(match[1]), 1 if match[2] == "u" else -1) if match else None


def keyboard(
    generation: int,
    key: str | None,
    page: int,
    pages: int,
    lang: Lang,
    question_id: int | None = None,
) -> InlineKeyboardMarkup | None:
    """👍/👎 when the answer is logged, Back/More for ``page`` of ``pages``; None when
    there is nothing to press."""
    buttons = []
    if question_id is not None:
        buttons.append(_button("vote_up_button", lang, f"v:{question_id}:u"))
        buttons.append(_button("vote_down_button", lang, f"v:{question_id}:d"))
    if key is None:
        return InlineKeyboardMarkup([buttons]) if buttons else None
    if page > 0:
        buttons.append(_button("back_button", lang, callback_data(generation, key, page - 1)))
    if page + 1 < pages:
        buttons.append(_button("more_button", lang, callback_data(generation, key, page + 1)))
    return InlineKeyboardMarkup([buttons]) if buttons else None


def _button(label: str, lang: Lang, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(plain(label, lang), callback_data=data)
