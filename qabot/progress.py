"""A tqdm progress bar that fits the ``progress(done, total)`` callbacks of long jobs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(description: str, unit: str = "it") -> Iterator[Callable[[int, int], None]]:
    """Yield a callback that moves a bar to ``done`` of ``total``; the bar closes on exit."""
    bar: tqdm | None = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=description, unit=unit, dynamic_ncols=True)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()
