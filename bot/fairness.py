"""Fairness under load: one person's flood of questions must not hold up everyone else.

Each user may ask :data:`MAX_QUESTIONS` questions per :data:`WINDOW_SECONDS`. The first
question over that gets one short message saying how long to wait; further ones in the same
window are skipped silently (the message said so) and cost no embedding or search, so the
other chats' answers go on at full speed. Commands, buttons and other chats are unaffected.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict, deque

#: Questions one user may ask per window (a person reading answers asks far fewer).
MAX_QUESTIONS = 5
WINDOW_SECONDS = 20.0
#: Users tracked at once (the least recent are forgotten).
TRACKED = 10_000


class Turn(enum.Enum):
    """What to do with a user's question."""

    ANSWER = "answer"
    #: Over the limit: say so once.
    SLOW_DOWN = "slow_down"
    #: Over the limit, already told.
    SKIP = "skip"


class QuestionLimiter:
    """A sliding window of recent questions per user."""

    def __init__(self, limit: int = MAX_QUESTIONS, window: float = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._asked: OrderedDict[int, deque[float]] = OrderedDict()
        self._told: dict[int, float] = {}

    def turn(self, user_id: int) -> Turn:
        now = time.monotonic()
        asked = self._asked.setdefault(user_id, deque())
        self._asked.move_to_end(user_id)
        while asked and now - asked[0] >= self.window:
            asked.popleft()
        if len(self._asked) > TRACKED:
            forgotten, _ = self._asked.popitem(last=False)
            self._told.pop(forgotten, None)
        if len(asked) < self.limit:
            asked.append(now)
            return Turn.ANSWER
        if now - self._told.get(user_id, -self.window) < self.window:
            return Turn.SKIP
        self._told[user_id] = now
        return Turn.SLOW_DOWN

    def wait_seconds(self, user_id: int) -> int:
        """Seconds until this user's next question is answered again."""
        asked = self._asked.get(user_id)
        if not asked:
            return 0
        return max(1, round(self.window - (time.monotonic() - asked[0])))
