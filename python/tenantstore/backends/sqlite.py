"""`SqliteKV`: the embedded default backend, an etcd-shaped log in one SQLite file.

The design follows kine (the SQL-backed etcd shim k3s uses):

* One append-only table, ``kv_log``. Its ``INTEGER PRIMARY KEY AUTOINCREMENT`` id is the
  store revision: every successful write (create, update, delete, TTL expiry) appends
  exactly one row, so the revision grows by one per write. A row records the key
  (``name``), whether it created the key or is a delete tombstone, the key's
  ``create_revision``, the id of the key's previous row (``prev_revision``), the TTL
  lease and expiry, the new value and the previous value (``old_value``, so a watch
  event carries ``prev_kv`` without a join, even after compaction).
* The state of a key at revision R is its newest row with ``id <= R`` unless that row
  is a tombstone. ``(name, id)`` is indexed for that lookup.
* Compaction to R records R in ``kv_meta`` first (so reads below R fail from then on)
  and then deletes, in short batches, every row below R that is superseded by a newer
  row at or below R, and every tombstone below R. Ranges at ``revision < R`` and
  watches from ``start_revision < R`` raise `CompactedError`, as in etcd.
* The current revision is ``sqlite_sequence.seq`` of ``kv_log``: AUTOINCREMENT never
  reuses an id, and the sequence survives the deletion of rows by compaction, so the
  revision never goes backwards.

Threads and transactions. SQLite (stdlib ``sqlite3``) runs on dedicated worker threads,
so the event loop never blocks: one writer thread owning the write connection and, for
a file, one reader thread owning a second connection (WAL lets it read while the writer
commits). Writes are group-committed: every write queued while the previous
transaction was committing runs, in order, in the next ``BEGIN IMMEDIATE`` transaction,
each with its own compare, and all are acknowledged after its single ``COMMIT``
(``synchronous=FULL``: an acknowledged write is durable). Within one process the writer
thread serializes every transaction; across processes SQLite's write lock does. Either
way a transaction reads the sequence and appends at ``seq + 1`` under the write lock,
so ids commit in increasing order and a reader never sees id N+1 before id N: there
are no gaps for a log tailer to fall into (a rolled-back transaction rolls back the
sequence too, so it leaves no hole either).

Watches. One log tailer per `SqliteKV` reads new rows once (woken immediately after
each local commit, and every ``poll_interval`` seconds to see other processes' writes)
and fans them out to the live watchers whose range holds the key. A watcher starting
behind the tailer reads its backlog from the log itself, in batches, and joins the
live feed exactly at the tailer's position (no gap, no duplicate). Each watcher's
buffer is bounded: a watcher that falls ``watch_buffer`` events behind is taken off the
live feed and catches up from the log again later (raising `CompactedError` if its
position has been compacted meanwhile), so a slow consumer never costs unbounded memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..storage.errors import (
    InternalError,
    StorageError,
    TooLargeResourceVersionError,
    UnavailableError,
)
from . import register_driver
from .kv import (
    CompactedError,
    InvalidKVInputError,
    KeyValue,
    KVEvent,
    KVEventType,
    RangeResult,
    TxnResult,
    check_key,
    check_range_end,
    check_revision,
    check_ttl,
    check_value,
)

__all__ = ["InvalidKVInputError", "SqliteKV"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Row = tuple[Any, ...]

# Rows the tailer / a catching-up watcher reads per query.
_LOG_BATCH = 1000
# Writes per group-committed transaction at most.
_MAX_GROUP = 256
# Id span one compaction transaction covers (keeps writers' waits short).
_COMPACT_SPAN = 5000
# Progress notification period for an idle watch with progress_notify.
_PROGRESS_INTERVAL = 1.0
# The TTL sweeper runs at least this often.
_SWEEP_INTERVAL = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL DEFAULT 0,
    lease INTEGER NOT NULL DEFAULT 0,
    expires REAL,
    value BLOB NOT NULL,
    old_value BLOB
);
CREATE INDEX IF NOT EXISTS kv_log_name_id ON kv_log (name, id);
CREATE INDEX IF NOT EXISTS kv_log_expires ON kv_log (expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS kv_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)
    WITHOUT ROWID;
"""

_Q_SEQ = "SELECT seq FROM sqlite_sequence WHERE name = 'kv_log'"
_Q_COMPACT = "SELECT value FROM kv_meta WHERE name = 'compact_rev'"
# id, deleted, create_revision, value, lease, expires
_Q_LATEST = (
    "SELECT id, deleted, create_revision, value, lease, expires FROM kv_log "
    "WHERE name = ? ORDER BY id DESC LIMIT 1"
)
_Q_INSERT = (
    "INSERT INTO kv_log (id, name, created, deleted, create_revision, prev_revision, lease,"
    " expires, value, old_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_LOG_COLS = "id, name, created, deleted, create_revision, prev_revision, lease, value, old_value"
_Q_TAIL = f"SELECT {_LOG_COLS} FROM kv_log WHERE id > ? ORDER BY id LIMIT ?"
_Q_EXPIRED = (
    "SELECT l.name, l.id FROM kv_log AS l WHERE l.expires IS NOT NULL AND l.expires <= ?"
    " AND l.deleted = 0 AND l.id = (SELECT MAX(id) FROM kv_log WHERE name = l.name) LIMIT 1000"
)
_Q_NEXT_EXPIRY = "SELECT MIN(expires) FROM kv_log WHERE expires IS NOT NULL AND expires > ?"
_Q_COMPACT_CHUNK = (
    "DELETE FROM kv_log WHERE id >= ? AND id < ? AND id < ? AND (deleted = 1 OR id < "
    "(SELECT MAX(l2.id) FROM kv_log AS l2 WHERE l2.name = kv_log.name AND l2.id <= ?))"
)


def _name_clause(start: str, end: str, col: str = "name") -> tuple[str, tuple[str, ...]]:
    """SQL condition for etcd's [start, end): "" = just `start`, "\\x00" = no upper bound."""
    if end == "":
        return f"{col} = ?", (start,)
    if end == "\x00":
        return f"{col} >= ?", (start,)
    return f"{col} >= ? AND {col} < ?", (start, end)


def _in_range(start: str, end: str, key: str) -> bool:
    if end == "":
        return key == start
    if end == "\x00":
        return key >= start
    return start <= key < end


def _seq(conn: sqlite3.Connection) -> int:
    row = conn.execute(_Q_SEQ).fetchone()
    return int(row[0]) if row else 0


def _compact_rev(conn: sqlite3.Connection) -> int:
    row = conn.execute(_Q_COMPACT).fetchone()
    return int(row[0]) if row else 0


def _event(row: Row) -> KVEvent:
    """A watch event from a log row (columns of `_LOG_COLS`)."""
    rid, name, created, deleted, create_rev, prev_rev, lease, value, old_value = row
    if deleted:
        kv = KeyValue(name, b"", create_rev, rid)
        prev = KeyValue(name, old_value or b"", create_rev, prev_rev)
        return KVEvent(KVEventType.DELETE, kv, prev, rid)
    put = KeyValue(name, value, create_rev, rid, lease)
    before = None if created else KeyValue(name, old_value or b"", create_rev, prev_rev)
    return KVEvent(KVEventType.PUT, put, before, rid)


def _translate(err: BaseException) -> BaseException:
    if isinstance(err, StorageError | ValueError):
        return err
    if isinstance(err, sqlite3.OperationalError):
        return UnavailableError(f"sqlite: {err}")
    if isinstance(err, sqlite3.Error):
        return InternalError(f"sqlite: {err}")
    return err


# A write op runs on the writer thread inside the group transaction: it gets the
# connection and the revision so far, and returns (result, revision after it).
_WriteOp = Callable[[sqlite3.Connection, int], tuple[Any, int]]


class _Watcher:
    """One watch: a bounded buffer fed by the tailer, or by its own backlog reads."""

    def __init__(
        self, kv: SqliteKV, start: str, end: str, start_revision: int, progress: bool
    ) -> None:
        self._kv = kv
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
    def __aiter__(self) -> _Watcher:
        return self

    async def __anext__(self) -> KVEvent:
        kv = self._kv
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
                kv._ahead.add(self)
                kv._wake.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), _PROGRESS_INTERVAL)
                kv._ahead.discard(self)
                continue
            self.wake.clear()
            if not self.progress:
                await self.wake.wait()
                continue
            try:
                await asyncio.wait_for(self.wake.wait(), _PROGRESS_INTERVAL)
            except TimeoutError:
                if not self.buf and self.live and not self.closed and self.error is None:
                    return KVEvent(KVEventType.PROGRESS, None, None, kv._pos)

    async def close(self) -> None:
        self.closed = True
        self.buf.clear()
        self._detach()
        self.wake.set()

    # -- internals -----------------------------------------------------------------
    def _detach(self) -> None:
        self.closed = True
        self._kv._unregister(self)

    def push(self, event: KVEvent) -> bool:
        """Called by the tailer; False when the buffer is full (the watcher is demoted)."""
        if len(self.buf) >= self._kv._watch_buffer:
            return False
        self.buf.append(event)
        self.wake.set()
        return True

    async def _catch_up(self) -> bool:
        """One step towards the live feed; False if the watcher is ahead of the tailer."""
        kv = self._kv
        if self.next_rev == 0:
            self.next_rev = max(kv._pos, kv._known_rev) + 1
        pos = kv._pos
        if self.next_rev <= pos or not self.validated:
            next_rev = self.next_rev
            rows, compact = await kv._read(kv._r_log_backlog, next_rev, pos, self.start, self.end)
            if self.closed:
                return True
            if next_rev < compact:
                self.error = CompactedError(next_rev, compact)
                return True
            self.validated = True
            for row in rows:
                self.buf.append(_event(row))
            self.next_rev = rows[-1][0] + 1 if len(rows) >= _LOG_BATCH else max(next_rev, pos + 1)
            return True
        if self.next_rev == pos + 1:
            self.live = True
            kv._go_live(self)
            return True
        return False


class SqliteKV:
    """The etcd-shaped `KV` contract over one SQLite file (or ``:memory:``)."""

    def __init__(self, path: str, *, poll_interval: float = 0.5, watch_buffer: int = 10_000):
        self.path = path
        self._poll_interval = poll_interval
        self._watch_buffer = max(watch_buffer, _LOG_BATCH)
        self._memory = path == ":memory:"
        self._wexec = ThreadPoolExecutor(1, thread_name_prefix="tenantstore-sqlite-w")
        self._rexec = (
            self._wexec
            if self._memory
            else ThreadPoolExecutor(1, thread_name_prefix="tenantstore-sqlite-r")
        )
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._closed = False
        # Group commit.
        self._pending: list[tuple[_WriteOp, asyncio.Future[Any]]] = []
        self._writing = False
        self._writer_idle = asyncio.Event()
        self._writer_idle.set()
        # Highest revision this process has seen committed.
        self._known_rev = 0
        # Tailer: every row with id <= _pos has been fanned out to live watchers.
        self._pos = 0
        self._wake = asyncio.Event()
        self._tail_lock = asyncio.Lock()
        self._watchers: set[_Watcher] = set()
        self._groups: dict[tuple[str, str], set[_Watcher]] = {}
        self._ahead: set[_Watcher] = set()
        self._tasks: list[asyncio.Task[None]] = []

    # -- construction --------------------------------------------------------------
    @classmethod
    async def open(
        cls, path: str, *, poll_interval: float = 0.5, watch_buffer: int = 10_000
    ) -> SqliteKV:
        """Open (creating if needed) the store at `path`; ":memory:" for a private one."""
        if not isinstance(path, str) or not path:
            raise InvalidKVInputError(f"path must be a non-empty str, got {path!r}")
        self = cls(path, poll_interval=poll_interval, watch_buffer=watch_buffer)
        loop = asyncio.get_running_loop()
        try:
            self._wconn = await loop.run_in_executor(self._wexec, self._connect, True)
            if self._memory:
                self._rconn = self._wconn
            else:
                self._rconn = await loop.run_in_executor(self._rexec, self._connect, False)
            seq = await self._read(lambda c: _seq(c))
        except BaseException:
            await self._shutdown_threads()
            raise
        self._known_rev = self._pos = seq
        self._tasks = [
            asyncio.create_task(self._tail_loop(), name="sqlitekv-tailer"),
            asyncio.create_task(self._sweep_loop(), name="sqlitekv-sweeper"),
        ]
        return self

    @staticmethod
    def path_from_url(url: str) -> str:
        """``sqlite:///abs/path`` -> ``/abs/path``; ``sqlite://rel.db`` -> ``rel.db``;
        ``sqlite://:memory:`` -> ``:memory:``."""
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

    def _connect(self, writer: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, cached_statements=256
        )
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            if writer:
                if not self._memory:
                    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                    if str(mode).lower() != "wal":
                        raise UnavailableError(f"sqlite: cannot enable WAL on {self.path}")
                conn.execute("PRAGMA synchronous = FULL")
                # One script, one transaction: concurrent openers of a file serialize.
                conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        except BaseException:
            conn.close()
            raise
        return conn

    # -- thread plumbing -----------------------------------------------------------
    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise UnavailableError("sqlite store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._rexec, self._read_txn, fn, args)
        except BaseException as err:
            raise _translate(err) from err

    def _read_txn(self, fn: Callable[..., T], args: Sequence[Any]) -> T:
        conn = self._rconn
        if conn is None:
            raise UnavailableError("sqlite store is closed")
        conn.execute("BEGIN")
        try:
            return fn(conn, *args)
        finally:
            conn.execute("COMMIT")

    async def _write(self, op: _WriteOp) -> Any:
        if self._closed:
            raise UnavailableError("sqlite store is closed")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((op, fut))
        if not self._writing:
            self._start_batch()
        return await fut

    def _start_batch(self) -> None:
        batch = self._pending[:_MAX_GROUP]
        del self._pending[:_MAX_GROUP]
        self._writing = True
        self._writer_idle.clear()
        loop = asyncio.get_running_loop()
        cf = loop.run_in_executor(self._wexec, self._run_batch, [op for op, _ in batch])
        cf.add_done_callback(lambda f: self._batch_done(f, batch))

    def _run_batch(self, ops: list[_WriteOp]) -> tuple[list[Any], int]:
        conn = self._wconn
        if conn is None:
            raise UnavailableError("sqlite store is closed")
        conn.execute("BEGIN IMMEDIATE")
        try:
            rev = _seq(conn)
            results = []
            for op in ops:
                result, rev = op(conn, rev)
                results.append(result)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return results, rev

    def _batch_done(
        self,
        f: asyncio.Future[tuple[list[Any], int]],
        batch: list[tuple[_WriteOp, asyncio.Future[Any]]],
    ) -> None:
        self._writing = False
        err = UnavailableError("sqlite write cancelled") if f.cancelled() else f.exception()
        if err is not None:
            terr = _translate(err)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(terr)
        else:
            results, rev = f.result()
            if rev > self._known_rev:
                self._known_rev = rev
                self._wake.set()
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
        if self._pending and not self._closed:
            self._start_batch()
        else:
            self._writer_idle.set()

    # -- reads ---------------------------------------------------------------------
    async def get(self, key: str) -> tuple[KeyValue | None, int]:
        check_key(key)
        kv, rev = await self._read(self._r_get, key)
        self._saw(rev)
        return kv, rev

    @staticmethod
    def _r_get(conn: sqlite3.Connection, key: str) -> tuple[KeyValue | None, int]:
        rev = _seq(conn)
        row = conn.execute(_Q_LATEST, (key,)).fetchone()
        if row is None or row[1]:
            return None, rev
        return KeyValue(key, row[3], row[2], row[0], row[4]), rev

    async def range(
        self, start: str, end: str, *, revision: int = 0, limit: int = 0
    ) -> RangeResult:
        check_key(start, "start")
        check_range_end(end)
        check_revision(revision, "revision")
        check_revision(limit, "limit")
        res = await self._read(self._r_range, start, end, revision, limit)
        self._saw(res.revision)
        return res

    @staticmethod
    def _r_range(
        conn: sqlite3.Connection, start: str, end: str, revision: int, limit: int
    ) -> RangeResult:
        cur = _seq(conn)
        if revision > cur:
            raise TooLargeResourceVersionError(
                f"revision {revision} is in the future (current {cur})",
                resource_version=revision,
            )
        if revision:
            compact = _compact_rev(conn)
            if revision < compact:
                raise CompactedError(revision, compact)
        at = revision or cur
        where, params = _name_clause(start, end, "l.name")
        # Walk the (name, id) index in key order, keeping each key's newest row at `at`:
        # a LIMIT stops the walk early. Counting is cheaper with a GROUP BY.
        sql = (
            "SELECT l.name, l.value, l.create_revision, l.id, l.lease FROM kv_log AS l"
            f" WHERE {where} AND l.deleted = 0 AND l.id ="
            " (SELECT MAX(id) FROM kv_log WHERE name = l.name AND id <= ?) ORDER BY l.name"
        )
        if limit:
            rows = conn.execute(sql + " LIMIT ?", (*params, at, limit + 1)).fetchall()
        else:
            rows = conn.execute(sql, (*params, at)).fetchall()
        more = bool(limit) and len(rows) > limit
        if more:
            rows = rows[:limit]
            count = SqliteKV._r_count(conn, start, end, at)
        else:
            count = len(rows)
        kvs = [KeyValue(r[0], r[1], r[2], r[3], r[4]) for r in rows]
        return RangeResult(kvs, cur, more, count)

    async def count(self, start: str, end: str) -> int:
        check_key(start, "start")
        check_range_end(end)
        return await self._read(self._r_count, start, end)

    @staticmethod
    def _r_count(conn: sqlite3.Connection, start: str, end: str, at: int | None = None) -> int:
        where, names = _name_clause(start, end)
        params: tuple[object, ...] = names
        if at is not None:
            where += " AND id <= ?"
            params = (*names, at)
        sql = (
            f"SELECT COUNT(*) FROM (SELECT MAX(id) AS mid FROM kv_log WHERE {where}"
            " GROUP BY name) AS m JOIN kv_log AS l ON l.id = m.mid WHERE l.deleted = 0"
        )
        return int(conn.execute(sql, params).fetchone()[0])

    async def current_revision(self) -> int:
        rev = await self._read(lambda c: _seq(c))
        self._saw(rev)
        return rev

    async def compact_revision(self) -> int:
        """The revision history is compacted to (0 if never compacted)."""
        return await self._read(lambda c: _compact_rev(c))

    async def ready(self) -> bool:
        if self._closed:
            return False
        try:
            await self._read(lambda c: c.execute("SELECT 1").fetchone())
        except StorageError:
            return False
        return True

    def _saw(self, rev: int) -> None:
        if rev > self._known_rev:
            self._known_rev = rev

    # -- writes --------------------------------------------------------------------
    async def create(self, key: str, value: bytes, *, ttl: int | None = None) -> TxnResult:
        check_key(key)
        data = check_value(value)
        check_ttl(ttl)

        def op(conn: sqlite3.Connection, rev: int) -> tuple[TxnResult, int]:
            row = conn.execute(_Q_LATEST, (key,)).fetchone()
            if row is not None and not row[1]:
                return TxnResult(False, rev, KeyValue(key, row[3], row[2], row[0], row[4])), rev
            new = rev + 1
            lease = ttl or 0
            expires = time.time() + ttl if ttl else None
            prev = row[0] if row is not None else 0
            conn.execute(_Q_INSERT, (new, key, 1, 0, new, prev, lease, expires, data, None))
            return TxnResult(True, new, KeyValue(key, data, new, new, lease)), new

        result: TxnResult = await self._write(op)
        return result

    async def update(self, key: str, value: bytes, *, expected_mod_revision: int) -> TxnResult:
        check_key(key)
        data = check_value(value)
        expected = check_revision(expected_mod_revision, "expected_mod_revision")

        def op(conn: sqlite3.Connection, rev: int) -> tuple[TxnResult, int]:
            row = conn.execute(_Q_LATEST, (key,)).fetchone()
            if row is None or row[1]:
                return TxnResult(False, rev, None), rev
            if row[0] != expected:
                return TxnResult(False, rev, KeyValue(key, row[3], row[2], row[0], row[4])), rev
            new = rev + 1
            conn.execute(_Q_INSERT, (new, key, 0, 0, row[2], row[0], 0, None, data, row[3]))
            if row[5] is not None:
                conn.execute("UPDATE kv_log SET expires = NULL WHERE id = ?", (row[0],))
            return TxnResult(True, new, KeyValue(key, data, row[2], new)), new

        result: TxnResult = await self._write(op)
        return result

    async def delete(self, key: str, *, expected_mod_revision: int = 0) -> TxnResult:
        check_key(key)
        expected = check_revision(expected_mod_revision, "expected_mod_revision")
        result: TxnResult = await self._write(self._delete_op(key, expected, None))
        return result

    @staticmethod
    def _delete_op(key: str, expected: int, expired_before: float | None) -> _WriteOp:
        def op(conn: sqlite3.Connection, rev: int) -> tuple[TxnResult, int]:
            row = conn.execute(_Q_LATEST, (key,)).fetchone()
            if row is None or row[1]:
                return TxnResult(False, rev, None), rev
            current = KeyValue(key, row[3], row[2], row[0], row[4])
            if expected and row[0] != expected:
                return TxnResult(False, rev, current), rev
            if expired_before is not None and (row[5] is None or row[5] > expired_before):
                return TxnResult(False, rev, current), rev
            new = rev + 1
            conn.execute(_Q_INSERT, (new, key, 0, 1, row[2], row[0], 0, None, b"", row[3]))
            if row[5] is not None:
                conn.execute("UPDATE kv_log SET expires = NULL WHERE id = ?", (row[0],))
            return TxnResult(True, new, None), new

        return op

    async def compact(self, revision: int) -> None:
        check_revision(revision, "revision")
        if revision == 0:
            return
        # Let the tailer fan out every row below `revision` before any can disappear.
        async with self._tail_lock:
            await self._tail_once()

        def mark(conn: sqlite3.Connection, rev: int) -> tuple[tuple[bool, int], int]:
            if revision > rev:
                raise TooLargeResourceVersionError(
                    f"compact revision {revision} is in the future (current {rev})",
                    resource_version=revision,
                )
            if revision <= _compact_rev(conn):
                return (False, 0), rev
            conn.execute(
                "INSERT OR REPLACE INTO kv_meta (name, value) VALUES ('compact_rev', ?)",
                (revision,),
            )
            low = conn.execute("SELECT MIN(id) FROM kv_log").fetchone()[0]
            return (True, int(low or revision)), rev

        todo, low = await self._write(mark)
        if not todo:
            return
        while low < revision:
            high = min(low + _COMPACT_SPAN, revision)

            def chunk(
                conn: sqlite3.Connection, rev: int, lo: int = low, hi: int = high
            ) -> tuple[None, int]:
                conn.execute(_Q_COMPACT_CHUNK, (lo, hi, revision, revision))
                return None, rev

            await self._write(chunk)
            low = high

    # -- TTL sweeper ---------------------------------------------------------------
    async def _sweep_loop(self) -> None:
        while not self._closed:
            delay = _SWEEP_INTERVAL
            try:
                now = time.time()
                expired, nxt = await self._read(self._r_expired, now)
                if expired:
                    await asyncio.gather(
                        *(self._write(self._delete_op(n, i, now)) for n, i in expired)
                    )
                if nxt is not None:
                    delay = min(max(nxt - time.time(), 0.05), _SWEEP_INTERVAL)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if self._closed:
                    return
                log.warning("sqlite TTL sweep failed: %s", err)
            await asyncio.sleep(delay)

    @staticmethod
    def _r_expired(
        conn: sqlite3.Connection, now: float
    ) -> tuple[list[tuple[str, int]], float | None]:
        rows = conn.execute(_Q_EXPIRED, (now,)).fetchall()
        nxt = conn.execute(_Q_NEXT_EXPIRY, (now,)).fetchone()[0]
        return [(r[0], r[1]) for r in rows], nxt

    # -- watch ---------------------------------------------------------------------
    def watch(
        self, start: str, end: str, *, start_revision: int, progress_notify: bool = False
    ) -> _Watcher:
        """Events for keys in [start, end) with revision >= `start_revision` (0 = from
        the next write on)."""
        check_key(start, "start")
        check_range_end(end)
        check_revision(start_revision, "start_revision")
        if self._closed:
            raise UnavailableError("sqlite store is closed")
        w = _Watcher(self, start, end, start_revision, progress_notify)
        if start_revision == 0:
            w.next_rev = max(self._pos, self._known_rev) + 1
        self._watchers.add(w)
        return w

    async def request_progress(self) -> bool:
        """A progress notification now, at the revision of every commit so far, to each
        live watch that asked for them: the cacher's consistent reads wait on it. The
        tailer catches up first, so the notification never runs ahead of an event."""
        async with self._tail_lock:
            await self._tail_once()
        for group in list(self._groups.values()):
            for w in list(group):
                if w.progress and not w.push(KVEvent(KVEventType.PROGRESS, None, None, self._pos)):
                    self._demote(w, self._pos + 1)
        return True

    @property
    def watch_count(self) -> int:
        """Open backend watches (the scale harness reports this)."""
        return len(self._watchers)

    def watchers_open(self) -> int:
        return len(self._watchers)

    def _go_live(self, w: _Watcher) -> None:
        self._groups.setdefault((w.start, w.end), set()).add(w)

    def _demote(self, w: _Watcher, next_rev: int) -> None:
        w.live = False
        w.next_rev = next_rev
        group = self._groups.get((w.start, w.end))
        if group is not None:
            group.discard(w)
            if not group:
                del self._groups[(w.start, w.end)]
        w.wake.set()

    def _unregister(self, w: _Watcher) -> None:
        self._watchers.discard(w)
        self._ahead.discard(w)
        if w.live:
            self._demote(w, w.next_rev)

    @staticmethod
    def _r_log_backlog(
        conn: sqlite3.Connection, first: int, last: int, start: str, end: str
    ) -> tuple[list[Row], int]:
        compact = _compact_rev(conn)
        if first < compact:
            return [], compact
        where, params = _name_clause(start, end)
        rows = conn.execute(
            f"SELECT {_LOG_COLS} FROM kv_log WHERE id >= ? AND id <= ? AND {where}"
            " ORDER BY id LIMIT ?",
            (first, last, *params, _LOG_BATCH),
        ).fetchall()
        return rows, compact

    @staticmethod
    def _r_tail(conn: sqlite3.Connection, pos: int, rows: bool) -> tuple[list[Row], int, int]:
        seq = _seq(conn)
        compact = _compact_rev(conn)
        if not rows or seq <= pos:
            return [], seq, compact
        return conn.execute(_Q_TAIL, (pos, _LOG_BATCH)).fetchall(), seq, compact

    async def _tail_loop(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()
            try:
                async with self._tail_lock:
                    await self._tail_once()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if self._closed:
                    return
                log.warning("sqlite log tailer failed: %s", err)
                await asyncio.sleep(self._poll_interval)

    async def _tail_once(self) -> None:
        """Fan out every committed row above `_pos` to the live watchers."""
        while True:
            pos = self._pos
            rows, seq, compact = await self._read(self._r_tail, pos, bool(self._groups))
            if self._pos != pos:  # pragma: no cover - guarded by _tail_lock
                continue
            self._saw(seq)
            if not rows and self._groups and seq > pos:
                continue  # a watcher went live while we read without rows: read again
            if compact > pos + 1:
                # Another process compacted rows this tailer had not read yet.
                for group in list(self._groups.values()):
                    for w in list(group):
                        self._demote(w, pos + 1)
            if rows:
                self._fan_out(rows)
            new_pos = rows[-1][0] if len(rows) >= _LOG_BATCH else max(seq, pos)
            self._pos = new_pos
            if self._ahead:
                for w in list(self._ahead):
                    w.wake.set()
            if len(rows) < _LOG_BATCH:
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

    # -- shutdown ------------------------------------------------------------------
    async def close(self) -> None:
        """End every watch (their iteration raises UnavailableError), finish in-flight
        writes, fail queued ones, and close the connections."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for w in list(self._watchers):
            w.buf.clear()
            w.error = UnavailableError("sqlite store closed")
            w.live = False
            w.wake.set()
        self._watchers.clear()
        self._groups.clear()
        self._ahead.clear()
        for _, fut in self._pending:
            if not fut.done():
                fut.set_exception(UnavailableError("sqlite store closed"))
        self._pending.clear()
        await self._writer_idle.wait()
        await self._shutdown_threads()

    async def _shutdown_threads(self) -> None:
        loop = asyncio.get_running_loop()

        def close_conn(conn: sqlite3.Connection | None) -> None:
            if conn is not None:
                conn.close()

        rconn, wconn = self._rconn, self._wconn
        self._rconn = self._wconn = None
        if rconn is not None and rconn is not wconn:
            with contextlib.suppress(Exception):
                await loop.run_in_executor(self._rexec, close_conn, rconn)
        with contextlib.suppress(Exception):
            await loop.run_in_executor(self._wexec, close_conn, wconn)
        self._rexec.shutdown(wait=False)
        self._wexec.shutdown(wait=False)


def _path_with_parent(url: str) -> str:
    path = SqliteKV.path_from_url(url)
    if path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return path


async def open_url(url: str) -> SqliteKV:
    """The `sqlite://` driver: open the file the URL names, creating its directory."""
    return await SqliteKV.open(_path_with_parent(url))


register_driver("sqlite", open_url)
