"""How fresh the cache is, and waiting until it is fresh enough for a read.

Upstream keeps this in the watch cache (`waitUntilFreshAndBlock`) and the consistent-read
path of the cacher; here it is one object that both the reflector (which moves the
revision forward) and the readers (which wait on it) share, so neither needs the other.
A read waits for the revision it asks for at most `wait_timeout` and then fails with 504,
as upstream: a cache that lags must not answer with older data than the client saw.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

from ..storage.errors import TooLargeResourceVersionError
from ..storage.interface import Storage
from ..storage.options import parse_resource_version
from .coalesce import NextRound

# While a store's progress notifications cannot be trusted, ask again this often.
RELIABILITY_RECHECK = 60.0


class Freshness:
    """The cache's revision and readiness, and the reads waiting for them to move."""

    def __init__(self, store: Storage, *, wait_timeout: float, unproven_wait: float) -> None:
        self.wait_timeout = wait_timeout
        # How long a consistent read waits for the cache's own events when the store
        # cannot confirm freshness with a progress notification.
        self.unproven_wait = unproven_wait
        self.resource_version = 0
        # Set once the first list is in: before it the cache has no revision to offer.
        self.ready = asyncio.Event()
        # (revision, tie-breaker, future): a heap, so `advance` wakes only those reached.
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        # Consistent reads share store round trips (see coalesce.NextRound).
        self.store_revision = NextRound(store.current_resource_version)
        self._request_watch_progress = NextRound(store.request_watch_progress)
        # Whether the store's progress notifications are trustworthy (None: not asked).
        self._reliable: bool | None = None
        self._reliable_until = 0.0

    def advance(self, rv: int) -> None:
        if rv <= self.resource_version:
            return
        self.resource_version = rv
        waiters = self._waiters
        while waiters and waiters[0][0] <= rv:
            _, _, fut = heapq.heappop(waiters)
            if not fut.done():
                fut.set_result(None)

    def cancel_waiters(self) -> None:
        """Reads still waiting when the cache stops would otherwise wait out their timeout."""
        for _, _, fut in self._waiters:
            if not fut.done():
                fut.cancel()
        self._waiters.clear()

    async def wait_for(self, rv: int, timeout: float | None = None) -> None:
        """Wait until the cache has seen `rv`, or fail with TooLargeResourceVersion."""
        if rv <= self.resource_version and self.ready.is_set():
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.wait_timeout if timeout is None else timeout)
        try:
            if not self.ready.is_set():
                await asyncio.wait_for(self.ready.wait(), max(0.0, deadline - loop.time()))
            if rv <= self.resource_version:
                return
            fut: asyncio.Future[None] = loop.create_future()
            heapq.heappush(self._waiters, (rv, next(self._seq), fut))
            await asyncio.wait_for(fut, max(0.0, deadline - loop.time()))
        except TimeoutError:
            raise TooLargeResourceVersionError(
                f"Too large resource version: {rv}, current: {self.resource_version}",
                resource_version=rv,
            ) from None

    async def consistent(self) -> bool:
        """Bring the cache up to the store's current revision for a consistent read;
        False when it cannot be proven fresh, and the read goes to the store.

        Where the store can promise a progress notification that never runs ahead of an
        event (SQLite, etcd >= 3.4.31 / 3.5.13), the cache learns the store's revision,
        asks for the notification and waits for it: exact, and a revision moved only by
        writes to other resources does not leave the read waiting. Where it cannot
        (older etcd), nothing the cache sees can prove it fresh, so the read goes
        straight to the store, one quorum round trip, as upstream does without trusted
        progress notifications. Waiting a little for the cache's own events instead cost
        every consistent read that wait whenever any other resource was being written.
        """
        if not await self._progress_is_reliable():
            return False
        rv = await self.store_revision()
        if rv <= self.resource_version and self.ready.is_set():
            return True
        if not await self._request_watch_progress():
            self._reliable = None  # the store changed its mind (an etcd downgrade): re-ask
            return False
        await self.wait_for(rv)
        return True

    async def _progress_is_reliable(self) -> bool:
        """Whether the store's progress notifications can be trusted, re-asked at most
        every `RELIABILITY_RECHECK` seconds while they cannot (an etcd upgrade)."""
        loop = asyncio.get_running_loop()
        if self._reliable is None or (not self._reliable and loop.time() >= self._reliable_until):
            # Asking is itself a request for progress: harmless, and it answers.
            self._reliable = bool(await self._request_watch_progress())
            self._reliable_until = loop.time() + RELIABILITY_RECHECK
        return self._reliable

    async def wait_for_watch_start(self, rv: int) -> None:
        """A watch from `rv` needs no replay past the cache's revision, only that `rv` is
        real: the store has reached it. The cache need not have: a client often
        watches from the revision of a list the store served (a consistent read the
        cache could not prove fresh), and the events up to `rv` that the cache has yet
        to see are skipped by the watcher when they arrive."""
        if rv <= self.resource_version and self.ready.is_set():
            return
        try:
            await self.wait_for(rv, self.unproven_wait)
        except TooLargeResourceVersionError:
            if rv > await self.store_revision():
                await self.wait_for(rv)  # a revision from the future: 504 after the wait

    async def fresh_enough(self, resource_version: str) -> bool:
        """Wait for the freshness `resource_version` asks; False = serve from the store."""
        if resource_version == "":
            return await self.consistent()
        await self.wait_for(parse_resource_version(resource_version))
        return True
