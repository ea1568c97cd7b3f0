"""The bot's SQLite database (``QABOT_DATABASE``): one file beside the index, in WAL mode,
its schema versioned. The update journal (``bot.journal``) and the question log with its
votes (``bot.feedback``) live in it, and survive restarts and reindexes.

A file that is not a readable SQLite database (damaged disk, a stray file at that path) is
moved aside with a clear log line and a fresh one started: the bot keeps answering from its
index, and only the log of past questions is set apart for whoever wants to look at it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from qabot.errors import QabotError

log = logging.getLogger(__name__)

#: The schema, one script per version; ``PRAGMA user_version`` says how many have run.
MIGRATIONS = [
    # 1: the update journal
    """
    CREATE TABLE updates (
        bot_id    INTEGER NOT NULL,
        update_id INTEGER NOT NULL,
        payload   TEXT    NOT NULL,
        received  REAL    NOT NULL,
        attempts  INTEGER NOT NULL DEFAULT 0,
        done      REAL,
        PRIMARY KEY (bot_id, update_id)
    );
    CREATE INDEX updates_pending ON updates (bot_id, done);
    """,
    # 2: every question asked, and votes on the answers
    """
    CREATE TABLE questions (
        id         INTEGER PRIMARY KEY,
        asked      REAL    NOT NULL,
        chat_id    INTEGER NOT NULL,
        chat_type  TEXT    NOT NULL,
        language   TEXT    NOT NULL,
        question   TEXT    NOT NULL,
        answered   INTEGER NOT NULL,
        confidence REAL    NOT NULL,
        doc_id     TEXT,
        paragraph  INTEGER,
        sentence   TEXT,
        passage    TEXT
    );
    CREATE INDEX questions_asked ON questions (asked);
    CREATE TABLE votes (
        question_id INTEGER NOT NULL REFERENCES questions (id) ON DELETE CASCADE,
        user_id     INTEGER NOT NULL,
        vote        INTEGER NOT NULL CHECK (vote IN (-1, 1)),
        voted       REAL    NOT NULL,
        PRIMARY KEY (question_id, user_id)
    );
    """,
]


def open_database(path: Path) -> sqlite3.Connection:
    """The database at ``path``, created or migrated to the current schema."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _open(path)
    except sqlite3.DatabaseError as exc:
        if "newer" in str(exc) or not path.exists():
            raise _unusable(path, exc) from None
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        log.error(
            "The bot's database %s cannot be read (%s); it was moved to %s and a new one "
            "started. Answers are not affected; the log of past questions is in that file.",
            path, exc, aside,
        )
        path.rename(aside)
        for suffix in ("-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        try:
            return _open(path)
        except (OSError, sqlite3.Error) as again:
            raise _unusable(path, again) from None
    except (OSError, sqlite3.Error) as exc:
        raise _unusable(path, exc) from None


def _open(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    # FULL: a recorded update survives a power cut, not only a killed process.
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA busy_timeout = 5000")
    db.execute("PRAGMA foreign_keys = ON")
    _migrate(db)
    return db


def _migrate(db: sqlite3.Connection) -> None:
    """Bring the schema up to date; refuse a database written by a newer qabot."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise sqlite3.DatabaseError(
            f"it has schema version {version}, newer than this qabot knows ({len(MIGRATIONS)})"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        db.executescript(f"BEGIN; {script} PRAGMA user_version = {number}; COMMIT;")


def _unusable(path: Path, exc: Exception) -> QabotError:
    return QabotError(
        f"Cannot open the bot's database {path} ({exc}). Check that its folder is writable, "
        "or point QABOT_DATABASE at a file that can be."
    )
