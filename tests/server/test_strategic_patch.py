"""Strategic merge patch: the cases of Kubernetes' `strategicpatch/patch_test.go` that
the served types can meet (applying a patch to the current object), on a schema of the
same shape as that test's `MergeItem`, then the served types over HTTP in two projects.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tenantstore.server.strategic_patch import strategic_merge_patch
from tenantstore.storage.errors import BadRequestError

from .conftest import ThreadServer

_ITEM: dict[str, Any] = {"type": "object", "properties": {}}
MERGE_ITEM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "mergingList": {
            "type": "array",
            "items": _ITEM,
            "x-kubernetes-patch-strategy": "merge",
            "x-kubernetes-patch-merge-key": "name",
        },
        "nonMergingList": {"type": "array", "items": _ITEM},
        "mergingIntList": {"type": "array", "x-kubernetes-patch-strategy": "merge"},
        "nonMergingIntList": {"type": "array"},
        "simpleMap": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
_ITEM["properties"] = MERGE_ITEM["properties"]  # items nest like the test's MergeItem

# (description, current, patch, expected result), in YAML as upstream writes them.
CASES = [
    (
        "unique scalars when merging lists",
        "mergingIntList: [1, 2]",
        "mergingIntList: [2, 3]",
        "mergingIntList: [1, 2, 3]",
    ),
    (
        "delete map from nested map",
        "simpleMap: {key1: '1', key2: '1'}",
        "simpleMap: {$patch: delete}",
        "simpleMap: {}",
    ),
    (
        "delete all items from merging list",
        "mergingList: [{name: 1}, {name: 2}]",
        "mergingList: [{$patch: replace}]",
        "mergingList: []",
    ),
    ("delete all keys from map", "{name: 1, value: 1}", "{$patch: replace}", "{}"),
    (
        "add key and delete all keys from map",
        "{name: 1, value: 1}",
        "{other: a, $patch: replace}",
        "{other: a}",
    ),
    (
        "de-duplicate entries in a merging list",
        "mergingList: [{name: 1}, {name: 1}, {name: 2, value: a}, {name: 3}, {name: 3}]",
        "mergingList: [{name: 1, $patch: delete}, {name: 3, $patch: delete}]",
        "mergingList: [{name: 1}, {name: 2, value: a}, {name: 3}]",
    ),
    (
        "delete all duplicate entries in a merging list",
        "mergingList: [{name: 1}, {name: 1}, {name: 2, value: a}, {name: 3}, {name: 3}]",
        "mergingList: [{name: 1, $patch: delete}, {name: 1, $patch: delete},"
        " {name: 3, $patch: delete}, {name: 3, $patch: delete}]",
        "mergingList: [{name: 2, value: a}]",
    ),
    (
        "preserve the order from the patch in a merging list",
        "mergingList: [{name: 1}, {name: 2, value: b}, {name: 3}]",
        "mergingList: [{name: 3, value: c}, {name: 1, value: a}, {name: 2, other: x}]",
        "mergingList: [{name: 3, value: c}, {name: 1, value: a}, {name: 2, value: b, other: x}]",
    ),
    (
        "preserve the order from the patch in a merging list 2",
        "mergingList: [{name: 1}, {name: 2, value: b}, {name: 3}]",
        "mergingList: [{name: 3, value: c}, {name: 1, value: a}]",
        "mergingList: [{name: 2, value: b}, {name: 3, value: c}, {name: 1, value: a}]",
    ),
    (
        "preserve the order from the patch in a merging int list",
        "mergingIntList: [1, 2, 3]",
        "mergingIntList: [3, 1, 2]",
        "mergingIntList: [3, 1, 2]",
    ),
    (
        "preserve the order from the patch in a merging int list 2",
        "mergingIntList: [1, 2, 3]",
        "mergingIntList: [3, 1]",
        "mergingIntList: [2, 3, 1]",
    ),
    (
        "$setElementOrder contains an item not in the list",
        "mergingList: [{name: 1}, {name: 3}]",
        "{$setElementOrder/mergingList: [{name: 3}, {name: 2}, {name: 1}],"
        " mergingList: [{name: 3, value: 3}, {name: 1, value: 1}]}",
        "mergingList: [{name: 3, value: 3}, {name: 1, value: 1}]",
    ),
    (
        "$setElementOrder of an int list alone",
        "mergingIntList: [1, 3]",
        "$setElementOrder/mergingIntList: [3, 2, 1]",
        "mergingIntList: [3, 1]",
    ),
    (
        "add field and delete field from map",
        "{name: 1, other: a}",
        "{name: null, value: 1}",
        "{value: 1, other: a}",
    ),
    (
        "delete field from nested map",
        "simpleMap: {key1: '1', key2: '1', other: a}",
        "simpleMap: {key2: null}",
        "simpleMap: {key1: '1', other: a}",
    ),
    (
        "replace list of scalars",
        "nonMergingIntList: [1, 4]",
        "nonMergingIntList: [2, 3]",
        "nonMergingIntList: [2, 3]",
    ),
    (
        "delete all maps from merging list with conflict",
        "mergingList: [{name: 1, other: a}, {name: 2, other: b}]",
        "mergingList: [{name: 1, $patch: delete}, {name: 2, $patch: delete}]",
        "mergingList: []",
    ),
    (
        "delete all maps from empty merging list",
        "mergingList: []",
        "mergingList: [{name: 1, $patch: delete}, {name: 2, $patch: delete}]",
        "mergingList: []",
    ),
    (
        "defined null values overwrite current fields",
        "{name: a, other: a}",
        "{name: 1, value: 1, other: null}",
        "{name: 1, value: 1}",
    ),
    (
        "delete items in lists of scalars",
        "mergingIntList: [1, 2, 3, 4]",
        "{$setElementOrder/mergingIntList: [1, 2], $deleteFromPrimitiveList/mergingIntList: [3]}",
        "mergingIntList: [1, 2, 4]",
    ),
    (
        "delete all duplicate items in lists of scalars",
        "mergingIntList: [1, 2, 3, 3, 4]",
        "{$setElementOrder/mergingIntList: [1, 2], $deleteFromPrimitiveList/mergingIntList: [3]}",
        "mergingIntList: [1, 2, 4]",
    ),
    (
        "merge lists of maps",
        "mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}]",
        "{$setElementOrder/mergingList: [{name: 4}, {name: 1}, {name: 2}, {name: 3}],"
        " mergingList: [{name: 4, value: 4}, {name: 3, value: 3}]}",
        "mergingList: [{name: 4, value: 4}, {name: 1, other: a},"
        " {name: 2, value: 2, other: b}, {name: 3, value: 3}]",
    ),
    (
        "merge lists of maps with conflict",
        "mergingList: [{name: 1, other: a}, {name: 2, value: 3, other: b}]",
        "{$setElementOrder/mergingList: [{name: 1}, {name: 2}, {name: 3}],"
        " mergingList: [{name: 2, value: 2}, {name: 3, value: 3}]}",
        "mergingList: [{name: 1, other: a}, {name: 2, value: 2, other: b}, {name: 3, value: 3}]",
    ),
    (
        "nested merging lists merge by key too",
        "mergingList: [{name: 1, mergingList: [{name: a}]}]",
        "mergingList: [{name: 1, mergingList: [{name: b}]}]",
        "mergingList: [{name: 1, mergingList: [{name: a}, {name: b}]}]",
    ),
    (
        "a non-merging list of maps is replaced, nulls inside it dropped",
        "nonMergingList: [{name: 1, value: a}]",
        "nonMergingList: [{name: 2, value: null}]",
        "nonMergingList: [{name: 2}]",
    ),
    (
        "$patch: replace on a nested map",
        "simpleMap: {a: '1', b: '2'}",
        "simpleMap: {c: '3', $patch: replace}",
        "simpleMap: {c: '3'}",
    ),
    (
        "$retainKeys drops the other keys",
        "{name: 1, value: 1, other: a}",
        "{$retainKeys: [name, value], value: 2}",
        "{name: 1, value: 2}",
    ),
]


@pytest.mark.parametrize(
    ("current", "patch", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_upstream_cases(current: str, patch: str, expected: str) -> None:
    before = yaml.safe_load(current)
    snapshot = yaml.safe_load(current)
    got = strategic_merge_patch(before, yaml.safe_load(patch), MERGE_ITEM)
    assert got == yaml.safe_load(expected)
    assert before == snapshot  # the original is never modified


@pytest.mark.parametrize(
    ("current", "patch", "message"),
    [
        (
            "mergingList: [{name: 1, value: a}]",
            "mergingList: [{value: b}]",
            "does not contain declared merge key",
        ),
        (
            "mergingList: [{name: 1}, {name: 3}, {name: 2}]",
            "{$setElementOrder/mergingList: [{name: 1}, {name: 2}, {name: 3}],"
            " mergingList: [{name: 3, value: 3}, {name: 1, value: 1}]}",
            "doesn't match",
        ),
        (
            "mergingIntList: [1, 3, 2]",
            "{$setElementOrder/mergingIntList: [1, 2, 3], mergingIntList: [3, 1]}",
            "doesn't match",
        ),
        ("{name: 1}", "{$patch: explode}", "unknown $patch directive"),
        (
            "mergingList: [{name: 1}]",
            "mergingList: [{name: 1, $patch: explode}]",
            "unknown $patch directive",
        ),
        ("{name: 1}", "{$retainKeys: [name], value: 2}", "not present in $retainKeys"),
        ("{name: 1}", "{$bogus: 1}", "unknown directive"),
    ],
)
def test_bad_patches_are_400(current: str, patch: str, message: str) -> None:
    with pytest.raises(BadRequestError) as err:
        strategic_merge_patch(yaml.safe_load(current), yaml.safe_load(patch), MERGE_ITEM)
    assert message in err.value.message


# -- the served types over HTTP -----------------------------------------------------------

SMP = {"content-type": "application/strategic-merge-patch+json"}
SA = "/api/v1/namespaces/default/serviceaccounts"


@pytest.fixture
def clients(server: ThreadServer) -> Iterator[list[httpx.Client]]:
    tag = uuid.uuid4().hex[:8]
    made = [
        httpx.Client(base_url=f"{server.url}/projects/{p}-{tag}/control-plane", timeout=30)
        for p in ("a", "b")
    ]
    yield made
    for c in made:
        c.close()


def test_service_account_lists(clients: list[httpx.Client]) -> None:
    a, b = clients
    body = {
        "metadata": {"name": "sa", "finalizers": ["example.com/a"]},
        "secrets": [{"name": "s1"}, {"name": "s2"}],
        "imagePullSecrets": [{"name": "p1"}],
    }
    for c in (a, b):
        assert c.post(SA, json=body).status_code == 201
    patch = {
        "metadata": {"finalizers": ["example.com/b"]},
        "secrets": [{"name": "s3"}, {"name": "s1", "$patch": "delete"}],
        "imagePullSecrets": [{"name": "p2"}],  # not a merging list: replaced
    }
    r = a.patch(f"{SA}/sa", json=patch, headers=SMP)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["secrets"] == [{"name": "s2"}, {"name": "s3"}]
    assert got["imagePullSecrets"] == [{"name": "p2"}]
    assert got["metadata"]["finalizers"] == ["example.com/a", "example.com/b"]
    r = a.patch(
        f"{SA}/sa",
        json={"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}},
        headers=SMP,
    )
    assert r.json()["metadata"]["finalizers"] == ["example.com/b"]
    # Project b's copy is untouched.
    other = b.get(f"{SA}/sa").json()
    assert other["secrets"] == [{"name": "s1"}, {"name": "s2"}]
    assert other["metadata"]["finalizers"] == ["example.com/a"]


def test_configmap_keys_added_by_others_survive(clients: list[httpx.Client]) -> None:
    a, _ = clients
    cm = "/api/v1/namespaces/default/configmaps"
    a.post(cm, json={"metadata": {"name": "c"}, "data": {"mine": "1", "gone": "x"}})
    a.patch(f"{cm}/c", json={"data": {"theirs": "2"}}, headers=SMP)
    r = a.patch(f"{cm}/c", json={"data": {"gone": None, "mine": "3"}}, headers=SMP)
    assert r.status_code == 200
    assert r.json()["data"] == {"mine": "3", "theirs": "2"}


def test_bad_strategic_patch_is_a_400(clients: list[httpx.Client]) -> None:
    a, _ = clients
    a.post(SA, json={"metadata": {"name": "bad"}, "secrets": [{"name": "s1"}]})
    r = a.patch(f"{SA}/bad", json={"secrets": [{"namespace": "x"}]}, headers=SMP)
    assert (r.status_code, r.json()["reason"]) == (400, "BadRequest")
    assert a.get(f"{SA}/bad").json()["secrets"] == [{"name": "s1"}]
