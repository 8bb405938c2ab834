"""`async with` on the KV drivers and the store: leaving the block closes them.

An embedder writes `async with await SqliteKV.open(path) as kv:` and expects the driver's
threads (SQLite) or its share of the gRPC channel (etcd) to be released however the block
ends, including by an exception. Each test checks the KV is really closed afterwards:
`ready()` is False and a new watch is refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tenantstore import EtcdKV, KVStorage, SqliteKV, UnavailableError, open_kv
from tests.breakable import BreakableKV
from tests.etcd_server import EtcdServer

NO_ETCD = bool(os.environ.get("TENANTSTORE_NO_ETCD"))
PYTHON_SRC = str(Path(__file__).resolve().parents[1] / "python")


def _assert_closed_sqlite(kv: SqliteKV) -> None:
    with pytest.raises(UnavailableError):
        kv.watch("/a", "/b", start_revision=0)


async def test_sqlite_async_with_returns_the_kv_and_closes_it(tmp_path: Path) -> None:
    opened = await SqliteKV.open(str(tmp_path / "store.db"))
    async with opened as kv:
        assert kv is opened
        assert await kv.ready()
        assert (await kv.create("/k", b"v")).succeeded
    assert not await opened.ready()
    _assert_closed_sqlite(opened)


async def test_sqlite_async_with_closes_on_an_exception(tmp_path: Path) -> None:
    opened = await SqliteKV.open(str(tmp_path / "store.db"))
    with pytest.raises(RuntimeError, match="boom"):
        async with opened:
            raise RuntimeError("boom")
    assert not await opened.ready()
    _assert_closed_sqlite(opened)


async def test_open_kv_result_supports_async_with(tmp_path: Path) -> None:
    """The `KV` contract itself promises `async with`, so code that only has a URL can
    use it."""
    async with await open_kv(f"sqlite://{tmp_path / 'sub' / 'store.db'}") as kv:
        await kv.create("/k", b"v")
        got, _ = await kv.get("/k")
        assert got is not None and got.value == b"v"
    assert not await kv.ready()


async def test_breakable_test_double_supports_async_with(tmp_path: Path) -> None:
    """The test double delegates through `__getattr__`, which dunder lookups bypass."""
    inner = await SqliteKV.open(str(tmp_path / "store.db"))
    async with BreakableKV(inner) as kv:
        assert isinstance(kv, BreakableKV)
        assert await kv.ready()
    assert not await inner.ready()


async def test_kvstorage_async_with_closes_the_kv_it_owns(tmp_path: Path) -> None:
    kv = await SqliteKV.open(str(tmp_path / "store.db"))
    async with KVStorage(kv) as store:
        assert isinstance(store, KVStorage)
        obj = {"metadata": {"name": "a"}}
        created = await store.create("/registry/cm/a", obj)
        assert created["metadata"]["resourceVersion"]
        assert await store.ready()
    assert not await store.ready()
    _assert_closed_sqlite(kv)


async def test_kvstorage_async_with_leaves_a_borrowed_kv_open(tmp_path: Path) -> None:
    async with await SqliteKV.open(str(tmp_path / "store.db")) as kv:
        async with KVStorage(kv, owns_kv=False) as store:
            await store.create("/registry/cm/a", {"metadata": {"name": "a"}})
        assert await kv.ready()
        got, _ = await kv.get("/registry/cm/a")
        assert got is not None
    assert not await kv.ready()


@pytest.mark.etcd
@pytest.mark.skipif(NO_ETCD, reason="TENANTSTORE_NO_ETCD is set")
async def test_etcd_async_with_closes_it(etcd_server: EtcdServer) -> None:
    # A second EtcdKV on the same endpoint shares the gRPC channel, which therefore stays
    # open: the closed one must still say it is not ready, and refuse watches.
    other = await EtcdKV.connect(etcd_server.endpoint)
    try:
        opened = await EtcdKV.connect(etcd_server.endpoint)
        async with opened as kv:
            assert kv is opened
            assert await kv.ready()
            await kv.current_revision()
        assert not await opened.ready()
        with pytest.raises(UnavailableError):
            opened.watch("/a", "/b", start_revision=0)
        assert await other.ready()
    finally:
        await other.close()


_NEVER_CLOSED = """
import asyncio, sys
from tenantstore.backends import open_kv
from tenantstore.storage.options import ListOptions
from tenantstore.tenancy.context import project_scope
from tenantstore.tenancy.factory import make_factory

async def main():
    kv = await open_kv(sys.argv[1])
    await kv.create("/registry/configmaps/root/ns/b", b"{}")
    if sys.argv[2] == "stack":
        factory = make_factory("shared", kv, ["/registry/configmaps"])
        await factory.start()
        storage = factory.storage("/registry/configmaps")
        with project_scope("p1"):
            meta = {"name": "a", "namespace": "ns", "uid": "u1"}
            await storage.create("/registry/configmaps/ns/a", {"metadata": meta})
            await storage.watch("/registry/configmaps", ListOptions(recursive=True))
    raise RuntimeError("the program ends without closing anything")

asyncio.run(main())
"""


@pytest.mark.parametrize("what", ["kv", "stack"])
def test_a_program_that_never_closes_its_stack_still_exits(tmp_path: Path, what: str) -> None:
    """`asyncio.run` cancels every task of a program that ends without closing its KV
    (the SQLite log tailer, the cache's reflector, open watches): each must end when
    cancelled, or the program hangs at exit instead of reporting its error."""
    script = tmp_path / "never_closed.py"
    script.write_text(_NEVER_CLOSED)
    env = {**os.environ, "PYTHONPATH": PYTHON_SRC}
    proc = subprocess.run(
        [sys.executable, str(script), f"sqlite://{tmp_path}/x.db", what],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard: the fixed program exits at once
    )
    assert proc.returncode == 1, proc.stderr
    assert "the program ends without closing anything" in proc.stderr
