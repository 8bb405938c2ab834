"""The status subresource over HTTP, on every backend and mode: `/status` changes only
`.status`, the object path never changes it, `generation` follows the spec, and the
authorizer sees `<resource>/status`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from tenantstore.server import ServerConfig
from tenantstore.server.auth import User

from .conftest import ThreadServer

RESOURCES_YAML = """\
resources:
  - group: example.com
    version: v1
    kind: Widget
    plural: widgets
    namespaced: true
    subresources: {status: {}}
  - {group: example.com, version: v1, kind: Plain, plural: plains, namespaced: true}
"""
W = "/apis/example.com/v1/namespaces/default/widgets"
PLAIN = "/apis/example.com/v1/namespaces/default/plains"
MERGE = {"content-type": "application/merge-patch+json"}
JSON_PATCH = {"content-type": "application/json-patch+json"}


@pytest.fixture(scope="module")
def resources_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resources") / "resources.yaml"
    path.write_text(RESOURCES_YAML)
    return path


@pytest.fixture
def client(any_server: ThreadServer) -> Iterator[httpx.Client]:
    base = f"{any_server.url}/projects/st-{uuid.uuid4().hex[:8]}/control-plane"
    with httpx.Client(base_url=base, timeout=30) as c:
        yield c


def _widget(name: str, size: int, ready: bool | None = None, **meta: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name, **meta},
        "spec": {"size": size},
    }
    if ready is not None:
        obj["status"] = {"ready": ready}
    return obj


def _ok(resp: httpx.Response, code: int = 200) -> dict[str, Any]:
    assert resp.status_code == code, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_create_drops_status(client: httpx.Client) -> None:
    made = _ok(client.post(W, json=_widget("w", 1, ready=True)), 201)
    assert "status" not in made and made["metadata"]["generation"] == 1
    assert "status" not in _ok(client.get(f"{W}/w"))


def test_object_updates_keep_the_stored_status(client: httpx.Client) -> None:
    _ok(client.post(W, json=_widget("w", 1)), 201)
    _ok(client.patch(f"{W}/w/status", headers=MERGE, content=b'{"status":{"ready":true}}'))
    # PUT on the object: the spec changes, the status in the body is ignored.
    put = _ok(client.put(f"{W}/w", json=_widget("w", 2, ready=False)))
    assert put["spec"] == {"size": 2} and put["status"] == {"ready": True}
    assert put["metadata"]["generation"] == 2
    # PATCH on the object: likewise, also when it deletes the status.
    patched = _ok(client.patch(f"{W}/w", headers=MERGE, content=b'{"status":null}'))
    assert patched["status"] == {"ready": True} and patched["metadata"]["generation"] == 2
    # Metadata alone does not move generation.
    labelled = _ok(
        client.patch(f"{W}/w", headers=MERGE, content=b'{"metadata":{"labels":{"a":"b"}}}')
    )
    assert labelled["metadata"]["labels"] == {"a": "b"}
    assert labelled["metadata"]["generation"] == 2
    assert _ok(client.get(f"{W}/w"))["status"] == {"ready": True}


def test_status_updates_change_only_status(client: httpx.Client) -> None:
    made = _ok(client.post(W, json=_widget("w", 1, labels={"keep": "me"})), 201)
    # PUT /status with a different spec and labels: only the status lands.
    body = _widget("w", 9, ready=True, labels={"other": "x"})
    put = _ok(client.put(f"{W}/w/status", json=body))
    assert put["status"] == {"ready": True}
    assert put["spec"] == {"size": 1} and put["metadata"]["labels"] == {"keep": "me"}
    assert put["metadata"]["generation"] == 1
    assert put["metadata"]["uid"] == made["metadata"]["uid"]
    # PATCH /status, merge and JSON patch; spec changes in the patch are ignored.
    merge = b'{"spec":{"size":5},"status":{"ready":false,"n":2}}'
    patched = _ok(client.patch(f"{W}/w/status", headers=MERGE, content=merge))
    assert patched["status"] == {"ready": False, "n": 2} and patched["spec"] == {"size": 1}
    ops = b'[{"op":"replace","path":"/status/n","value":3}]'
    patched = _ok(client.patch(f"{W}/w/status", headers=JSON_PATCH, content=ops))
    assert patched["status"] == {"ready": False, "n": 3}
    assert patched["metadata"]["generation"] == 1
    # GET /status answers the whole object, as upstream.
    got = _ok(client.get(f"{W}/w/status"))
    assert got["spec"] == {"size": 1} and got["status"] == {"ready": False, "n": 3}
    assert got["kind"] == "Widget"


def test_status_update_with_a_stale_resource_version_is_a_conflict(client: httpx.Client) -> None:
    made = _ok(client.post(W, json=_widget("w", 1)), 201)
    _ok(client.patch(f"{W}/w", headers=MERGE, content=b'{"spec":{"size":2}}'))
    stale = _widget("w", 1, ready=True, resourceVersion=made["metadata"]["resourceVersion"])
    resp = client.put(f"{W}/w/status", json=stale)
    assert resp.status_code == 409 and resp.json()["reason"] == "Conflict"
    assert "status" not in _ok(client.get(f"{W}/w"))


def test_status_dry_run_writes_nothing(client: httpx.Client) -> None:
    made = _ok(client.post(W, json=_widget("w", 1)), 201)
    resp = client.patch(
        f"{W}/w/status",
        params={"dryRun": "All"},
        headers=MERGE,
        content=b'{"status":{"ready":true}}',
    )
    assert _ok(resp)["status"] == {"ready": True}
    got = _ok(client.get(f"{W}/w"))
    assert "status" not in got
    assert got["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]


def test_status_is_served_only_where_declared(client: httpx.Client) -> None:
    _ok(client.post(W, json=_widget("w", 1)), 201)
    plain = {"apiVersion": "example.com/v1", "kind": "Plain", "metadata": {"name": "p"}}
    _ok(client.post(PLAIN, json=plain), 201)
    _ok(client.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "c"}}), 201)
    for path in (f"{PLAIN}/p/status", "/api/v1/namespaces/default/configmaps/c/status"):
        resp = client.get(path)
        assert resp.status_code == 404 and resp.json()["reason"] == "NotFound"
    for method in ("DELETE", "POST"):
        resp = client.request(method, f"{W}/w/status", json={})
        assert resp.status_code == 405, resp.text
    assert client.get(f"{W}/nope/status").status_code == 404


def test_status_counts_in_generation_without_the_subresource(client: httpx.Client) -> None:
    plain = {"apiVersion": "example.com/v1", "kind": "Plain", "metadata": {"name": "p"}}
    made = _ok(client.post(PLAIN, json={**plain, "status": {"ready": True}}), 201)
    assert made["status"] == {"ready": True}  # an ordinary field without the subresource
    patched = _ok(client.patch(f"{PLAIN}/p", headers=MERGE, content=b'{"status":{"n":1}}'))
    assert patched["status"] == {"ready": True, "n": 1}
    assert patched["metadata"]["generation"] == 2  # as upstream's custom resources


def test_namespace_status_subresource(client: httpx.Client) -> None:
    _ok(client.post("/api/v1/namespaces", json={"metadata": {"name": "team"}}), 201)
    got = _ok(client.get("/api/v1/namespaces/team/status"))
    assert got["kind"] == "Namespace" and got["status"] == {"phase": "Active"}
    # The object path ignores status; the status path sets it.
    ignored = client.patch(
        "/api/v1/namespaces/team", headers=MERGE, content=b'{"status":{"phase":"Odd"}}'
    )
    assert _ok(ignored)["status"] == {"phase": "Active"}
    labels = b'{"metadata":{"labels":{"x":"y"}},"status":{"conditions":[]}}'
    set_ = _ok(client.patch("/api/v1/namespaces/team/status", headers=MERGE, content=labels))
    assert set_["status"] == {"phase": "Active", "conditions": []}
    assert "x" not in (set_["metadata"].get("labels") or {})


# -- authorization ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_server(
    resources_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ThreadServer, list[str]]]:
    """Users `x-user: <project>`; members may do anything in their project but update
    `widgets/status` unless they are `controller`."""
    seen: list[str] = []

    def authenticator(request: Request) -> User | None:
        name = request.headers.get("x-user", "")
        return User(name, name, (f"project:{name.split(':')[0]}",)) if name else None

    def authorizer(
        user: User, project: str | None, verb: str, resource: str, namespace: str | None, name: str
    ) -> bool:
        seen.append(f"{verb} {resource}")
        if project is None or f"project:{project}" not in user.groups:
            return False
        return not resource.endswith("/status") or user.name.endswith(":controller")

    tmp = tmp_path_factory.mktemp("auth")
    config = ServerConfig(
        backend=f"sqlite://{tmp / 'store.db'}",
        resources_file=str(resources_file),
        authenticator=authenticator,
        authorizer=authorizer,
    )
    server = ThreadServer(config).start()
    try:
        yield server, seen
    finally:
        server.stop()


def test_status_is_authorized_as_its_own_resource(
    auth_server: tuple[ThreadServer, list[str]],
) -> None:
    server, seen = auth_server
    p1, p2 = f"a1-{uuid.uuid4().hex[:6]}", f"a2-{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=server.url, timeout=30) as c:

        def url(project: str, path: str) -> str:
            return f"/projects/{project}/control-plane{path}"

        for p in (p1, p2):
            made = c.post(url(p, W), json=_widget("w", 1), headers={"x-user": p})
            assert made.status_code == 201, made.text
        status = b'{"status":{"ready":true}}'
        user = {"x-user": p1, **MERGE}
        resp = c.patch(url(p1, f"{W}/w/status"), headers=user, content=status)
        assert resp.status_code == 403, resp.text
        assert 'cannot patch resource "widgets.example.com/status"' in resp.json()["message"]
        assert "patch widgets.example.com/status" in seen
        ctl = {"x-user": f"{p1}:controller", **MERGE}
        assert c.patch(url(p1, f"{W}/w/status"), headers=ctl, content=status).status_code == 200
        # p1's controller cannot reach p2's status.
        resp = c.patch(url(p2, f"{W}/w/status"), headers=ctl, content=status)
        assert resp.status_code == 403
        got = c.get(url(p2, f"{W}/w"), headers={"x-user": p2})
        assert got.status_code == 200 and "status" not in got.json()


def test_status_paths_route_to_the_object(resources_file: Path) -> None:
    from tenantstore.server.registry import ResourceRegistry
    from tenantstore.server.routing import Kind, parse_path

    reg = ResourceRegistry.with_builtins(resources_file)
    t = parse_path("/apis/example.com/v1/namespaces/n/widgets/w/status", reg)
    assert (t.kind, t.namespace, t.name, t.subresource) == (Kind.OBJECT, "n", "w", "status")
    t = parse_path("/api/v1/namespaces/team/status", reg)
    assert t.resource is not None and t.resource.plural == "namespaces"
    assert (t.kind, t.namespace, t.name, t.subresource) == (Kind.OBJECT, None, "team", "status")
    assert parse_path("/api/v1/namespaces/team", reg).subresource == ""


def test_official_client_status_and_dry_run(any_server: ThreadServer) -> None:
    """The `kubernetes` package's status methods and `dry_run`, in two projects."""
    from kubernetes import client

    tag = uuid.uuid4().hex[:6]
    apis = {}
    for p in (f"oc1-{tag}", f"oc2-{tag}"):
        cfg = client.Configuration()
        cfg.host = f"{any_server.url}/projects/{p}/control-plane"
        apis[p] = client.ApiClient(cfg)
    try:
        p1, p2 = (client.CustomObjectsApi(a) for a in apis.values())
        args = ("example.com", "v1", "default", "widgets")
        for api in (p1, p2):
            api.create_namespaced_custom_object(*args, _widget("w", 1))
        dry = p1.create_namespaced_custom_object(*args, _widget("d", 1), dry_run="All")
        assert dry["metadata"]["name"] == "d" and "resourceVersion" not in dry["metadata"]
        patched = p1.patch_namespaced_custom_object_status(*args, "w", {"status": {"ready": True}})
        assert patched["status"] == {"ready": True} and patched["metadata"]["generation"] == 1
        got = p1.get_namespaced_custom_object_status(*args, "w")
        assert got["status"] == {"ready": True}
        replaced = p1.replace_namespaced_custom_object_status(
            *args, "w", {**got, "status": {"ready": False}}
        )
        assert replaced["status"] == {"ready": False}
        assert "status" not in p2.get_namespaced_custom_object(*args, "w")
        names = [o["metadata"]["name"] for o in p1.list_namespaced_custom_object(*args)["items"]]
        assert names == ["w"]
    finally:
        for a in apis.values():
            a.close()
