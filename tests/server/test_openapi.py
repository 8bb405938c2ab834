"""The OpenAPI documents: `/openapi/v2`, the `/openapi/v3` index and its group-version
documents, at the root and under a project's prefix, in the shapes kubectl reads."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import ThreadServer
from .widgets import start_widget_server

P1 = "/projects/oa-one/control-plane"
P2 = "/projects/oa-two/control-plane"
CM_ITEM = "/api/v1/namespaces/{namespace}/configmaps/{name}"
WIDGET_ITEM = "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"


@pytest.fixture(scope="module")
def widget_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    server = start_widget_server(tmp_path_factory.mktemp("openapi"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http(widget_server: ThreadServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=widget_server.url, timeout=30) as client:
        yield client


def _doc(http: httpx.Client, gv: str, prefix: str = "") -> dict[str, Any]:
    index = http.get(f"{prefix}/openapi/v3").json()
    url = index["paths"][gv]["serverRelativeURL"]
    r = http.get(prefix + url)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def test_the_v3_index_lists_every_group_version_with_its_hash(http: httpx.Client) -> None:
    r = http.get("/openapi/v3")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    paths = r.json()["paths"]
    assert set(paths) == {"api/v1", "apis/example.com/v1"}
    for gv, entry in paths.items():
        assert re.fullmatch(rf"/openapi/v3/{gv}\?hash=[0-9A-F]{{128}}", entry["serverRelativeURL"])
    # The documents are server-wide: the same bytes at the root and in every project.
    for prefix in (P1, P2):
        assert http.get(f"{prefix}/openapi/v3").content == r.content
        for gv in paths:
            assert _doc(http, gv, prefix) == _doc(http, gv)


def test_the_core_document_describes_the_builtin_kinds(http: httpx.Client) -> None:
    doc = _doc(http, "api/v1")
    assert doc["openapi"].startswith("3.")
    schemas = doc["components"]["schemas"]
    # Every reference resolves inside the document.
    prefix = "#/components/schemas/"
    assert {ref.removeprefix(prefix) for ref in _refs(doc)} <= set(schemas)
    for kind in ("Namespace", "ConfigMap", "Secret", "ServiceAccount", "Event"):
        schema = schemas[f"io.k8s.api.core.v1.{kind}"]
        assert schema["x-kubernetes-group-version-kind"] == [
            {"group": "", "version": "v1", "kind": kind}
        ]
        assert schema["properties"]["metadata"]["allOf"] == [
            {"$ref": f"{prefix}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
        ]
        assert f"io.k8s.api.core.v1.{kind}List" in schemas
    data = schemas["io.k8s.api.core.v1.ConfigMap"]["properties"]["data"]
    assert data["additionalProperties"]["type"] == "string"
    assert "configuration data" in data["description"]
    secrets = schemas["io.k8s.api.core.v1.ServiceAccount"]["properties"]["secrets"]
    assert secrets["x-kubernetes-patch-merge-key"] == "name"
    assert secrets["x-kubernetes-patch-strategy"] == "merge"
    assert secrets["x-kubernetes-list-type"] == "map"
    assert secrets["x-kubernetes-list-map-keys"] == ["name"]
    meta = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]
    assert meta["ownerReferences"]["x-kubernetes-patch-merge-key"] == "uid"
    assert meta["labels"]["additionalProperties"]["type"] == "string"
    for name in ("Status", "DeleteOptions", "WatchEvent", "ListMeta"):
        assert f"io.k8s.apimachinery.pkg.apis.meta.v1.{name}" in schemas


def test_patch_operations_advertise_field_validation(http: httpx.Client) -> None:
    """What kubectl's query-parameter verifier looks for before leaving validation to the
    server; strategic merge patch is advertised for the built-ins only."""
    core = _doc(http, "api/v1")["paths"]
    patch = core[CM_ITEM]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "",
        "version": "v1",
        "kind": "ConfigMap",
    }
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    for verb in ("post", "put"):
        op = core["/api/v1/namespaces/{namespace}/configmaps" if verb == "post" else CM_ITEM][verb]
        assert "fieldValidation" in {p["name"] for p in op["parameters"]}
    assert core["/api/v1/namespaces/{name}"]["get"]["x-kubernetes-group-version-kind"]["kind"] == (
        "Namespace"
    )
    custom = _doc(http, "apis/example.com/v1")["paths"]
    widget_patch = custom[WIDGET_ITEM]["patch"]
    assert widget_patch["x-kubernetes-group-version-kind"]["kind"] == "Widget"
    assert "fieldValidation" in {p["name"] for p in widget_patch["parameters"]}
    assert "application/strategic-merge-patch+json" not in widget_patch["requestBody"]["content"]
    assert "application/merge-patch+json" in widget_patch["requestBody"]["content"]
    assert "/apis/example.com/v1/gadgets/{name}" in custom  # cluster-scoped


def test_custom_resources_carry_their_schema(http: httpx.Client) -> None:
    schemas = _doc(http, "apis/example.com/v1")["components"]["schemas"]
    widget = schemas["com.example.v1.Widget"]
    assert widget["x-kubernetes-group-version-kind"] == [
        {"group": "example.com", "version": "v1", "kind": "Widget"}
    ]
    props = widget["properties"]
    assert props["spec"]["properties"]["size"] == {
        "type": "integer",
        "description": "How big the widget is.",
    }
    assert props["apiVersion"]["type"] == props["kind"]["type"] == "string"
    assert props["metadata"]["allOf"][0]["$ref"].endswith("meta.v1.ObjectMeta")
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in schemas
    assert "x-kubernetes-preserve-unknown-fields" not in widget
    gadget = schemas["com.example.v1.Gadget"]
    assert gadget["x-kubernetes-preserve-unknown-fields"] is True
    assert schemas["com.example.v1.WidgetList"]["properties"]["items"]["items"]["allOf"][0][
        "$ref"
    ].endswith("com.example.v1.Widget")


def test_hashes_make_documents_cacheable(http: httpx.Client) -> None:
    url = http.get(f"{P1}/openapi/v3").json()["paths"]["api/v1"]["serverRelativeURL"]
    digest = url.split("hash=")[1]
    fresh = http.get(P1 + url)
    assert fresh.status_code == 200
    assert fresh.headers["etag"] == f'"{digest}"'
    assert fresh.headers["cache-control"] == "public, immutable"
    assert "expires" in fresh.headers
    # Without a hash: the document, with no promise that it lasts.
    plain = http.get(f"{P1}/openapi/v3/api/v1")
    assert plain.content == fresh.content and "cache-control" not in plain.headers
    # A stale hash is redirected to the current one, under the same project prefix.
    stale = http.get(f"{P1}/openapi/v3/api/v1?hash=0123", follow_redirects=False)
    assert stale.status_code == 301
    assert stale.headers["location"] == P1 + url
    again = http.get(P1 + url, headers={"If-None-Match": f'"{digest}"'})
    assert again.status_code == 304 and again.content == b""


def test_unknown_documents_and_formats(http: httpx.Client) -> None:
    for path in ("/openapi/v3/apis/nope.example/v1", "/openapi/v4", "/openapi"):
        r = http.get(P1 + path)
        assert r.status_code == 404 and r.json()["reason"] == "NotFound", path
    protobuf = "application/com.github.proto-openapi.spec.v3.v1.0+protobuf"
    r = http.get(f"{P1}/openapi/v3/api/v1", headers={"Accept": protobuf})
    assert r.status_code == 406 and r.json()["reason"] == "NotAcceptable"
    r = http.get(f"{P1}/openapi/v3/api/v1", headers={"Accept": f"{protobuf}, application/json"})
    assert r.status_code == 200 and r.json()["openapi"].startswith("3.")
    r = http.post(f"{P1}/openapi/v3", json={})
    assert r.status_code == 405


def test_the_v2_document(http: httpx.Client) -> None:
    r = http.get(f"{P2}/openapi/v2")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["swagger"] == "2.0"
    definitions = doc["definitions"]
    assert {ref.removeprefix("#/definitions/") for ref in _refs(doc)} <= set(definitions)
    cm = definitions["io.k8s.api.core.v1.ConfigMap"]
    assert cm["properties"]["metadata"]["$ref"] == (
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    )
    assert (
        definitions["com.example.v1.Widget"]["properties"]["spec"]["properties"]["size"]["type"]
        == "integer"
    )
    patch = doc["paths"][CM_ITEM]["patch"]
    assert "application/strategic-merge-patch+json" in patch["consumes"]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    # kubectl asks for the protobuf form only: a 406 (it then goes without v2).
    pb = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    refused = http.get(f"{P2}/openapi/v2", headers={"Accept": pb})
    assert refused.status_code == 406 and refused.json()["reason"] == "NotAcceptable"
    assert http.get("/openapi/v2").content == r.content
