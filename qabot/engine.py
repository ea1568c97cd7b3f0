"""The engine the settings describe: where the app turns its settings into the explicit
arguments the index stage takes (the stages never read settings themselves)."""

from __future__ import annotations

from index.retrieval.engine import Engine
from index.store.milvus import MilvusStore
from qabot.settings import Settings


def vector_store(settings: Settings) -> MilvusStore | None:
    """Milvus when ``QABOT_VECTOR_STORE`` names it, else None (the index folder)."""
    return MilvusStore(settings.vector_store) if settings.vector_store else None


def load_engine(settings: Settings) -> Engine:
    """The index in ``QABOT_INDEX_DIR`` with the configured model, threshold, retriever and
    vector store."""
    return Engine.load(
        settings.index_dir,
        settings.model_source,
        min_score=settings.min_score,
        retriever=settings.retriever,
        vector_store=vector_store(settings),
    )
