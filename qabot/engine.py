"""The engine the settings describe: where the app turns its settings into the explicit
arguments the index stage takes (the stages never read settings themselves)."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING

from index.embedding.embedder import Embedder
from index.store.milvus import MilvusStore
from qabot.settings import Settings

if TYPE_CHECKING:
    from index.retrieval.engine import Engine


def vector_store(settings: Settings) -> MilvusStore | None:
    """Milvus when ``QABOT_VECTOR_STORE`` names it, else None (the index folder)."""
    return MilvusStore(settings.vector_store) if settings.vector_store else None


def start_loading_model(settings: Settings) -> Future[Embedder] | None:
    """Start loading the configured model in a thread now, for :func:`load_engine`; None when
    there is no index to use it with (:func:`load_engine` then says so, and no model loads).

    Why: most of the model's loading (0.7 s on 2 cores) leaves Python's lock free, while the
    modules a command imports next hold it: the engine's 0.2 s, the bot's 0.6 s more
    (python-telegram-bot, SQLAlchemy). Started first, the two overlap.
    """
    from index.store.pointer import current_generation

    if current_generation(settings.index_dir) is None:
        return None
    return Embedder.load_in_background(settings.model_source)


def load_engine(settings: Settings, model: Future[Embedder] | None = None) -> Engine:
    """The index in ``QABOT_INDEX_DIR`` with the configured model (or the one ``model`` is
    loading), threshold, retriever and vector store."""
    from index.retrieval.engine import Engine  # after start_loading_model: see there

    return Engine.load(
        settings.index_dir,
        model or settings.model_source,
        min_score=settings.min_score,
        retriever=settings.retriever,
        vector_store=vector_store(settings),
    )
