"""`/livez`, `/readyz` and `/healthz` tell the truth: a real etcd stopped and started
again, and a real SQLite file that another process holds locked for writing.

No timing assertions: each test polls (bounded) until the endpoint reports the state
that was caused, and fails if it never does.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tenantstore.server import ServerConfig
from tests.etcd_server import EtcdServer
from tests.reliability.http_support import start_serve
from tests.server.conftest import ServeProcess, ThreadServer

POLL_LIMIT = 60.0  # seconds a state may take to show before the test fails


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + POLL_LIMIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"never: {what}")


def _status(client: httpx.Client, path: str) -> int:
    try:
        return client.get(path).status_code
    except httpx.HTTPError:
        return -1


@pytest.fixture
def sqlite_serve(tmp_path: Path) -> Iterator[tuple[ServeProcess, Path]]:
    proc = start_serve(tmp_path)
    try:
        yield proc, tmp_path / "store.db"
    finally:
        proc.stop()


def test_readyz_lists_named_checks(sqlite_serve: tuple[ServeProcess, Path]) -> None:
    serve, _db = sqlite_serve
    with httpx.Client(base_url=serve.url, timeout=30) as http:
        assert (http.get("/readyz").status_code, http.get("/readyz").text) == (200, "ok")
        verbose = http.get("/readyz?verbose")
        assert verbose.status_code == 200
        lines = verbose.text.splitlines()
        for check in ["ping", "backend", "cache-configmaps", "cache-secrets", "shutdown"]:
            assert f"[+]{check} ok" in lines
        assert lines[-1] == "readyz check passed"
        assert http.get("/readyz/backend").text == "ok"
        assert http.get("/readyz/no-such-check").status_code == 404
        excluded = http.get("/readyz?verbose&exclude=backend").text.splitlines()
        assert "[+]backend ok" not in excluded and "[+]backend excluded: ok" in excluded
        assert http.get("/livez?verbose").text.splitlines() == ["[+]ping ok", "livez check passed"]
        # The same endpoints exist inside a project's control plane.
        assert http.get("/projects/p1/control-plane/readyz").text == "ok"


def test_readyz_fails_while_the_sqlite_file_is_locked_for_writes(
    sqlite_serve: tuple[ServeProcess, Path],
) -> None:
    serve, db = sqlite_serve
    with httpx.Client(base_url=serve.url, timeout=30) as http:
        _eventually(lambda: _status(http, "/readyz") == 200, "ready at start")
        holder = sqlite3.connect(db, isolation_level=None, timeout=30)
        try:
            holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
            _eventually(lambda: _status(http, "/readyz") == 500, "/readyz fails while locked")
            body = http.get("/readyz/backend")
            assert body.status_code == 500 and body.text.startswith("[-]backend failed: ")
            assert str(db) not in http.get("/readyz?verbose").text  # no internals
            assert _status(http, "/livez") == 200
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        _eventually(lambda: _status(http, "/readyz") == 200, "/readyz recovers after unlock")


@pytest.mark.etcd
def test_readyz_follows_a_stopped_and_restarted_etcd(tmp_path: Path) -> None:
    with EtcdServer(tmp_path / "etcd") as etcd:
        serve = start_serve(tmp_path / "serve", "--backend", f"etcd://{etcd.endpoint}")
        try:
            with httpx.Client(base_url=serve.url, timeout=30) as http:
                _eventually(lambda: _status(http, "/readyz") == 200, "ready at start")
                etcd.stop()
                _eventually(lambda: _status(http, "/readyz") == 500, "/readyz fails, etcd down")
                text = http.get("/readyz?verbose").text
                assert "[-]backend failed: backend unreachable" in text
                assert "127.0.0.1" not in text and str(etcd.client_port) not in text
                assert _status(http, "/livez") == 200
                # Requests that need etcd fail with a 503 that names no backend internals.
                cm = "/projects/p1/control-plane/api/v1/namespaces/default/configmaps"
                for r in (
                    http.post(cm, json={"metadata": {"name": "down"}}),
                    http.get(f"{cm}/down"),
                ):
                    assert r.status_code == 503, r.text
                    for leak in ("127.0.0.1", str(etcd.client_port), "ipv4", "StatusCode"):
                        assert leak not in r.text
                etcd.start()
                _eventually(lambda: _status(http, "/readyz") == 200, "/readyz recovers")
                # And the cache serves writes made after the recovery.
                assert http.post(cm, json={"metadata": {"name": "back"}}).status_code == 201
                assert http.get(f"{cm}/back?resourceVersion=0").status_code in (200, 404)
                _eventually(
                    lambda: http.get(f"{cm}/back?resourceVersion=0").status_code == 200,
                    "the cache follows etcd again",
                )
        finally:
            serve.stop()


def test_readyz_fails_once_shutdown_begins(tmp_path: Path) -> None:
    server = ThreadServer(ServerConfig(backend=f"sqlite://{tmp_path / 'store.db'}")).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            _eventually(lambda: _status(http, "/readyz") == 200, "ready at start")
            server.app.state.tenantstore.begin_shutdown()  # what SIGTERM does first
            _eventually(lambda: _status(http, "/readyz") == 500, "/readyz fails when draining")
            assert "[-]shutdown failed: shutting down" in http.get("/readyz").text
            assert _status(http, "/livez") == 200
    finally:
        server.stop()
