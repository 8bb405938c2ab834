"""`SqliteKV`: the `KV` contract composed from the SQL half (`SqliteDB`) and the watch
half (`Tailer`), the way kine's `logstructured` sits on `sqllog` and a dialect. Argument
checks and the ordering between the halves (a tailer caught up before compaction or a
progress notification; watchers ended before the connections close) live here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from ...storage.errors import StorageError, UnavailableError
from ..kv import (
    DEFAULT_MAX_REQUEST_BYTES,
    InvalidKVInputError,
    KeyValue,
    RangeResult,
    TxnResult,
    check_key,
    check_range_end,
    check_revision,
    check_size,
    check_ttl,
    check_value,
)
from .log import Tailer, Watcher
from .sql import SqliteDB

__all__ = ["SqliteKV", "open_url"]


class SqliteKV:
    """The etcd-shaped `KV` contract over one SQLite file (or `:memory:`)."""

    def __init__(
        self, db: SqliteDB, tail: Tailer, *, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    ) -> None:
        self._db = db
        self._tail = tail
        self._tasks: list[asyncio.Task[None]] = []
        # etcd's default limit, so that an object fits on both backends or on neither.
        self.max_request_bytes = max_request_bytes

    @property
    def path(self) -> str:
        return self._db.path

    # -- construction --------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        path: str,
        *,
        poll_interval: float = 0.5,
        watch_buffer: int = 10_000,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> SqliteKV:
        """Open (creating if needed) the store at `path`; ":memory:" for a private one."""
        if not isinstance(path, str) or not path:
            raise InvalidKVInputError(f"path must be a non-empty str, got {path!r}")
        db = SqliteDB(path)
        seq = await db.open()
        tail = Tailer(db, seq, poll_interval=poll_interval, watch_buffer=watch_buffer)
        db.on_commit = tail.wake
        self = cls(db, tail, max_request_bytes=max_request_bytes)
        self._tasks = [
            asyncio.create_task(tail.run(), name="sqlitekv-tailer"),
            asyncio.create_task(db.sweep_loop(), name="sqlitekv-sweeper"),
        ]
        return self

    @staticmethod
    def path_from_url(url: str) -> str:
        """`sqlite:///abs/path` -> `/abs/path`; `sqlite://rel.db` -> `rel.db`;
        `sqlite://:memory:` -> `:memory:`."""
        prefix = "sqlite://"
        if not isinstance(url, str) or not url.startswith(prefix):
            raise InvalidKVInputError(f"not a sqlite:// URL: {url!r}")
        path = url[len(prefix) :].split("?", 1)[0]
        if not path:
            raise InvalidKVInputError(f"sqlite URL without a path: {url!r}")
        return path

    @classmethod
    async def from_url(cls, url: str, *, poll_interval: float = 0.5) -> SqliteKV:
        return await cls.open(cls.path_from_url(url), poll_interval=poll_interval)

    # -- reads ---------------------------------------------------------------------
    async def get(self, key: str) -> tuple[KeyValue | None, int]:
        check_key(key)
        kv, rev = await self._db.get(key)
        self._db.saw(rev)
        return kv, rev

    async def range(
        self, start: str, end: str, *, revision: int = 0, limit: int = 0
    ) -> RangeResult:
        check_key(start, "start")
        check_range_end(end)
        check_revision(revision, "revision")
        check_revision(limit, "limit")
        res = await self._db.range(start, end, revision, limit)
        self._db.saw(res.revision)
        return res

    async def count(self, start: str, end: str) -> int:
        check_key(start, "start")
        check_range_end(end)
        return await self._db.count(start, end)

    async def current_revision(self) -> int:
        rev = await self._db.current_revision()
        self._db.saw(rev)
        return rev

    async def compact_revision(self) -> int:
        """The revision history is compacted to (0 if never compacted)."""
        return await self._db.compact_revision()

    async def ready(self) -> bool:
        if self._db.closed:
            return False
        try:
            await self._db.ping()
        except StorageError:
            return False
        return await self._db.can_write()

    # -- writes --------------------------------------------------------------------
    async def create(self, key: str, value: bytes, *, ttl: int | None = None) -> TxnResult:
        check_key(key)
        data = check_value(value)
        check_size(key, data, self.max_request_bytes)
        check_ttl(ttl)
        return await self._db.create(key, data, ttl)

    async def update(
        self, key: str, value: bytes, *, expected_mod_revision: int, ttl: int | None = None
    ) -> TxnResult:
        check_key(key)
        data = check_value(value)
        check_size(key, data, self.max_request_bytes)
        expected = check_revision(expected_mod_revision, "expected_mod_revision")
        check_ttl(ttl)
        return await self._db.update(key, data, expected, ttl)

    async def delete(self, key: str, *, expected_mod_revision: int = 0) -> TxnResult:
        check_key(key)
        expected = check_revision(expected_mod_revision, "expected_mod_revision")
        return await self._db.delete(key, expected)

    async def compact(self, revision: int) -> None:
        check_revision(revision, "revision")
        if revision == 0:
            return
        # Let the tailer fan out every row below `revision` before any can disappear.
        await self._tail.catch_up()
        await self._db.compact(revision)

    # -- watch ---------------------------------------------------------------------
    def watch(
        self, start: str, end: str, *, start_revision: int, progress_notify: bool = False
    ) -> Watcher:
        """Events for keys in [start, end) with revision >= `start_revision` (0 = from
        the next write on)."""
        check_key(start, "start")
        check_range_end(end)
        check_revision(start_revision, "start_revision")
        if self._db.closed:
            raise UnavailableError("sqlite store is closed")
        return self._tail.watch(start, end, start_revision, progress_notify)

    async def request_progress(self) -> bool:
        """A progress notification now, at the revision of every commit so far, to each
        live watch that asked for them: the cacher's consistent reads wait on it. The
        tailer catches up first, so the notification never runs ahead of an event."""
        await self._tail.request_progress()
        return True

    @property
    def watch_count(self) -> int:
        """Open backend watches (the scale harness reports this)."""
        return len(self._tail.watchers)

    def watchers_open(self) -> int:
        return len(self._tail.watchers)

    # -- shutdown ------------------------------------------------------------------
    async def close(self) -> None:
        """End every watch (their iteration raises UnavailableError), finish in-flight
        writes, fail queued ones, and close the connections."""
        if self._db.closed:
            return
        # Refuse new reads and writes while the background tasks wind down.
        self._db.closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tail.close()
        await self._db.close()

    async def __aenter__(self) -> SqliteKV:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _path_with_parent(url: str) -> str:
    path = SqliteKV.path_from_url(url)
    if path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return path


async def open_url(url: str) -> SqliteKV:
    """The `sqlite://` driver: open the file the URL names, creating its directory."""
    return await SqliteKV.open(_path_with_parent(url))
