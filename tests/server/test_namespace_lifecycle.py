"""Namespace lifecycle over HTTP, on every backend and mode: admission of creates (404 for
a missing namespace, 403 while terminating, `default` made on first use), deletion of a
namespace's content across resources, confined to its project, and resumption after a
restart."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tenantstore import SharedStorageFactory, SqliteKV, project_scope
from tenantstore.server import ServerConfig

from .conftest import ThreadServer

NS = "/api/v1/namespaces"
MERGE = {"content-type": "application/merge-patch+json"}
DEADLINE = 60.0


def _p(project: str) -> str:
    return f"/projects/{project}/control-plane"


def _project() -> str:
    return f"nl-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def http(any_server: ThreadServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=any_server.url, timeout=30) as c:
        yield c


def _paths(ns: str) -> dict[str, str]:
    """A collection of every namespaced resource of the test registry, in `ns`."""
    return {
        "configmaps": f"{NS}/{ns}/configmaps",
        "secrets": f"{NS}/{ns}/secrets",
        "serviceaccounts": f"{NS}/{ns}/serviceaccounts",
        "events": f"{NS}/{ns}/events",
        "widgets": f"/apis/example.com/v1/namespaces/{ns}/widgets",
    }


def _body(resource: str, name: str) -> dict[str, Any]:
    if resource == "widgets":
        return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}}
    return {"metadata": {"name": name}}


def _make_ns(c: httpx.Client, base: str, name: str, **meta: Any) -> dict[str, Any]:
    resp = c.post(base + NS, json={"metadata": {"name": name, **meta}})
    assert resp.status_code == 201, resp.text
    made: dict[str, Any] = resp.json()
    return made


def _fill(c: httpx.Client, base: str, ns: str, names: tuple[str, ...] = ("a", "b")) -> None:
    for resource, path in _paths(ns).items():
        for name in names:
            resp = c.post(base + path, json=_body(resource, name))
            assert resp.status_code == 201, (resource, resp.text)


def _names(c: httpx.Client, base: str, ns: str) -> dict[str, list[str]]:
    out = {}
    for resource, path in _paths(ns).items():
        resp = c.get(base + path)
        assert resp.status_code == 200, resp.text
        out[resource] = sorted(o["metadata"]["name"] for o in resp.json()["items"])
    return out


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"not within {DEADLINE:g} s: {what}"
        time.sleep(0.05)


def _gone(c: httpx.Client, base: str, ns: str) -> Callable[[], bool]:
    return lambda: c.get(f"{base}{NS}/{ns}").status_code == 404


# -- admission --------------------------------------------------------------------------


def test_create_in_a_missing_namespace_is_404(http: httpx.Client) -> None:
    base = _p(_project())
    for resource, path in _paths("missing").items():
        resp = http.post(base + path, json=_body(resource, "a"))
        assert resp.status_code == 404, resp.text
        status = resp.json()
        assert status["reason"] == "NotFound"
        assert status["message"] == 'namespaces "missing" not found'
        assert status["details"] == {"name": "missing", "kind": "namespaces"}
    assert http.get(base + NS + "/missing").status_code == 404


def test_create_right_after_its_namespace(http: httpx.Client) -> None:
    """The cache may not have the namespace yet: the check reads the store on a miss."""
    base = _p(_project())
    for i in range(5):
        _make_ns(http, base, f"n{i}")
        resp = http.post(f"{base}{NS}/n{i}/configmaps", json={"metadata": {"name": "a"}})
        assert resp.status_code == 201, resp.text


def test_default_exists_on_first_use_and_may_not_be_deleted(http: httpx.Client) -> None:
    base = _p(_project())
    assert http.get(f"{base}{NS}/default").status_code == 404  # a fresh project: nothing
    resp = http.post(f"{base}{NS}/default/configmaps", json={"metadata": {"name": "a"}})
    assert resp.status_code == 201, resp.text
    ns = http.get(f"{base}{NS}/default").json()
    assert ns["status"] == {"phase": "Active"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "default"}
    for name in ("default", "kube-system", "kube-public"):
        resp = http.delete(f"{base}{NS}/{name}")
        assert resp.status_code == 403, resp.text
        assert resp.json()["message"] == (
            f'namespaces "{name}" is forbidden: this namespace may not be deleted'
        )
    assert http.get(f"{base}{NS}/default/configmaps/a").status_code == 200


def test_namespace_create_sets_phase_and_finalizer(http: httpx.Client) -> None:
    base = _p(_project())
    body = {"metadata": {"name": "n"}, "status": {"phase": "Terminating"}}
    made = http.post(base + NS, json=body).json()
    assert made["status"] == {"phase": "Active"}
    assert made["spec"] == {"finalizers": ["kubernetes"]}


# -- deletion ---------------------------------------------------------------------------


def test_delete_namespace_deletes_its_content_in_its_project_only(http: httpx.Client) -> None:
    p1, p2 = _project(), _project()
    b1, b2 = _p(p1), _p(p2)
    for base in (b1, b2, ""):
        if base == "" and http.get(f"{NS}/team").status_code == 200:
            continue  # the root's `team` of an earlier stack's run, on a shared etcd
        _make_ns(http, base, "team")
        _fill(http, base, "team")
    _make_ns(http, b1, "keep")
    _fill(http, b1, "keep")
    root_before = _names(http, "", "team")

    resp = http.delete(f"{b1}{NS}/team")
    assert resp.status_code == 200, resp.text
    marked = resp.json()
    assert marked["kind"] == "Namespace"
    assert marked["status"]["phase"] == "Terminating"
    assert marked["metadata"]["deletionTimestamp"]

    _eventually(_gone(http, b1, "team"), "p1's namespace team gone")
    assert _names(http, b1, "team") == {r: [] for r in _paths("team")}
    # The same name in p2 and the root, and p1's other namespace: untouched.
    full = {r: ["a", "b"] for r in _paths("team")}
    assert _names(http, b2, "team") == full
    assert http.get(f"{b2}{NS}/team").json()["status"] == {"phase": "Active"}
    assert _names(http, "", "team") == root_before
    assert _names(http, b1, "keep") == full
    # The name is free again, and the new namespace is empty.
    _make_ns(http, b1, "team")
    assert _names(http, b1, "team") == {r: [] for r in _paths("team")}


def test_terminating_namespace_refuses_creates_until_its_finalizers_go(
    http: httpx.Client,
) -> None:
    base = _p(_project())
    _make_ns(http, base, "held", finalizers=["example.com/hold"])
    _fill(http, base, "held")
    assert http.delete(f"{base}{NS}/held").status_code == 200
    # The content goes; the namespace stays, terminating, for its other finalizer.
    _eventually(
        lambda: _names(http, base, "held") == {r: [] for r in _paths("held")}, "content gone"
    )
    _eventually(
        lambda: http.get(f"{base}{NS}/held").json()["spec"].get("finalizers") == [],
        "the kubernetes finalizer dropped",
    )
    ns = http.get(f"{base}{NS}/held").json()
    assert ns["status"]["phase"] == "Terminating"
    assert ns["metadata"]["finalizers"] == ["example.com/hold"]
    for resource, path in _paths("held").items():
        resp = http.post(base + path, json=_body(resource, "late"))
        assert resp.status_code == 403, resp.text
        status = resp.json()
        assert status["reason"] == "Forbidden"
        label = "widgets.example.com" if resource == "widgets" else resource
        assert status["message"] == (
            f'{label} "late" is forbidden: unable to create new content in namespace held '
            "because it is being terminated"
        )
        assert status["details"]["causes"][0]["reason"] == "NamespaceTerminating"
    # Deleting again is fine and changes nothing; a dry-run create is refused the same.
    assert http.delete(f"{base}{NS}/held").status_code == 200
    dry = http.post(
        f"{base}{NS}/held/configmaps", params={"dryRun": "All"}, json={"metadata": {"name": "x"}}
    )
    assert dry.status_code == 403
    # Removing the last finalizer lets the namespace go.
    patch = b'{"metadata":{"finalizers":null}}'
    assert http.patch(f"{base}{NS}/held", headers=MERGE, content=patch).status_code == 200
    _eventually(_gone(http, base, "held"), "namespace held gone")


def test_delete_collection_of_namespaces_spares_default(http: httpx.Client) -> None:
    base = _p(_project())
    assert http.post(f"{base}{NS}/default/configmaps", json={"metadata": {"name": "a"}}).is_success
    for name in ("x", "y"):
        _make_ns(http, base, name)
        _fill(http, base, name, ("a",))
    resp = http.delete(base + NS)
    assert resp.status_code == 200, resp.text
    assert sorted(o["metadata"]["name"] for o in resp.json()["items"]) == ["x", "y"]
    for name in ("x", "y"):
        _eventually(_gone(http, base, name), f"namespace {name} gone")
    assert http.get(f"{base}{NS}/default/configmaps/a").status_code == 200


def test_delete_namespace_preconditions(http: httpx.Client) -> None:
    base = _p(_project())
    _make_ns(http, base, "n")
    pre = {"preconditions": {"uid": str(uuid.uuid4())}}
    resp = http.request("DELETE", f"{base}{NS}/n", json=pre)
    assert resp.status_code == 409, resp.text
    assert http.get(f"{base}{NS}/n").json()["status"] == {"phase": "Active"}


# -- without the lifecycle, and across a restart ----------------------------------------


def _server(db: Path, resources: Path, *, lifecycle: bool, mode: str = "shared") -> ThreadServer:
    config = ServerConfig(
        backend=f"sqlite://{db}",
        mode=mode,  # type: ignore[arg-type]
        resources_file=str(resources),
        namespace_lifecycle=lifecycle,
    )
    return ThreadServer(config).start()


def test_no_namespace_lifecycle_is_todays_behaviour(tmp_path: Path, resources_file: Path) -> None:
    server = _server(tmp_path / "store.db", resources_file, lifecycle=False)
    try:
        with httpx.Client(base_url=server.url + _p(_project()), timeout=30) as c:
            resp = c.post(f"{NS}/nowhere/configmaps", json={"metadata": {"name": "a"}})
            assert resp.status_code == 201, resp.text
            assert c.get(f"{NS}/nowhere").status_code == 404
            _make_ns(c, "", "n")
            _fill(c, "", "n", ("a",))
            assert c.delete(f"{NS}/n").status_code == 200
            assert c.get(f"{NS}/n").status_code == 404  # deleted at once, alone
            assert _names(c, "", "n") == {r: ["a"] for r in _paths("n")}
            assert c.delete(f"{NS}/default").status_code == 404  # not immortal, not there
    finally:
        server.stop()


def _mark_deleted_offline(db: Path, project: str, name: str) -> None:
    """What a server stopped right after marking a namespace leaves behind, written
    through the library while no server runs."""

    def mark(ns: dict[str, Any]) -> dict[str, Any]:
        ns["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        ns["status"] = {"phase": "Terminating"}
        return ns

    async def run() -> None:
        kv = await SqliteKV.open(str(db))
        async with kv, SharedStorageFactory(kv, ["/registry/namespaces"]) as factory:
            with project_scope(project):
                storage = factory.storage("/registry/namespaces")
                await storage.guaranteed_update(f"/registry/namespaces/{name}", mark)

    asyncio.run(run())


@pytest.mark.parametrize("mode", ["shared", "per-project"])
def test_terminating_namespace_resumes_after_a_restart(
    tmp_path: Path, resources_file: Path, mode: str
) -> None:
    """A namespace left marked with its content (a server stopped mid-way) is finished by
    the next server: at start in shared mode, where the tenant map names each
    namespace's project, and on the next touch in per-project mode."""
    db = tmp_path / "store.db"
    p1, p2 = _project(), _project()
    server = _server(db, resources_file, lifecycle=True, mode=mode)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for p in (p1, p2):
                _make_ns(c, _p(p), "team")
                _fill(c, _p(p), "team")
    finally:
        server.stop()
    _mark_deleted_offline(db, p1, "team")
    server = _server(db, resources_file, lifecycle=True, mode=mode)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            if mode == "per-project":
                late = c.post(f"{_p(p1)}{NS}/team/configmaps", json={"metadata": {"name": "z"}})
                assert late.status_code == 403, late.text  # and the touch resumes it
            _eventually(_gone(c, _p(p1), "team"), "p1's namespace team gone")
            assert _names(c, _p(p1), "team") == {r: [] for r in _paths("team")}
            assert _names(c, _p(p2), "team") == {r: ["a", "b"] for r in _paths("team")}
    finally:
        server.stop()


def test_phase_terminating_alone_refuses_creates_but_deletes_nothing(
    http: httpx.Client,
) -> None:
    """Upstream's admission reads the phase; only a delete (`deletionTimestamp`) starts
    deleting content."""
    base = _p(_project())
    _make_ns(http, base, "n")
    _fill(http, base, "n", ("a",))
    terminating = {"metadata": {"name": "n"}, "status": {"phase": "Terminating"}}
    assert http.put(f"{base}{NS}/n/status", json=terminating).status_code == 200
    resp = http.post(f"{base}{NS}/n/configmaps", json={"metadata": {"name": "late"}})
    assert resp.status_code == 403, resp.text
    assert _names(http, base, "n") == {r: ["a"] for r in _paths("n")}
    assert http.get(f"{base}{NS}/n").status_code == 200
