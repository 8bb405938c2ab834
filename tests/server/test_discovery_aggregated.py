"""Aggregated discovery (`apidiscovery.k8s.io/v2` and `v2beta1`) on `/api` and `/apis`,
as client-go asks for it, next to the legacy documents it summarises: the same
resources, verbs, short names, categories and scope, plus what only it says (response
kinds, singular names, the status subresource). The `Content-Type` is how the client
tells the two formats apart, so it is checked exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tenantstore.server import ServerConfig

from .conftest import ThreadServer

RESOURCES = """\
resources:
  - group: example.com
    version: v1
    kind: Widget
    plural: widgets
    singular: widget
    shortNames: [wd]
    categories: [all, toys]
    subresources: {status: {}}
  - {group: example.com, version: v1, kind: Gadget, plural: gadgets, namespaced: false}
  - {group: other.example.org, version: v1beta1, kind: Thing, plural: things}
"""
# What client-go 1.32 sends to /api and /apis.
CLIENT_GO = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)
V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("discovery")
    (tmp / "resources.yaml").write_text(RESOURCES)
    config = ServerConfig(
        backend=f"sqlite://{tmp / 'store.db'}", resources_file=str(tmp / "resources.yaml")
    )
    server = ThreadServer(config).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client
    finally:
        server.stop()


def _aggregated(http: httpx.Client, path: str, accept: str = CLIENT_GO) -> dict[str, Any]:
    resp = http.get(path, headers={"Accept": accept})
    assert resp.status_code == 200
    assert resp.headers["vary"] == "Accept"
    body: dict[str, Any] = resp.json()
    version = body["apiVersion"].rsplit("/", 1)[1]
    assert resp.headers["content-type"] == (
        f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
    )
    assert body["kind"] == "APIGroupDiscoveryList"
    return body


@pytest.mark.parametrize("prefix", ["", "/projects/p1/control-plane"])
def test_core_group(http: httpx.Client, prefix: str) -> None:
    doc = _aggregated(http, prefix + "/api")
    assert doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    [core] = doc["items"]
    assert core["metadata"].get("name", "") == ""
    [v1] = core["versions"]
    assert v1["version"] == "v1" and v1["freshness"] == "Current"
    resources = {r["resource"]: r for r in v1["resources"]}
    assert set(resources) == {"namespaces", "configmaps", "secrets", "serviceaccounts", "events"}
    assert resources["configmaps"] == {
        "resource": "configmaps",
        "responseKind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "scope": "Namespaced",
        "singularResource": "configmap",
        "verbs": [
            "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch",
        ],
        "shortNames": ["cm"],
    }  # fmt: skip
    assert resources["namespaces"]["scope"] == "Cluster"
    assert "shortNames" not in resources["secrets"]


def test_named_groups_match_legacy_discovery(http: httpx.Client) -> None:
    doc = _aggregated(http, "/apis")
    groups = {g["metadata"]["name"]: g for g in doc["items"]}
    assert list(groups) == ["example.com", "other.example.org"]
    [v1] = groups["example.com"]["versions"]
    aggregated = {r["resource"]: r for r in v1["resources"]}
    legacy = {r["name"]: r for r in http.get("/apis/example.com/v1").json()["resources"]}
    assert set(aggregated) == set(legacy) == {"widgets", "gadgets"}
    for name, entry in aggregated.items():
        old = legacy[name]
        assert entry["verbs"] == old["verbs"]
        assert entry["singularResource"] == old["singularName"]
        assert entry["scope"] == ("Namespaced" if old["namespaced"] else "Cluster")
        assert entry["responseKind"] == {
            "group": "example.com",
            "version": "v1",
            "kind": old["kind"],
        }
        assert entry.get("shortNames") == old.get("shortNames")
        assert entry.get("categories") == old.get("categories")
    widget = aggregated["widgets"]
    assert widget["categories"] == ["all", "toys"] and widget["shortNames"] == ["wd"]
    assert widget["subresources"] == [
        {
            "subresource": "status",
            "responseKind": {"group": "example.com", "version": "v1", "kind": "Widget"},
            "verbs": ["get", "patch", "update"],
        }
    ]
    assert "subresources" not in aggregated["gadgets"]
    assert groups["other.example.org"]["versions"][0]["version"] == "v1beta1"


def test_v2beta1_and_nopeer_profile(http: httpx.Client) -> None:
    beta = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
    assert _aggregated(http, "/apis", beta)["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
    nopeer = V2 + ";profile=nopeer," + CLIENT_GO
    assert _aggregated(http, "/apis", nopeer)["apiVersion"] == "apidiscovery.k8s.io/v2"


@pytest.mark.parametrize("accept", ["", "application/json", "application/json," + V2])
def test_legacy_documents_otherwise(http: httpx.Client, accept: str) -> None:
    api = http.get("/api", headers={"Accept": accept} if accept else {})
    assert api.headers["content-type"] == "application/json"
    assert api.headers["vary"] == "Accept"
    assert api.json()["kind"] == "APIVersions"
    apis = http.get("/apis", headers={"Accept": accept} if accept else {})
    assert apis.json()["kind"] == "APIGroupList"
    legacy = http.get("/apis/example.com/v1").json()
    widget = next(r for r in legacy["resources"] if r["name"] == "widgets")
    assert widget["categories"] == ["all", "toys"] and widget["shortNames"] == ["wd"]
