"""HTTP-level behaviour over real HTTP (httpx): Status errors and codes, project paths,
patch types, name validation, discovery, metrics, watch streaming."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tenantstore.server import ServerConfig

from .conftest import ThreadServer

CM = "/api/v1/namespaces/default/configmaps"


def _p(project: str) -> str:
    return f"/projects/{project}/control-plane"


@pytest.fixture
def project() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _status(resp: httpx.Response, code: int, reason: str) -> dict[str, Any]:
    assert resp.status_code == code, resp.text
    body: dict[str, Any] = resp.json()
    assert body["kind"] == "Status" and body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == code
    assert body["reason"] == reason, body
    return body


def _create(http: httpx.Client, base: str, name: str, **data: str) -> dict[str, Any]:
    resp = http.post(
        base + CM,
        json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data},
    )
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


# -- project paths --------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["P1", "a_b", "-x", "x-", "a" * 64, "a.b", "%2e%2e", "p1%2Fp2"])
def test_invalid_project_is_400(http: httpx.Client, bad: str) -> None:
    resp = http.get(f"/projects/{bad}/control-plane{CM}")
    _status(resp, 400, "BadRequest")


def test_dot_dot_project_never_reaches_root(http: httpx.Client) -> None:
    # The client normalizes "/projects/../control-plane/x" to "/control-plane/x": a 404.
    resp = http.get(f"/projects/../control-plane{CM}")
    assert resp.status_code in (400, 404)
    assert resp.json()["kind"] == "Status"


@pytest.mark.parametrize(
    "path",
    [
        "/projects",
        "/projects/p1",
        "/projects/p1/other/api/v1",
        "/nope",
        "/api/v2",
        "/apis/nope.io/v1",
    ],
)
def test_unknown_paths_are_404(http: httpx.Client, path: str) -> None:
    _status(http.get(path), 404, "NotFound")


def test_project_control_plane_root_paths(http: httpx.Client, project: str) -> None:
    for path in ("/api", "/apis", "/version", "/api/v1"):
        assert http.get(_p(project) + path).status_code == 200
    # Metrics are server-wide, not per project.
    assert http.get(_p(project) + "/metrics").status_code == 404


def test_unknown_resource_and_subresource_404(http: httpx.Client, project: str) -> None:
    _status(http.get(_p(project) + "/api/v1/namespaces/default/pods"), 404, "NotFound")
    _create(http, _p(project), "sub")
    _status(http.get(_p(project) + CM + "/sub/status"), 404, "NotFound")


# -- discovery --------------------------------------------------------------------------


def test_discovery(http: httpx.Client) -> None:
    assert http.get("/api").json()["versions"] == ["v1"]
    core = http.get("/api/v1").json()
    assert core["kind"] == "APIResourceList" and core["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["configmaps"]["kind"] == "ConfigMap"
    assert by_name["configmaps"]["namespaced"] is True
    assert by_name["configmaps"]["shortNames"] == ["cm"]
    assert by_name["namespaces"]["namespaced"] is False
    assert "watch" in by_name["secrets"]["verbs"]
    groups = http.get("/apis").json()
    assert groups["kind"] == "APIGroupList"
    assert [g["name"] for g in groups["groups"]] == ["example.com"]
    assert groups["groups"][0]["preferredVersion"]["groupVersion"] == "example.com/v1"
    custom = http.get("/apis/example.com/v1").json()
    assert {r["name"]: r["namespaced"] for r in custom["resources"]} == {
        "widgets": True,
        "clusters": False,
    }
    assert http.get("/apis/example.com").json()["kind"] == "APIGroup"
    version = http.get("/version").json()
    assert version["major"] == "1" and version["gitVersion"].startswith("v1.")


def test_health_and_metrics(http: httpx.Client, project: str) -> None:
    assert http.get("/healthz").text == "ok"
    assert http.get("/livez").text == "ok"
    assert http.get("/readyz").status_code == 200
    http.get(_p(project) + CM)
    text = http.get("/metrics").text
    for metric in (
        "tenantstore_http_requests_total",
        "tenantstore_http_request_duration_seconds_bucket",
        "tenantstore_python_heap_blocks",
        "tenantstore_threads",
        "tenantstore_asyncio_tasks",
        "process_resident_memory_bytes",
        "tenantstore_cacher_objects",
    ):
        assert metric in text, metric
    assert 'code="200",resource="configmaps",verb="LIST"' in text


# -- errors -------------------------------------------------------------------------------


def test_error_codes(http: httpx.Client, server: ThreadServer, project: str) -> None:
    base = _p(project)
    _status(http.get(base + CM + "/missing"), 404, "NotFound")
    made = _create(http, base, "dup")
    _status(http.post(base + CM, json={"metadata": {"name": "dup"}}), 409, "AlreadyExists")
    stale = {**made, "data": {"x": "2"}}
    assert http.put(base + CM + "/dup", json=stale).status_code == 200
    _status(http.put(base + CM + "/dup", json=stale), 409, "Conflict")
    # PUT of a missing object is a 404 (no create on update).
    _status(http.put(base + CM + "/ghost", json={"metadata": {"name": "ghost"}}), 404, "NotFound")
    # Malformed JSON, bad UTF-8, bad query values: 400.
    hdr = {"content-type": "application/json"}
    _status(http.post(base + CM, content=b"{nope", headers=hdr), 400, "BadRequest")
    _status(http.post(base + CM, content=b'{"a": "\xff"}', headers=hdr), 400, "BadRequest")
    _status(http.post(base + CM, content=b"[1]", headers=hdr), 400, "BadRequest")
    _status(http.get(base + CM, params={"limit": "x"}), 400, "BadRequest")
    _status(http.get(base + CM, params={"watch": "maybe"}), 400, "BadRequest")
    _status(http.get(base + CM, params={"labelSelector": "a in (b"}), 400, "BadRequest")
    _status(http.get(base + CM, params={"resourceVersion": "abc"}), 400, "BadRequest")
    _status(
        http.get(base + CM, params={"resourceVersionMatch": "Sometimes", "resourceVersion": "1"}),
        400,
        "BadRequest",
    )
    # Too large: over the configured 64 KiB limit.
    big = {"metadata": {"name": "big"}, "data": {"x": "y" * (65 * 1024)}}
    _status(http.post(base + CM, json=big), 413, "RequestEntityTooLarge")
    # Unsupported verbs and media types.
    _status(http.put(base + CM, json={}), 405, "MethodNotAllowed")
    _status(http.post(base + CM + "/dup", json={}), 405, "MethodNotAllowed")
    _status(http.post(base + "/api/v1", json={}), 405, "MethodNotAllowed")
    _status(
        http.patch(base + CM + "/dup", content=b"{}", headers={"content-type": "text/plain"}),
        415,
        "UnsupportedMediaType",
    )
    # Protobuf is for built-in kinds only (test_protobuf.py); other types are a 415.
    _status(
        http.post(
            base + "/apis/example.com/v1/namespaces/default/widgets",
            content=b"\x6b\x38\x73\x00",
            headers={"content-type": "application/vnd.kubernetes.protobuf"},
        ),
        415,
        "UnsupportedMediaType",
    )
    _status(
        http.post(base + CM, content=b"a: b", headers={"content-type": "application/yaml"}),
        415,
        "UnsupportedMediaType",
    )


def test_gone_for_old_resource_versions(tmp_path: Path) -> None:
    """410 for history the server no longer has: a watch from before the cache's window
    (an ERROR event, HTTP 200, as Kubernetes) and a list page at a compacted revision."""
    backend = f"sqlite://{tmp_path / 'store.db'}"
    first = ThreadServer(ServerConfig(backend=backend)).start()
    try:
        with httpx.Client(base_url=first.url, timeout=30) as http:
            for i in range(4):
                _create(http, _p("old"), f"o-{i}")
            page = http.get(_p("old") + CM, params={"limit": "2"}).json()
            token = page["metadata"]["continue"]
    finally:
        first.stop()
    # A new server's cache starts at the current revision: older history is gone.
    second = ThreadServer(ServerConfig(backend=backend)).start()
    try:
        with httpx.Client(base_url=second.url, timeout=30) as http:
            params = {"watch": "1", "resourceVersion": "1", "timeoutSeconds": "5"}
            events = [
                orjson.loads(x) for x in http.get(_p("old") + CM, params=params).text.splitlines()
            ]
            assert [e["type"] for e in events] == ["ERROR"]
            assert events[0]["object"]["code"] == 410
            _create(http, _p("old"), "newer")  # so the token's revision can be compacted
            state = second.app.state.tenantstore
            rev = asyncio.run_coroutine_threadsafe(state.kv.current_revision(), state.loop).result(
                30
            )
            asyncio.run_coroutine_threadsafe(state.kv.compact(rev), state.loop).result(30)
            resp = http.get(_p("old") + CM, params={"limit": "2", "continue": token})
            _status(resp, 410, "Expired")
            # A garbage token is a 400.
            bad = http.get(_p("old") + CM, params={"limit": "2", "continue": "!!"})
            _status(bad, 400, "BadRequest")
    finally:
        second.stop()


# -- names and identity ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["Bad", "a_b", "-a", "a" * 254, "a..b"])
def test_invalid_names_422(http: httpx.Client, project: str, name: str) -> None:
    body = _status(http.post(_p(project) + CM, json={"metadata": {"name": name}}), 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_identity_checks_422(http: httpx.Client, project: str) -> None:
    base = _p(project)
    _status(http.post(base + CM, json={"metadata": {}}), 422, "Invalid")
    _status(
        http.post(base + CM, json={"metadata": {"name": "x", "namespace": "other"}}),
        422,
        "Invalid",
    )
    _status(
        http.post(base + CM, json={"kind": "Secret", "metadata": {"name": "x"}}), 422, "Invalid"
    )
    _status(
        http.post(base + CM, json={"apiVersion": "v2", "metadata": {"name": "x"}}),
        422,
        "Invalid",
    )
    made = _create(http, base, "ident")
    _status(
        http.put(
            base + CM + "/ident", json={**made, "metadata": {**made["metadata"], "name": "z"}}
        ),
        422,
        "Invalid",
    )
    _status(
        http.patch(
            base + CM + "/ident",
            json={"metadata": {"name": "z"}},
            headers={"content-type": "application/merge-patch+json"},
        ),
        422,
        "Invalid",
    )
    # 253 characters is the longest valid name.
    long_name = ("a" * 63 + ".") * 3 + "a" * 61
    assert len(long_name) == 253
    _create(http, base, long_name)


def test_server_owned_fields(http: httpx.Client, project: str) -> None:
    base = _p(project)
    body = {
        "metadata": {
            "name": "owned",
            "uid": "client-uid",
            "resourceVersion": "999",
            "creationTimestamp": "2000-01-01T00:00:00Z",
            "generation": 7,
        },
        "data": {"a": "1"},
    }
    resp = http.post(base + CM, json=body)
    assert resp.status_code == 201, resp.text
    made = resp.json()
    meta = made["metadata"]
    assert meta["uid"] != "client-uid"
    assert meta["generation"] == 1
    assert meta["creationTimestamp"] != "2000-01-01T00:00:00Z"
    assert meta["creationTimestamp"].endswith("Z")
    assert made["kind"] == "ConfigMap" and made["apiVersion"] == "v1"
    # An update cannot change uid or creationTimestamp; a labels-only change keeps generation.
    changed = {
        **made,
        "metadata": {**meta, "uid": "other", "creationTimestamp": "x", "labels": {"l": "v"}},
    }
    updated = http.put(base + CM + "/owned", json=changed).json()
    assert updated["metadata"]["uid"] == meta["uid"]
    assert updated["metadata"]["creationTimestamp"] == meta["creationTimestamp"]
    assert updated["metadata"]["generation"] == 1
    assert updated["metadata"]["labels"] == {"l": "v"}


def test_generate_name(http: httpx.Client, project: str) -> None:
    resp = http.post(_p(project) + CM, json={"metadata": {"generateName": "gen-"}})
    assert resp.status_code == 201, resp.text
    name = resp.json()["metadata"]["name"]
    assert name.startswith("gen-") and len(name) == len("gen-") + 5


# -- patch ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ctype", ["application/merge-patch+json", "application/strategic-merge-patch+json"]
)
def test_merge_patches(http: httpx.Client, project: str, ctype: str) -> None:
    base = _p(project)
    _create(http, base, "mp", a="1", b="2")
    resp = http.patch(
        base + CM + "/mp",
        content=orjson.dumps({"data": {"a": None, "c": "3"}, "metadata": {"labels": {"x": "y"}}}),
        headers={"content-type": ctype},
    )
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert got["data"] == {"b": "2", "c": "3"}
    assert got["metadata"]["labels"] == {"x": "y"}


def test_json_patch(http: httpx.Client, project: str) -> None:
    base = _p(project)
    made = _create(http, base, "jp", a="1")
    ops = [
        {"op": "test", "path": "/data/a", "value": "1"},
        {"op": "add", "path": "/data/b", "value": "2"},
        {"op": "replace", "path": "/data/a", "value": "9"},
        {"op": "copy", "from": "/data/b", "path": "/data/c"},
        {"op": "move", "from": "/data/c", "path": "/data/d"},
        {"op": "remove", "path": "/data/b"},
    ]
    hdr = {"content-type": "application/json-patch+json"}
    resp = http.patch(base + CM + "/jp", content=orjson.dumps(ops), headers=hdr)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"] == {"a": "9", "d": "2"}
    # A failing test op: 422; the object is unchanged.
    bad = [{"op": "test", "path": "/data/a", "value": "nope"}]
    _status(http.patch(base + CM + "/jp", content=orjson.dumps(bad), headers=hdr), 422, "Invalid")
    # A stale resourceVersion in a patch is a precondition: 409.
    stale = [
        {
            "op": "replace",
            "path": "/metadata/resourceVersion",
            "value": made["metadata"]["resourceVersion"],
        }
    ]
    _status(
        http.patch(base + CM + "/jp", content=orjson.dumps(stale), headers=hdr), 409, "Conflict"
    )
    _status(http.patch(base + CM + "/jp", content=b'{"op": 1}', headers=hdr), 400, "BadRequest")
    _status(http.patch(base + CM + "/missing", content=b"[]", headers=hdr), 404, "NotFound")


# -- delete ----------------------------------------------------------------------------


def test_delete_preconditions(http: httpx.Client, project: str) -> None:
    base = _p(project)
    made = _create(http, base, "del")
    wrong = {"preconditions": {"uid": "not-it"}}
    _status(http.request("DELETE", base + CM + "/del", json=wrong), 409, "Conflict")
    right = {"preconditions": {"uid": made["metadata"]["uid"]}}
    resp = http.request("DELETE", base + CM + "/del", json=right)
    assert resp.status_code == 200
    assert resp.json()["metadata"]["name"] == "del"
    _status(http.delete(base + CM + "/del"), 404, "NotFound")


def test_delete_collection_and_selectors(http: httpx.Client, project: str) -> None:
    base = _p(project)
    for i in range(4):
        body = {"metadata": {"name": f"dc-{i}", "labels": {"even": str(i % 2 == 0).lower()}}}
        assert http.post(base + CM, json=body).status_code == 201
    listed = http.get(base + CM, params={"labelSelector": "even=true"}).json()
    assert [o["metadata"]["name"] for o in listed["items"]] == ["dc-0", "dc-2"]
    by_field = http.get(base + CM, params={"fieldSelector": "metadata.name=dc-3"}).json()
    assert [o["metadata"]["name"] for o in by_field["items"]] == ["dc-3"]
    resp = http.request("DELETE", base + CM, params={"labelSelector": "even=true"})
    assert resp.status_code == 200
    assert sorted(o["metadata"]["name"] for o in resp.json()["items"]) == ["dc-0", "dc-2"]
    left = http.get(base + CM).json()["items"]
    assert sorted(o["metadata"]["name"] for o in left) == ["dc-1", "dc-3"]


# -- watch -------------------------------------------------------------------------------


def _events(resp: httpx.Response) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in resp.iter_lines() if line]


def test_watch_bookmarks_and_timeout(http: httpx.Client, project: str) -> None:
    """Bookmarks carry the cache's revision as it moves (here: a write in another project
    of the shared cache), never the other project's object; the stream ends by itself
    after timeoutSeconds."""
    base = _p(project)
    made = _create(http, base, "wb")
    rv = made["metadata"]["resourceVersion"]
    params = {
        "watch": "true",
        "resourceVersion": rv,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "3",
    }
    with http.stream("GET", base + CM, params=params) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/json")
        elsewhere = _create(http, _p(f"o-{uuid.uuid4().hex[:6]}"), "elsewhere")
        events = _events(resp)  # ends by itself after timeoutSeconds
    assert events, "no bookmark"
    assert all(e["type"] == "BOOKMARK" for e in events), events
    assert events[0]["object"]["kind"] == "ConfigMap"
    last = int(events[-1]["object"]["metadata"]["resourceVersion"])
    assert last >= int(elsewhere["metadata"]["resourceVersion"])


def test_watch_initial_state_and_changes(http: httpx.Client, project: str) -> None:
    base = _p(project)
    _create(http, base, "ws-a")
    other = f"o-{uuid.uuid4().hex[:6]}"
    _create(http, _p(other), "ws-other")
    params = {"watch": "1", "timeoutSeconds": "3"}
    with http.stream("GET", base + CM, params=params) as resp:
        lines = resp.iter_lines()
        first = orjson.loads(next(lines))
        assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "ws-a"
        _create(http, base, "ws-b")
        _create(http, _p(other), "ws-other-2")
        second = orjson.loads(next(lines))
        assert second["type"] == "ADDED" and second["object"]["metadata"]["name"] == "ws-b"
        assert second["object"]["apiVersion"] == "v1"
        rest = [orjson.loads(x) for x in lines if x]
    assert all(
        e["object"]["metadata"]["name"].startswith("ws-")
        and "other" not in e["object"]["metadata"]["name"]
        for e in rest
    )


def test_watch_selector(http: httpx.Client, project: str) -> None:
    base = _p(project)
    params = {"watch": "1", "labelSelector": "pick=yes", "timeoutSeconds": "2"}
    with http.stream("GET", base + CM, params=params) as resp:
        lines = resp.iter_lines()
        http.post(base + CM, json={"metadata": {"name": "no", "labels": {"pick": "no"}}})
        http.post(base + CM, json={"metadata": {"name": "yes", "labels": {"pick": "yes"}}})
        ev = orjson.loads(next(lines))
        assert ev["object"]["metadata"]["name"] == "yes"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/%2e%2e/configmaps",
        "/api/v1/namespaces/default/configmaps/%2e%2e",
        "/api/v1/namespaces/%2E/configmaps/x",
        "/api/v1/namespaces/%00/configmaps",
    ],
)
def test_dot_segments_never_reach_storage(http: httpx.Client, project: str, path: str) -> None:
    _status(http.get(_p(project) + path), 404, "NotFound")
    _status(http.delete(_p(project) + path), 404, "NotFound")


def test_delete_options_errors(http: httpx.Client, project: str) -> None:
    base = _p(project)
    _create(http, base, "dopt")
    big = b'{"preconditions": {"uid": "' + b"x" * (65 * 1024) + b'"}}'
    _status(http.request("DELETE", base + CM + "/dopt", content=big), 413, "RequestEntityTooLarge")
    _status(http.request("DELETE", base + CM + "/dopt", content=b"{bad"), 400, "BadRequest")
    assert http.get(base + CM + "/dopt").status_code == 200
