"""Talking to the Bot API through bad weather: flood limits, network errors and 5xx.

python-telegram-bot's ``AIORateLimiter`` throttles requests and waits out a 429's
``retry_after``, but it gives up on the first network error, and the library turns every
5xx answer into a ``NetworkError`` too. Subclassing the limiter (the hook PTB provides for
exactly this) adds a few retries with backoff, so a hiccup delays a reply instead of
losing it.
"""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import BadRequest, NetworkError, TimedOut
from telegram.ext import AIORateLimiter
from telegram.request import HTTPXRequest

from qabot.errors import QabotError

log = logging.getLogger(__name__)

JSONResult = bool | dict[str, Any] | list[dict[str, Any]]

#: Seconds to wait for Telegram. Its answers take well under a second, but seconds under
#: load: with python-telegram-bot's 5 s read timeout a send that took 5-7 s was delivered
#: *and* reported as failed. A timeout now means Telegram is really stuck.
TIMEOUTS = {"connect_timeout": 10.0, "read_timeout": 30.0, "write_timeout": 30.0, "pool_timeout": 10.0}

#: httpx errors raised before Telegram could have the whole request (no connection, or the
#: request not fully written): Telegram cannot have carried it out, so it is safe to repeat.
NEVER_SENT = (
    httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteError, httpx.WriteTimeout
)

#: Calls that are harmless to repeat when a timeout leaves it unknown whether Telegram got
#: them. Sending a message is not among them: a retry could post the answer twice.
IDEMPOTENT = frozenset(
    {
        "answerCallbackQuery",
        "deleteWebhook",
        "editMessageText",
        "getMe",
        "getMyCommands",
        "sendChatAction",
        "setMyCommands",
    }
)


class RetryingRateLimiter(AIORateLimiter):
    """``AIORateLimiter`` that also retries network errors and 5xx answers, with backoff."""

    def __init__(self, *, network_retries: int = 4, backoff: float = 0.5, **limits: Any) -> None:
        super().__init__(**limits)
        self.network_retries = network_retries
        self.backoff = backoff

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSONResult]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> JSONResult:
        attempt = 0
        while True:
            try:
                return await super().process_request(
                    callback, args, kwargs, endpoint, data, rate_limit_args
                )
            except BadRequest:  # a NetworkError subclass, but repeating it cannot help
                raise
            except NetworkError as exc:
                if attempt >= self.network_retries or not safe_to_repeat(exc, endpoint):
                    raise
                delay = self.backoff * 2**attempt
                attempt += 1
                log.warning(
                    "%s failed (%s); retry %d of %d in %.1f s",
                    endpoint,
                    exc,
                    attempt,
                    self.network_retries,
                    delay,
                )
                await asyncio.sleep(delay)


class TokenRejected(NetworkError):
    """Telegram answered ``getUpdates`` with 401/404: the token was revoked, or the bot
    deleted, while it ran.

    Raised instead of letting python-telegram-bot raise its ``InvalidToken`` there: that
    one ends its polling task with the exception, which its shutdown re-raises before it
    stops the application, so the process exited with its tasks destroyed mid-flight (a
    traceback on stderr, after ten seconds). A network error keeps the polling loop backing
    off until ``on_rejected`` has stopped the bot, which then shuts down in order.
    """


class PollingRequest(HTTPXRequest):
    """The HTTP client of ``getUpdates`` (one connection, as python-telegram-bot's default),
    the one place that sees each batch of updates before python-telegram-bot does.

    ``on_updates`` gets every batch first, to record it durably (``bot.journal``): the next
    ``getUpdates`` acknowledges it, and Telegram then forgets it. If recording fails, the
    batch is not handed on, so Telegram keeps it and sends it again.

    ``on_rejected`` hears when Telegram stops accepting the token mid-run (401/404), and
    the request raises :class:`TokenRejected`. python-telegram-bot would end its polling
    loop but keep the process alive and silent, so a supervisor's restart policy never
    fires; ``getUpdates`` bypasses the rate limiter, so this is where the answer can be seen.
    """

    def __init__(
        self,
        on_updates: Callable[[list[dict[str, Any]]], None],
        on_rejected: Callable[[], None],
        **options: Any,
    ) -> None:
        super().__init__(connection_pool_size=1, **options)
        self.on_updates = on_updates
        self.on_rejected = on_rejected

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        code, payload = await super().do_request(*args, **kwargs)
        if code in (401, 404):
            self.on_rejected()
            raise TokenRejected("Telegram no longer accepts the bot's token")
        if code == 200 and (updates := _updates_in(payload)):
            try:
                self.on_updates(updates)
            except QabotError as exc:  # the polling loop backs off and logs one line
                raise NetworkError(str(exc)) from exc
        return code, payload


def _updates_in(payload: bytes) -> list[dict[str, Any]]:
    """The updates in a ``getUpdates`` answer (python-telegram-bot reports a garbled one)."""
    try:
        result = json.loads(payload).get("result")
    except (ValueError, AttributeError):
        return []
    return result if isinstance(result, list) else []


def safe_to_repeat(exc: NetworkError, endpoint: str) -> bool:
    """Repeat a call only if that cannot do it twice: it is idempotent, Telegram answered
    with an error (5xx: not carried out), or the request never left (connect phase). A send
    whose connection broke or timed out afterwards may have been delivered: not repeated."""
    if endpoint in IDEMPOTENT:
        return True
    cause = exc.__cause__
    if cause is None:  # an HTTP answer from Telegram (python-telegram-bot raises 5xx so)
        return not isinstance(exc, TimedOut)
    return isinstance(cause, NEVER_SENT)
