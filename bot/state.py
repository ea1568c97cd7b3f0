"""What the running bot shares between handlers: the engine, the question log, counters."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from telegram import User
from telegram.ext import CallbackContext

from bot.fairness import QuestionLimiter
from bot.feedback import FeedbackStore
from bot.metrics import Metrics
from index.retrieval.engine import Answer, Engine
from qabot.memory import release_freed_memory
from qabot.settings import Settings

_KEY = "qabot"


@dataclass
class BotState:
    """Kept in ``application.bot_data``. Only the event loop thread touches it."""

    settings: Settings
    engine: Engine
    #: The question log and votes (bot.feedback).
    feedback: FeedbackStore
    #: Rebuilt indexes swapped in since the start.
    generation: int = 0
    #: How many questions each user may ask per window (bot.fairness).
    limiter: QuestionLimiter = field(default_factory=QuestionLimiter)
    #: Each user's latest inline query id (bot.inline debounces typing with it).
    inline_latest: dict[int, str] = field(default_factory=dict)
    rebuilding: bool = False
    #: What /metrics shows (bot.metrics).
    metrics: Metrics = field(default_factory=Metrics)
    #: The task that follows rebuilds made outside the bot (bot.watch), while running.
    watcher: asyncio.Task | None = None

    async def ask(self, question: str, top_k: int, within: str | None = None) -> Answer:
        """Search off the event loop: embedding is CPU-bound and must not stall other chats.
        ``within``: the article a follow-up continues (bot.followup)."""
        started = time.perf_counter()
        answer = await asyncio.to_thread(self.engine.ask, question, top_k, within=within)
        self.metrics.answered(answer.answered, time.perf_counter() - started)
        return answer

    def is_admin(self, user: User | None) -> bool:
        """Whether ``user`` may run admin commands (``QABOT_ADMIN_IDS``)."""
        return user is not None and user.id in self.settings.admin_ids

    def swap(self, engine: Engine) -> None:
        """Answer from ``engine`` from now on; results of the old index can no longer be paged.

        What the old index and a rebuild freed goes back to the system."""
        self.engine = engine
        self.generation += 1
        self.metrics.serving(engine.generation)
        release_freed_memory()

    def install(self, bot_data: dict) -> None:
        self.metrics.serving(self.engine.generation)
        bot_data[_KEY] = self


def state_of(context: CallbackContext) -> BotState:
    return state_in(context.bot_data)


def state_in(bot_data: dict) -> BotState:
    return bot_data[_KEY]
