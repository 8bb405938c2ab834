"""The watch half of the SQLite driver: one tailer over the log, fanning rows out to
watchers (kine's `sqllog` poll loop and broadcaster). It reads the log only through a
`LogSource`, so it holds no SQL and no connection.

One log tailer per `SqliteKV` reads new rows once (woken immediately after each local
commit, and every `poll_interval` seconds to see other processes' writes) and fans them
out to the live watchers whose range holds the key. A watcher starting behind the
tailer reads its backlog from the log itself, in batches, and joins the live feed
exactly at the tailer's position (no gap, no duplicate). Each watcher's buffer is
bounded: a watcher that falls `watch_buffer` events behind is taken off the live feed
and catches up from the log again later (raising `CompactedError` if its position has
been compacted meanwhile), so a slow consumer never costs unbounded memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any, Protocol

from ...storage.errors import UnavailableError
from ..kv import CompactedError, KeyValue, KVEvent, KVEventType

__all__ = ["LOG_BATCH", "LogSource", "Tailer", "Watcher"]

log = logging.getLogger(__name__)

# A log row: id, name, created, deleted, create_revision, prev_revision, lease, value,
# old_value (the id is the row's revision).
Row = tuple[Any, ...]

# Rows the tailer / a catching-up watcher reads per query.
LOG_BATCH = 1000
# Progress notification period for an idle watch with progress_notify.
_PROGRESS_INTERVAL = 1.0


class LogSource(Protocol):
    """What the tailer needs from the log (`SqliteDB` provides it)."""

    # True once the KV is closing: the tailer stops.
    closed: bool
    # Highest revision this process has seen committed.
    known_rev: int

    def saw(self, rev: int) -> None: ...

    async def tail(self, pos: int, rows: bool, limit: int) -> tuple[list[Row], int, int]: ...

    async def backlog(
        self, first: int, last: int, start: str, end: str, limit: int
    ) -> tuple[list[Row], int]: ...


def _in_range(start: str, end: str, key: str) -> bool:
    if end == "":
        return key == start
    if end == "\x00":
        return key >= start
    return start <= key < end


def _event(row: Row) -> KVEvent:
    rid, name, created, deleted, create_rev, prev_rev, lease, value, old_value = row
    if deleted:
        kv = KeyValue(name, b"", create_rev, rid)
        prev = KeyValue(name, old_value or b"", create_rev, prev_rev)
        return KVEvent(KVEventType.DELETE, kv, prev, rid)
    put = KeyValue(name, value, create_rev, rid, lease)
    before = None if created else KeyValue(name, old_value or b"", create_rev, prev_rev)
    return KVEvent(KVEventType.PUT, put, before, rid)


class Watcher:
    """One watch: a bounded buffer fed by the tailer, or by its own backlog reads."""

    def __init__(
        self, tail: Tailer, start: str, end: str, start_revision: int, progress: bool
    ) -> None:
        self._tail = tail
        self.start = start
        self.end = end
        self.start_revision = start_revision
        # The next revision this watcher has not yet been given (0 = resolve on start).
        self.next_rev = start_revision
        self.progress = progress
        self.buf: deque[KVEvent] = deque()
        self.live = False
        self.validated = False
        self.closed = False
        self.error: BaseException | None = None
        self.wake = asyncio.Event()

    # -- KVWatch -------------------------------------------------------------------
    def __aiter__(self) -> Watcher:
        return self

    async def __anext__(self) -> KVEvent:
        tail = self._tail
        while True:
            if self.buf:
                return self.buf.popleft()
            if self.error is not None:
                err = self.error
                self.error = None
                self._detach()
                raise err
            if self.closed:
                raise StopAsyncIteration
            if not self.live:
                if await self._catch_up():
                    continue
                # Ahead of the tailer: wait for it to advance.
                self.wake.clear()
                tail.ahead.add(self)
                tail.wake()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), _PROGRESS_INTERVAL)
                tail.ahead.discard(self)
                continue
            self.wake.clear()
            if not self.progress:
                await self.wake.wait()
                continue
            try:
                await asyncio.wait_for(self.wake.wait(), _PROGRESS_INTERVAL)
            except TimeoutError:
                if not self.buf and self.live and not self.closed and self.error is None:
                    return KVEvent(KVEventType.PROGRESS, None, None, tail.pos)

    async def close(self) -> None:
        self.closed = True
        self.buf.clear()
        self._detach()
        self.wake.set()

    # -- internals -----------------------------------------------------------------
    def _detach(self) -> None:
        self.closed = True
        self._tail.unregister(self)

    def push(self, event: KVEvent) -> bool:
        """Called by the tailer; False when the buffer is full (the watcher is demoted)."""
        if len(self.buf) >= self._tail.watch_buffer:
            return False
        self.buf.append(event)
        self.wake.set()
        return True

    async def _catch_up(self) -> bool:
        """One step towards the live feed; False if the watcher is ahead of the tailer."""
        tail = self._tail
        if self.next_rev == 0:
            self.next_rev = max(tail.pos, tail.source.known_rev) + 1
        pos = tail.pos
        if self.next_rev <= pos or not self.validated:
            next_rev = self.next_rev
            rows, compact = await tail.source.backlog(
                next_rev, pos, self.start, self.end, LOG_BATCH
            )
            if self.closed:
                return True
            if next_rev < compact:
                self.error = CompactedError(next_rev, compact)
                return True
            self.validated = True
            for row in rows:
                self.buf.append(_event(row))
            self.next_rev = rows[-1][0] + 1 if len(rows) >= LOG_BATCH else max(next_rev, pos + 1)
            return True
        if self.next_rev == pos + 1:
            self.live = True
            tail.go_live(self)
            return True
        return False


class Tailer:
    """Reads the log once past `pos` and fans each row out to the live watchers of its
    key; watchers behind it catch up on their own and then join."""

    def __init__(
        self, source: LogSource, pos: int, *, poll_interval: float, watch_buffer: int
    ) -> None:
        self.source = source
        self._poll_interval = poll_interval
        self.watch_buffer = max(watch_buffer, LOG_BATCH)
        # Every row with id <= pos has been fanned out to live watchers.
        self.pos = pos
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.watchers: set[Watcher] = set()
        self._groups: dict[tuple[str, str], set[Watcher]] = {}
        self.ahead: set[Watcher] = set()

    def wake(self) -> None:
        """Read the log now rather than at the next poll (a local commit, or a watcher
        waiting ahead of the tailer)."""
        self._wake.set()

    def watch(self, start: str, end: str, start_revision: int, progress: bool) -> Watcher:
        w = Watcher(self, start, end, start_revision, progress)
        if start_revision == 0:
            w.next_rev = max(self.pos, self.source.known_rev) + 1
        self.watchers.add(w)
        return w

    async def catch_up(self) -> None:
        """Fan out every row committed so far before returning."""
        async with self._lock:
            await self._tail_once()

    async def request_progress(self) -> None:
        await self.catch_up()
        for group in list(self._groups.values()):
            for w in list(group):
                if w.progress and not w.push(KVEvent(KVEventType.PROGRESS, None, None, self.pos)):
                    self._demote(w, self.pos + 1)

    def go_live(self, w: Watcher) -> None:
        self._groups.setdefault((w.start, w.end), set()).add(w)

    def _demote(self, w: Watcher, next_rev: int) -> None:
        w.live = False
        w.next_rev = next_rev
        group = self._groups.get((w.start, w.end))
        if group is not None:
            group.discard(w)
            if not group:
                del self._groups[(w.start, w.end)]
        w.wake.set()

    def unregister(self, w: Watcher) -> None:
        self.watchers.discard(w)
        self.ahead.discard(w)
        if w.live:
            self._demote(w, w.next_rev)

    async def run(self) -> None:
        """Poll as well as wake on local commits: other processes write to the same file
        without telling this one."""
        while not self.source.closed:
            # `asyncio.timeout`, not `wait_for`: cancelled together with the inner task
            # `wait_for` makes (as `asyncio.run` does to every task of a program that
            # never closed its KV), 3.11's `wait_for` never finishes and the exit hangs.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                async with self._lock:
                    await self._tail_once()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if self.source.closed:
                    return
                log.warning("sqlite log tailer failed: %s", err)
                await asyncio.sleep(self._poll_interval)

    async def _tail_once(self) -> None:
        """Fan out every committed row above `pos` to the live watchers."""
        while True:
            pos = self.pos
            rows, seq, compact = await self.source.tail(pos, bool(self._groups), LOG_BATCH)
            if self.pos != pos:  # pragma: no cover - guarded by _lock
                continue
            self.source.saw(seq)
            if not rows and self._groups and seq > pos:
                continue  # a watcher went live while we read without rows: read again
            if compact > pos + 1:
                # Another process compacted rows this tailer had not read yet.
                for group in list(self._groups.values()):
                    for w in list(group):
                        self._demote(w, pos + 1)
            if rows:
                self._fan_out(rows)
            new_pos = rows[-1][0] if len(rows) >= LOG_BATCH else max(seq, pos)
            self.pos = new_pos
            if self.ahead:
                for w in list(self.ahead):
                    w.wake.set()
            if len(rows) < LOG_BATCH:
                return

    def _fan_out(self, rows: list[Row]) -> None:
        groups = self._groups
        for row in rows:
            if not groups:
                return
            name = row[1]
            event: KVEvent | None = None
            for (start, end), watchers in list(groups.items()):
                if not _in_range(start, end, name):
                    continue
                if event is None:
                    event = _event(row)
                for w in list(watchers):
                    if not w.push(event):
                        self._demote(w, row[0])

    def close(self) -> None:
        """End every watch: their iteration raises `UnavailableError`."""
        for w in list(self.watchers):
            w.buf.clear()
            w.error = UnavailableError("sqlite store closed")
            w.live = False
            w.wake.set()
        self.watchers.clear()
        self._groups.clear()
        self.ahead.clear()
