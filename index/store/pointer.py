"""An index folder's ``CURRENT`` pointer: which generation is active (see
:mod:`index.store.generations`, which writes it).

Kept apart from the generations themselves so that reading it costs no imports: a cold
``qabot ask`` checks it before it starts loading the model, and before importing FAISS.
"""

from __future__ import annotations

from pathlib import Path

from qabot.errors import IndexNotReady

#: The file naming the active generation (replaced atomically).
CURRENT = "CURRENT"


def rebuild_hint(index_dir: Path) -> str:
    return f"Rebuild it with `qabot index build --index {index_dir}` (or /reindex in the bot)."


def current_generation(index_dir: Path) -> str | None:
    """The name of the active generation (a cheap read of ``CURRENT``), or None if there is
    no usable one: for noticing a rebuild made by another process."""
    try:
        return active_generation(index_dir)
    except IndexNotReady:
        return None


def active_generation(index_dir: Path) -> str:
    """The name of the active generation; :class:`IndexNotReady` saying why there is none."""
    pointer = index_dir / CURRENT
    try:
        generation = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise IndexNotReady(
            f"There is no index in {index_dir} yet. Build it with "
            f"`qabot index build --index {index_dir}`."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexNotReady(f"Cannot read {pointer}: {exc}. {rebuild_hint(index_dir)}") from exc
    if not generation.startswith("gen-") or not (index_dir / generation).is_dir():
        raise IndexNotReady(
            f"The index in {index_dir} is corrupt: {CURRENT} names no complete build. "
            f"{rebuild_hint(index_dir)}"
        )
    return generation
