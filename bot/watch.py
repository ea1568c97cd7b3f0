"""An index rebuilt outside the bot (``qabot index build`` in a shell, another container)
is picked up while the bot runs: no restart, no question left unanswered.

Every :data:`WATCH_INTERVAL` seconds the bot reads the index folder's ``CURRENT`` pointer
(one small file). When it names a generation other than the one being served, the new
generation is loaded in a worker thread beside the old one, which keeps answering, and then
swapped in as ``/reindex`` does. A generation that cannot be loaded is logged once and the
old one stays.
"""

from __future__ import annotations

import asyncio
import logging

from bot.state import BotState
from index.store.pointer import current_generation
from qabot.errors import QabotError

log = logging.getLogger(__name__)

#: Seconds between looks at the index's ``CURRENT`` pointer.
WATCH_INTERVAL = 5.0


async def follow_rebuilds(state: BotState, interval: float = WATCH_INTERVAL) -> None:
    """Swap in each new index generation written by another process; runs until cancelled."""
    refused = None  # a generation that failed to load: not tried again
    while True:
        await asyncio.sleep(interval)
        current = current_generation(state.settings.index_dir)
        if state.rebuilding or current in (None, refused, state.engine.generation):
            continue
        try:
            engine = await asyncio.to_thread(state.engine.with_index, state.settings.index_dir)
        except QabotError as exc:
            refused = current
            log.warning("A new index (%s) cannot be loaded, still answering from %s: %s",
                        current, state.engine.generation, exc)
            continue
        if not state.rebuilding and engine.generation != state.engine.generation:
            state.swap(engine)
            log.info("Answering from the index rebuilt outside the bot (%s)", engine.generation)
