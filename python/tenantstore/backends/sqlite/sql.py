"""The SQL half of the SQLite driver: the log table, its statements, the connections and
their threads, group commit, compaction and the TTL sweep (kine's dialect plus
`generic` DB). Nothing here knows about watchers; `log.py` tails what this commits.

The log. One append-only table, `kv_log`. Its `INTEGER PRIMARY KEY AUTOINCREMENT` id
is the store revision: every successful write (create, update, delete, TTL expiry)
appends exactly one row, so the revision grows by one per write. A row records the key
(`name`), whether it created the key or is a delete tombstone, the key's
`create_revision`, the id of the key's previous row (`prev_revision`), the TTL lease and
expiry, the new value and the previous value (`old_value`, so a watch event carries
`prev_kv` without a join, even after compaction).

* The state of a key at revision R is its newest row with `id <= R` unless that row is
  a tombstone. `(name, id)` is indexed for that lookup.
* Compaction to R records R in `kv_meta` first (so reads below R fail from then on) and
  then deletes, in short batches, every row below R that is superseded by a newer row
  at or below R, and every tombstone below R. Ranges at `revision < R` and watches from
  `start_revision < R` raise `CompactedError`, as in etcd.
* The current revision is `sqlite_sequence.seq` of `kv_log`: AUTOINCREMENT never reuses
  an id, and the sequence survives the deletion of rows by compaction, so the revision
  never goes backwards.

Threads and transactions. SQLite (stdlib `sqlite3`) runs on dedicated worker threads,
so the event loop never blocks: one writer thread owning the write connection and, for
a file, one reader thread owning a second connection (WAL lets it read while the writer
commits). Writes are group-committed: every write queued while the previous transaction
was committing runs, in order, in the next `BEGIN IMMEDIATE` transaction, each with its
own compare, and all are acknowledged after its single `COMMIT` (`synchronous=FULL`: an
acknowledged write is durable). Within one process the writer thread serializes every
transaction; across processes SQLite's write lock does. Either way a transaction reads
the sequence and appends at `seq + 1` under the write lock, so ids commit in increasing
order and a reader never sees id N+1 before id N: there are no gaps for a log tailer to
fall into (a rolled-back transaction rolls back the sequence too, so it leaves no hole
either).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ...storage.errors import (
    InternalError,
    StorageError,
    TooLargeResourceVersionError,
    UnavailableError,
)
from ..kv import CompactedError, KeyValue, RangeResult, TxnResult

__all__ = ["Row", "SqliteDB"]

log = logging.getLogger(__name__)

# How long a statement waits for another connection's lock; the readiness probe waits
# much less, so that a locked database reports itself not ready within a probe.
_BUSY_MS = 10_000
_PROBE_BUSY_MS = 300
# The inline reader never waits for a lock on the event loop: busy, it hands the read
# to the reader thread, which may wait `_BUSY_MS`.
_INLINE_BUSY_MS = 0

T = TypeVar("T")
# A `kv_log` row as the log tailer reads it: the columns of `_LOG_COLS`, in that order
# (`log.py` builds events from them).
Row = tuple[Any, ...]

# Writes per group-committed transaction at most.
_MAX_GROUP = 256
# Id span one compaction transaction covers (keeps writers' waits short).
_COMPACT_SPAN = 5000
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


def _seq(conn: sqlite3.Connection) -> int:
    row = conn.execute(_Q_SEQ).fetchone()
    return int(row[0]) if row else 0


def _compact_rev(conn: sqlite3.Connection) -> int:
    row = conn.execute(_Q_COMPACT).fetchone()
    return int(row[0]) if row else 0


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


class SqliteDB:
    """The log in one SQLite file (or `:memory:`): its connections, threads and queries.

    Arguments are trusted: `SqliteKV` checks them before they get here.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._memory = path == ":memory:"
        self._wexec = ThreadPoolExecutor(1, thread_name_prefix="tenantstore-sqlite-w")
        self._rexec = (
            self._wexec
            if self._memory
            else ThreadPoolExecutor(1, thread_name_prefix="tenantstore-sqlite-r")
        )
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        # Point reads run on the event loop's own thread (see `get`).
        self._iconn: sqlite3.Connection | None = None
        # Set as soon as the driver starts closing, so that the reads and writes of
        # background tasks still winding down are refused.
        self.closed = False
        # Group commit.
        self._pending: list[tuple[_WriteOp, asyncio.Future[Any]]] = []
        self._writing = False
        self._writer_idle = asyncio.Event()
        self._writer_idle.set()
        # Highest revision this process has seen committed.
        self.known_rev = 0
        # Called when a local commit raises `known_rev` (the log tailer's wake-up).
        self.on_commit: Callable[[], None] = lambda: None

    async def open(self) -> int:
        """Connect (creating the schema if needed); returns the current revision."""
        loop = asyncio.get_running_loop()
        try:
            self._wconn = await loop.run_in_executor(self._wexec, self._connect, True)
            if self._memory:
                self._rconn = self._wconn
            else:
                self._rconn = await loop.run_in_executor(self._rexec, self._connect, False)
                self._iconn = self._connect(False)
                self._iconn.execute(f"PRAGMA busy_timeout = {_INLINE_BUSY_MS}")
            seq = await self._read(lambda c: _seq(c))
        except BaseException:
            await self._shutdown_threads()
            raise
        self.known_rev = seq
        return seq

    def _connect(self, writer: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, cached_statements=256
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
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

    def saw(self, rev: int) -> None:
        if rev > self.known_rev:
            self.known_rev = rev

    # -- thread plumbing -----------------------------------------------------------
    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        if self.closed:
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
        return self._read_txn_on(conn, fn, args)

    @staticmethod
    def _read_txn_on(conn: sqlite3.Connection, fn: Callable[..., T], args: Sequence[Any]) -> T:
        conn.execute("BEGIN")
        try:
            return fn(conn, *args)
        finally:
            conn.execute("COMMIT")

    async def _write(self, op: _WriteOp) -> Any:
        if self.closed:
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
            if rev > self.known_rev:
                self.known_rev = rev
                self.on_commit()
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
        if self._pending and not self.closed:
            self._start_batch()
        else:
            self._writer_idle.set()

    # -- reads ---------------------------------------------------------------------
    async def get(self, key: str) -> tuple[KeyValue | None, int]:
        """One key, read on the event loop's thread when the file allows it.

        A point read of a WAL database is an index lookup in pages the OS has cached,
        tens of microseconds: less than handing it to the reader thread costs, and that
        hand-off is two more turns of a loop that, under load, runs every other
        request's work in between (the fairness benchmark: a quiet project's consistent
        GETs waited on a noisy project's requests at each turn). A WAL reader does not
        wait for writers; if the file is locked anyway (a checkpoint, another process
        recovering it), the read goes to the thread rather than block the loop.
        """
        conn = self._iconn
        if conn is not None and not self.closed:
            try:
                return self._read_txn_on(conn, self._r_get, (key,))
            except sqlite3.OperationalError:
                with contextlib.suppress(sqlite3.Error):
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
            except Exception as err:
                raise _translate(err) from err
        return await self._read(self._r_get, key)

    @staticmethod
    def _r_get(conn: sqlite3.Connection, key: str) -> tuple[KeyValue | None, int]:
        rev = _seq(conn)
        row = conn.execute(_Q_LATEST, (key,)).fetchone()
        if row is None or row[1]:
            return None, rev
        return KeyValue(key, row[3], row[2], row[0], row[4]), rev

    async def range(self, start: str, end: str, revision: int, limit: int) -> RangeResult:
        return await self._read(self._r_range, start, end, revision, limit)

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
            count = SqliteDB._r_count(conn, start, end, at)
        else:
            count = len(rows)
        kvs = [KeyValue(r[0], r[1], r[2], r[3], r[4]) for r in rows]
        return RangeResult(kvs, cur, more, count)

    async def count(self, start: str, end: str) -> int:
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
        return await self._read(lambda c: _seq(c))

    async def compact_revision(self) -> int:
        return await self._read(lambda c: _compact_rev(c))

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    async def can_write(self) -> bool:
        """Whether a write could start now: the write lock is taken and given back on
        the writer's own thread. A read succeeds on a file that has become read-only
        or that another process holds locked; readiness must see those as down."""
        if self._wconn is None:
            return False
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._wexec, self._probe_write, self._wconn)

    @staticmethod
    def _probe_write(conn: sqlite3.Connection) -> bool:
        try:
            conn.execute(f"PRAGMA busy_timeout = {_PROBE_BUSY_MS}")
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            finally:
                conn.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
        except sqlite3.Error:
            return False
        return True

    # -- reads for the log tailer ----------------------------------------------------
    async def tail(self, pos: int, rows: bool, limit: int) -> tuple[list[Row], int, int]:
        """(up to `limit` rows above `pos` if `rows`, current revision, compact revision)."""
        return await self._read(self._r_tail, pos, rows, limit)

    @staticmethod
    def _r_tail(
        conn: sqlite3.Connection, pos: int, rows: bool, limit: int
    ) -> tuple[list[Row], int, int]:
        seq = _seq(conn)
        compact = _compact_rev(conn)
        if not rows or seq <= pos:
            return [], seq, compact
        return conn.execute(_Q_TAIL, (pos, limit)).fetchall(), seq, compact

    async def backlog(
        self, first: int, last: int, start: str, end: str, limit: int
    ) -> tuple[list[Row], int]:
        """(up to `limit` rows in [first, last] for keys in [start, end), compact
        revision); no rows if `first` is compacted."""
        return await self._read(self._r_backlog, first, last, start, end, limit)

    @staticmethod
    def _r_backlog(
        conn: sqlite3.Connection, first: int, last: int, start: str, end: str, limit: int
    ) -> tuple[list[Row], int]:
        compact = _compact_rev(conn)
        if first < compact:
            return [], compact
        where, params = _name_clause(start, end)
        rows = conn.execute(
            f"SELECT {_LOG_COLS} FROM kv_log WHERE id >= ? AND id <= ? AND {where}"
            " ORDER BY id LIMIT ?",
            (first, last, *params, limit),
        ).fetchall()
        return rows, compact

    # -- writes --------------------------------------------------------------------
    async def create(self, key: str, data: bytes, ttl: int | None) -> TxnResult:
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

    async def update(
        self, key: str, data: bytes, expected: int, ttl: int | None = None
    ) -> TxnResult:
        def op(conn: sqlite3.Connection, rev: int) -> tuple[TxnResult, int]:
            row = conn.execute(_Q_LATEST, (key,)).fetchone()
            if row is None or row[1]:
                return TxnResult(False, rev, None), rev
            if row[0] != expected:
                return TxnResult(False, rev, KeyValue(key, row[3], row[2], row[0], row[4])), rev
            new = rev + 1
            lease = ttl or 0
            expires = time.time() + ttl if ttl else None
            conn.execute(_Q_INSERT, (new, key, 0, 0, row[2], row[0], lease, expires, data, row[3]))
            if row[5] is not None:
                conn.execute("UPDATE kv_log SET expires = NULL WHERE id = ?", (row[0],))
            return TxnResult(True, new, KeyValue(key, data, row[2], new, lease)), new

        result: TxnResult = await self._write(op)
        return result

    async def delete(self, key: str, expected: int) -> TxnResult:
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
        """Mark `revision` as the compaction point, then delete what it makes unreachable
        in short transactions. The caller must have let the log tailer pass `revision`."""

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
    async def sweep_loop(self) -> None:
        """Delete expired keys (each a logged delete, as etcd's lease expiry is), waking
        for the next expiry or every `_SWEEP_INTERVAL` seconds, until closed."""
        while not self.closed:
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
                if self.closed:
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

    # -- shutdown ------------------------------------------------------------------
    async def close(self) -> None:
        """Refuse new work, fail queued writes, let the in-flight batch finish, and close
        the connections."""
        self.closed = True
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

        rconn, wconn, iconn = self._rconn, self._wconn, self._iconn
        self._rconn = self._wconn = self._iconn = None
        if iconn is not None:
            with contextlib.suppress(Exception):
                iconn.close()
        if rconn is not None and rconn is not wconn:
            with contextlib.suppress(Exception):
                await loop.run_in_executor(self._rexec, close_conn, rconn)
        with contextlib.suppress(Exception):
            await loop.run_in_executor(self._wexec, close_conn, wconn)
        self._rexec.shutdown(wait=False)
        self._wexec.shutdown(wait=False)
