"""The bot's tables, and the migrations that build them, for SQLite and PostgreSQL alike.

The tables are SQLAlchemy Core objects, so every query is written once and SQLAlchemy
speaks each database's dialect. The migrations are alembic's operations (``op``), which
likewise emit each dialect's DDL. ``qabot_schema`` holds how many migrations have run;
files written before it existed kept that count in SQLite's ``PRAGMA user_version``.

The migrations repeat columns of the tables on purpose: a migration is history and must
keep building what it built when it shipped, while the tables above show today's shape
(migration 2's ``questions`` has none of the columns migration 4 adds).

Times are Unix seconds (floats); chat and user ids are 64-bit (Telegram's group ids are).
"""

from __future__ import annotations

from collections.abc import Callable

from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:  # alembic is imported only when a migration runs (bot.database.migrate)
    from alembic.operations import Operations

metadata = sa.MetaData()

#: Every update received, until handled (``bot.journal``).
updates = sa.Table(
    "updates", metadata,
    sa.Column("bot_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("update_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("received", sa.Float(53), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("done", sa.Float(53)),
    # which replica is handling it since when (migration 3)
    sa.Column("owner", sa.Text),
    sa.Column("claimed", sa.Float(53)),
)

#: Every question asked and its outcome (``bot.feedback``).
questions = sa.Table(
    "questions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("asked", sa.Float(53), nullable=False),
    sa.Column("chat_id", sa.BigInteger, nullable=False),
    sa.Column("chat_type", sa.Text, nullable=False),
    sa.Column("language", sa.Text, nullable=False),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("answered", sa.Integer, nullable=False),
    sa.Column("confidence", sa.Float(53), nullable=False),
    sa.Column("doc_id", sa.Text),
    sa.Column("paragraph", sa.Integer),
    sa.Column("sentence", sa.Text),
    sa.Column("passage", sa.Text),
    # what paging and follow-ups need on any replica (migration 4)
    sa.Column("reply_language", sa.Text),
    sa.Column("generation", sa.Text),
    sa.Column("results", sa.Text),
    sa.Column("message_id", sa.BigInteger),
)

#: One vote per user per answer (``bot.feedback``).
votes = sa.Table(
    "votes", metadata,
    sa.Column("question_id", sa.Integer, sa.ForeignKey("questions.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("vote", sa.Integer, nullable=False),
    sa.Column("voted", sa.Float(53), nullable=False),
)

version_table = sa.Table("qabot_schema", metadata, sa.Column("version", sa.Integer, nullable=False))


def _journal(op: Operations) -> None:
    op.create_table(
        "updates",
        sa.Column("bot_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("update_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("received", sa.Float(53), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("done", sa.Float(53)),
    )
    op.create_index("updates_pending", "updates", ["bot_id", "done"])


def _questions_and_votes(op: Operations) -> None:
    op.create_table(
        "questions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("asked", sa.Float(53), nullable=False),
        sa.Column("chat_id", sa.BigInteger, nullable=False),
        sa.Column("chat_type", sa.Text, nullable=False),
        sa.Column("language", sa.Text, nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("answered", sa.Integer, nullable=False),
        sa.Column("confidence", sa.Float(53), nullable=False),
        sa.Column("doc_id", sa.Text),
        sa.Column("paragraph", sa.Integer),
        sa.Column("sentence", sa.Text),
        sa.Column("passage", sa.Text),
    )
    op.create_index("questions_asked", "questions", ["asked"])
    op.create_table(
        "votes",
        sa.Column("question_id", sa.Integer, sa.ForeignKey("questions.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("vote", sa.Integer, sa.CheckConstraint("vote IN (-1, 1)"), nullable=False),
        sa.Column("voted", sa.Float(53), nullable=False),
    )


def _update_owners(op: Operations) -> None:
    op.add_column("updates", sa.Column("owner", sa.Text))
    op.add_column("updates", sa.Column("claimed", sa.Float(53)))


def _answers_for_any_replica(op: Operations) -> None:
    op.add_column("questions", sa.Column("reply_language", sa.Text))
    op.add_column("questions", sa.Column("generation", sa.Text))
    op.add_column("questions", sa.Column("results", sa.Text))
    op.add_column("questions", sa.Column("message_id", sa.BigInteger))
    op.create_index("questions_answer_message", "questions", ["chat_id", "message_id"])


#: The schema's history, oldest first; append, never edit one that has shipped.
MIGRATIONS: list[Callable[[Operations], None]] = [
    _journal,  # 1: the update journal
    _questions_and_votes,  # 2: every question asked, and votes on the answers
    _update_owners,  # 3: which replica handles an update (webhook replicas share the journal)
    _answers_for_any_replica,  # 4: an answer's results and message, for "More" and follow-ups
]
