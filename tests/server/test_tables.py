"""Tables and partial-metadata views over HTTP, on a real server: the columns of every
built-in type and of a custom resource's `additionalPrinterColumns`, `includeObject`,
list metadata (paging), `Accept` negotiation, and watches streaming one-row Tables.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tenantstore.server import ServerConfig
from tenantstore.server.tables import human_duration, jsonpath_values

from .conftest import ThreadServer

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
# What kubectl 1.32 `get` sends.
KUBECTL_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)

RESOURCES = """\
resources:
  - group: example.com
    version: v1
    kind: Widget
    plural: widgets
    singular: widget
    namespaced: true
    shortNames: [wd]
    subresources: {status: {}}
    additionalPrinterColumns:
      - {name: Size, type: integer, jsonPath: .spec.size}
      - {name: Color, type: string, jsonPath: .spec.color}
      - {name: Ready, type: boolean, jsonPath: .status.ready}
      - {name: First, type: string, jsonPath: '.spec.parts[0].name', priority: 1}
      - {name: Ratio, type: number, jsonPath: .spec.ratio, description: How round it is.}
      - {name: Born, type: date, jsonPath: .metadata.creationTimestamp}
  - {group: example.com, version: v1, kind: Gadget, plural: gadgets, namespaced: false}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    tmp = tmp_path_factory.mktemp("tables")
    resources = tmp / "resources.yaml"
    resources.write_text(RESOURCES)
    config = ServerConfig(backend=f"sqlite://{tmp / 'store.db'}", resources_file=str(resources))
    server = ThreadServer(config).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http(srv: ThreadServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        yield client


def _p(project: str) -> str:
    return f"/projects/{project}/control-plane"


def _project() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _post(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = http.post(path, json=body)
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


def _table(http: httpx.Client, path: str, **params: str) -> dict[str, Any]:
    resp = http.get(path, headers={"Accept": KUBECTL_ACCEPT}, params=params)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = resp.json()
    assert body["kind"] == "Table" and body["apiVersion"] == "meta.k8s.io/v1"
    return body


def _names(table: dict[str, Any]) -> list[str]:
    return [c["name"] for c in table["columnDefinitions"]]


def _wide(table: dict[str, Any]) -> list[int]:
    return [c["priority"] for c in table["columnDefinitions"]]


NS = "/api/v1/namespaces/default"


def test_configmap_table(http: httpx.Client) -> None:
    base = _p(_project())
    _post(
        http,
        base + NS + "/configmaps",
        {"metadata": {"name": "c"}, "data": {"a": "1"}, "binaryData": {"b": "AA=="}},
    )
    table = _table(http, base + NS + "/configmaps")
    assert _names(table) == ["Name", "Data", "Age"]
    assert table["columnDefinitions"][0]["format"] == "name"
    [row] = table["rows"]
    name, data, age = row["cells"]
    assert (name, data) == ("c", 2)
    assert re.fullmatch(r"\d+s|\d+m\d*s?", age), age


def test_secret_namespace_serviceaccount_tables(http: httpx.Client) -> None:
    base = _p(_project())
    _post(
        http,
        base + NS + "/secrets",
        {"metadata": {"name": "s"}, "type": "Opaque", "data": {"k": "dg==", "l": "dg=="}},
    )
    _post(http, base + "/api/v1/namespaces", {"metadata": {"name": "team"}})
    _post(
        http,
        base + NS + "/serviceaccounts",
        {"metadata": {"name": "sa"}, "secrets": [{"name": "tok"}]},
    )
    secrets = _table(http, base + NS + "/secrets")
    assert _names(secrets) == ["Name", "Type", "Data", "Age"]
    assert secrets["rows"][0]["cells"][:3] == ["s", "Opaque", 2]
    namespaces = _table(http, base + "/api/v1/namespaces")
    assert _names(namespaces) == ["Name", "Status", "Age"]
    # `default` too: the secret's create made it (namespace lifecycle).
    assert [r["cells"][:2] for r in namespaces["rows"]] == [
        ["default", "Active"],
        ["team", "Active"],
    ]
    accounts = _table(http, base + NS + "/serviceaccounts")
    assert _names(accounts) == ["Name", "Secrets", "Age"]
    assert accounts["rows"][0]["cells"][:2] == ["sa", 1]


def test_event_table(http: httpx.Client) -> None:
    base = _p(_project())
    _post(
        http,
        base + NS + "/events",
        {
            "metadata": {"name": "e1"},
            "involvedObject": {"kind": "ConfigMap", "name": "c", "fieldPath": "data.a"},
            "reason": "Changed",
            "type": "Warning",
            "message": "  it moved \n",
            "source": {"component": "tester", "host": "node-1"},
            "firstTimestamp": "2000-01-01T00:00:00Z",
            "count": 3,
        },
    )
    _post(
        http,
        base + NS + "/events",
        {
            "metadata": {"name": "e2"},
            "involvedObject": {"kind": "Namespace"},
            "reason": "Hi",
            "type": "Normal",
            "reportingComponent": "ctl",
            "eventTime": "2000-01-01T00:00:00.000001Z",
        },
    )
    table = _table(http, base + NS + "/events")
    assert _names(table) == [
        "Last Seen",
        "Type",
        "Reason",
        "Object",
        "Subobject",
        "Source",
        "Message",
        "First Seen",
        "Count",
        "Name",
    ]
    assert _wide(table) == [0, 0, 0, 0, 1, 1, 0, 1, 1, 1]
    rows = {r["cells"][-1]: r["cells"] for r in table["rows"]}
    last, kind, reason, obj, sub, source, message, first, count, _ = rows["e1"]
    assert re.fullmatch(r"\d+y", first) and last == first  # no lastTimestamp: first seen
    assert (kind, reason, obj, sub, source, message, count) == (
        "Warning",
        "Changed",
        "configmap/c",
        "data.a",
        "tester, node-1",
        "it moved",
        3,
    )
    e2 = rows["e2"]
    assert e2[3] == "namespace" and e2[5] == "ctl" and e2[8] == 1  # a singleton counts 1
    assert re.fullmatch(r"\d+y", e2[7])  # first seen from eventTime


def test_custom_resource_columns(http: httpx.Client) -> None:
    base = _p(_project())
    widgets = base + "/apis/example.com/v1/namespaces/default/widgets"
    _post(
        http,
        widgets,
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"size": 3, "color": {"r": 1, "g": 2}, "parts": [{"name": "bolt"}], "ratio": 2},
        },
    )
    # The Widget has a status subresource: a create drops `.status`, `/status` sets it.
    ready = http.patch(
        widgets + "/w1/status",
        json={"status": {"ready": True}},
        headers={"content-type": "application/merge-patch+json"},
    )
    assert ready.status_code == 200, ready.text
    _post(
        http,
        widgets,
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w2"},
            "spec": {"size": "big", "color": "red"},
        },
    )
    table = _table(http, widgets)
    assert _names(table) == ["Name", "Size", "Color", "Ready", "First", "Ratio", "Born"]
    cols = {c["name"]: c for c in table["columnDefinitions"]}
    assert cols["Size"]["type"] == "integer" and cols["First"]["priority"] == 1
    assert cols["Ratio"]["description"] == "How round it is."
    assert cols["Size"]["description"].endswith(".spec.size")
    rows = {r["cells"][0]: r["cells"] for r in table["rows"]}
    # Maps print as JSON with sorted keys; numbers of a `number` column are floats.
    assert rows["w1"][:6] == ["w1", 3, '{"g":2,"r":1}', True, "bolt", 2.0]
    # A value of the wrong type, or none, is a null cell, never an error.
    assert rows["w2"][:6] == ["w2", None, "red", None, None, None]
    assert re.fullmatch(r"\d+s|\d+m\d*s?", rows["w2"][6])


def test_custom_resource_without_columns_prints_age(http: httpx.Client) -> None:
    base = _p(_project())
    _post(
        http,
        base + "/apis/example.com/v1/gadgets",
        {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}},
    )
    table = _table(http, base + "/apis/example.com/v1/gadgets")
    assert _names(table) == ["Name", "Age"]
    assert table["rows"][0]["cells"][0] == "g"


def test_get_one_object_as_table(http: httpx.Client) -> None:
    base = _p(_project())
    made = _post(http, base + NS + "/configmaps", {"metadata": {"name": "one"}})
    table = _table(http, base + NS + "/configmaps/one")
    assert table["metadata"] == {"resourceVersion": made["metadata"]["resourceVersion"]}
    assert [r["cells"][0] for r in table["rows"]] == ["one"]
    # A read the cache serves (its byte path for plain JSON) answers the same view.
    rv = made["metadata"]["resourceVersion"]
    cached = _table(http, base + NS + "/configmaps/one", resourceVersion=rv)
    assert cached["rows"][0]["cells"][0] == "one"


def test_include_object(http: httpx.Client) -> None:
    base = _p(_project())
    made = _post(http, base + NS + "/configmaps", {"metadata": {"name": "io"}, "data": {"a": "b"}})
    path = base + NS + "/configmaps"
    [meta_row] = _table(http, path)["rows"]
    assert meta_row["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": made["metadata"],
    }
    [full_row] = _table(http, path, includeObject="Object")["rows"]
    assert full_row["object"] == made
    [bare_row] = _table(http, path, includeObject="None")["rows"]
    assert bare_row["object"] is None
    resp = http.get(path, headers={"Accept": TABLE}, params={"includeObject": "All"})
    assert resp.status_code == 400 and resp.json()["reason"] == "BadRequest"
    assert "includeObject" in resp.json()["message"]


def test_table_pages_carry_list_metadata(http: httpx.Client) -> None:
    base = _p(_project())
    for name in ("a", "b", "c"):
        _post(http, base + NS + "/configmaps", {"metadata": {"name": name}})
    first = _table(http, base + NS + "/configmaps", limit="2")
    assert [r["cells"][0] for r in first["rows"]] == ["a", "b"]
    assert first["metadata"]["remainingItemCount"] == 1
    rest = _table(
        http, base + NS + "/configmaps", limit="2", **{"continue": first["metadata"]["continue"]}
    )
    assert [r["cells"][0] for r in rest["rows"]] == ["c"]
    assert "continue" not in rest["metadata"]
    assert int(rest["metadata"]["resourceVersion"]) > 0


def test_tables_are_per_project(http: httpx.Client) -> None:
    mine, theirs = _p(_project()), _p(_project())
    _post(http, mine + NS + "/configmaps", {"metadata": {"name": "mine"}})
    _post(http, theirs + NS + "/configmaps", {"metadata": {"name": "theirs"}})
    assert [r["cells"][0] for r in _table(http, mine + "/api/v1/configmaps")["rows"]] == ["mine"]
    resp = http.get(theirs + NS + "/configmaps/mine", headers={"Accept": TABLE})
    assert resp.status_code == 404


@pytest.mark.parametrize(
    ("accept", "api_version"),
    [
        (TABLE, "meta.k8s.io/v1"),
        ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", "meta.k8s.io/v1beta1"),
        # A conversion the server does not make is skipped for the next entry.
        (
            "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io," + TABLE,
            "meta.k8s.io/v1",
        ),
        ("application/json;g=meta.k8s.io;v=v1;as=Table", "meta.k8s.io/v1"),
    ],
)
def test_accept_negotiation(http: httpx.Client, accept: str, api_version: str) -> None:
    resp = http.get("/api/v1/configmaps", headers={"Accept": accept})
    assert resp.status_code == 200
    assert resp.json()["kind"] == "Table" and resp.json()["apiVersion"] == api_version


def test_plain_json_first_wins(http: httpx.Client) -> None:
    resp = http.get("/api/v1/configmaps", headers={"Accept": "application/json," + TABLE})
    assert resp.json()["kind"] == "ConfigMapList"


@pytest.mark.parametrize(
    "accept",
    [
        "application/json;as=Table;v=v1;g=example.com",
        "application/json;as=Tabel;v=v1;g=meta.k8s.io",
        "application/json;as=Table;v=v2;g=meta.k8s.io",
    ],
)
def test_unknown_conversions_are_not_acceptable(http: httpx.Client, accept: str) -> None:
    resp = http.get("/api/v1/configmaps", headers={"Accept": accept})
    assert resp.status_code == 406
    assert resp.json()["reason"] == "NotAcceptable"


def test_partial_object_metadata(http: httpx.Client) -> None:
    base = _p(_project())
    made = _post(http, base + NS + "/configmaps", {"metadata": {"name": "pom"}, "data": {"x": "y"}})
    one = http.get(
        base + NS + "/configmaps/pom",
        headers={"Accept": "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"},
    )
    assert one.json() == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": made["metadata"],
    }
    many = http.get(
        base + NS + "/configmaps",
        headers={"Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"},
    ).json()
    assert many["kind"] == "PartialObjectMetadataList"
    assert [i["metadata"]["name"] for i in many["items"]] == ["pom"]
    assert all(i["kind"] == "PartialObjectMetadata" for i in many["items"])
    wrong = http.get(
        base + NS + "/configmaps",
        headers={"Accept": "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"},
    )
    assert wrong.status_code == 406 and wrong.json()["reason"] == "NotAcceptable"


def test_watch_streams_one_row_tables(http: httpx.Client) -> None:
    base = _p(_project())
    other = _p(_project())
    _post(http, base + NS + "/configmaps", {"metadata": {"name": "w-a"}, "data": {"k": "v"}})
    params = {"watch": "true", "timeoutSeconds": "3", "includeObject": "Object"}
    with http.stream(
        "GET", base + NS + "/configmaps", params=params, headers={"Accept": KUBECTL_ACCEPT}
    ) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        first = orjson.loads(next(lines))
        _post(http, other + NS + "/configmaps", {"metadata": {"name": "w-other"}})
        _post(http, base + NS + "/configmaps", {"metadata": {"name": "w-b"}})
        second = orjson.loads(next(lines))
        rest = [orjson.loads(x) for x in lines if x]
    assert first["type"] == "ADDED"
    table = first["object"]
    assert table["kind"] == "Table" and _names(table) == ["Name", "Data", "Age"]
    [row] = table["rows"]
    assert row["cells"][:2] == ["w-a", 1] and row["object"]["kind"] == "ConfigMap"
    assert table["metadata"]["resourceVersion"] == row["object"]["metadata"]["resourceVersion"]
    # Later events leave the column definitions out, as upstream's watch does.
    assert second["object"]["columnDefinitions"] is None
    assert second["object"]["rows"][0]["cells"][0] == "w-b"
    names = [r["cells"][0] for e in rest for r in e["object"]["rows"]]
    assert "w-other" not in names


def test_watch_partial_object_metadata(http: httpx.Client) -> None:
    base = _p(_project())
    _post(http, base + NS + "/configmaps", {"metadata": {"name": "pw"}, "data": {"k": "v"}})
    accept = "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"
    with http.stream(
        "GET",
        base + NS + "/configmaps",
        headers={"Accept": accept},
        params={"watch": "true", "timeoutSeconds": "1"},
    ) as resp:
        first = orjson.loads(next(resp.iter_lines()))
    assert first["object"]["kind"] == "PartialObjectMetadata"
    assert first["object"]["metadata"]["name"] == "pw" and "data" not in first["object"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1.5, "0s"),
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (599, "9m59s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (49 * 3600, "2d1h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (731 * 86400, "2y1d"),
        (8 * 365 * 86400, "8y"),
    ],
)
def test_human_duration_as_kubectl_prints_it(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.size", [3]),
        ("{.spec.size}", [3]),
        (".spec.parts[0].name", ["a"]),
        (".spec.parts[-1].name", ["b"]),
        (".spec.parts[*].name", ["a", "b"]),
        (".metadata.labels['x.io/y']", ["z"]),
        (".spec.missing.deeper", []),
        (".spec.parts[9]", []),
        (".spec.parts[?(@.name=='a')]", []),  # filters are not evaluated: a null cell
    ],
)
def test_jsonpath(path: str, expected: list[Any]) -> None:
    obj = {
        "metadata": {"labels": {"x.io/y": "z"}},
        "spec": {"size": 3, "parts": [{"name": "a"}, {"name": "b"}]},
    }
    assert jsonpath_values(obj, path) == expected
