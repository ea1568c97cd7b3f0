"""The update journal: every update Telegram hands over is written to the bot's database
before it is acknowledged, and crossed off once handled, so a bot killed mid-burst answers
the rest after a restart.

Telegram forgets an update once the next ``getUpdates`` names a higher offset, which
python-telegram-bot sends as soon as it has *received* a batch, long before the answers
are out: a kill then lost every question still queued (160 of 200 in one test). Recording
the batch first (``record``, called by ``bot.network.PollingRequest``, or by the webhook
before it answers Telegram's POST) closes that gap.

What can still happen is an answer twice: an update whose reply went out just before a
kill, but was not yet crossed off, is answered again after the restart. ``claim`` makes
sure one replica handles an update once (it is one conditional UPDATE, so two replicas
sharing a PostgreSQL journal cannot both win), and that a redelivered update already done
is skipped. An update that was being handled during three crashes in a row is given up, so
a question that crashes the bot cannot keep it in a restart loop.

Replicas: each claim names its owner (``QABOT_REPLICA``, the host name by default). At
start a replica takes back what it had claimed before it stopped, and what any replica
claimed more than :data:`STALE_CLAIM_SECONDS` ago and never finished (that replica died).
While running, every :data:`ADOPT_INTERVAL` seconds it also takes updates that were
recorded that long ago and never claimed: a replica stopped with them still queued (a
stop lets only the updates in hand finish), and may not come back (scaled down).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import sqlalchemy as sa
from telegram import Bot, Update

from bot.database import Database, describe_error, insert
from bot.schema import updates
from qabot.errors import QabotError

log = logging.getLogger(__name__)

#: Telegram keeps an unacknowledged update for 24 hours; after that it cannot come again,
#: and a question that old is not worth answering late.
KEEP_SECONDS = 24 * 3600
#: Handling attempts after which an update is given up (each one ended in a crash).
MAX_ATTEMPTS = 3
#: A claim this old whose update is not done was left by a replica that stopped: another
#: may take it over at its start. Answering takes milliseconds; a rebuild minutes.
STALE_CLAIM_SECONDS = 600
#: Seconds between looks for updates another replica recorded and left unclaimed.
ADOPT_INTERVAL = 30.0


class UpdateJournal:
    """The updates of one bot (``bot_id``) in the bot's database, handled by ``owner``."""

    def __init__(self, database: Database, bot_id: int, owner: str = "local") -> None:
        self._database = database
        self.bot_id = bot_id
        self.owner = owner
        self._claimed: set[int] = set()

    def record(self, batch: list[dict[str, Any]]) -> set[int]:
        """Write a batch fresh from Telegram (one transaction), before it is acknowledged;
        returns the ids not seen before (a redelivery is left as it is). Raises QabotError
        if the database cannot be written."""
        if not batch:
            return set()
        now = time.time()
        rows = [
            {"bot_id": self.bot_id, "update_id": u["update_id"], "payload": json.dumps(u),
             "received": now}
            for u in batch
        ]
        statement = (
            insert(self._database, updates).on_conflict_do_nothing().returning(updates.c.update_id)
        )
        try:
            with self._database.begin() as connection:
                return {
                    row.update_id
                    for chunk in _chunks(rows, 100)
                    for row in connection.execute(statement.values(chunk))
                }
        except sa.exc.SQLAlchemyError as exc:
            raise QabotError(
                f"could not record updates in the bot's database ({describe_error(exc)}); Telegram "
                "keeps them until this works"
            ) from exc

    def claim(self, update_id: int) -> bool:
        """True if this replica should handle the update now: nobody is handling it and it
        was not handled before (Telegram redelivers after a kill, or to another replica)."""
        if update_id in self._claimed:
            return False
        now = time.time()
        mine = (updates.c.bot_id == self.bot_id) & (updates.c.update_id == update_id)
        free = sa.or_(
            updates.c.owner.is_(None),
            updates.c.owner == self.owner,
            updates.c.claimed < now - STALE_CLAIM_SECONDS,
        )
        with self._database.begin() as connection:
            won = connection.execute(
                updates.update()
                .where(mine & updates.c.done.is_(None) & free)
                .values(attempts=updates.c.attempts + 1, owner=self.owner, claimed=now)
            ).rowcount
            recorded = won or connection.execute(sa.select(updates.c.done).where(mine)).first()
        if not won and recorded is not None:
            return False
        self._claimed.add(update_id)  # claimed here, or never recorded (nothing to share)
        return True

    def done(self, update_id: int) -> None:
        """The update is handled (answered, ignored as chatter, or failed with a message)."""
        with self._database.begin() as connection:
            connection.execute(
                updates.update()
                .where((updates.c.bot_id == self.bot_id) & (updates.c.update_id == update_id))
                .values(done=time.time())
            )
        self._claimed.discard(update_id)

    def pending(self, received_before: float | None = None) -> list[dict[str, Any]]:
        """Updates received (before ``received_before``, if given) but not handled that this
        replica may take, oldest first, for answering after a (re)start or when another
        replica left them. Drops what is too old to matter and gives up updates that crashed
        the bot."""
        now = time.time()
        waiting = (updates.c.bot_id == self.bot_id) & updates.c.done.is_(None) & sa.or_(
            updates.c.owner.is_(None),
            updates.c.owner == self.owner,
            updates.c.claimed < now - STALE_CLAIM_SECONDS,
        )
        if received_before is not None:
            waiting = waiting & (updates.c.received < received_before)
        crashed = waiting & (updates.c.attempts >= MAX_ATTEMPTS)
        with self._database.begin() as connection:
            given_up = connection.execute(sa.select(updates.c.update_id).where(crashed)).scalars().all()
            connection.execute(
                updates.delete().where(
                    (updates.c.bot_id == self.bot_id) & (updates.c.received < now - KEEP_SECONDS)
                )
            )
            connection.execute(updates.update().where(crashed).values(done=now))
            payloads = connection.execute(
                sa.select(updates.c.payload).where(waiting).order_by(updates.c.update_id)
            ).scalars().all()
        for update_id in given_up:
            log.warning(
                "Giving up update %d: the bot stopped %d times while handling it",
                update_id, MAX_ATTEMPTS,
            )
        return [json.loads(payload) for payload in payloads]


class NotAnUpdate(ValueError):
    """A payload python-telegram-bot cannot read as an update (the message says why)."""


def parse_update(payload: Any, bot: Bot) -> Update:
    """``payload`` (decoded JSON) as an Update; NotAnUpdate when it has no numeric
    ``update_id`` or python-telegram-bot cannot read its parts (a message that is a number:
    it raises one of several errors). A part of the wrong type that still parses (a text
    that is a number) passes here and fails in its handler, which apologises."""
    update_id = payload.get("update_id") if isinstance(payload, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise NotAnUpdate("update_id is not a number")
    try:
        return Update.de_json(payload, bot)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise NotAnUpdate(f"update {update_id}: {exc}") from None


def _chunks(rows: list, size: int) -> list[list]:
    return [rows[start : start + size] for start in range(0, len(rows), size)]
