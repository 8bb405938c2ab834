"""Watch-list streaming over HTTP, against a real `tenantstore serve` (SQLite and etcd).

client-go's reflector (the WatchList feature) lists by watching:
`GET ...?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&
allowWatchBookmarks=true[&resourceVersion=N]`, and takes the state as complete at the
BOOKMARK annotated `k8s.io/initial-events-end: "true"`. These tests send exactly that,
read the newline-delimited JSON stream, and do the same with the official `kubernetes`
Python client's `watch.Watch().stream`, which passes the parameters through.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client, watch

from tests.server.conftest import ServeProcess

ANNOTATION = "k8s.io/initial-events-end"
NS = "default"
# As client-go's reflector sends a watch-list (url.Values are encoded in key order).
WATCH_LIST = {
    "allowWatchBookmarks": "true",
    "resourceVersionMatch": "NotOlderThan",
    "sendInitialEvents": "true",
    "timeoutSeconds": "30",
    "watch": "true",
}


@pytest.fixture(
    scope="module",
    params=[("sqlite", "shared"), ("sqlite", "per-project"), ("etcd", "shared")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def serve(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    kind, mode = request.param
    tmp = tmp_path_factory.mktemp(f"watchlist-{kind}-{mode}")
    if kind == "sqlite":
        backend = f"sqlite://{tmp / 'store.db'}"
    else:
        backend = f"etcd://{request.getfixturevalue('etcd_server').endpoint}"
    args = ["--backend", backend, "--mode", mode, "--log-level", "warning"]
    proc = ServeProcess(args, tmp).wait_started()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def http(serve: ServeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=serve.url, timeout=30) as c:
        yield c


def cm_path(project: str | None) -> str:
    base = f"/projects/{project}/control-plane" if project else ""
    return f"{base}/api/v1/namespaces/{NS}/configmaps"


def create(http: httpx.Client, project: str | None, name: str, owner: str) -> dict[str, Any]:
    body = {"metadata": {"name": name}, "data": {"owner": owner}}
    resp = http.post(cm_path(project), json=body)
    assert resp.status_code == 201, resp.text
    made: dict[str, Any] = resp.json()
    return made


def is_end(event: dict[str, Any]) -> bool:
    annotations = event["object"].get("metadata", {}).get("annotations") or {}
    return event["type"] == "BOOKMARK" and annotations.get(ANNOTATION) == "true"


def test_raw_watch_list_as_client_go_sends_it(http: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    p1, p2 = f"a-{tag}", f"b-{tag}"
    mine = [create(http, p1, f"cm-{i}", p1) for i in range(3)]
    create(http, p2, "cm-0", p2)  # same name, another project: never in p1's stream
    create(http, None, "cm-0", "root")
    # Without a resourceVersion (a first list: consistent), then "not older than" the
    # revision of the first round's last write (its delete), as a reflector resumes.
    params = WATCH_LIST
    for round_ in range(2):
        with http.stream("GET", cm_path(p1), params=params) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("application/json")
            lines = resp.iter_lines()
            initial = [json.loads(next(lines)) for _ in mine]
            assert [e["type"] for e in initial] == ["ADDED"] * 3
            assert [e["object"]["metadata"]["name"] for e in initial] == ["cm-0", "cm-1", "cm-2"]
            assert {e["object"]["data"]["owner"] for e in initial} == {p1}
            assert [e["object"] for e in initial] == mine
            end = json.loads(next(lines))
            assert is_end(end), end
            # Typed like every watch object, and nothing else: no project, no storage key.
            assert end["object"]["kind"] == "ConfigMap" and end["object"]["apiVersion"] == "v1"
            assert set(end["object"]["metadata"]) == {"resourceVersion", "annotations"}
            assert int(end["object"]["metadata"]["resourceVersion"]) >= int(
                mine[-1]["metadata"]["resourceVersion"]
            )
            # Then the live events: a write in p2 is not one of them, p1's next write is.
            create(http, p2, f"later-{round_}", p2)
            later = create(http, p1, f"later-{round_}", p1)
            for line in lines:
                event = json.loads(line)
                if event["type"] == "BOOKMARK":
                    assert not is_end(event), event
                    continue
                assert event == {"type": "ADDED", "object": later}
                break
        # The next round's initial state must be `mine` again, not older than this delete.
        deleted = http.delete(f"{cm_path(p1)}/later-{round_}")
        assert deleted.status_code == 200, deleted.text
        params = {**WATCH_LIST, "resourceVersion": deleted.json()["metadata"]["resourceVersion"]}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        # sendInitialEvents needs resourceVersionMatch=NotOlderThan
        ({"watch": "true", "sendInitialEvents": "true"}, "resourceVersionMatch"),
        ({"watch": "true", "sendInitialEvents": "false"}, "resourceVersionMatch"),
        # resourceVersionMatch on a watch needs sendInitialEvents, and only NotOlderThan
        ({"watch": "true", "resourceVersionMatch": "NotOlderThan"}, "resourceVersionMatch"),
        (
            {"watch": "true", "sendInitialEvents": "true", "resourceVersionMatch": "Exact"},
            "resourceVersionMatch",
        ),
        # a list never streams initial events
        ({"sendInitialEvents": "true"}, "sendInitialEvents"),
    ],
)
def test_invalid_watch_list_options_are_422(
    http: httpx.Client, params: dict[str, str], field: str
) -> None:
    resp = http.get(cm_path(f"v-{uuid.uuid4().hex[:8]}"), params=params)
    assert resp.status_code == 422, resp.text
    status = resp.json()
    assert status["kind"] == "Status" and status["reason"] == "Invalid"
    assert status["details"]["kind"] == "ListOptions"
    assert field in {c["field"] for c in status["details"]["causes"]}


def test_malformed_send_initial_events_is_400(http: httpx.Client) -> None:
    params = {**WATCH_LIST, "sendInitialEvents": "maybe"}
    resp = http.get(cm_path(f"m-{uuid.uuid4().hex[:8]}"), params=params)
    assert resp.status_code == 400 and resp.json()["reason"] == "BadRequest", resp.text


def test_send_initial_events_false_starts_at_now(http: httpx.Client) -> None:
    """`sendInitialEvents=false`: no initial events and no closing bookmark; the first
    event is the first write after the watch started."""
    project = f"f-{uuid.uuid4().hex[:8]}"
    create(http, project, "before", project)
    params = {**WATCH_LIST, "sendInitialEvents": "false"}
    with http.stream("GET", cm_path(project), params=params) as resp:
        assert resp.status_code == 200
        after = create(http, project, "after", project)
        for line in resp.iter_lines():
            event = json.loads(line)
            assert not is_end(event), event
            if event["type"] == "BOOKMARK":
                continue
            assert event == {"type": "ADDED", "object": after}
            break


def test_kubernetes_client_watch_list(serve: ServeProcess) -> None:
    """The official client streams a watch-list with its own parameters."""
    project = f"k-{uuid.uuid4().hex[:8]}"
    cfg = client.Configuration()
    cfg.host = f"{serve.url}/projects/{project}/control-plane"
    with client.ApiClient(cfg) as api:
        v1 = client.CoreV1Api(api)
        for i in range(2):
            v1.create_namespaced_config_map(
                NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"cm-{i}"))
            )
        seen: list[tuple[str, str]] = []
        w = watch.Watch()
        for ev in w.stream(
            v1.list_namespaced_config_map,
            NS,
            send_initial_events=True,
            resource_version_match="NotOlderThan",
            allow_watch_bookmarks=True,
            timeout_seconds=20,
        ):
            if ev["type"] == "BOOKMARK":
                # The client leaves bookmarks undecoded (a dict) and resumes from them.
                meta = ev["object"]["metadata"]
                assert meta["annotations"] == {ANNOTATION: "true"}
                assert w.resource_version == meta["resourceVersion"]
                w.stop()
                break
            seen.append((ev["type"], ev["object"].metadata.name))
        assert seen == [("ADDED", "cm-0"), ("ADDED", "cm-1")]
