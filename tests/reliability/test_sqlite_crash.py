"""SQLite durability through the whole tenancy stack: kill -9 in the middle of a write burst.

A subprocess opens a `SharedStorageFactory` over a `SqliteKV` file and runs concurrent writers
in several project scopes (so writes are group-committed), printing an intent line before each
write and an acknowledgement line (with the write's RV) after it, flushed. The parent kills it
with SIGKILL mid-burst, then checks the file it left behind, and repeats on the same file:

* ``PRAGMA integrity_check`` is ok; log ids are exactly 1..N (no gap, no reuse) and the
  sequence is at N; every key's chain of rows is consistent (creates after deletes only,
  ``prev_revision`` / ``create_revision`` linking each row to the previous one);
* every acknowledged write is in the log at its RV, under the scoped key, with its value;
* the newest row of every key agrees with a `get` through the reopened KV;
* each key's current value is its last acknowledged one, or the one write that was in flight
  for it at the kill (announced, never acknowledged);
* a fresh shared cacher's initial list of every scope equals the backend's list, and a get
  through the tenancy storage in each project scope returns the same objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

import tenantstore
from tenantstore.backends.sqlite import SqliteKV
from tenantstore.keys import scope_prefix
from tenantstore.store import KVStorage
from tenantstore.tenancy import SharedStorageFactory, project_scope
from tests.reliability.helpers import SOAK, cacher_state, soak_only, store_state, value_of

# The directory the imported `tenantstore` package is in, put first on the writer's path so
# it imports the same package as this process: the source tree (with its built extension)
# in a development checkout, site-packages when the suite runs against an installed wheel.
PYTHON_SRC = str(Path(tenantstore.__file__).resolve().parents[1])
PREFIX = "/registry/configmaps"
PROJECTS = ["p1", "p2", "p3"]
WRITERS_PER_PROJECT = 2
NAMES_PER_WRITER = 4

_WRITER = r"""
import asyncio, sys, uuid
sys.path.insert(0, sys.argv[1])
from tenantstore.backends.sqlite import SqliteKV
from tenantstore.tenancy import SharedStorageFactory, project_scope

PATH, PREFIX, CYCLE = sys.argv[2], sys.argv[3], sys.argv[4]
PROJECTS = sys.argv[5].split(",")
WRITERS, NAMES = int(sys.argv[6]), int(sys.argv[7])


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def writer(storage, project, wid):
    with project_scope(project):
        names = [f"w{wid}k{j}" for j in range(NAMES)]
        present = {}
        for n in names:
            present[n] = await storage.get(f"{PREFIX}/ns/{n}", ignore_not_found=True) is not None
        i = 0
        while True:
            name = names[i % NAMES]
            key = f"{PREFIX}/ns/{name}"
            value = f"{project}-{wid}-{CYCLE}-{i}"
            if not present[name]:
                out(f"I {project} ns/{name} {value}")
                obj = {"metadata": {"name": name, "namespace": "ns", "uid": str(uuid.uuid4())},
                       "data": {"v": value}}
                res = await storage.create(key, obj)
                present[name] = True
            elif i % 5 == 3:
                value = "-"
                out(f"I {project} ns/{name} -")
                res = await storage.delete(key)
                present[name] = False
            else:
                out(f"I {project} ns/{name} {value}")
                res = await storage.guaranteed_update(
                    key, lambda o, v=value: {**o, "data": {"v": v}})
            out(f"A {res['metadata']['resourceVersion']} {project} ns/{name} {value}")
            i += 1


async def main():
    kv = await SqliteKV.open(PATH)
    factory = SharedStorageFactory(kv, [PREFIX])
    await factory.start()
    storage = factory.storage(PREFIX)
    out("READY")
    await asyncio.gather(*(writer(storage, p, w) for p in PROJECTS for w in range(WRITERS)))


asyncio.run(main())
"""


async def _burst_and_kill(path: Path, cycle: int, acks_wanted: int) -> list[str]:
    """Run the writer until it has acknowledged `acks_wanted` writes, SIGKILL it mid-burst,
    and return every line it printed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WRITER,
        PYTHON_SRC,
        str(path),
        PREFIX,
        str(cycle),
        ",".join(PROJECTS),
        str(WRITERS_PER_PROJECT),
        str(NAMES_PER_WRITER),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    lines: list[str] = []
    acks = 0
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            while acks < acks_wanted:
                raw = await proc.stdout.readline()
                if not raw:
                    break
                line = raw.decode().rstrip("\n")
                lines.append(line)
                acks += line.startswith("A ")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        rest, err = await proc.communicate()
    # What it printed before dying counts too (it was flushed before the kill landed).
    lines.extend(rest.decode().splitlines())
    assert acks >= acks_wanted, f"writer stopped early: {err.decode()[-2000:]}"
    # -9, or 255: asyncio's report for a child it found already reaped (its watcher lost
    # a race over the pid in a long test session). The writer never exits by itself, so
    # either way the kill is what ended it; what it printed is checked below.
    assert proc.returncode in (-signal.SIGKILL, 255), (proc.returncode, err.decode()[-3000:])
    assert "Traceback" not in err.decode()
    return lines


def _check_log(path: Path) -> dict[int, tuple[str, int, dict[str, object] | None]]:
    """Integrity and chain checks with sqlite3; returns id -> (key, deleted, object)."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = conn.execute(
            "SELECT id, name, created, deleted, create_revision, prev_revision, value"
            " FROM kv_log ORDER BY id"
        ).fetchall()
        seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'kv_log'").fetchone()
    finally:
        conn.close()
    ids = [r[0] for r in rows]
    assert ids == list(range(1, len(ids) + 1)), "log ids are not exactly 1..N"
    assert seq is not None and seq[0] == len(ids)
    last: dict[str, tuple[int, int, int]] = {}  # key -> (id, deleted, create_revision)
    out: dict[int, tuple[str, int, dict[str, object] | None]] = {}
    for rid, name, created, deleted, create_rev, prev_rev, value in rows:
        prev = last.get(name)
        if created:
            assert create_rev == rid, rid
            assert prev is None or prev[1] == 1, f"create of a live key at {rid}"
            assert prev_rev == (prev[0] if prev else 0), rid
        else:
            assert prev is not None and prev[1] == 0, f"update/delete of an absent key at {rid}"
            assert prev_rev == prev[0] and create_rev == prev[2], rid
        last[name] = (rid, deleted, create_rev)
        out[rid] = (name, deleted, None if deleted else json.loads(value))
    return out


async def _verify(
    path: Path,
    lines: list[str],
    acked: dict[tuple[str, str], str],
    pending: dict[tuple[str, str], str],
) -> int:
    """Check the file after a kill; `acked` (key -> last acknowledged value, "-" = deleted) and
    `pending` (key -> the write announced after it) carry over from earlier cycles."""
    log = _check_log(path)
    pending.clear()
    n_acks = 0
    for line in lines:
        parts = line.split()
        if not parts or parts[0] not in ("I", "A"):
            continue
        if parts[0] == "I":
            _, project, rel, value = parts
            pending[(project, rel)] = value
            continue
        _, rv_text, project, rel, value = parts
        n_acks += 1
        pending.pop((project, rel), None)
        acked[(project, rel)] = value
        rv = int(rv_text)
        skey = scope_prefix(PREFIX, project) + rel
        assert rv in log, f"acknowledged write {line!r} is not in the log"
        name, deleted, obj = log[rv]
        assert name == skey, f"{line!r}: row {rv} is {name}"
        if value == "-":
            assert deleted == 1, f"{line!r}: row {rv} is not a delete"
        else:
            assert deleted == 0 and obj is not None and value_of(obj) == value, (line, obj)

    kv = await SqliteKV.open(str(path))
    kv_store = KVStorage(kv, owns_kv=False)
    factory = SharedStorageFactory(kv, [PREFIX])
    try:
        # Newest row of every key vs a get through the reopened KV.
        newest: dict[str, int] = {}
        for rid, (name, _d, _o) in log.items():
            newest[name] = rid
        for name, rid in newest.items():
            got, _ = await kv.get(name)
            if log[rid][1]:
                assert got is None, name
            else:
                assert got is not None and got.mod_revision == rid, (name, got)
                assert json.loads(got.value) == log[rid][2]
        # Current value: the last acknowledged one, or the write in flight at the kill.
        for project, rel in set(acked) | set(pending):
            got, _ = await kv.get(scope_prefix(PREFIX, project) + rel)
            have = "-" if got is None else value_of(json.loads(got.value))
            value = acked.get((project, rel), "-")
            allowed = {value, pending.get((project, rel), value)}
            assert have in allowed, f"{project} {rel}: {have}, acknowledged {value}"
        # A fresh shared cacher's initial list equals the backend, scope by scope.
        await factory.start()
        storage = factory.storage(PREFIX)
        cacher = factory.cacher(PREFIX)
        for project in PROJECTS:
            want = await store_state(kv_store, PREFIX, project)
            assert cacher_state(cacher, PREFIX, project) == want, project
            with project_scope(project):
                for rel, (rv, value) in want.items():
                    got_obj = await storage.get(f"{PREFIX}/{rel}", resource_version="0")
                    assert got_obj is not None and value_of(got_obj) == value
                    assert int(got_obj["metadata"]["resourceVersion"]) == rv
    finally:
        await factory.stop()
        await kv_store.close()
        await kv.close()
    return n_acks


async def run_crash_cycles(path: Path, cycles: int, acks_per_cycle: int) -> None:
    total = 0
    acked: dict[tuple[str, str], str] = {}
    pending: dict[tuple[str, str], str] = {}
    in_flight = 0
    for cycle in range(cycles):
        lines = await _burst_and_kill(path, cycle, acks_per_cycle)
        total += await _verify(path, lines, acked, pending)
        in_flight += len(pending)
    print(
        f"sqlite kill -9: {cycles} cycles, {total} acknowledged writes verified, "
        f"{in_flight} writes in flight at the kills"
    )


async def test_acknowledged_writes_survive_kill_9_through_tenancy(tmp_path: Path) -> None:
    await run_crash_cycles(tmp_path / "crash.db", cycles=4, acks_per_cycle=600)


@soak_only
@pytest.mark.timeout(1800)
async def test_kill_9_soak(tmp_path: Path) -> None:
    assert SOAK
    await run_crash_cycles(tmp_path / "crash-soak.db", cycles=20, acks_per_cycle=1500)
