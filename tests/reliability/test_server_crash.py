"""SQLite durability at the server level: `tenantstore serve` killed with SIGKILL mid-burst.

Several HTTP clients, each owning one project, create / replace / delete ConfigMaps with
the same names in every project (so a cross-project leak would be visible). Every write
answered 2xx is recorded (project, name, resourceVersion, value); the server process is
SIGKILLed while writes are in flight, restarted on the same file, and:

* every acknowledged write is there: a GET in its project returns it, with the
  acknowledged value and RV (a later RV only when a write that was in flight at the kill,
  so of unknown outcome, may have landed after it); acknowledged deletes stay deleted;
* each project's LIST holds exactly the objects the model allows and only its own data;
  the root scope sees none of it;
* the revision never goes backwards across the restart (a new write's RV is above every
  acknowledged one);
* once the server is down for good, the file is consistent: ``PRAGMA integrity_check`` is
  ok, ``kv_log`` ids are strictly increasing and within ``sqlite_sequence``, each key's
  rows chain through ``prev_revision``/``create_revision``, and the newest acknowledged
  write of every key is the row the log says is current.

Two kill/restart cycles per test (CI); more under TENANTSTORE_SOAK=1.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import ServeProcess

SOAK = bool(os.environ.get("TENANTSTORE_SOAK"))
CYCLES = 6 if SOAK else 2
WRITERS = 8
KEYS = 40  # names per project (the same names in every project)
ACKS_BEFORE_KILL = 1500 if SOAK else 400  # per cycle
NAMESPACES = ("default", "other")


def cm_path(project: str, ns: str, name: str | None = None) -> str:
    base = f"/projects/{project}/control-plane/api/v1/namespaces/{ns}/configmaps"
    return base if name is None else f"{base}/{name}"


@dataclass
class Key:
    """What is known of one (project, namespace, name): the last acknowledged state, and
    the write in flight when the server died (its outcome is unknown)."""

    acked: tuple[int, str] | None = None  # (rv, value) or None: absent
    ever_acked_rv: int = 0
    pending: tuple[str, str | None] | None = None  # (op, value) in flight at the kill


@dataclass
class Model:
    keys: dict[tuple[str, str, str], Key] = field(default_factory=dict)
    acks: int = 0
    max_rv: int = 0
    in_flight_at_kill: int = 0

    def key(self, project: str, ns: str, name: str) -> Key:
        return self.keys.setdefault((project, ns, name), Key())


async def writer(
    url: str, project: str, model: Model, rng: random.Random, stop: asyncio.Event, cycle: int
) -> None:
    """Write until the server dies (or `stop`); leaves at most one write pending."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        i = 0
        while not stop.is_set():
            i += 1
            ns = NAMESPACES[i % len(NAMESPACES)]
            name = f"k{rng.randrange(KEYS)}"
            k = model.key(project, ns, name)
            assert k.pending is None
            value = f"{project}/{cycle}/{i}"
            body = {"metadata": {"name": name}, "data": {"project": project, "v": value}}
            try:
                if k.acked is None:
                    k.pending = ("create", value)
                    resp = await http.post(cm_path(project, ns), json=body)
                elif rng.random() < 0.15:
                    k.pending = ("delete", None)
                    resp = await http.delete(cm_path(project, ns, name))
                else:
                    k.pending = ("update", value)
                    body["metadata"]["resourceVersion"] = str(k.acked[0])
                    resp = await http.put(cm_path(project, ns, name), json=body)
            except httpx.HTTPError:
                return  # the server died with this write in flight
            assert resp.status_code < 300, (resp.status_code, resp.text)
            op = k.pending[0]
            k.pending = None
            if op == "delete":
                k.acked = None
            else:
                obj = resp.json()
                assert obj["data"] == body["data"]
                rv = int(obj["metadata"]["resourceVersion"])
                assert rv > k.ever_acked_rv
                k.acked, k.ever_acked_rv = (rv, value), rv
                model.max_rv = max(model.max_rv, rv)
            model.acks += 1


async def burst_and_kill(server: ServeProcess, model: Model, cycle: int, seed: int) -> None:
    stop = asyncio.Event()
    start = model.acks
    tasks = [
        asyncio.create_task(
            writer(server.url, f"crash-{w}", model, random.Random(seed + w), stop, cycle)
        )
        for w in range(WRITERS)
    ]
    try:
        for _ in range(6000):  # bounded wait (at most ~60 s)
            if model.acks - start >= ACKS_BEFORE_KILL or all(t.done() for t in tasks):
                break
            await asyncio.sleep(0.01)
        # Mid-burst: every writer has a request in flight or about to be.
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=30)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        model.in_flight_at_kill += sum(k.pending is not None for k in model.keys.values())
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)
    assert model.acks - start >= ACKS_BEFORE_KILL, "the burst stopped before the kill"


async def verify(url: str, model: Model) -> None:
    """Every acknowledged write is visible; nothing else is; pending writes resolved."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        projects = sorted({p for p, _, _ in model.keys})
        for (project, ns, name), k in sorted(model.keys.items()):
            resp = await http.get(cm_path(project, ns, name))
            assert resp.status_code in (200, 404), resp.text
            found: tuple[int, str] | None = None
            if resp.status_code == 200:
                obj = resp.json()
                assert obj["metadata"]["name"] == name and obj["metadata"]["namespace"] == ns
                assert obj["data"]["project"] == project, f"cross-project data: {obj}"
                found = (int(obj["metadata"]["resourceVersion"]), obj["data"]["v"])
            allowed: list[tuple[int, str] | None] = [k.acked]
            if k.pending is not None:
                op, value = k.pending
                if op == "delete":
                    allowed.append(None)
                elif found is not None and found[1] == value:
                    # The in-flight write landed: a newer RV than anything acknowledged.
                    assert found[0] > k.ever_acked_rv, (project, ns, name, found, k)
                    allowed.append(found)
            assert found in allowed, (project, ns, name, "found", found, "model", k)
            if found is not None and k.acked is not None:
                assert found[0] >= k.acked[0]
            # Resolve: the state is known again.
            k.acked, k.pending = found, None
            if found is not None:
                k.ever_acked_rv = max(k.ever_acked_rv, found[0])
                model.max_rv = max(model.max_rv, found[0])
        for project in projects:
            resp = await http.get(f"/projects/{project}/control-plane/api/v1/configmaps")
            assert resp.status_code == 200, resp.text
            listed = {
                (o["metadata"]["namespace"], o["metadata"]["name"]): o for o in resp.json()["items"]
            }
            expected = {
                (ns, name)
                for (p, ns, name), k in model.keys.items()
                if p == project and k.acked is not None
            }
            assert set(listed) == expected, project
            for obj in listed.values():
                assert obj["data"]["project"] == project
        root = await http.get("/api/v1/configmaps")
        assert root.status_code == 200 and root.json()["items"] == []
        # The revision never goes backwards across the restart.
        resp = await http.post(
            cm_path("crash-probe", "default"),
            json={"metadata": {"generateName": "probe-"}, "data": {"project": "crash-probe"}},
        )
        assert resp.status_code == 201, resp.text
        assert int(resp.json()["metadata"]["resourceVersion"]) > model.max_rv


def check_sqlite_file(db: Path, model: Model) -> None:
    conn = sqlite3.connect(str(db))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = conn.execute(
            "SELECT id, name, created, deleted, create_revision, prev_revision FROM kv_log"
            " ORDER BY rowid"
        ).fetchall()
        (seq,) = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'kv_log'").fetchone()
    finally:
        conn.close()
    ids = [r[0] for r in rows]
    assert ids, "empty log"
    assert all(a < b for a, b in itertools.pairwise(ids)), "kv_log ids not increasing"
    assert ids[-1] <= seq
    latest: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        rid, name, created, _deleted, create_rev, prev_rev = row
        before = latest.get(name)
        if before is None:
            # The first row of a key: a create (nothing was compacted in this run).
            assert created == 1 and create_rev == rid and prev_rev == 0, row
        else:
            assert prev_rev == before[0], (row, before)
            if before[3]:  # after a tombstone: a fresh create
                assert created == 1 and create_rev == rid, row
            else:
                assert created == 0 and create_rev == before[4], (row, before)
        latest[name] = row
    # The newest acknowledged state of every key is the current row of the log.
    for (project, ns, name), k in model.keys.items():
        key = f"/registry/configmaps/clusters/{project}/{ns}/{name}"
        row = latest.get(key)
        if k.acked is None:
            assert row is None or row[3] == 1, (key, row)
        else:
            assert row is not None and row[3] == 0 and row[0] == k.acked[0], (key, row, k)
    for name in latest:
        assert name.startswith("/registry/configmaps/clusters/"), name


def start(db: Path, workdir: Path) -> ServeProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    # Writes to namespace "other" without creating it: the test is about crashes, not
    # namespaces, so it runs without the namespace lifecycle.
    args = ["--backend", f"sqlite://{db}", "--log-level", "warning", "--no-namespace-lifecycle"]
    return ServeProcess(args, workdir).wait_started()


@pytest.mark.timeout(600 if SOAK else 180)
async def test_sigkill_mid_burst_loses_no_acknowledged_write(tmp_path: Path) -> None:
    db = tmp_path / "data" / "store.db"
    model = Model()
    for cycle in range(CYCLES):
        server = start(db, tmp_path / f"run{cycle}")
        try:
            if cycle:
                await verify(server.url, model)
            await burst_and_kill(server, model, cycle, seed=1000 * cycle)
        finally:
            server.stop()
        assert server.proc.returncode == -signal.SIGKILL, server.output()
    server = start(db, tmp_path / "final")
    try:
        await verify(server.url, model)
    finally:
        server.proc.send_signal(signal.SIGKILL)
        server.stop()
    check_sqlite_file(db, model)
    assert model.acks >= CYCLES * ACKS_BEFORE_KILL
    # The kills did land mid-burst: writes were in flight each time.
    assert model.in_flight_at_kill > 0
    print(f"acks={model.acks} in_flight_at_kill={model.in_flight_at_kill} max_rv={model.max_rv}")
