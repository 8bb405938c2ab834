"""`fieldValidation=Strict|Warn|Ignore` on create, update and patch, and type checks
against the schemas, over HTTP: for a built-in kind and for a custom resource declared
with a schema (and one without)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import ThreadServer
from .widgets import start_widget_server

MERGE = {"content-type": "application/merge-patch+json"}


@pytest.fixture(scope="module")
def widget_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    server = start_widget_server(tmp_path_factory.mktemp("fields"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http(widget_server: ThreadServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=widget_server.url, timeout=30) as client:
        yield client


def _base(project: str) -> str:
    return f"/projects/{project}/control-plane"


def _cms(project: str) -> str:
    return f"{_base(project)}/api/v1/namespaces/default/configmaps"


def _widgets(project: str) -> str:
    return f"{_base(project)}/apis/example.com/v1/namespaces/default/widgets"


def _project() -> str:
    return f"fv-{uuid.uuid4().hex[:8]}"


def _warnings(r: httpx.Response) -> list[str]:
    return r.headers.get_list("warning")


def _post(http: httpx.Client, url: str, body: Any, directive: str | None = None) -> httpx.Response:
    params = {"fieldValidation": directive} if directive else {}
    return http.post(url, json=body, params=params)


def test_unknown_fields_of_a_builtin_kind(http: httpx.Client) -> None:
    project = _project()
    url = _cms(project)
    body = {"metadata": {"name": "strict", "bogus": 1}, "data": {"a": "b"}, "spec": {"x": 1}}
    r = _post(http, url, body, "Strict")
    assert r.status_code == 400, r.text
    status = r.json()
    assert status["reason"] == "BadRequest"
    assert status["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
        'unknown field "metadata.bogus", unknown field "spec"'
    )
    assert http.get(f"{url}/strict").status_code == 404
    # Warn is the default: the write proceeds without the fields, one Warning each.
    for directive in (None, "Warn"):
        name = f"warn-{directive or 'default'}".lower()
        r = _post(http, url, {**body, "metadata": {"name": name, "bogus": 1}}, directive)
        assert r.status_code == 201, r.text
        assert _warnings(r) == [
            '299 - "unknown field \\"metadata.bogus\\""',
            '299 - "unknown field \\"spec\\""',
        ]
        stored = http.get(f"{url}/{name}").json()
        assert "spec" not in stored and "bogus" not in stored["metadata"]
        assert stored["data"] == {"a": "b"}
    r = _post(http, url, {**body, "metadata": {"name": "ignore"}}, "Ignore")
    assert r.status_code == 201 and _warnings(r) == []
    assert "spec" not in http.get(f"{url}/ignore").json()


def test_duplicate_fields(http: httpx.Client) -> None:
    url = _cms(_project())
    raw = b'{"metadata": {"name": "dup"}, "data": {"a": "1", "a": "2", "b": "x:\\"y"}}'
    headers = {"content-type": "application/json"}
    r = http.post(url, content=raw, headers=headers, params={"fieldValidation": "Strict"})
    assert r.status_code == 400
    assert r.json()["message"].endswith('strict decoding error: duplicate field "data.a"')
    r = http.post(url, content=raw, headers=headers)
    assert r.status_code == 201
    assert _warnings(r) == ['299 - "duplicate field \\"data.a\\""']
    assert r.json()["data"] == {"a": "2", "b": 'x:"y'}  # the last one wins, as in Go
    # Colons inside strings are not members: no false alarm.
    clean = b'{"metadata": {"name": "colons", "annotations": {"a": "b:c:\\":"}}}'
    r = http.post(url, content=clean, headers=headers, params={"fieldValidation": "Strict"})
    assert r.status_code == 201 and _warnings(r) == []


def test_update_and_patch_validate_the_result(http: httpx.Client) -> None:
    url = _cms(_project())
    created = _post(http, url, {"metadata": {"name": "u"}, "data": {"a": "b"}}).json()
    body = {**created, "extra": True}
    r = http.put(f"{url}/u", json=body, params={"fieldValidation": "Strict"})
    assert r.status_code == 400 and 'unknown field "extra"' in r.json()["message"]
    r = http.put(f"{url}/u", json=body)
    assert r.status_code == 200 and _warnings(r) == ['299 - "unknown field \\"extra\\""']
    assert "extra" not in r.json()
    # A patch: unknown fields of the patched object, a 422 on the field `patch`.
    r = http.patch(
        f"{url}/u", json={"other": {"x": 1}}, headers=MERGE, params={"fieldValidation": "Strict"}
    )
    assert r.status_code == 422, r.text
    status = r.json()
    assert status["reason"] == "Invalid"
    assert [c["field"] for c in status["details"]["causes"]] == ["patch"]
    assert 'strict decoding error: unknown field "other"' in status["message"]
    r = http.patch(f"{url}/u", json={"other": 1, "data": {"c": "d"}}, headers=MERGE)
    assert r.status_code == 200 and _warnings(r) == ['299 - "unknown field \\"other\\""']
    assert r.json()["data"] == {"a": "b", "c": "d"} and "other" not in r.json()
    bad = http.patch(f"{url}/u", params={"fieldValidation": "strict"}, json={}, headers=MERGE)
    assert bad.status_code == 422
    assert bad.json()["details"]["causes"][0]["field"] == "fieldValidation"
    assert "PatchOptions" in bad.json()["message"]


def test_types_are_checked_against_the_schema(http: httpx.Client) -> None:
    project = _project()
    r = _post(http, _cms(project), {"metadata": {"name": "t"}, "data": {"a": 1}})
    assert r.status_code == 422, r.text
    assert r.json()["message"] == (
        'ConfigMap "t" is invalid: data.a: Invalid value: "integer": '
        'data.a in body must be of type string: "integer"'
    )
    r = _post(http, _cms(project), {"metadata": {"name": "t"}, "binaryData": {"a": "!!"}})
    assert r.status_code == 422 and "must be of type byte" in r.json()["message"]
    r = _post(http, _cms(project), {"metadata": {"name": "t"}, "immutable": "yes"})
    assert r.status_code == 422
    assert r.json()["details"]["causes"][0]["field"] == "immutable"
    widget = {"metadata": {"name": "w"}, "spec": {"size": "big"}}
    r = _post(http, _widgets(project), widget)
    assert r.status_code == 422
    status = r.json()
    assert status["message"] == (
        'Widget.example.com "w" is invalid: spec.size: Invalid value: "string": '
        'spec.size in body must be of type integer: "string"'
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "string": spec.size in body must be of type integer: '
            '"string"',
            "field": "spec.size",
        }
    ]
    spec = {"size": 1.5, "color": "green"}
    two = _post(http, _widgets(project), {"metadata": {"name": "w"}, "spec": spec})
    assert two.status_code == 422
    causes = {c["field"]: c["message"] for c in two.json()["details"]["causes"]}
    assert set(causes) == {"spec.color", "spec.size"}
    assert causes["spec.color"] == 'Unsupported value: "green": supported values: "red", "blue"'
    assert two.json()["message"].startswith('Widget.example.com "w" is invalid: [spec.')
    missing = _post(http, _widgets(project), {"metadata": {"name": "w"}})
    assert missing.status_code == 422
    assert missing.json()["details"]["causes"][0] == {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "spec",
    }
    # Nothing was stored by any of these.
    assert http.get(f"{_widgets(project)}/w").status_code == 404
    assert http.get(f"{_cms(project)}/t").status_code == 404
    # An integral float is an integer, as in Kubernetes.
    ok = _post(http, _widgets(project), {"metadata": {"name": "w"}, "spec": {"size": 2.0}})
    assert ok.status_code == 201, ok.text


def test_custom_resources_are_pruned_like_structural_crds(http: httpx.Client) -> None:
    project = _project()
    body = {
        "metadata": {"name": "p"},
        "spec": {
            "size": 3,
            "foo": {"bar": 1},
            "labels": {"free": "form"},
            "extra": {"anything": [1, {"deep": True}]},
        },
        "status": {"ready": True, "phase": "x"},
        "top": 1,
    }
    r = _post(http, _widgets(project), body, "Strict")
    assert r.status_code == 400
    assert r.json()["message"] == (
        'Widget in version "v1" cannot be handled as a Widget: strict decoding error: '
        'unknown field "spec.foo", unknown field "status.phase", unknown field "top"'
    )
    r = _post(http, _widgets(project), body)
    assert r.status_code == 201
    assert len(_warnings(r)) == 3
    stored = http.get(f"{_widgets(project)}/p").json()
    assert stored["spec"] == {
        "size": 3,
        "labels": {"free": "form"},
        "extra": {"anything": [1, {"deep": True}]},
    }
    assert stored["status"] == {"ready": True} and "top" not in stored
    # Another project never sees it.
    assert http.get(f"{_widgets(_project())}/p").status_code == 404


def test_a_custom_resource_without_a_schema_keeps_its_fields(http: httpx.Client) -> None:
    url = f"{_base(_project())}/apis/example.com/v1/gadgets"
    body = {"metadata": {"name": "g", "nope": 1}, "spec": {"any": ["thing"]}, "x": 1}
    r = _post(http, url, body, "Strict")
    assert r.status_code == 400
    assert r.json()["message"].endswith('strict decoding error: unknown field "metadata.nope"')
    r = _post(http, url, {**body, "metadata": {"name": "g"}}, "Strict")
    assert r.status_code == 201, r.text
    assert r.json()["spec"] == {"any": ["thing"]} and r.json()["x"] == 1


def test_json_patch_on_a_custom_resource(http: httpx.Client) -> None:
    url = _widgets(_project())
    assert _post(http, url, {"metadata": {"name": "j"}, "spec": {"size": 1}}).status_code == 201
    ops = [{"op": "add", "path": "/spec/size", "value": "two"}]
    headers = {"content-type": "application/json-patch+json"}
    r = http.patch(f"{url}/j", content=json.dumps(ops), headers=headers)
    assert r.status_code == 422
    assert r.json()["details"]["causes"][0]["field"] == "spec.size"
    ops = [{"op": "add", "path": "/spec/size", "value": 2}]
    r = http.patch(f"{url}/j", content=json.dumps(ops), headers=headers)
    assert r.status_code == 200 and r.json()["spec"] == {"size": 2}
    assert r.json()["metadata"]["generation"] == 2


def test_the_warning_header_escapes_quotes(http: httpx.Client) -> None:
    url = _cms(_project())
    r = _post(http, url, {"metadata": {"name": "q"}, 'we"ird': 1})
    assert r.status_code == 201
    assert _warnings(r) == ['299 - "unknown field \\"we\\\\\\"ird\\""']


def test_strategic_merge_directives_are_not_the_clients_fields(http: httpx.Client) -> None:
    """kubectl apply computes strategic merge patches from the published schemas (merge
    keys): its directives never come back as unknown fields, nor get stored."""
    url = f"{_base(_project())}/api/v1/namespaces/default/serviceaccounts"
    assert _post(http, url, {"metadata": {"name": "sa"}, "secrets": [{"name": "a"}]}).is_success
    patch = {"$setElementOrder/secrets": [{"name": "a"}, {"name": "b"}], "secrets": [{"name": "b"}]}
    r = http.patch(
        f"{url}/sa",
        json=patch,
        headers={"content-type": "application/strategic-merge-patch+json"},
        params={"fieldValidation": "Strict"},
    )
    assert r.status_code == 200, r.text
    assert _warnings(r) == [] and not any(k.startswith("$") for k in r.json())
    # Under a JSON merge patch the same key is an ordinary unknown field.
    r = http.patch(f"{url}/sa", json=patch, headers=MERGE, params={"fieldValidation": "Strict"})
    assert r.status_code == 422
    assert 'unknown field "$setElementOrder/secrets"' in r.json()["message"]
