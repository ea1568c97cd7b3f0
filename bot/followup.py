"""Follow-up questions: "And the district head?" after an answer about Jiulongpo's party
secretary is about Jiulongpo.

A question continues the article of an earlier answer when it replies to that answer (in
private chats and groups), or, in a private chat, when it is short (at most
:data:`FOLLOW_UP_WORDS` words, or :data:`FOLLOW_UP_CJK` Chinese characters and words) and comes
within :data:`WINDOW_SECONDS` of the last answer. The engine then prefers the question's own
best passage in that article (``Engine.ask(within=...)``). A longer question, or one asked
later, stands alone: measured on the dev sets after an unrelated question, standalone
answers did not change (docs/benchmarks-followups.md).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict

from corpus.language import HAN

#: The most words (English) or Chinese characters plus words a private follow-up may have.
FOLLOW_UP_WORDS = 6
FOLLOW_UP_CJK = 12
#: How long after an answer a short question in the same private chat continues it.
WINDOW_SECONDS = 600
#: Answers remembered for replies, per bot process (the least recent are forgotten).
REMEMBERED = 5000

_WORD = re.compile(r"[A-Za-z0-9]+")


def may_follow_up(question: str) -> bool:
    """Whether a question is short enough to read as a follow-up (not the fusion's "short
    question" of one or two words)."""
    han = len(HAN.findall(question))
    words = len(_WORD.findall(question))
    return han + words <= FOLLOW_UP_CJK if han else words <= FOLLOW_UP_WORDS


class FollowUps:
    """Which article each recent answer came from: by chat (the last one) and by the answer's
    message (for replies)."""

    def __init__(self, capacity: int = REMEMBERED) -> None:
        self.capacity = capacity
        self._by_message: OrderedDict[tuple[int, int], str] = OrderedDict()
        self._last: OrderedDict[int, tuple[str, float]] = OrderedDict()

    def remember(self, chat_id: int, message_id: int, document: str) -> None:
        """An answer from ``document`` was sent as ``message_id`` in ``chat_id``."""
        self._by_message[(chat_id, message_id)] = document
        self._last[chat_id] = (document, time.monotonic())
        self._last.move_to_end(chat_id)
        for entries in (self._by_message, self._last):
            while len(entries) > self.capacity:
                entries.popitem(last=False)

    def continued(
        self, chat_id: int, question: str, *, private: bool, replied_to: int | None
    ) -> str | None:
        """The article a question continues, or None when it stands alone."""
        if replied_to is not None:
            return self._by_message.get((chat_id, replied_to))
        last = self._last.get(chat_id)
        if private and last and time.monotonic() - last[1] <= WINDOW_SECONDS and may_follow_up(question):
            return last[0]
        return None
