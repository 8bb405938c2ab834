"""The `Watch` handle callers iterate, and the buffered implementation every layer uses.

A producer (a backend's watch task, or the cacher's dispatcher) pushes events with
`send`, which never blocks: a consumer that lets `capacity` events pile up is ended
with a 410-style ERROR event instead of slowing the producer, and must re-list, the
Kubernetes contract for slow watchers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, runtime_checkable

from .errors import GoneError
from .events import WatchEvent, error_event

DEFAULT_CAPACITY = 1024


@runtime_checkable
class Watch(Protocol):
    """An async iterator of `WatchEvent`s; closable, and an async context manager."""

    def __aiter__(self) -> Watch: ...
    async def __anext__(self) -> WatchEvent: ...
    async def next_within(self, timeout: float) -> WatchEvent | None: ...
    def stop(self) -> None: ...
    async def __aenter__(self) -> Watch: ...
    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...


_NO_EVENTS: deque[WatchEvent] = deque(maxlen=0)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class QueueWatch:
    """A bounded, non-blocking event buffer with one consumer."""

    __slots__ = ("_buf", "_capacity", "_done", "_on_stop", "_stopped", "_waiter", "terminated")

    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, on_stop: Callable[[], None] | None = None
    ) -> None:
        # Shared and empty until the first event: an idle watcher (most of them, with
        # thousands of projects) then costs no deque block of its own.
        self._buf: deque[WatchEvent] = _NO_EVENTS
        self._capacity = capacity
        self._done = False
        self._stopped = False
        self._on_stop = on_stop
        self._waiter: asyncio.Future[None] | None = None
        # True when ended for being too slow (for metrics and tests).
        self.terminated = False

    # -- producer side -------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._done

    def set_capacity(self, capacity: int) -> None:
        """Resize the buffer (a cache's reflector gives its backend watch a large one)."""
        self._capacity = capacity

    def set_on_stop(self, fn: Callable[[], None]) -> None:
        self._on_stop = fn

    def send(self, event: WatchEvent) -> bool:
        """Queue one event; False if the watch is finished or was just ended as too slow."""
        if self._done:
            return False
        if len(self._buf) >= self._capacity:
            self.terminated = True
            self.finish(
                error_event(
                    GoneError(
                        "watch consumer too slow: the watch was closed, re-list and watch again"
                    ).to_status()
                )
            )
            return False
        self._push(event)
        self._wake()
        return True

    def _push(self, event: WatchEvent) -> None:
        if self._buf is _NO_EVENTS:
            self._buf = deque()
        self._buf.append(event)

    def finish(self, final: WatchEvent | None = None) -> None:
        """End the stream after what is queued (and `final`, typically an ERROR event)."""
        if self._done:
            return
        if final is not None:
            self._push(final)
        self._done = True
        self._wake()
        self._run_on_stop()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _run_on_stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            fn, self._on_stop = self._on_stop, None
            if fn is not None:
                fn()

    # -- consumer side -------------------------------------------------------------
    def __aiter__(self) -> QueueWatch:
        return self

    async def __anext__(self) -> WatchEvent:
        while not self._buf:
            if self._done:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._buf.popleft()

    async def next_within(self, timeout: float) -> WatchEvent | None:
        """The next event, or None if none comes within `timeout` seconds; raises
        StopAsyncIteration at the end. A timer, not a task: a server can wait on many
        watches and still notice time passing without a task per watch."""
        if not self._buf:
            if self._done:
                raise StopAsyncIteration
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, _resolve, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
            if not self._buf:
                if self._done:
                    raise StopAsyncIteration
                return None
        return self._buf.popleft()

    def pending(self) -> int:
        return len(self._buf)

    def stop(self) -> None:
        """Close from the consumer side and release the producer: nothing is queued after
        this, but what was already queued is still delivered, then iteration ends.

        Kubernetes does the same (the cacher's result channel is drained after `Stop`,
        upstream's `RunTestDelayedWatchDelivery`): a consumer that stops while reading
        still gets the events it was sent. The buffer is bounded by the capacity and
        freed with the watch."""
        self._done = True
        self._wake()
        self._run_on_stop()

    async def close(self) -> None:
        self.stop()

    async def __aenter__(self) -> QueueWatch:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
