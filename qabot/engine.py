"""The engine the settings describe: where the app turns its settings into the explicit
arguments the index stage takes (the stages never read settings themselves)."""

from __future__ import annotations

from index.retrieval.engine import Engine
from qabot.settings import Settings


def load_engine(settings: Settings) -> Engine:
    """The index in ``QABOT_INDEX_DIR`` with the configured model, threshold and retriever."""
    return Engine.load(
        settings.index_dir,
        settings.model_source,
        min_score=settings.min_score,
        retriever=settings.retriever,
    )
