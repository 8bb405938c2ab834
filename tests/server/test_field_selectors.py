"""Per-resource field selectors over HTTP, on every backend and mode: the event fields
`kubectl describe` selects on, secret `type` and namespace `status.phase`, served from
the cache (`resourceVersion=N`, not older than the last write) and from a consistent
read alike, in lists and watches;
a label a resource does not declare is a 400. Selection only ever narrows a project's
own objects: another project's event about an object of the same name never matches.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from .conftest import ThreadServer

EVENTS = "/api/v1/namespaces/default/events"


@pytest.fixture
def http(any_server: ThreadServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=any_server.url, timeout=30) as client:
        yield client


def _p(project: str) -> str:
    return f"/projects/{project}/control-plane"


def _event(name: str, target: str, uid: str, **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "involvedObject": {
            "kind": "ConfigMap",
            "namespace": "default",
            "name": target,
            "uid": uid,
            "apiVersion": "v1",
        },
        "type": "Normal",
        "reason": "Synced",
        **extra,
    }


def _names(http: httpx.Client, path: str, selector: str, rv: str) -> list[str]:
    resp = http.get(path, params={"fieldSelector": selector, "resourceVersion": rv})
    assert resp.status_code == 200, resp.text
    return sorted(i["metadata"]["name"] for i in resp.json()["items"])


@pytest.fixture
def events(http: httpx.Client) -> tuple[str, str, str]:
    """Two projects; in each, events about `cm` and `other` (the same names in both); and
    the revision of the last write."""
    p1, p2 = f"fs1-{uuid.uuid4().hex[:6]}", f"fs2-{uuid.uuid4().hex[:6]}"
    for project in (p1, p2):
        base = _p(project)
        made = [
            _event("e-cm", "cm", f"{project}-uid", source={"component": "kubelet"}),
            _event(
                "e-cm-warn",
                "cm",
                f"{project}-uid",
                type="Warning",
                reason="Failed",
                reportingComponent="ctl",
            ),
            _event("e-other", "other", f"{project}-other"),
        ]
        for body in made:
            resp = http.post(base + EVENTS, json=body)
            assert resp.status_code == 201, resp.text
    return p1, p2, resp.json()["metadata"]["resourceVersion"]


@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("involvedObject.name=cm", ["e-cm", "e-cm-warn"]),
        ("regarding.name=cm", ["e-cm", "e-cm-warn"]),
        (
            "involvedObject.name=cm,involvedObject.namespace=default,involvedObject.kind=ConfigMap",
            ["e-cm", "e-cm-warn"],
        ),
        ("involvedObject.uid={project}-other", ["e-other"]),
        ("involvedObject.kind!=ConfigMap", []),
        ("involvedObject.fieldPath=", ["e-cm", "e-cm-warn", "e-other"]),
        ("type=Warning", ["e-cm-warn"]),
        ("reason=Synced", ["e-cm", "e-other"]),
        ("source=kubelet", ["e-cm"]),
        ("source=ctl", ["e-cm-warn"]),
        ("reportingComponent=ctl", ["e-cm-warn"]),
        ("reportingController!=ctl", ["e-cm", "e-other"]),
        ("metadata.name=e-other", ["e-other"]),
    ],
)
def test_event_field_selectors(
    http: httpx.Client,
    events: tuple[str, str, str],
    selector: str,
    expected: list[str],
    cached: bool,
) -> None:
    rv = events[2] if cached else ""
    for project in events[:2]:
        got = _names(http, _p(project) + EVENTS, selector.format(project=project), rv)
        assert got == expected


def test_describe_selector_sees_only_its_project(
    http: httpx.Client, events: tuple[str, str, str]
) -> None:
    """kubectl describe's selector, with one project's uid, in the other project: nothing."""
    p1, p2, rv = events
    selector = (
        "involvedObject.name=cm,involvedObject.namespace=default,"
        f"involvedObject.kind=ConfigMap,involvedObject.uid={p1}-uid"
    )
    assert _names(http, _p(p1) + EVENTS, selector, "") == ["e-cm", "e-cm-warn"]
    assert _names(http, _p(p2) + EVENTS, selector, "") == []
    assert _names(http, _p(p2) + "/api/v1/events", selector, rv) == []


def test_watch_with_event_field_selector(http: httpx.Client, events: tuple[str, str, str]) -> None:
    p1 = events[0]
    params = {"watch": "1", "fieldSelector": "involvedObject.name=cm", "timeoutSeconds": "2"}
    with http.stream("GET", _p(p1) + EVENTS, params=params) as resp:
        assert resp.status_code == 200
        names = sorted(
            orjson.loads(line)["object"]["metadata"]["name"] for line in resp.iter_lines() if line
        )
    assert names == ["e-cm", "e-cm-warn"]


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/api/v1/configmaps", "involvedObject.name"),
        ("/api/v1/configmaps", "type"),
        ("/api/v1/events", "spec.nodeName"),
        ("/apis/example.com/v1/widgets", "status.phase"),
    ],
)
def test_unsupported_field_label(http: httpx.Client, path: str, label: str) -> None:
    for params in ({}, {"watch": "1"}):
        resp = http.get(path, params={**params, "fieldSelector": f"{label}=x"})
        assert resp.status_code == 400
        body = resp.json()
        assert body["reason"] == "BadRequest"
        assert body["message"] == f'field label not supported: "{label}"'


def test_secret_type_and_namespace_phase(http: httpx.Client) -> None:
    base = _p(f"fs3-{uuid.uuid4().hex[:6]}")
    for name, kind in (("tls", "kubernetes.io/tls"), ("plain", "Opaque")):
        resp = http.post(
            base + "/api/v1/namespaces/default/secrets",
            json={"metadata": {"name": name}, "type": kind},
        )
        assert resp.status_code == 201, resp.text
    resp = http.post(base + "/api/v1/namespaces", json={"metadata": {"name": "team"}})
    assert resp.status_code == 201
    rv = resp.json()["metadata"]["resourceVersion"]
    secrets = base + "/api/v1/secrets"
    assert _names(http, secrets, "type=kubernetes.io/tls", "") == ["tls"]
    assert _names(http, secrets, "type!=kubernetes.io/tls", rv) == ["plain"]
    namespaces = base + "/api/v1/namespaces"
    # `default` exists: the secrets' creates made it (namespace lifecycle).
    assert _names(http, namespaces, "status.phase=Active", "") == ["default", "team"]
    assert _names(http, namespaces, "status.phase=Terminating", rv) == []
    assert _names(http, namespaces, "status.phase!=Active", rv) == []
    assert _names(http, namespaces, "status.phase=Active", rv) == ["default", "team"]
