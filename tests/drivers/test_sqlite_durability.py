"""SQLite-only behaviour of `SqliteKV`: files shared between connections and processes,
durability across close and kill -9, and the log's own invariants."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from tenantstore.backends.kv import CompactedError, KVEvent, KVEventType, prefix_end
from tenantstore.backends.sqlite import SqliteKV
from tenantstore.storage.errors import TooLargeResourceVersionError, UnavailableError

WAIT = 15.0
PYTHON_SRC = str(Path(__file__).resolve().parents[2] / "python")


async def take(kv_watch: object, n: int) -> list[KVEvent]:
    it = kv_watch.__aiter__()  # type: ignore[attr-defined]
    out: list[KVEvent] = []

    async def run() -> None:
        while len(out) < n:
            ev = await it.__anext__()
            if ev.type is not KVEventType.PROGRESS:
                out.append(ev)

    await asyncio.wait_for(run(), WAIT)
    return out


def check_log(path: Path) -> list[tuple[int, str, int, int, int, int]]:
    """Check the log's invariants directly with sqlite3; return its rows."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT id, name, created, deleted, create_revision, prev_revision"
            " FROM kv_log ORDER BY id"
        ).fetchall()
        seq_row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='kv_log'").fetchone()
        meta = conn.execute("SELECT value FROM kv_meta WHERE name='compact_rev'").fetchone()
    finally:
        conn.close()
    ids = [r[0] for r in rows]
    assert ids == sorted(set(ids))
    if rows:
        assert seq_row is not None and seq_row[0] >= ids[-1]
    compact = meta[0] if meta else 0
    last: dict[str, tuple[int, str, int, int, int, int]] = {}
    for row in rows:
        rid, name, created, _deleted, create_rev, prev_rev = row
        prev = last.get(name)
        if prev is None and prev_rev < compact:
            pass  # the key's earlier rows were compacted away
        elif created:
            assert create_rev == rid
            assert prev is None or prev[3] == 1  # only after a delete (or nothing)
        else:
            assert prev is not None and prev[3] == 0, f"update/delete of an absent key: {row}"
            assert prev_rev == prev[0]
            assert create_rev == prev[4]
        last[name] = row
    return rows


async def test_open_from_url_and_memory(tmp_path: Path) -> None:
    assert SqliteKV.path_from_url("sqlite:///abs/dir/x.db") == "/abs/dir/x.db"
    assert SqliteKV.path_from_url("sqlite://rel.db") == "rel.db"
    assert SqliteKV.path_from_url("sqlite://:memory:") == ":memory:"
    with pytest.raises(ValueError):
        SqliteKV.path_from_url("postgres://x")
    kv = await SqliteKV.from_url(f"sqlite://{tmp_path / 'u.db'}")
    try:
        assert (await kv.create("/k", b"v")).revision == 1
    finally:
        await kv.close()
    assert (tmp_path / "u.db").exists()

    mem = await SqliteKV.open(":memory:")
    try:
        assert await mem.ready()
        c = await mem.create("/m", b"1")
        w = mem.watch("/m", "", start_revision=c.revision)
        evs = await take(w, 1)
        assert evs[0].kv is not None and evs[0].kv.value == b"1"
        await w.close()
    finally:
        await mem.close()
    assert not await mem.ready()


async def test_second_connection_sees_writes_through_polling_watch(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    a = await SqliteKV.open(path, poll_interval=0.1)
    b = await SqliteKV.open(path, poll_interval=0.1)
    try:
        w = b.watch("/p/", prefix_end("/p/"), start_revision=1)
        revs = [(await a.create(f"/p/{i}", b"x")).revision for i in range(5)]
        evs = await take(w, 5)
        assert [e.revision for e in evs] == revs
        # Writes from both connections interleave into one revision sequence.
        rb = await b.create("/p/from-b", b"y")
        assert rb.revision == revs[-1] + 1
        got, rev = await a.get("/p/from-b")
        assert got is not None and got.value == b"y" and rev == rb.revision
        ra = await a.update("/p/0", b"z", expected_mod_revision=revs[0])
        assert ra.revision == rb.revision + 1
        more = await take(w, 2)
        assert [e.revision for e in more] == [rb.revision, ra.revision]
        await w.close()
        assert b.watch_count == 0
    finally:
        await a.close()
        await b.close()


async def test_reopen_retains_data_and_revision(tmp_path: Path) -> None:
    path = str(tmp_path / "re.db")
    kv = await SqliteKV.open(path)
    c = await kv.create("/a", b"1")
    u = await kv.update("/a", b"2", expected_mod_revision=c.revision)
    await kv.create("/b", b"b")
    d = await kv.delete("/b", expected_mod_revision=0)
    await kv.compact(d.revision)  # rows disappear, the revision must not go back
    await kv.close()
    with pytest.raises(UnavailableError):
        await kv.get("/a")

    kv2 = await SqliteKV.open(path)
    try:
        assert await kv2.current_revision() == d.revision
        got, _ = await kv2.get("/a")
        assert got is not None and got.value == b"2" and got.mod_revision == u.revision
        assert (await kv2.get("/b"))[0] is None
        with pytest.raises(CompactedError):
            await kv2.range("/", "\x00", revision=u.revision)
        nxt = await kv2.create("/c", b"c")
        assert nxt.revision == d.revision + 1
    finally:
        await kv2.close()
    check_log(Path(path))


_WRITER = r"""
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from tenantstore.backends.sqlite import SqliteKV

async def main():
    kv = await SqliteKV.open(sys.argv[2])
    i = 0
    while True:
        key = f"/dur/{i % 50}"
        got, _ = await kv.get(key)
        if got is None:
            res = await kv.create(key, str(i).encode())
        elif i % 7 == 0:
            res = await kv.delete(key, expected_mod_revision=got.mod_revision)
        else:
            res = await kv.update(key, str(i).encode(), expected_mod_revision=got.mod_revision)
        assert res.succeeded
        print(f"{res.revision} {key} {'-' if i % 7 == 0 and got is not None else i}", flush=True)
        i += 1

asyncio.run(main())
"""


async def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "kill.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WRITER,
        PYTHON_SRC,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    acked: list[tuple[int, str, str]] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while len(acked) < 300 and time.monotonic() < deadline:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if not line:
                break
            rev, key, val = line.decode().split()
            acked.append((int(rev), key, val))
        os.kill(proc.pid, signal.SIGKILL)  # mid-way: it never stops writing by itself
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        _, err = await proc.communicate()
    assert len(acked) >= 300, f"writer stopped early: {err.decode()}"
    assert proc.returncode == -signal.SIGKILL
    assert [a[0] for a in acked] == list(range(1, len(acked) + 1))

    rows = check_log(path)
    assert len(rows) >= len(acked)  # maybe one more, committed but not yet printed
    kv = await SqliteKV.open(str(path))
    try:
        assert await kv.current_revision() >= acked[-1][0]
        # Every acknowledged write is readable at its revision.
        final: dict[str, tuple[int, str]] = {}
        for rev, key, val in acked:
            final[key] = (rev, val)
        last_rev = acked[-1][0]
        state = await kv.range("/dur/", prefix_end("/dur/"), revision=last_rev)
        present = {x.key: x for x in state.kvs}
        for key, (rev, val) in final.items():
            if val == "-":
                assert key not in present
            else:
                assert present[key].value == val.encode() and present[key].mod_revision == rev
    finally:
        await kv.close()


async def test_watch_from_zero_and_future_revisions(tmp_path: Path) -> None:
    kv = await SqliteKV.open(str(tmp_path / "z.db"))
    try:
        await kv.create("/z/old", b"old")
        w = kv.watch("/z/", prefix_end("/z/"), start_revision=0)
        fut = kv.watch("/z/", prefix_end("/z/"), start_revision=5)
        revs = [(await kv.create(f"/z/{i}", b"n")).revision for i in range(5)]
        evs = await take(w, 5)
        assert [e.revision for e in evs] == revs  # not the write before the watch
        assert [e.revision for e in await take(fut, 2)] == [5, 6]
        assert kv.watch_count == 2
        await w.close()
        await fut.close()
        assert kv.watch_count == 0
        with pytest.raises(TooLargeResourceVersionError):
            await kv.range("/z/", "\x00", revision=100)
        with pytest.raises(TooLargeResourceVersionError):
            await kv.compact(100)
    finally:
        await kv.close()


async def test_slow_watcher_catches_up_without_loss(tmp_path: Path) -> None:
    kv = await SqliteKV.open(str(tmp_path / "slow.db"), watch_buffer=1000)
    try:
        w = kv.watch("/s/", prefix_end("/s/"), start_revision=1)
        it = w.__aiter__()
        first = await asyncio.wait_for(
            asyncio.gather(kv.create("/s/first", b"x"), it.__anext__()), WAIT
        )
        assert first[1].revision == 1
        # 2500 writes while nobody consumes: more than the buffer holds.
        n = 2500
        await asyncio.gather(*(kv.create(f"/s/{i:05}", b"v") for i in range(n)))
        evs = await take(w, n)
        assert [e.revision for e in evs] == list(range(2, n + 2))
        assert {e.kv.key for e in evs if e.kv} == {f"/s/{i:05}" for i in range(n)}
        await w.close()
    finally:
        await kv.close()


async def test_close_ends_watches_with_unavailable(tmp_path: Path) -> None:
    kv = await SqliteKV.open(str(tmp_path / "c.db"))
    w = kv.watch("/x", "\x00", start_revision=0)
    task = asyncio.create_task(take(w, 1))
    await asyncio.sleep(0.05)
    await kv.close()
    with pytest.raises(UnavailableError):
        await asyncio.wait_for(task, WAIT)
    assert kv.watch_count == 0


async def test_ttl_sweeper_deletes_and_update_clears_ttl(tmp_path: Path) -> None:
    kv = await SqliteKV.open(str(tmp_path / "ttl.db"))
    try:
        a = await kv.create("/t/a", b"a", ttl=1)
        b = await kv.create("/t/b", b"b", ttl=1)
        assert a.current is not None and a.current.lease == 1
        await kv.update("/t/b", b"b2", expected_mod_revision=b.revision)  # etcd: lease dropped
        for _ in range(int(WAIT * 10)):  # bounded wait, no timing assertion
            if (await kv.get("/t/a"))[0] is None:
                break
            await asyncio.sleep(0.1)
        assert (await kv.get("/t/a"))[0] is None
        got, _ = await kv.get("/t/b")
        assert got is not None and got.value == b"b2"
    finally:
        await kv.close()
    rows = check_log(tmp_path / "ttl.db")
    assert [(r[1], r[3]) for r in rows][-1] == ("/t/a", 1)


async def test_random_history_matches_model_after_compaction(tmp_path: Path) -> None:
    """Random writes, compaction in the middle: every readable revision matches a model."""
    rnd = random.Random(1234)
    kv = await SqliteKV.open(str(tmp_path / "model.db"))
    history: list[dict[str, bytes]] = [{}]  # state after revision i
    try:
        compact_at = 0
        for step in range(400):
            key = f"/m/{rnd.randrange(12)}"
            state = dict(history[-1])
            got, _ = await kv.get(key)
            if got is None:
                res = await kv.create(key, f"{step}".encode())
                state[key] = f"{step}".encode()
            elif rnd.random() < 0.3:
                res = await kv.delete(key, expected_mod_revision=got.mod_revision)
                del state[key]
            else:
                res = await kv.update(
                    key, f"{step}".encode(), expected_mod_revision=got.mod_revision
                )
                state[key] = f"{step}".encode()
            assert res.succeeded and res.revision == len(history)
            history.append(state)
            if step in (150, 300):
                compact_at = res.revision - 20
                await kv.compact(compact_at)
        with pytest.raises(CompactedError):
            await kv.range("/m/", "\x00", revision=compact_at - 1)
        for rev in range(compact_at, len(history)):
            res = await kv.range("/m/", "\x00", revision=rev)
            assert {x.key: x.value for x in res.kvs} == history[rev], rev
        # A watch from the compaction point replays exactly the retained history.
        w = kv.watch("/m/", "\x00", start_revision=compact_at)
        evs = await take(w, len(history) - compact_at)
        assert [e.revision for e in evs] == list(range(compact_at, len(history)))
        await w.close()
    finally:
        await kv.close()
    check_log(tmp_path / "model.db")


async def test_point_read_falls_back_to_the_reader_thread(tmp_path: Path) -> None:
    """A point read runs on the event loop's thread; when SQLite fails it there (busy,
    interrupted), the read goes to the reader thread instead of failing, and a closed
    store is a 503 either way."""
    kv = await SqliteKV.open(str(tmp_path / "inline.db"))
    try:
        created = await kv.create("/a", b"1")
        inline = kv._db._iconn
        assert inline is not None
        inline.set_progress_handler(lambda: 1, 1)  # every statement here is interrupted
        got, _ = await kv.get("/a")
        assert got is not None and got.value == b"1" and got.mod_revision == created.revision
        assert not inline.in_transaction
    finally:
        await kv.close()
    with pytest.raises(UnavailableError):
        await kv.get("/a")
