"""A deliberate test double: a real KV whose watch streams can be paused and broken.

Everything is delegated to the real backend (a SQLite file or etcd); only the watch
streams gain two switches, so tests can make the cacher's reflector miss events and
then see its stream fail the way a real outage or compaction would end it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from tenantstore.backends.kv import KV, KVEvent, KVWatch


class BreakableWatch:
    def __init__(self, inner: KVWatch) -> None:
        self.inner = inner
        self.failure: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self.running = asyncio.Event()
        self.running.set()

    async def _next_or_fail(self, aw: Any) -> Any:
        nxt = asyncio.ensure_future(aw)
        done, _ = await asyncio.wait({nxt, self.failure}, return_when=asyncio.FIRST_COMPLETED)
        if self.failure in done:
            nxt.cancel()
            raise self.failure.result()
        return nxt.result()

    async def _gen(self) -> AsyncIterator[KVEvent]:
        it = self.inner.__aiter__()
        while True:
            await self._next_or_fail(self.running.wait())
            try:
                ev = await self._next_or_fail(it.__anext__())
            except StopAsyncIteration:
                return
            await self._next_or_fail(self.running.wait())
            yield ev

    def __aiter__(self) -> AsyncIterator[KVEvent]:
        return self._gen()

    async def close(self) -> None:
        await self.inner.close()

    def fail(self, exc: BaseException) -> None:
        if not self.failure.done():
            self.failure.set_result(exc)


class BreakableKV:
    def __init__(self, inner: KV) -> None:
        self.inner = inner
        self.watches: list[BreakableWatch] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    # Dunder methods are looked up on the type, never through `__getattr__`.
    async def __aenter__(self) -> BreakableKV:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.inner.close()

    def watch(
        self, start: str, end: str, *, start_revision: int, progress_notify: bool = False
    ) -> BreakableWatch:
        w = BreakableWatch(
            self.inner.watch(
                start, end, start_revision=start_revision, progress_notify=progress_notify
            )
        )
        self.watches.append(w)
        return w

    def pause(self) -> None:
        for w in self.watches:
            w.running.clear()

    def break_all(self, exc: BaseException) -> None:
        for w in self.watches:
            w.fail(exc)
        self.watches.clear()
