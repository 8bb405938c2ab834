"""What both factories share: their statistics, cacher options and start-up rule."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from ..cacher import Cacher
from ..storage.errors import UnavailableError
from ..storage.watch import DEFAULT_CAPACITY


@dataclass(frozen=True, slots=True)
class FactoryStats:
    """What a factory holds; the scale harness reports these per project."""

    cachers: int
    tenant_map_entries: int
    # asyncio tasks owned: cacher reflectors/bookmarkers, backend watch tasks, trackers.
    tasks: int
    # Backend (etcd / SQLite) watch streams open.
    backend_watches: int


@dataclass(frozen=True, slots=True)
class CacherOptions:
    window_seconds: float = 75.0
    wait_timeout: float = 3.0
    watcher_capacity: int = DEFAULT_CAPACITY
    bookmark_interval: float = 1.0
    ready_timeout: float | None = 30.0


def normalize_prefixes(prefixes: Iterable[str]) -> list[str]:
    out: list[str] = []
    for p in prefixes:
        norm = p.rstrip("/")
        if not norm.startswith("/"):
            raise ValueError(f"resource prefix must be an absolute path: {p!r}")
        if norm in out:
            raise ValueError(f"resource prefix listed twice: {p!r}")
        out.append(norm)
    return out


async def start_cacher(cacher: Cacher, ready_timeout: float | None) -> None:
    await cacher.start()
    try:
        async with asyncio.timeout(ready_timeout):
            await cacher.wait_ready()
    except TimeoutError:
        await cacher.stop()
        raise UnavailableError(f"watch cache of {cacher.prefix} did not become ready") from None
