"""Logging for a long-running bot, with the token kept out of every line.

The token is part of every Bot API URL, and httpx logs each request's URL at INFO. So
httpx is turned down to WARNING, and a filter on the output handlers masks the token in
whatever record still contains it (an exception message, a third-party debug line).
"""

from __future__ import annotations

import logging
import re

from telegram.error import InvalidToken

from bot.network import TokenRejected

MASK = "<token>"


class RedactToken(logging.Filter):
    """Replaces the bot token's secret in a record's final message (and traceback) with a
    mask, in any letter case: python-telegram-bot capitalises error messages, which
    lower-cases a URL inside them (``…/bot123456:secret/sendmessage``)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        # "<bot id>:<secret>": the secret must never show, with or without the id before it.
        bot_id, _, secret = token.rpartition(":")
        prefix = f"(?:{re.escape(bot_id)}:)?" if bot_id else ""
        self._pattern = re.compile(prefix + re.escape(secret), re.IGNORECASE) if secret else None

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        message = record.getMessage()
        if self._pattern.search(message):
            record.msg, record.args = self._pattern.sub(MASK, message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._pattern.sub(MASK, record.exc_text)
        return True


class QuietRejectedToken(logging.Filter):
    """Drops python-telegram-bot's records of a token Telegram refuses, at start or mid-run,
    which carry a traceback: ``qabot run`` ends with one line of its own saying so
    (``bot.app.run``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, (InvalidToken, TokenRejected))


def quiet_http_client() -> None:
    """httpx logs every request URL, token included, at INFO: keep it to warnings."""
    logging.getLogger("httpx").setLevel(logging.WARNING)


def configure(token: str, *secrets: str) -> None:
    """Show the bot's own INFO lines, and redact the token (and ``secrets``: the webhook's,
    the database password) on every output handler."""
    bot_logger = logging.getLogger("bot")
    if bot_logger.getEffectiveLevel() > logging.INFO:
        bot_logger.setLevel(logging.INFO)
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in root.handlers:
        handler.addFilter(QuietRejectedToken())
        for secret in (token, *secrets):
            if secret:
                handler.addFilter(RedactToken(secret))
