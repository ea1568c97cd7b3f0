"""Logging for a long-running bot, with the token kept out of every line.

The token is part of every Bot API URL, and httpx logs each request's URL at INFO. So
httpx is turned down to WARNING, and a filter on the output handlers masks the token in
whatever record still contains it (an exception message, a third-party debug line).
"""

from __future__ import annotations

import logging

MASK = "<token>"


class RedactToken(logging.Filter):
    """Replaces the bot token in a record's final message (and traceback) with a mask."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.token:
            return True
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, MASK), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self.token in record.exc_text:
            record.exc_text = record.exc_text.replace(self.token, MASK)
        return True


def quiet_http_client() -> None:
    """httpx logs every request URL, token included, at INFO: keep it to warnings."""
    logging.getLogger("httpx").setLevel(logging.WARNING)


def configure(token: str) -> None:
    """Show the bot's own INFO lines, and redact the token on every output handler."""
    bot_logger = logging.getLogger("bot")
    if bot_logger.getEffectiveLevel() > logging.INFO:
        bot_logger.setLevel(logging.INFO)
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in root.handlers:
        handler.addFilter(RedactToken(token))
