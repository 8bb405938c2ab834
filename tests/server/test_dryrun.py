"""`dryRun=All` over HTTP, on every backend and mode: each verb answers what it would
store, runs every check a real write runs, and writes nothing (a consistent read shows
the object unchanged and the store's revision has not moved)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tenantstore.server import ServerConfig

from .conftest import ThreadServer

CM = "/api/v1/namespaces/default/configmaps"
ALL_CM = "/api/v1/configmaps"
DRY = {"dryRun": "All"}
MERGE = {"content-type": "application/merge-patch+json"}


def _p(project: str) -> str:
    return f"/projects/{project}/control-plane"


@pytest.fixture
def client(any_server: ThreadServer) -> Iterator[httpx.Client]:
    base = any_server.url + _p(f"dr-{uuid.uuid4().hex[:8]}")
    with httpx.Client(base_url=base, timeout=30) as c:
        yield c


def _cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def _revision(c: httpx.Client) -> str:
    """The store's current revision, from a consistent list (it moves with any write)."""
    resp = c.get(ALL_CM)
    assert resp.status_code == 200, resp.text
    rv: str = resp.json()["metadata"]["resourceVersion"]
    return rv


def _stored(c: httpx.Client, name: str) -> httpx.Response:
    return c.get(f"{CM}/{name}")  # no resourceVersion: a consistent read


def _made(c: httpx.Client, name: str, **data: str) -> dict[str, Any]:
    resp = c.post(CM, json=_cm(name, **data))
    assert resp.status_code == 201, resp.text
    made: dict[str, Any] = resp.json()
    return made


def test_dry_run_create_answers_the_object_and_writes_nothing(client: httpx.Client) -> None:
    _made(client, "seed")  # the namespace `default` exists from here on
    before = _revision(client)
    resp = client.post(CM, params=DRY, json=_cm("a", k="v"))
    assert resp.status_code == 201, resp.text
    got = resp.json()
    meta = got["metadata"]
    assert got["kind"] == "ConfigMap" and got["data"] == {"k": "v"}
    assert meta["name"] == "a" and meta["namespace"] == "default"
    assert meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1
    assert "resourceVersion" not in meta  # as upstream: no write, no revision
    assert _stored(client, "a").status_code == 404
    assert _revision(client) == before


def test_dry_run_generate_name_makes_a_name_and_writes_nothing(client: httpx.Client) -> None:
    _made(client, "seed")
    before = _revision(client)
    body = {"metadata": {"generateName": "gen-"}, "data": {"k": "v"}}
    resp = client.post(CM, params=DRY, json=body)
    assert resp.status_code == 201, resp.text
    name = resp.json()["metadata"]["name"]
    assert name.startswith("gen-") and len(name) == len("gen-") + 5
    assert _stored(client, name).status_code == 404
    assert _revision(client) == before


def test_dry_run_update_patch_delete_write_nothing(client: httpx.Client) -> None:
    made = _made(client, "a", k="v")
    rv = made["metadata"]["resourceVersion"]
    before = _revision(client)

    put = client.put(
        f"{CM}/a", params=DRY, json={**_cm("a", k="put"), "metadata": made["metadata"]}
    )
    assert put.status_code == 200, put.text
    assert put.json()["data"] == {"k": "put"}
    assert put.json()["metadata"]["resourceVersion"] == rv
    assert put.json()["metadata"]["uid"] == made["metadata"]["uid"]

    patch = client.patch(f"{CM}/a", params=DRY, headers=MERGE, content=b'{"data":{"k":"patched"}}')
    assert patch.status_code == 200, patch.text
    assert patch.json()["data"] == {"k": "patched"}
    assert patch.json()["metadata"]["resourceVersion"] == rv

    json_patch = client.patch(
        f"{CM}/a",
        params=DRY,
        headers={"content-type": "application/json-patch+json"},
        content=b'[{"op":"add","path":"/data/x","value":"1"}]',
    )
    assert json_patch.status_code == 200, json_patch.text
    assert json_patch.json()["data"] == {"k": "v", "x": "1"}

    delete = client.delete(f"{CM}/a", params=DRY)
    assert delete.status_code == 200, delete.text
    assert delete.json()["metadata"]["uid"] == made["metadata"]["uid"]

    stored = _stored(client, "a")
    assert stored.status_code == 200
    assert stored.json()["data"] == {"k": "v"}
    assert stored.json()["metadata"]["resourceVersion"] == rv
    assert _revision(client) == before


def test_dry_run_delete_in_the_body_as_client_go_sends_it(client: httpx.Client) -> None:
    _made(client, "a")
    before = _revision(client)
    options = {"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]}
    resp = client.request("DELETE", f"{CM}/a", json=options)
    assert resp.status_code == 200, resp.text
    assert _stored(client, "a").status_code == 200
    assert _revision(client) == before


def test_dry_run_delete_collection_answers_the_list_and_keeps_it(client: httpx.Client) -> None:
    for name in ("a", "b", "c"):
        _made(client, name)
    before = _revision(client)
    resp = client.delete(CM, params={**DRY, "labelSelector": ""})
    assert resp.status_code == 200, resp.text
    assert sorted(o["metadata"]["name"] for o in resp.json()["items"]) == ["a", "b", "c"]
    assert len(client.get(CM).json()["items"]) == 3
    assert _revision(client) == before


def _same_error(real: httpx.Response, dry: httpx.Response, code: int, reason: str) -> None:
    assert real.status_code == dry.status_code == code, (real.text, dry.text)
    assert real.json()["reason"] == reason
    assert dry.json() == real.json()


def test_dry_run_errors_equal_real_errors(client: httpx.Client) -> None:
    made = _made(client, "a", k="v")
    before = _revision(client)

    def both(method: str, url: str, **kw: Any) -> tuple[httpx.Response, httpx.Response]:
        dry = client.request(method, url, params=DRY, **kw)
        real = client.request(method, url, **kw)
        return real, dry

    # Already exists.
    _same_error(*both("POST", CM, json=_cm("a")), 409, "AlreadyExists")
    # A stale resourceVersion on update.
    stale = {**_cm("a", k="x"), "metadata": {"name": "a", "resourceVersion": "1"}}
    _same_error(*both("PUT", f"{CM}/a", json=stale), 409, "Conflict")
    # A uid precondition that does not hold on delete.
    pre = {"preconditions": {"uid": str(uuid.uuid4())}}
    _same_error(*both("DELETE", f"{CM}/a", json=pre), 409, "Conflict")
    # Not found, for every verb that needs the object.
    _same_error(*both("PUT", f"{CM}/nope", json=_cm("nope")), 404, "NotFound")
    patch = {"headers": MERGE, "content": b'{"data":{"k":"x"}}'}
    _same_error(*both("PATCH", f"{CM}/nope", **patch), 404, "NotFound")
    _same_error(*both("DELETE", f"{CM}/nope"), 404, "NotFound")
    # Validation.
    _same_error(*both("POST", CM, json=_cm("Bad_Name")), 422, "Invalid")
    bad_labels = {**_cm("a"), "metadata": {**made["metadata"], "labels": {"a": 1}}}
    _same_error(*both("PUT", f"{CM}/a", json=bad_labels), 422, "Invalid")
    # A namespace that does not exist (namespace lifecycle).
    missing = "/api/v1/namespaces/missing/configmaps"
    _same_error(*both("POST", missing, json=_cm("a")), 404, "NotFound")
    assert _revision(client) == before


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("POST", CM, "CreateOptions"),
        ("PUT", f"{CM}/a", "UpdateOptions"),
        ("PATCH", f"{CM}/a", "PatchOptions"),
        ("DELETE", f"{CM}/a", "DeleteOptions"),
        ("DELETE", CM, "DeleteOptions"),
    ],
)
def test_other_dry_run_values_are_invalid(
    client: httpx.Client, method: str, path: str, kind: str
) -> None:
    made = _made(client, "a")
    before = _revision(client)
    body = {"headers": MERGE, "content": b"{}"} if method == "PATCH" else {}
    if method in ("POST", "PUT"):
        body = {"json": {**_cm("a"), "metadata": made["metadata"]}}
    for value in ("Yes", "all", ""):
        resp = client.request(method, path, params={"dryRun": value}, **body)
        assert resp.status_code == 422, resp.text
        status = resp.json()
        assert status["reason"] == "Invalid"
        assert status["details"]["kind"] == kind
        assert f'{kind}.meta.k8s.io "" is invalid: dryRun: Unsupported value' in status["message"]
        assert 'supported values: "All"' in status["message"]
    assert _stored(client, "a").status_code == 200
    assert _revision(client) == before


def test_malformed_dry_run_in_delete_options_is_400(client: httpx.Client) -> None:
    _made(client, "a")
    deep: Any = "All"
    for _ in range(300):
        deep = [deep]
    for value in ("All", [1], {"a": "All"}, deep):
        resp = client.request("DELETE", f"{CM}/a", json={"dryRun": value})
        assert resp.status_code == 400, resp.text
        assert resp.json()["reason"] == "BadRequest"
    assert _stored(client, "a").status_code == 200


def test_dry_run_is_confined_to_its_project(any_server: ThreadServer) -> None:
    p1, p2 = (f"dr-{uuid.uuid4().hex[:8]}" for _ in range(2))
    with httpx.Client(base_url=any_server.url, timeout=30) as c:
        made = c.post(_p(p1) + CM, json=_cm("shared", owner="p1"))
        assert made.status_code == 201
        # p2 has no such object: a dry create succeeds, a dry delete or patch is a 404.
        assert c.post(_p(p2) + CM, params=DRY, json=_cm("shared")).status_code == 201
        assert c.delete(_p(p2) + f"{CM}/shared", params=DRY).status_code == 404
        patched = c.patch(_p(p2) + f"{CM}/shared", params=DRY, headers=MERGE, content=b"{}")
        assert patched.status_code == 404
        # A dry run in p1 never shows in p2 (nor in the root scope).
        assert c.post(_p(p1) + CM, params=DRY, json=_cm("only-dry")).status_code == 201
        for base in (_p(p2), ""):
            assert c.get(base + f"{CM}/only-dry").status_code == 404
        assert c.get(_p(p1) + f"{CM}/shared").json()["data"] == {"owner": "p1"}


def test_dry_run_namespace_delete_marks_nothing(client: httpx.Client) -> None:
    assert client.post("/api/v1/namespaces", json={"metadata": {"name": "team"}}).status_code == 201
    assert client.post("/api/v1/namespaces/team/configmaps", json=_cm("a")).status_code == 201
    before = _revision(client)
    resp = client.delete("/api/v1/namespaces/team", params=DRY)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"]["phase"] == "Terminating"
    assert resp.json()["metadata"]["deletionTimestamp"]
    ns = client.get("/api/v1/namespaces/team").json()
    assert ns["status"]["phase"] == "Active" and "deletionTimestamp" not in ns["metadata"]
    assert client.get("/api/v1/namespaces/team/configmaps/a").status_code == 200
    assert _revision(client) == before


def test_dry_run_create_in_a_fresh_default_creates_no_namespace(any_server: ThreadServer) -> None:
    base = any_server.url + _p(f"dr-{uuid.uuid4().hex[:8]}")
    with httpx.Client(base_url=base, timeout=30) as c:
        assert c.post(CM, params=DRY, json=_cm("a")).status_code == 201
        assert c.get("/api/v1/namespaces/default").status_code == 404
        assert c.post(CM, json=_cm("a")).status_code == 201
        assert c.get("/api/v1/namespaces/default").json()["status"]["phase"] == "Active"


@pytest.fixture(scope="module")
def quota_server(
    request: pytest.FixtureRequest, resources_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadServer]:
    tmp = tmp_path_factory.mktemp("quota")
    config = ServerConfig(
        backend=f"sqlite://{tmp / 'store.db'}",
        resources_file=str(resources_file),
        max_objects_per_project=3,
    )
    server = ThreadServer(config).start()
    try:
        yield server
    finally:
        server.stop()


def test_dry_run_quota_refusal_equals_the_real_one(quota_server: ThreadServer) -> None:
    base = quota_server.url + _p(f"dq-{uuid.uuid4().hex[:8]}")
    with httpx.Client(base_url=base, timeout=30) as c:
        # The namespace `default` (made by the first create) and two ConfigMaps: 3 objects.
        for name in ("a", "b"):
            assert c.post(CM, json=_cm(name)).status_code == 201
        dry = c.post(CM, params=DRY, json=_cm("c"))
        real = c.post(CM, json=_cm("c"))
        assert dry.status_code == real.status_code == 403, (dry.text, real.text)
        assert dry.json() == real.json()
        assert "exceeded quota" in real.json()["message"]
