"""Upstream store semantics through HTTP: the 410 that carries an inconsistent continue
token (`RunTestListInconsistentContinuation`), and the unsafe delete of an object that
cannot be read (`RunTestDeleteExpectedTransformOrDecodeError`,
`?ignoreStoreReadErrorWithClusterBreakingPotential=true`, `system:masters` only)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from tenantstore.keys import scoped_key
from tenantstore.server import ServerConfig
from tests.server.conftest import ThreadServer

T = TypeVar("T")

TOKENS = """\
alice-token,alice,u1,"project:p1"
admin-token,admin,u3,"system:masters"
"""
PREFIX = "/registry/configmaps"
UNSAFE = "?ignoreStoreReadErrorWithClusterBreakingPotential=true"


def cm_path(name: str = "") -> str:
    path = "/projects/p1/control-plane/api/v1/namespaces/default/configmaps"
    return f"{path}/{name}" if name else path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    tmp = tmp_path_factory.mktemp("upstream")
    tokens = tmp / "tokens.csv"
    tokens.write_text(TOKENS)
    srv = ThreadServer(
        ServerConfig(backend=f"sqlite://{tmp / 'store.db'}", token_auth_file=str(tokens))
    ).start()
    try:
        yield srv
    finally:
        srv.stop()


def client(server: ThreadServer, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"authorization": f"Bearer {token}"}, timeout=30
    )


def on_server(server: ThreadServer, coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the server's event loop (where its KV lives)."""
    state = server.app.state.tenantstore
    return asyncio.run_coroutine_threadsafe(coro, state.loop).result(10)


def kv(server: ThreadServer) -> Any:
    return server.app.state.tenantstore.kv


async def _corrupt(store: Any, key: str) -> None:
    raw, _ = await store.get(key)
    assert raw is not None
    res = await store.update(key, b"{not json", expected_mod_revision=raw.mod_revision)
    assert res.succeeded


async def _compact(store: Any) -> int:
    rev: int = await store.current_revision()
    await store.compact(rev)
    return rev


def test_unsafe_delete_of_an_unreadable_object(server: ThreadServer) -> None:
    with client(server, "alice-token") as alice, client(server, "admin-token") as admin:
        assert alice.post(cm_path(), json={"metadata": {"name": "x"}}).status_code == 201
        # A readable object is not deleted unsafely, even by a master: 409.
        refused = admin.delete(cm_path("x") + UNSAFE)
        assert refused.status_code == 409, refused.text
        key = scoped_key(f"{PREFIX}/default/x", PREFIX, "p1")
        on_server(server, _corrupt(kv(server), key))
        # A read the shared cache serves shows it absent (the cache leaves unreadable
        # values out); one the store serves is a 500 that names nothing internal.
        got = alice.get(cm_path("x"))
        assert got.status_code in (404, 500), got.text
        assert "clusters" not in got.text and PREFIX not in got.text
        assert alice.delete(cm_path("x")).status_code == 500
        # Only system:masters may; the refusal is a typed 403.
        forbidden = alice.delete(cm_path("x") + UNSAFE)
        assert forbidden.status_code == 403 and forbidden.json()["reason"] == "Forbidden"
        bad = admin.delete(cm_path("x") + "?ignoreStoreReadErrorWithClusterBreakingPotential=x")
        assert bad.status_code == 400
        deleted = admin.delete(cm_path("x") + UNSAFE)
        assert deleted.status_code == 200, deleted.text
        assert int(deleted.json()["metadata"]["resourceVersion"]) > 0
        assert alice.get(cm_path("x")).status_code == 404
        assert admin.delete(cm_path("x") + UNSAFE).status_code == 404


def test_compacted_continue_answers_410_with_an_inconsistent_token(server: ThreadServer) -> None:
    with client(server, "alice-token") as alice:
        for name in ("page-a", "page-b", "page-c"):
            assert alice.post(cm_path(), json={"metadata": {"name": name}}).status_code == 201
        first = alice.get(cm_path(), params={"limit": 1, "labelSelector": ""}).json()
        names = [o["metadata"]["name"] for o in first["items"]]
        token = first["metadata"]["continue"]
        assert names and token
        # A write after the first page, then compaction: the page's revision is gone.
        assert alice.post(cm_path(), json={"metadata": {"name": "page-d"}}).status_code == 201
        on_server(server, _compact(kv(server)))
        gone = alice.get(cm_path(), params={"limit": 1, "continue": token})
        assert gone.status_code == 410, gone.text
        status = gone.json()
        assert status["reason"] == "Expired"
        assert "The provided continue parameter is too old" in status["message"]
        inconsistent = status["metadata"]["continue"]
        assert inconsistent and inconsistent != token
        rest: list[str] = []
        while inconsistent:
            page = alice.get(cm_path(), params={"limit": 1, "continue": inconsistent})
            assert page.status_code == 200, page.text
            body = page.json()
            rest += [o["metadata"]["name"] for o in body["items"]]
            inconsistent = body["metadata"].get("continue", "")
        assert names + rest == sorted(names + rest)
        assert {"page-a", "page-b", "page-c", "page-d"} <= set(names + rest)
