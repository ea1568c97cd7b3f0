"""The bot's database: a SQLite file beside the index by default (``QABOT_DATABASE``), or a
PostgreSQL server that webhook replicas share (``QABOT_DATABASE_URL``). The update journal
(``bot.journal``) and the question log with its votes (``bot.feedback``) live in it and
survive restarts and reindexes. The schema and its migrations are in ``bot.schema``.

SQLite runs in WAL mode with synchronous commits, so a recorded update survives a power
cut. A SQLite file that is not a readable database (damaged disk, a stray file at that
path) is moved aside with a clear log line and a fresh one started: the bot keeps answering
from its index, and only the log of past questions is set apart for whoever wants it. A
file that another process holds locked is waited for, never taken for a damaged one; a
file on a full disk, or one that cannot be read or written, stays where it is.
A PostgreSQL server that cannot be reached is an error to fix, said as such.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from bot.schema import MIGRATIONS, version_table
from qabot.errors import QabotError

log = logging.getLogger(__name__)

Database = sa.Engine


def open_database(url: str | Path) -> Database:
    """The database at ``url``, created or migrated to the current schema: a SQLAlchemy URL
    (``sqlite:///path`` or ``postgresql+psycopg://...``, as ``Settings.database_address``
    gives) or the path of a SQLite file."""
    if isinstance(url, Path) or url.startswith("sqlite:///"):
        return _open_sqlite(Path(str(url).removeprefix("sqlite:///")))
    try:
        database = sa.create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
        migrate(database)
        return database
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        raise QabotError(
            f"Cannot use the bot's database {sa.make_url(url).render_as_string(hide_password=True)} "
            f"({describe_error(exc)}). Check QABOT_DATABASE_URL and that the server is running."
        ) from None


def insert(database: Database, table: sa.Table):
    """An INSERT that can say ``ON CONFLICT``: both databases have the clause, SQLAlchemy
    keeps it in each dialect's own module."""
    dialect = postgresql if database.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


#: PostgreSQL advisory lock held while migrating: replicas starting together on an empty
#: database would otherwise create the same tables at once (one fails on a duplicate type).
MIGRATION_LOCK = 0x71AB0751


def migrate(database: Database) -> None:
    """Bring the schema up to date in one transaction; refuse one written by a newer qabot.
    One process migrates at a time (SQLite: the write lock of BEGIN IMMEDIATE; PostgreSQL:
    an advisory lock), the others then find the schema done."""
    with database.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
        version = _version(connection)
        if version > len(MIGRATIONS):
            raise NewerSchema(
                f"it has schema version {version}, newer than this qabot knows ({len(MIGRATIONS)})"
            )
        if version == len(MIGRATIONS):
            return
        # alembic only when there is something to migrate (~0.1 s of imports at every start)
        from alembic.migration import MigrationContext
        from alembic.operations import Operations

        operations = Operations(MigrationContext.configure(connection))
        for migration in MIGRATIONS[version:]:
            migration(operations)
        connection.execute(version_table.delete())
        connection.execute(version_table.insert().values(version=len(MIGRATIONS)))


class NewerSchema(sa.exc.DatabaseError):
    """The database was written by a newer qabot; it is left alone."""

    def __init__(self, message: str) -> None:
        super().__init__(message, None, Exception(message))
        self.message = message

    def __str__(self) -> str:
        return self.message


def _version(connection: sa.Connection) -> int:
    """How many migrations have run (files from before ``qabot_schema`` kept the count in
    ``PRAGMA user_version``)."""
    if sa.inspect(connection).has_table(version_table.name):
        return connection.execute(sa.select(version_table.c.version)).scalar() or 0
    version_table.create(connection)
    if connection.dialect.name == "sqlite":
        return connection.exec_driver_sql("PRAGMA user_version").scalar() or 0
    return 0


#: Seconds to keep trying to open a SQLite file that another process holds locked.
#: Switching a new file to WAL mode needs a lock that SQLite's busy timeout does not always
#: wait for: of 60 fresh files opened by 4 threads at once, 4 failed with "database is
#: locked", and each such file used to be set aside as damaged.
OPEN_WAIT = 10.0


def _open_sqlite(path: Path) -> Database:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _sqlite_when_free(path)
    except NewerSchema as exc:
        raise _unusable(path, exc) from None
    except sa.exc.DatabaseError as exc:
        if _locked(exc):  # held too long, but not damage
            raise QabotError(
                f"Cannot open the bot's database {path}: another process has held it locked "
                f"for over {OPEN_WAIT:.0f} s. Stop whatever else uses it (another bot on the "
                "same QABOT_DATABASE?), or point QABOT_DATABASE at a file of its own."
            ) from None
        if _not_damage(exc) or not path.exists():
            raise _unusable(path, exc) from None
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        log.error(
            "The bot's database %s cannot be read (%s); it was moved to %s and a new one "
            "started. Answers are not affected; the log of past questions is in that file.",
            path, describe_error(exc), aside,
        )
        path.rename(aside)
        for suffix in ("-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        try:
            return _sqlite(path)
        except (OSError, sa.exc.SQLAlchemyError) as again:
            raise _unusable(path, again) from None
    except (OSError, sa.exc.SQLAlchemyError) as exc:
        raise _unusable(path, exc) from None


def _sqlite_when_free(path: Path) -> Database:
    """:func:`_sqlite`, tried again for :data:`OPEN_WAIT` seconds while another process
    holds the lock it needs."""
    deadline = time.monotonic() + OPEN_WAIT
    pause = 0.05
    while True:
        try:
            return _sqlite(path)
        except sa.exc.OperationalError as exc:
            if not _locked(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


#: SQLite's errors of the disk or of permissions, not of the file's content, and the words
#: it says them in: such a file is left where it is. Set aside, its question log and its
#: unanswered updates would be hidden behind a fresh file (a full disk during a migration
#: did that).
_NOT_DAMAGE = {
    "SQLITE_FULL": "database or disk is full",
    "SQLITE_IOERR": "disk I/O error",
    "SQLITE_READONLY": "readonly database",
    "SQLITE_CANTOPEN": "unable to open database file",
    "SQLITE_PERM": "access permission denied",
}


#: SQLite could not take a lock in time: another connection holds it.
_LOCKED = {"SQLITE_BUSY": "database is locked", "SQLITE_LOCKED": "database table is locked"}


def _not_damage(exc: sa.exc.DBAPIError) -> bool:
    """SQLite failed to write or read the file, not to make sense of it."""
    return _sqlite_error_in(exc, _NOT_DAMAGE)


def _locked(exc: sa.exc.DBAPIError) -> bool:
    return _sqlite_error_in(exc, _LOCKED)


def _sqlite_error_in(exc: sa.exc.DBAPIError, errors: dict[str, str]) -> bool:
    """Whether SQLite's error is one of ``errors`` (its name: words), by its name (Python
    3.11+ gives it) or else by its words."""
    name = getattr(exc.orig, "sqlite_errorname", "")
    return name.startswith(tuple(errors)) or any(words in str(exc.orig) for words in errors.values())


def _sqlite(path: Path) -> Database:
    database = sa.create_engine(
        f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 5}
    )
    sa.event.listen(database, "connect", _sqlite_pragmas)
    # pysqlite opens transactions late and never for DDL; SQLAlchemy's documented fix is to
    # begin them here (dialects/sqlite.html, "transactional DDL"), so a migration is one
    # transaction. IMMEDIATE takes the write lock at the start: a transaction that reads,
    # then writes (a vote) would otherwise fail at once with "database is locked" when
    # another connection wrote in between, instead of waiting its turn (busy_timeout).
    sa.event.listen(
        database, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE")
    )
    try:
        migrate(database)
    except BaseException:
        database.dispose()
        raise
    return database


def _sqlite_pragmas(connection, _record) -> None:
    connection.isolation_level = None  # transactions are begun by the "begin" event
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = FULL")  # a recorded update survives a power cut
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA busy_timeout = 5000")
    cursor.close()


def describe_error(exc: Exception) -> str:
    """The driver's own words, without SQLAlchemy's statement dump and help link."""
    original = getattr(exc, "orig", None) or exc
    return str(original).strip().splitlines()[0]


def _unusable(path: Path, exc: Exception) -> QabotError:
    reason = describe_error(exc)
    advice = (
        "Free some disk space there, or point QABOT_DATABASE at a file on another disk."
        if _NOT_DAMAGE["SQLITE_FULL"] in reason
        else "Check that its folder is writable, or point QABOT_DATABASE at a file that can be."
    )
    return QabotError(f"Cannot open the bot's database {path} ({reason}). {advice}")
