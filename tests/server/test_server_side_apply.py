"""Server-side apply and `managedFields`: the `FieldsV1` encoding, then apply and the
`Update` bookkeeping over HTTP, in two projects that never see each other's objects.

Expected values are Kubernetes' own: the encodings and the conflict wording are what
kube-apiserver answers for the same requests (structured-merge-diff's `fieldpath` tests
and `managedfields`' conflict messages).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tenantstore.server.field_schema import schema_for
from tenantstore.server.fieldpath import FieldSet, FieldsV1Error, path_text
from tenantstore.server.managed_fields import compare, fields_of
from tenantstore.server.registry import BUILTIN_RESOURCES, parse_resource

from .conftest import ThreadServer

APPLY = {"content-type": "application/apply-patch+yaml"}
MERGE = {"content-type": "application/merge-patch+json"}
CM = "/api/v1/namespaces/default/configmaps"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"

_WIDGET_ENTRY = {
    "group": "example.com",
    "version": "v1",
    "kind": "Widget",
    "plural": "widgets",
    "namespaced": True,
    "schema": {
        "openAPIV3Schema": {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    # Other spec fields are kept (not pruned): the deep-object test uses them.
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {
                        "ports": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["port", "protocol"],
                            "items": {
                                "type": "object",
                                "properties": {
                                    "port": {"type": "integer"},
                                    "protocol": {"type": "string"},
                                    "name": {"type": "string"},
                                },
                            },
                        },
                        "tags": {
                            "type": "array",
                            "x-kubernetes-list-type": "set",
                            "items": {"type": "string"},
                        },
                        "args": {"type": "array", "items": {"type": "string"}},
                    },
                }
            },
        }
    },
}


@pytest.fixture(scope="module")
def resources_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Widgets with a schema declaring an associative list, a set and an atomic list."""
    import json

    path = tmp_path_factory.mktemp("resources") / "resources.json"
    gadget = {
        "group": "example.com",
        "version": "v1",
        "kind": "Gadget",
        "plural": "gadgets",
        "subresources": {"status": {}},
    }
    path.write_text(json.dumps({"resources": [_WIDGET_ENTRY, gadget]}))
    return path


def _builtin(kind: str) -> Any:
    return next(r for r in BUILTIN_RESOURCES if r.kind == kind)


# -- FieldsV1 and the set algebra -------------------------------------------------------


def test_fields_v1_round_trip_and_members() -> None:
    doc = {
        "f:data": {".": {}, "f:a": {}},
        "f:spec": {"f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}}}},
        "f:tags": {'v:"x"': {}},
    }
    fs = FieldSet.from_fields_v1(doc)
    assert fs.to_fields_v1() == doc
    assert fs.has(("f:data",)) and fs.has(("f:data", "f:a"))
    assert not fs.has(("f:spec",))  # only leads to members
    assert [path_text(p) for p in fs.paths()] == [
        ".data",
        ".data.a",
        '.spec.ports[port=80,protocol="TCP"]',
        '.spec.ports[port=80,protocol="TCP"].port',
        '.tags[="x"]',
    ]


@pytest.mark.parametrize("bad", [[], {"x:a": {}}, {"f:a": []}, {"f:a": {"f:b": 1}}])
def test_fields_v1_rejects_what_is_not_a_set(bad: Any) -> None:
    with pytest.raises(FieldsV1Error):
        FieldSet.from_fields_v1(bad)


def test_set_algebra() -> None:
    a = FieldSet.from_fields_v1({"f:data": {"f:a": {}, "f:b": {}}, "f:x": {}})
    b = FieldSet.from_fields_v1({"f:data": {"f:b": {}, "f:c": {}}})
    assert a.union(b).to_fields_v1() == {"f:data": {"f:a": {}, "f:b": {}, "f:c": {}}, "f:x": {}}
    assert a.intersection(b).to_fields_v1() == {"f:data": {"f:b": {}}}
    assert a.difference(b).to_fields_v1() == {"f:data": {"f:a": {}}, "f:x": {}}
    assert b.difference(b).empty()


def test_fields_of_follows_list_semantics() -> None:
    res = parse_resource(_WIDGET_ENTRY)
    obj = {
        "spec": {
            "ports": [{"port": 80, "protocol": "TCP", "name": "web"}],
            "tags": ["a", "b"],
            "args": ["x", "y"],
            "free": {"k": 1},
        }
    }
    fs = fields_of(obj, schema_for(res))
    assert fs.to_fields_v1() == {
        "f:spec": {
            "f:args": {},
            "f:free": {"f:k": {}},
            "f:ports": {
                'k:{"port":80,"protocol":"TCP"}': {
                    ".": {},
                    "f:name": {},
                    "f:port": {},
                    "f:protocol": {},
                }
            },
            "f:tags": {'v:"a"': {}, 'v:"b"': {}},
        }
    }


def test_service_account_secrets_are_keyed_by_name() -> None:
    sa = _builtin("ServiceAccount")
    obj = {"secrets": [{"name": "s1"}], "imagePullSecrets": [{"name": "p"}]}
    # `secrets` merges by name (its items are atomic references); `imagePullSecrets` is atomic.
    assert fields_of(obj, schema_for(sa)).to_fields_v1() == {
        "f:imagePullSecrets": {},
        "f:secrets": {'k:{"name":"s1"}': {}},
    }


def test_compare_reports_added_modified_removed() -> None:
    cm = schema_for(_builtin("ConfigMap"))
    added, modified, removed = compare(
        {"data": {"a": "1", "b": "2"}}, {"data": {"a": "9", "c": "3"}, "binaryData": {"x": ""}}, cm
    )
    assert added.to_fields_v1() == {"f:binaryData": {".": {}, "f:x": {}}, "f:data": {"f:c": {}}}
    assert modified.to_fields_v1() == {"f:data": {"f:a": {}}}
    assert removed.to_fields_v1() == {"f:data": {"f:b": {}}}


# -- over HTTP --------------------------------------------------------------------------


@pytest.fixture
def clients(server: ThreadServer) -> Iterator[list[httpx.Client]]:
    """Clients of two fresh projects."""
    tag = uuid.uuid4().hex[:8]
    made = [
        httpx.Client(base_url=f"{server.url}/projects/{p}-{tag}/control-plane", timeout=30)
        for p in ("a", "b")
    ]
    yield made
    for c in made:
        c.close()


def _cm(name: str, data: dict[str, str], **meta: Any) -> str:
    import json

    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, **meta},
        "data": data,
    }
    return json.dumps(body)


def _apply(c: httpx.Client, path: str, body: str, manager: str, **params: str) -> httpx.Response:
    return c.patch(path, content=body, headers=APPLY, params={"fieldManager": manager, **params})


def _managers(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (m["manager"], m["operation"]): m["fieldsV1"]
        for m in obj["metadata"].get("managedFields", [])
    }


def test_apply_creates_then_updates(clients: list[httpx.Client]) -> None:
    a, b = clients
    yaml_body = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  x: '1'\n  y: '2'\n"
    )
    r = _apply(a, f"{CM}/cfg", yaml_body, "tool")
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["data"] == {"x": "1", "y": "2"}
    assert made["metadata"]["uid"] and made["metadata"]["generation"] == 1
    [entry] = made["metadata"]["managedFields"]
    assert entry["manager"] == "tool" and entry["operation"] == "Apply"
    assert entry["apiVersion"] == "v1" and entry["fieldsType"] == "FieldsV1"
    assert entry["time"].endswith("Z")
    assert entry["fieldsV1"] == {"f:data": {"f:x": {}, "f:y": {}}}
    r = _apply(a, f"{CM}/cfg", _cm("cfg", {"x": "5", "y": "2"}), "tool")
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"x": "5", "y": "2"}
    assert r.json()["metadata"]["uid"] == made["metadata"]["uid"]
    # The other project has no such object, and its own apply creates an unrelated one.
    assert b.get(f"{CM}/cfg").status_code == 404
    r = _apply(b, f"{CM}/cfg", _cm("cfg", {"other": "b"}), "tool")
    assert r.status_code == 201 and r.json()["data"] == {"other": "b"}
    assert a.get(f"{CM}/cfg").json()["data"] == {"x": "5", "y": "2"}


def test_apply_removes_fields_it_no_longer_applies(clients: list[httpx.Client]) -> None:
    a, _ = clients
    _apply(a, f"{CM}/rm", _cm("rm", {"x": "1", "y": "2"}, labels={"l": "v"}), "tool")
    # Another manager adds its own key: the applier's removals must leave it alone.
    r = a.patch(f"{CM}/rm", json={"data": {"z": "3"}}, headers=MERGE, params={"fieldManager": "ed"})
    assert r.status_code == 200
    r = _apply(a, f"{CM}/rm", _cm("rm", {"x": "1"}), "tool")
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["data"] == {"x": "1", "z": "3"}
    assert "labels" not in got["metadata"]
    assert _managers(got) == {
        ("tool", "Apply"): {"f:data": {"f:x": {}}},
        ("ed", "Update"): {"f:data": {"f:z": {}}},
    }


def test_conflict_then_force(clients: list[httpx.Client]) -> None:
    a, b = clients
    for c in (a, b):
        _apply(c, f"{CM}/c", _cm("c", {"k": "one", "j": "1"}), "first")
    r = _apply(a, f"{CM}/c", _cm("c", {"k": "two", "j": "2"}), "second")
    assert r.status_code == 409, r.text
    status = r.json()
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Apply failed with 2 conflicts: conflicts with "first":\n- .data.j\n- .data.k'
    )
    assert status["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "first"', "field": ".data.j"},
        {"reason": "FieldManagerConflict", "message": 'conflict with "first"', "field": ".data.k"},
    ]
    assert a.get(f"{CM}/c").json()["data"] == {"k": "one", "j": "1"}
    r = _apply(a, f"{CM}/c", _cm("c", {"k": "two"}), "second", force="true")
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"k": "two", "j": "1"}
    assert _managers(r.json()) == {
        ("first", "Apply"): {"f:data": {"f:j": {}}},
        ("second", "Apply"): {"f:data": {"f:k": {}}},
    }
    # Project b's object never changed.
    assert b.get(f"{CM}/c").json()["data"] == {"k": "one", "j": "1"}


def test_conflict_with_an_updater_names_its_version(clients: list[httpx.Client]) -> None:
    a, _ = clients
    _apply(a, f"{CM}/u", _cm("u", {"a": "1"}), "kubectl")
    a.patch(f"{CM}/u", json={"data": {"a": "2"}}, headers=MERGE, params={"fieldManager": "ed"})
    r = _apply(a, f"{CM}/u", _cm("u", {"a": "3"}), "kubectl")
    assert r.status_code == 409
    assert (
        r.json()["message"] == 'Apply failed with 1 conflict: conflict with "ed" using v1: .data.a'
    )


def test_same_value_is_shared_ownership(clients: list[httpx.Client]) -> None:
    a, _ = clients
    _apply(a, f"{CM}/s", _cm("s", {"a": "1", "b": "x"}), "one")
    r = _apply(a, f"{CM}/s", _cm("s", {"a": "1"}), "two")
    assert r.status_code == 200, r.text
    assert _managers(r.json()) == {
        ("one", "Apply"): {"f:data": {"f:a": {}, "f:b": {}}},
        ("two", "Apply"): {"f:data": {"f:a": {}}},
    }
    # `one` stops applying `a`: `two` still owns it, so it stays.
    r = _apply(a, f"{CM}/s", _cm("s", {"b": "x"}), "one")
    assert r.json()["data"] == {"a": "1", "b": "x"}


def test_updates_record_update_entries(clients: list[httpx.Client]) -> None:
    a, b = clients
    r = a.post(
        CM,
        json={"metadata": {"name": "up"}, "data": {"a": "1"}},
        headers={"user-agent": "kubectl-create/v1.32.0 (linux/amd64) kubernetes/abc"},
    )
    assert r.status_code == 201
    assert _managers(r.json()) == {("kubectl-create", "Update"): {"f:data": {".": {}, "f:a": {}}}}
    current = r.json()
    current["data"]["b"] = "2"
    r = a.put(f"{CM}/up", json=current, params={"fieldManager": "putter"})
    assert r.status_code == 200
    assert _managers(r.json()) == {
        ("kubectl-create", "Update"): {"f:data": {".": {}, "f:a": {}}},
        ("putter", "Update"): {"f:data": {"f:b": {}}},
    }
    # The same manager again: one entry; its change takes `a` from the creator.
    for value in ("3", "4"):
        r = a.patch(
            f"{CM}/up",
            json={"data": {"a": value}},
            headers=MERGE,
            params={"fieldManager": "putter"},
        )
    entries = r.json()["metadata"]["managedFields"]
    assert [(m["manager"], m["operation"]) for m in entries] == [
        ("kubectl-create", "Update"),
        ("putter", "Update"),
    ]
    assert _managers(r.json())[("putter", "Update")] == {"f:data": {"f:a": {}, "f:b": {}}}
    # A no-op write by someone else records nothing.
    r = a.patch(
        f"{CM}/up", json={"data": {"a": "4"}}, headers=MERGE, params={"fieldManager": "idle"}
    )
    assert ("idle", "Update") not in _managers(r.json())
    assert b.get(f"{CM}/up").status_code == 404


def test_managed_fields_reset_and_client_values(clients: list[httpx.Client]) -> None:
    a, _ = clients
    r = a.post(
        CM,
        json={"metadata": {"name": "mf", "managedFields": [{"bogus": 1}]}, "data": {"a": "1"}},
        params={"fieldManager": "maker"},
    )
    assert r.status_code == 201
    assert _managers(r.json()) == {("maker", "Update"): {"f:data": {".": {}, "f:a": {}}}}
    # `managedFields: []` clears them.
    r = a.patch(f"{CM}/mf", json={"metadata": {"managedFields": []}}, headers=MERGE)
    assert r.status_code == 200 and "managedFields" not in r.json()["metadata"]
    # An apply onto an untracked object conflicts with `before-first-apply`.
    r = _apply(a, f"{CM}/mf", _cm("mf", {"a": "2"}), "tool")
    assert r.status_code == 409
    assert '"before-first-apply" using v1: .data.a' in r.json()["message"]


def test_server_fields_are_nobodys(clients: list[httpx.Client]) -> None:
    a, _ = clients
    body = _cm("sv", {"a": "1"}, labels={"app": "x"}, namespace="default")
    r = _apply(a, f"{CM}/sv", body, "tool")
    assert _managers(r.json())[("tool", "Apply")] == {
        "f:data": {"f:a": {}},
        "f:metadata": {"f:labels": {"f:app": {}}},
    }


@pytest.mark.parametrize(
    ("params", "headers", "code", "reason"),
    [
        ({}, APPLY, 422, "Invalid"),  # fieldManager is required for apply
        ({"fieldManager": "x" * 129}, APPLY, 422, "Invalid"),
        ({"fieldManager": "m", "force": "maybe"}, APPLY, 400, "BadRequest"),
        ({"fieldManager": "m", "force": "true"}, MERGE, 422, "Invalid"),  # force is apply-only
    ],
)
def test_bad_options(
    clients: list[httpx.Client],
    params: dict[str, str],
    headers: dict[str, str],
    code: int,
    reason: str,
) -> None:
    a, _ = clients
    body = _cm("opt", {"a": "1"}) if headers is APPLY else '{"data": {"a": "1"}}'
    a.post(CM, json={"metadata": {"name": "opt"}})
    r = a.patch(f"{CM}/opt", content=body, headers=headers, params=params)
    assert (r.status_code, r.json()["reason"]) == (code, reason), r.text


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("a: [1", 400),  # not YAML
        ("- a\n- b\n", 400),  # not a mapping
        ("kind: ConfigMap\nmetadata: {name: bad}\n", 400),  # no apiVersion
        ("apiVersion: v1\nkind: Secret\nmetadata: {name: bad}\n", 422),  # the wrong kind
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n", 422),  # the wrong name
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad, managedFields: []}\n", 400),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: bad}\nx: *m\n", 400),  # alias
    ],
)
def test_bad_apply_bodies(clients: list[httpx.Client], body: str, code: int) -> None:
    a, _ = clients
    r = _apply(a, f"{CM}/bad", body, "tool")
    assert r.status_code == code, r.text
    assert r.json()["kind"] == "Status"
    assert a.get(f"{CM}/bad").status_code == 404


def test_yaml_dates_stay_strings(clients: list[httpx.Client]) -> None:
    a, _ = clients
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dates}\ndata: {day: 2024-01-02}\n"
    r = _apply(a, f"{CM}/dates", body, "tool")
    assert r.status_code == 201, r.text
    assert r.json()["data"] == {"day": "2024-01-02"}


def test_custom_resource_lists_follow_the_schema(clients: list[httpx.Client]) -> None:
    a, b = clients

    def widget(spec: dict[str, Any]) -> str:
        import json

        return json.dumps(
            {
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "metadata": {"name": "w"},
                "spec": spec,
            }
        )

    r = _apply(
        a,
        f"{WIDGETS}/w",
        widget({"ports": [{"port": 80, "protocol": "TCP"}], "tags": ["a"], "args": ["x"]}),
        "one",
    )
    assert r.status_code == 201, r.text
    # A second manager adds a port and a tag (merged by key and value) and owns `args`
    # with the same value (atomic: the whole list).
    r = _apply(
        a,
        f"{WIDGETS}/w",
        widget({"ports": [{"port": 443, "protocol": "TCP"}], "tags": ["b"], "args": ["x"]}),
        "two",
    )
    assert r.status_code == 200, r.text
    spec = r.json()["spec"]
    assert spec["ports"] == [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]
    assert spec["tags"] == ["a", "b"] and spec["args"] == ["x"]
    # Changing the atomic list is a conflict on the list itself.
    r = _apply(a, f"{WIDGETS}/w", widget({"args": ["y"]}), "two")
    assert r.status_code == 409
    assert r.json()["details"]["causes"][0]["field"] == ".spec.args"
    # `one` drops its port and tag: they go; `two`'s stay.
    r = _apply(a, f"{WIDGETS}/w", widget({"args": ["x"]}), "one")
    assert r.status_code == 200, r.text
    spec = r.json()["spec"]
    assert spec["ports"] == [{"port": 443, "protocol": "TCP"}] and spec["tags"] == ["b"]
    assert b.get(f"{WIDGETS}/w").status_code == 404


def test_strategic_patch_of_a_custom_resource_is_415(clients: list[httpx.Client]) -> None:
    a, _ = clients
    a.post(
        WIDGETS,
        json={"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "smp"}},
    )
    r = a.patch(
        f"{WIDGETS}/smp",
        json={"spec": {}},
        headers={"content-type": "application/strategic-merge-patch+json"},
    )
    assert (r.status_code, r.json()["reason"]) == (415, "UnsupportedMediaType")


@pytest.mark.parametrize(
    "obj",
    [
        {"data": {"a": "1"}, "binaryData": {}, "metadata": {"labels": {"x": "y"}}},
        {"secrets": [{"name": "s"}], "imagePullSecrets": [{"name": "p"}]},
        {"metadata": {"finalizers": ["a/b"], "ownerReferences": [{"uid": "u", "kind": "K"}]}},
    ],
)
def test_create_encoding_matches_the_general_path(obj: dict[str, Any]) -> None:
    """A create writes its `FieldsV1` directly; an update from an empty object computes
    the same set through `compare`: the two must agree."""
    from tenantstore.server.managed_fields import record_update

    sa = _builtin("ServiceAccount")
    meta = {"name": "n", "namespace": "default", "uid": "u1", **obj.get("metadata", {})}
    fast = {**obj, "metadata": dict(meta)}
    slow = {**obj, "metadata": dict(meta)}
    record_update(sa, None, fast, "m", "2024-01-01T00:00:00Z")
    record_update(sa, {}, slow, "m", "2024-01-01T00:00:00Z")
    assert fast["metadata"]["managedFields"] == slow["metadata"]["managedFields"]
    assert "f:metadata" not in fast["metadata"]["managedFields"][0]["fieldsV1"] or (
        "." not in fast["metadata"]["managedFields"][0]["fieldsV1"]["f:metadata"]
    )


def test_deep_objects_are_tracked_coarsely(clients: list[httpx.Client]) -> None:
    """An object as deep as the server stores (200 levels) is not refused for its managed
    fields, which sit five levels further down: past that, a subtree is one field."""
    import json

    a, _ = clients

    def nested(depth: int, leaf: str) -> Any:
        value: Any = leaf
        for _ in range(depth):
            value = {"a": value}
        return value

    body = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "deep"},
        "spec": nested(197, "x"),
    }
    r = _apply(a, f"{WIDGETS}/deep", json.dumps(body), "tool")
    assert r.status_code == 201, r.text[:300]
    body["spec"] = nested(197, "y")
    r = a.patch(
        f"{WIDGETS}/deep", json={"spec": body["spec"]}, headers=MERGE, params={"fieldManager": "ed"}
    )
    assert r.status_code == 200, r.text[:300]
    r = _apply(a, f"{WIDGETS}/deep", json.dumps({**body, "spec": nested(197, "z")}), "tool")
    assert r.status_code == 409  # the coarse field `ed` took is still a conflict


def test_status_of_a_status_subresource_type_is_nobodys(clients: list[httpx.Client]) -> None:
    """Through the main resource, `.status` of a type with a status subresource is the
    server's to reset: an apply neither sets nor owns it."""
    import json

    a, _ = clients
    body = {
        "apiVersion": "example.com/v1",
        "kind": "Gadget",
        "metadata": {"name": "g"},
        "spec": {"size": 1},
        "status": {"ready": True},
    }
    path = "/apis/example.com/v1/namespaces/default/gadgets/g"
    r = _apply(a, path, json.dumps(body), "tool")
    assert r.status_code == 201, r.text
    assert "status" not in r.json()
    assert _managers(r.json()) == {("tool", "Apply"): {"f:spec": {"f:size": {}}}}
