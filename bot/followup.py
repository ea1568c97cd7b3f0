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

from bot.feedback import FeedbackStore
from corpus.language import HAN

#: The most words (English) or Chinese characters plus words a private follow-up may have.
FOLLOW_UP_WORDS = 6
FOLLOW_UP_CJK = 12
#: How long after an answer a short question in the same private chat continues it.
WINDOW_SECONDS = 600

_WORD = re.compile(r"[A-Za-z0-9]+")


def may_follow_up(question: str) -> bool:
    """Whether a question is short enough to read as a follow-up (not the fusion's "short
    question" of one or two words)."""
    han = len(HAN.findall(question))
    words = len(_WORD.findall(question))
    return han + words <= FOLLOW_UP_CJK if han else words <= FOLLOW_UP_WORDS


def continued(
    log: FeedbackStore, chat_id: int, question: str, *, private: bool, replied_to: int | None
) -> str | None:
    """The article a question continues, or None when it stands alone. ``log``: the question
    log, where every answer's article and message are (so any replica knows them)."""
    if replied_to is not None:
        return log.article_answered_by(chat_id, replied_to)
    if private and may_follow_up(question):
        return log.latest_article(chat_id, since=time.time() - WINDOW_SECONDS)
    return None
