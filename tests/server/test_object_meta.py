"""`ObjectMeta` is validated as Kubernetes validates it: a 422 naming the field, and
nothing stored. Objects that broke these rules used to be stored with 201 and then broke
the official Python client's list of their namespace."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tenantstore.server.registry import BUILTIN_RESOURCES
from tenantstore.server.validation import validate_object_meta
from tenantstore.storage import InvalidError

CM = "/projects/meta/control-plane/api/v1/namespaces/default/configmaps"

BAD: list[tuple[str, dict[str, Any]]] = [
    ("metadata.labels", {"labels": [1, 2]}),
    ("metadata.labels", {"labels": "a=b"}),
    ("metadata.labels[a]", {"labels": {"a": 1}}),
    ("metadata.labels[a]", {"labels": {"a": None}}),
    ("metadata.labels", {"labels": {"a b": "c"}}),
    ("metadata.labels", {"labels": {"-a": "c"}}),
    ("metadata.labels", {"labels": {"Example.COM/a": "c"}}),
    ("metadata.labels", {"labels": {"x" * 64: "c"}}),
    ("metadata.labels", {"labels": {"/a": "c"}}),
    ("metadata.labels[a]", {"labels": {"a": "x" * 64}}),
    ("metadata.labels[a]", {"labels": {"a": "b c"}}),
    ("metadata.labels[a]", {"labels": {"a": "-b"}}),
    ("metadata.annotations", {"annotations": ["a"]}),
    ("metadata.annotations[a]", {"annotations": {"a": {"b": "c"}}}),
    ("metadata.annotations", {"annotations": {"a b": "c"}}),
    ("metadata.finalizers", {"finalizers": "a"}),
    ("metadata.finalizers[0]", {"finalizers": [1]}),
    ("metadata.finalizers[0]", {"finalizers": ["a b"]}),
    ("metadata.ownerReferences", {"ownerReferences": {"a": "b"}}),
    ("metadata.ownerReferences", {"ownerReferences": ["a"]}),
    ("metadata.generateName", {"generateName": 5, "name": None}),
    ("metadata.resourceVersion", {"resourceVersion": 5}),
]


@pytest.mark.parametrize(("field", "meta"), BAD, ids=[f"{f}-{i}" for i, (f, _m) in enumerate(BAD)])
def test_invalid_object_meta_is_422_and_nothing_is_stored(
    http: httpx.Client, field: str, meta: dict[str, Any]
) -> None:
    body = {"metadata": {"name": "bad", **meta}, "data": {"k": "v"}}
    r = http.post(CM, json=body)
    assert r.status_code == 422, r.text
    status = r.json()
    assert status["reason"] == "Invalid"
    assert [c["field"] for c in status["details"]["causes"]] == [field]
    assert http.get(f"{CM}/bad").status_code == 404


def test_updates_are_validated_too(http: httpx.Client) -> None:
    r = http.post(CM, json={"metadata": {"name": "ok", "labels": {"app": "web"}}})
    assert r.status_code == 201, r.text
    current = r.json()
    bad = {**current, "metadata": {**current["metadata"], "labels": {"app": 1}}}
    assert http.put(f"{CM}/ok", json=bad).status_code == 422
    patch = http.patch(
        f"{CM}/ok",
        json={"metadata": {"labels": ["x"]}},
        headers={"content-type": "application/merge-patch+json"},
    )
    assert patch.status_code == 422, patch.text
    assert http.get(f"{CM}/ok").json()["metadata"]["labels"] == {"app": "web"}


def test_valid_object_meta_is_accepted(http: httpx.Client) -> None:
    meta = {
        "name": "fine",
        "labels": {"example.com/app": "web-1", "tier": "", "a_b.c-d": "X.y_z"},
        "annotations": {"Example.com/Note": "anything at all: {}", "x": ""},
        "finalizers": ["example.com/cleanup"],
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u"}],
    }
    r = http.post(CM, json={"metadata": meta})
    assert r.status_code == 201, r.text
    listed = http.get(CM, params={"labelSelector": "example.com/app=web-1"}).json()
    assert [o["metadata"]["name"] for o in listed["items"]] == ["fine"]


def test_annotations_are_limited_to_256_kib_in_all() -> None:
    """A unit test: this module's server limits bodies to 64 KiB."""
    res = BUILTIN_RESOURCES[1]
    validate_object_meta(res, {"annotations": {"a": "x" * (256 * 1024 - 1)}})
    with pytest.raises(InvalidError) as err:
        validate_object_meta(res, {"annotations": {"a": "x" * (256 * 1024)}})
    assert err.value.details["causes"][0]["field"] == "metadata.annotations"
