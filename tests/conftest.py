"""Shared fixtures: real servers and real files, started per session or per test.

etcd is Debian's `etcd-server`, started once per session on a free 127.0.0.1 port with
a temporary data dir (see `tests/etcd_server.py`). SQLite backends use a fresh file in
the test's tmp_path.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.etcd_server import EtcdServer


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path_factory.mktemp("etcd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def key_prefix() -> str:
    """A unique registry prefix per test, so tests sharing one etcd never see each other."""
    return f"/registry-{uuid.uuid4().hex[:10]}"


async def _make_kv(kind: str, tmp_path: Path, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if kind == "sqlite":
        from tenantstore.backends.sqlite import SqliteKV

        return await SqliteKV.open(str(tmp_path / "store.db"))
    if kind == "etcd":
        from tenantstore.backends.etcd import EtcdKV

        server: EtcdServer = request.getfixturevalue("etcd_server")
        return await EtcdKV.connect(server.endpoint)
    raise ValueError(kind)


BACKENDS = ["sqlite", "etcd"]
if os.environ.get("TENANTSTORE_NO_ETCD"):
    BACKENDS = ["sqlite"]


@pytest.fixture(params=BACKENDS)
async def kv(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    """A real KV backend: a fresh SQLite file, or a client of the session's etcd."""
    store = await _make_kv(request.param, tmp_path, request)
    try:
        yield store
    finally:
        await store.close()
