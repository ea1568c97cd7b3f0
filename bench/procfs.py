"""A process's memory and children, read from /proc (Linux), in MB; None or [] once it is gone."""

from __future__ import annotations

import contextlib


def status_mb(pid: int, field: str) -> float | None:
    """A line of /proc/PID/status: VmRSS, VmHWM (the peak), RssAnon, RssFile."""
    return _field(f"/proc/{pid}/status", field)


def pss_mb(pid: int) -> float | None:
    """Proportional set size: pages shared with other processes (a mapped model file,
    libraries) count in part, so a sum over processes is what they hold together."""
    return _field(f"/proc/{pid}/smaps_rollup", "Pss")


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    return []


def _field(path: str, field: str) -> float | None:
    with contextlib.suppress(OSError):
        for line in open(path):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return None
