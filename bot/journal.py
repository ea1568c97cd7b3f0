"""The update journal: every update Telegram hands over is written to SQLite before it is
acknowledged, and crossed off once handled, so a bot killed mid-burst answers the rest
after a restart.

Telegram forgets an update once the next ``getUpdates`` names a higher offset, which
python-telegram-bot sends as soon as it has *received* a batch, long before the answers
are out: a kill then lost every question still queued (160 of 200 in one test). Recording
the batch first (``record``, called by ``bot.network.PollingRequest``) closes that gap.

What can still happen is an answer twice: an update whose reply went out just before a
kill, but was not yet crossed off, is answered again after the restart. ``claim`` makes
sure one process handles an update once, and that a redelivered update already done is
skipped. An update that was being handled during three crashes in a row is given up, so a
question that crashes the bot cannot keep it in a restart loop.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from typing import Any

from qabot.errors import QabotError

log = logging.getLogger(__name__)

#: Telegram keeps an unacknowledged update for 24 hours; after that it cannot come again,
#: and a question that old is not worth answering late.
KEEP_SECONDS = 24 * 3600
#: Handling attempts after which an update is given up (each one ended in a crash).
MAX_ATTEMPTS = 3

class UpdateJournal:
    """The updates of one bot (``bot_id``) in the bot's database (``bot.database``)."""

    def __init__(self, db: sqlite3.Connection, bot_id: int) -> None:
        self._db = db
        self.bot_id = bot_id
        self._claimed: set[int] = set()

    def record(self, updates: list[dict[str, Any]]) -> None:
        """Write a batch fresh from ``getUpdates`` (one transaction), before it is
        acknowledged. Updates seen before are left as they are. Raises QabotError if the
        database cannot be written."""
        now = time.time()
        rows = [(self.bot_id, u["update_id"], json.dumps(u), now) for u in updates]
        try:
            with self._db:
                self._db.executemany(
                    "INSERT OR IGNORE INTO updates (bot_id, update_id, payload, received)"
                    " VALUES (?, ?, ?, ?)",
                    rows,
                )
        except sqlite3.Error as exc:
            raise QabotError(
                f"could not record updates in the bot's database ({exc}); Telegram keeps "
                "them until this works"
            ) from exc

    def claim(self, update_id: int) -> bool:
        """True if this process should handle the update now: it is not being handled
        already and was not handled before (Telegram redelivers after a kill)."""
        if update_id in self._claimed:
            return False
        row = self._db.execute(
            "SELECT done FROM updates WHERE bot_id = ? AND update_id = ?",
            (self.bot_id, update_id),
        ).fetchone()
        if row is not None and row[0] is not None:
            return False
        self._claimed.add(update_id)
        with self._db:
            self._db.execute(
                "UPDATE updates SET attempts = attempts + 1 WHERE bot_id = ? AND update_id = ?",
                (self.bot_id, update_id),
            )
        return True

    def done(self, update_id: int) -> None:
        """The update is handled (answered, ignored as chatter, or failed with a message)."""
        with self._db:
            self._db.execute(
                "UPDATE updates SET done = ? WHERE bot_id = ? AND update_id = ?",
                (time.time(), self.bot_id, update_id),
            )
        self._claimed.discard(update_id)

    def pending(self) -> list[dict[str, Any]]:
        """Updates received but not handled, oldest first, for answering after a restart.
        Drops what is too old to matter and gives up updates that crashed the bot."""
        now = time.time()
        mine = "bot_id = ? AND done IS NULL"
        given_up = self._db.execute(
            f"SELECT update_id FROM updates WHERE {mine} AND attempts >= ?",
            (self.bot_id, MAX_ATTEMPTS),
        ).fetchall()
        with self._db:
            self._db.execute(
                "DELETE FROM updates WHERE bot_id = ? AND received < ?",
                (self.bot_id, now - KEEP_SECONDS),
            )
            self._db.execute(
                f"UPDATE updates SET done = ? WHERE {mine} AND attempts >= ?",
                (now, self.bot_id, MAX_ATTEMPTS),
            )
        for (update_id,) in given_up:
            log.warning(
                "Giving up update %d: the bot stopped %d times while handling it",
                update_id, MAX_ATTEMPTS,
            )
        rows = self._db.execute(
            f"SELECT payload FROM updates WHERE {mine} ORDER BY update_id",
            (self.bot_id,),
        ).fetchall()
        return [json.loads(payload) for (payload,) in rows]
