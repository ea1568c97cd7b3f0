"""The buttons under an answer: 👍 / 👎 and "More".

Callback data is at most 64 bytes, so every button carries only the question's id in the
bot's database (``bot.feedback``): a vote ``v:<id>:<u|d>``, a page ``p:<id>:<page>``. The
answer's results are stored with the question (their rows in the index generation that
found them), so whichever replica gets the press can turn the page; a press after a
rebuild is asked to ask again, since the rows belong to the old index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Lang, plain

#: Numbers of at most 12 digits: longer ones are not ours (and int() refuses 4,300+ digits).
_PAGE = re.compile(r"^p:(\d{1,12}):(\d{1,3})$")
CALLBACK_PATTERN = r"^p:"
_VOTE = re.compile(r"^v:(\d{1,12}):([ud])$")
VOTE_PATTERN = r"^v:"


@dataclass(frozen=True)
class PageRequest:
    """A decoded "More"/"Back" press."""

    question_id: int
    page: int


def callback_data(question_id: int, page: int) -> str:
    return f"p:{question_id}:{page}"


def parse_callback(data: str | None) -> PageRequest | None:
    match = _PAGE.match(data or "")
    return PageRequest(int(match[1]), int(match[2])) if match else None


def parse_vote(data: str | None) -> tuple[int, int] | None:
    """(question id, +1 or -1) of a vote button's data, None if it is not one of ours."""
    match = _VOTE.match(data or "")
    return (int(match[1]), 1 if match[2] == "u" else -1) if match else None


def keyboard(
    question_id: int | None, page: int, pages: int, lang: Lang
) -> InlineKeyboardMarkup | None:
    """👍/👎, then Back/More for ``page`` of ``pages``; None when the question is not in the
    database (it could not be written), as then no press could be served."""
    if question_id is None:
        return None
    buttons = [
        _button("vote_up_button", lang, f"v:{question_id}:u"),
        _button("vote_down_button", lang, f"v:{question_id}:d"),
    ]
    if page > 0:
        buttons.append(_button("back_button", lang, callback_data(question_id, page - 1)))
    if page + 1 < pages:
        buttons.append(_button("more_button", lang, callback_data(question_id, page + 1)))
    return InlineKeyboardMarkup([buttons])


def _button(label: str, lang: Lang, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(plain(label, lang), callback_data=data)
