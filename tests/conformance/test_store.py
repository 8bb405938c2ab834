"""Conformance: create, get, list, update, delete, count (Kubernetes store_tests.go).

Every test runs once per registered stack and KV backend (see conftest.py).
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from tenantstore.storage import (
    AlreadyExistsError,
    BadRequestError,
    ConflictError,
    GoneError,
    InvalidError,
    ListOptions,
    NotFoundError,
    Preconditions,
    ResourceVersionMatch,
    StorageError,
    TooLargeResourceVersionError,
)

from .conftest import Stack
from .helpers import names, pod, rv, selector, set_labels, set_spec, wait_until, without_rv

EXACT = ResourceVersionMatch.EXACT
NOT_OLDER = ResourceVersionMatch.NOT_OLDER_THAN


async def seed(stack: Stack, layout: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Create pods per namespace; return {"ns/name": created object}."""
    out = {}
    for ns, pod_names in layout.items():
        for n in pod_names:
            out[f"{ns}/{n}"] = await stack.store.create(stack.key(ns, n), pod(n, ns))
    return out


async def list_all_pages(
    stack: Stack, key: str, limit: int, **kwargs: Any
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Follow continue tokens to the end; return (all items, every page)."""
    pages = []
    items: list[dict[str, Any]] = []
    token = ""
    for _ in range(1000):
        page = await stack.store.get_list(
            key, ListOptions(recursive=True, limit=limit, continue_=token, **kwargs)
        )
        pages.append(page)
        items.extend(page.items)
        token = page.continue_
        if not token:
            return items, pages
    raise AssertionError("pagination did not terminate")


# =======================================================================================
# create


async def test_create_sets_resource_version(stack: Stack) -> None:
    before = await stack.store.current_resource_version()
    out = await stack.store.create(stack.key("ns", "foo"), pod("foo"))
    assert rv(out) > before
    assert out["metadata"]["name"] == "foo"
    assert out["spec"] == {"nodeName": "node-1"}
    assert out["kind"] == "Pod"


async def test_create_does_not_mutate_input(stack: Stack) -> None:
    obj = pod("foo")
    original = copy.deepcopy(obj)
    await stack.store.create(stack.key("ns", "foo"), obj)
    assert obj == original


async def test_create_existing_key_already_exists(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    first = await stack.store.create(key, pod("foo", spec={"v": 1}))
    with pytest.raises(AlreadyExistsError) as exc:
        await stack.store.create(key, pod("foo", spec={"v": 2}))
    assert exc.value.code == 409
    got = await stack.store.get(key)
    assert got is not None and got["spec"] == {"v": 1} and rv(got) == rv(first)


async def test_create_with_resource_version_is_rejected(stack: Stack) -> None:
    obj = pod("foo")
    obj["metadata"]["resourceVersion"] = "1"
    with pytest.raises(StorageError) as exc:
        await stack.store.create(stack.key("ns", "foo"), obj)
    assert isinstance(exc.value, InvalidError | BadRequestError)
    assert exc.value.code in (400, 422)
    assert await stack.store.get(stack.key("ns", "foo"), ignore_not_found=True) is None


async def test_stored_object_has_no_resource_version(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    out = await stack.store.create(key, pod("foo"))
    got = await stack.store.get(key)
    assert rv(got) == rv(out)
    assert without_rv(got) == without_rv(out)
    raw, _ = await stack.kv.get(stack.bottom_key(key))
    assert raw is not None
    assert raw.mod_revision == rv(out)
    assert b"resourceVersion" not in raw.value


async def test_create_with_ttl_expires(stack: Stack) -> None:
    if not stack.supports_ttl:
        pytest.skip("stack has no TTL support")
    key = stack.key("ns", "ephemeral")
    keep = stack.key("ns", "keep")
    await stack.store.create(key, pod("ephemeral"), ttl=1)
    await stack.store.create(keep, pod("keep"))
    assert await stack.store.get(key) is not None

    async def gone() -> bool:
        return await stack.store.get(key, ignore_not_found=True) is None

    assert await wait_until(gone, within=20, interval=0.25), "object with ttl=1 never expired"
    with pytest.raises(NotFoundError):
        await stack.store.get(key)
    assert await stack.store.get(keep) is not None


# =======================================================================================
# get


async def test_get_consistent(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    created = await stack.store.create(key, pod("foo"))
    updated = await stack.store.guaranteed_update(key, set_spec(v=2))
    got = await stack.store.get(key, resource_version="")
    assert got is not None
    assert rv(got) == rv(updated) > rv(created)
    assert got["spec"]["v"] == 2


@pytest.mark.not_cached("a read at RV 0 may be served by a stale cache")
async def test_get_resource_version_zero(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    created = await stack.store.create(key, pod("foo"))
    got = await stack.store.get(key, resource_version="0")
    assert got is not None and rv(got) == rv(created)
    assert without_rv(got) == without_rv(created)


async def test_get_not_older_than(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    created = await stack.store.create(key, pod("foo"))
    got = await stack.store.get(key, resource_version=str(rv(created)))
    assert got is not None and rv(got) >= rv(created)
    updated = await stack.store.guaranteed_update(key, set_spec(v=2))
    # The state served for "at least N" is never older than N, and a read at the newest
    # RV sees the newest write.
    got = await stack.store.get(key, resource_version=str(rv(created)))
    assert got is not None and rv(got) >= rv(created)
    got = await stack.store.get(key, resource_version=str(rv(updated)))
    assert got is not None and rv(got) == rv(updated) and got["spec"]["v"] == 2


async def test_get_not_found(stack: Stack) -> None:
    with pytest.raises(NotFoundError) as exc:
        await stack.store.get(stack.key("ns", "missing"))
    assert exc.value.code == 404


async def test_get_ignore_not_found(stack: Stack) -> None:
    got = await stack.store.get(stack.key("ns", "missing"), ignore_not_found=True)
    assert not got


async def test_get_future_resource_version_too_large(stack: Stack) -> None:
    created = await stack.store.create(stack.key("ns", "foo"), pod("foo"))
    future = rv(created) + 1000
    with pytest.raises(TooLargeResourceVersionError) as exc:
        await stack.store.get(stack.key("ns", "foo"), resource_version=str(future))
    assert exc.value.code == 504


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5"])
async def test_get_invalid_resource_version_bad_request(stack: Stack, bad: str) -> None:
    await stack.store.create(stack.key("ns", "foo"), pod("foo"))
    with pytest.raises(BadRequestError) as exc:
        await stack.store.get(stack.key("ns", "foo"), resource_version=bad)
    assert exc.value.code == 400


async def test_consistent_get_sees_backend_write(stack: Stack) -> None:
    """A write that bypasses the stack (straight to the bottom KVStorage) is visible to a
    consistent read: the "" RV means quorum-fresh on every stack, cached or not."""
    key = stack.key("ns", "foo")
    written = await stack.bottom.create(stack.bottom_key(key), pod("foo", spec={"v": 7}))
    got = await stack.store.get(key, resource_version="")
    assert got is not None and got["spec"] == {"v": 7} and rv(got) == rv(written)


# =======================================================================================
# get_list


async def test_list_recursive_prefix_in_key_order(stack: Stack) -> None:
    await seed(stack, {"ns": ["c", "a", "b"], "other": ["z"]})
    last = await stack.store.current_resource_version()
    out = await stack.store.get_list(stack.ns_key("ns"), ListOptions(recursive=True))
    assert names(out.items) == ["a", "b", "c"]
    assert all(o["metadata"]["namespace"] == "ns" for o in out.items)
    assert out.resource_version >= last
    assert out.continue_ == ""


async def test_list_all_namespaces(stack: Stack) -> None:
    await seed(stack, {"b-ns": ["x"], "a-ns": ["y", "x"]})
    out = await stack.store.get_list(stack.prefix, ListOptions(recursive=True))
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in out.items] == [
        ("a-ns", "x"),
        ("a-ns", "y"),
        ("b-ns", "x"),
    ]


async def test_list_items_carry_their_own_resource_versions(stack: Stack) -> None:
    created = await seed(stack, {"ns": ["a", "b"]})
    updated = await stack.store.guaranteed_update(stack.key("ns", "a"), set_spec(v=2))
    out = await stack.store.get_list(stack.ns_key("ns"), ListOptions(recursive=True))
    by_name = {o["metadata"]["name"]: o for o in out.items}
    assert rv(by_name["a"]) == rv(updated)
    assert rv(by_name["b"]) == rv(created["ns/b"])
    assert out.resource_version >= rv(updated)


async def test_list_single_key_non_recursive(stack: Stack) -> None:
    await seed(stack, {"ns": ["foo", "foo-bar", "foobar"]})
    out = await stack.store.get_list(stack.key("ns", "foo"), ListOptions(recursive=False))
    assert names(out.items) == ["foo"]
    missing = await stack.store.get_list(stack.key("ns", "nope"), ListOptions(recursive=False))
    assert missing.items == []


async def test_list_does_not_return_string_prefix_siblings(stack: Stack) -> None:
    await seed(stack, {"ns": ["a"], "ns2": ["b"], "ns-x": ["c"]})
    out = await stack.store.get_list(stack.ns_key("ns"), ListOptions(recursive=True))
    assert names(out.items) == ["a"]
    # A trailing slash on the key lists the same subtree.
    out = await stack.store.get_list(stack.ns_key("ns") + "/", ListOptions(recursive=True))
    assert names(out.items) == ["a"]


async def test_list_empty_prefix(stack: Stack) -> None:
    await seed(stack, {"other": ["a"]})
    last = await stack.store.current_resource_version()
    out = await stack.store.get_list(stack.ns_key("empty"), ListOptions(recursive=True))
    assert out.items == []
    assert out.continue_ == ""
    assert out.resource_version >= last


@pytest.mark.not_cached("a list at RV 0 may be served by a stale cache")
async def test_list_resource_version_zero(stack: Stack) -> None:
    created = await seed(stack, {"ns": ["a", "b"]})
    out = await stack.store.get_list(
        stack.ns_key("ns"), ListOptions(resource_version="0", recursive=True)
    )
    assert names(out.items) == ["a", "b"]
    assert out.resource_version >= max(rv(o) for o in created.values())


async def test_list_consistent_sees_backend_write(stack: Stack) -> None:
    await seed(stack, {"ns": ["a"]})
    written = await stack.bottom.create(stack.bottom_key(stack.key("ns", "b")), pod("b"))
    out = await stack.store.get_list(
        stack.ns_key("ns"), ListOptions(resource_version="", recursive=True)
    )
    assert names(out.items) == ["a", "b"]
    assert out.resource_version >= rv(written)


@pytest.mark.parametrize("match", [ResourceVersionMatch.UNSET, NOT_OLDER])
async def test_list_not_older_than(stack: Stack, match: ResourceVersionMatch) -> None:
    created = await seed(stack, {"ns": ["a"]})
    a_rv = rv(created["ns/a"])
    b = await stack.store.create(stack.key("ns", "b"), pod("b"))
    out = await stack.store.get_list(
        stack.ns_key("ns"),
        ListOptions(resource_version=str(a_rv), resource_version_match=match, recursive=True),
    )
    assert out.resource_version >= a_rv
    # Not older than a's RV; at the newest RV the newest write must be there.
    assert "a" in names(out.items)
    out = await stack.store.get_list(
        stack.ns_key("ns"),
        ListOptions(resource_version=str(rv(b)), resource_version_match=match, recursive=True),
    )
    assert names(out.items) == ["a", "b"]
    assert out.resource_version >= rv(b)


async def test_list_future_resource_version_too_large(stack: Stack) -> None:
    created = await seed(stack, {"ns": ["a"]})
    future = str(rv(created["ns/a"]) + 1000)
    with pytest.raises(TooLargeResourceVersionError) as exc:
        await stack.store.get_list(
            stack.ns_key("ns"), ListOptions(resource_version=future, recursive=True)
        )
    assert exc.value.code == 504


async def test_list_exact_old_resource_version(stack: Stack) -> None:
    key_a = stack.key("ns", "a")
    a1 = await stack.store.create(key_a, pod("a", spec={"v": 1}))
    await stack.store.guaranteed_update(key_a, set_spec(v=2))
    await stack.store.create(stack.key("ns", "b"), pod("b"))
    out = await stack.store.get_list(
        stack.ns_key("ns"),
        ListOptions(resource_version=str(rv(a1)), resource_version_match=EXACT, recursive=True),
    )
    assert out.resource_version == rv(a1)
    assert names(out.items) == ["a"]
    assert out.items[0]["spec"]["v"] == 1
    assert rv(out.items[0]) == rv(a1)


async def test_list_exact_compacted_gone(stack: Stack) -> None:
    a = await stack.store.create(stack.key("ns", "a"), pod("a"))
    await stack.store.create(stack.key("ns", "b"), pod("b"))
    await stack.compact()
    with pytest.raises(GoneError) as exc:
        await stack.store.get_list(
            stack.ns_key("ns"),
            ListOptions(resource_version=str(rv(a)), resource_version_match=EXACT, recursive=True),
        )
    assert exc.value.code == 410


async def test_list_pagination(stack: Stack) -> None:
    layout = {"ns": [f"p{i:02d}" for i in range(7)]}
    await seed(stack, layout)
    await seed(stack, {"ns2": ["other"]})
    items, pages = await list_all_pages(stack, stack.ns_key("ns"), limit=3)
    assert names(items) == layout["ns"]
    assert [len(p.items) for p in pages] == [3, 3, 1]
    assert all(p.continue_ for p in pages[:-1])
    assert pages[-1].continue_ == ""
    assert {p.resource_version for p in pages} == {pages[0].resource_version}


async def test_list_pagination_is_a_snapshot(stack: Stack) -> None:
    """Every page is served at the first page's RV: later writes are not seen."""
    await seed(stack, {"ns": ["a", "b", "c", "d"]})
    first = await stack.store.get_list(stack.ns_key("ns"), ListOptions(recursive=True, limit=2))
    assert names(first.items) == ["a", "b"]
    await stack.store.create(stack.key("ns", "e"), pod("e"))
    await stack.store.guaranteed_update(stack.key("ns", "c"), set_spec(v=9))
    await stack.store.delete(stack.key("ns", "d"))
    second = await stack.store.get_list(
        stack.ns_key("ns"), ListOptions(recursive=True, limit=10, continue_=first.continue_)
    )
    assert names(second.items) == ["c", "d"]
    assert second.items[0]["spec"] == {"nodeName": "node-1"}
    assert second.resource_version == first.resource_version
    assert second.continue_ == ""


async def test_list_limit_not_reached(stack: Stack) -> None:
    await seed(stack, {"ns": ["a", "b"]})
    out = await stack.store.get_list(stack.ns_key("ns"), ListOptions(recursive=True, limit=5))
    assert names(out.items) == ["a", "b"]
    assert out.continue_ == ""
    assert out.remaining_item_count is None
    exact = await stack.store.get_list(stack.ns_key("ns"), ListOptions(recursive=True, limit=2))
    assert names(exact.items) == ["a", "b"]
    if exact.continue_:
        # Kubernetes may hand out a token for an exactly-full page; it leads to nothing.
        rest = await stack.store.get_list(
            stack.ns_key("ns"), ListOptions(recursive=True, limit=2, continue_=exact.continue_)
        )
        assert rest.items == [] and rest.continue_ == ""


async def test_list_remaining_item_count(stack: Stack) -> None:
    if not stack.remaining_item_count:
        pytest.skip("stack does not report remaining_item_count")
    await seed(stack, {"ns": [f"p{i}" for i in range(5)], "zz": ["x"]})
    items, pages = await list_all_pages(stack, stack.ns_key("ns"), limit=2)
    assert len(items) == 5
    assert [p.remaining_item_count for p in pages] == [3, 1, None]


@pytest.mark.not_cached(
    "the cacher serves every page of a list from the index snapshot it keeps for the list's "
    "RV, so backend compaction does not break the list; once the snapshot is evicted the "
    "store serves the page and 410s (tests/cacher covers that path)"
)
async def test_list_continue_compacted_gone(stack: Stack) -> None:
    await seed(stack, {"ns": ["a", "b", "c"]})
    first = await stack.store.get_list(stack.ns_key("ns"), ListOptions(recursive=True, limit=1))
    assert first.continue_
    await stack.store.create(stack.key("ns", "d"), pod("d"))
    await stack.compact()
    with pytest.raises(GoneError) as exc:
        await stack.store.get_list(
            stack.ns_key("ns"), ListOptions(recursive=True, limit=1, continue_=first.continue_)
        )
    assert exc.value.code == 410


@pytest.mark.parametrize("token", ["not-a-token!!", "e30", "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"])
async def test_list_malformed_continue_bad_request(stack: Stack, token: str) -> None:
    # "e30" is base64 of "{}", the last one of {"v":"meta.k8s.io/v1"} (no rv, no start).
    await seed(stack, {"ns": ["a", "b"]})
    with pytest.raises(BadRequestError) as exc:
        await stack.store.get_list(
            stack.ns_key("ns"), ListOptions(recursive=True, limit=1, continue_=token)
        )
    assert exc.value.code == 400


LABELLED = {
    "a": {"app": "web", "tier": "front"},
    "b": {"app": "db", "tier": "back"},
    "c": {"app": "web", "tier": "back"},
    "d": {"tier": "front"},
    "e": {},
    "f": {"app": "cache"},
}


async def seed_labelled(stack: Stack) -> None:
    for n, labels in LABELLED.items():
        await stack.store.create(stack.key("ns", n), pod(n, labels=labels))
    await stack.store.create(stack.key("other", "a"), pod("a", "other", labels={"app": "web"}))


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("app=web", ["a", "c"]),
        ("app==web", ["a", "c"]),
        ("app!=web", ["b", "d", "e", "f"]),
        ("app in (web,db)", ["a", "b", "c"]),
        ("app notin (web,db)", ["d", "e", "f"]),
        ("app", ["a", "b", "c", "f"]),
        ("!app", ["d", "e"]),
        ("app=web,tier=back", ["c"]),
        ("app=nothing", []),
    ],
)
async def test_list_label_selector(stack: Stack, label: str, expected: list[str]) -> None:
    await seed_labelled(stack)
    out = await stack.store.get_list(
        stack.ns_key("ns"), ListOptions(recursive=True, predicate=selector(label))
    )
    assert names(out.items) == expected


@pytest.mark.parametrize(
    ("key_ns", "field", "expected"),
    [
        ("ns", "metadata.name=b", [("ns", "b")]),
        ("ns", "metadata.name!=b", [("ns", "a"), ("ns", "c")]),
        (None, "metadata.namespace=other", [("other", "a")]),
        (None, "metadata.namespace!=other,metadata.name=a", [("ns", "a")]),
        (None, "metadata.name=a", [("ns", "a"), ("other", "a")]),
    ],
)
async def test_list_field_selector(
    stack: Stack, key_ns: str | None, field: str, expected: list[tuple[str, str]]
) -> None:
    await seed(stack, {"ns": ["a", "b", "c"], "other": ["a"]})
    key = stack.ns_key(key_ns) if key_ns else stack.prefix
    out = await stack.store.get_list(
        key, ListOptions(recursive=True, predicate=selector(field=field))
    )
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in out.items] == expected


async def test_list_selector_with_limit_paginates_matches(stack: Stack) -> None:
    # Matches are sparse among many non-matching keys, so pages must read ahead.
    for i in range(20):
        labels = {"app": "web"} if i % 4 == 1 else {"app": "db"}
        await stack.store.create(stack.key("ns", f"p{i:02d}"), pod(f"p{i:02d}", labels=labels))
    expected = [f"p{i:02d}" for i in range(20) if i % 4 == 1]
    items, pages = await list_all_pages(
        stack, stack.ns_key("ns"), limit=2, predicate=selector("app=web")
    )
    assert names(items) == expected
    assert all(0 < len(p.items) <= 2 for p in pages[:-1])
    assert all(o["metadata"]["labels"]["app"] == "web" for p in pages for o in p.items)
    assert {p.resource_version for p in pages} == {pages[0].resource_version}
    # A selector matching nothing still terminates with an empty result.
    items, _ = await list_all_pages(stack, stack.ns_key("ns"), limit=3, predicate=selector("x=y"))
    assert items == []


# =======================================================================================
# guaranteed_update


async def test_update_bumps_resource_version(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    created = await stack.store.create(key, pod("foo"))
    seen: list[dict[str, Any]] = []

    def fn(cur: dict[str, Any]) -> dict[str, Any]:
        seen.append(copy.deepcopy(cur))
        return set_spec(v=2)(cur)

    out = await stack.store.guaranteed_update(key, fn)
    assert rv(out) > rv(created)
    assert out["spec"] == {"nodeName": "node-1", "v": 2}
    # update_fn sees the current object, resourceVersion included.
    assert rv(seen[-1]) == rv(created)
    got = await stack.store.get(key)
    assert got is not None and rv(got) == rv(out) and got["spec"]["v"] == 2


async def test_update_async_update_fn(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    await stack.store.create(key, pod("foo"))

    async def fn(cur: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return set_spec(asynchronous=True)(cur)

    out = await stack.store.guaranteed_update(key, fn)
    assert out["spec"]["asynchronous"] is True


async def test_update_ignores_resource_version_set_by_update_fn(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    created = await stack.store.create(key, pod("foo"))

    def fn(cur: dict[str, Any]) -> dict[str, Any]:
        cur = set_spec(v=3)(cur)
        cur["metadata"]["resourceVersion"] = "1"
        return cur

    out = await stack.store.guaranteed_update(key, fn)
    assert rv(out) > rv(created)
    got = await stack.store.get(key)
    assert got is not None and rv(got) == rv(out)


async def test_update_concurrent_no_lost_update(stack: Stack) -> None:
    key = stack.key("ns", "counter")
    await stack.store.create(key, pod("counter", spec={"count": 0}))

    async def inc(cur: dict[str, Any]) -> dict[str, Any]:
        cur = copy.deepcopy(cur)
        await asyncio.sleep(0)  # give the others a chance to interleave
        cur["spec"]["count"] += 1
        return cur

    results = await asyncio.gather(*(stack.store.guaranteed_update(key, inc) for _ in range(10)))
    got = await stack.store.get(key)
    assert got is not None and got["spec"]["count"] == 10
    assert sorted(r["spec"]["count"] for r in results) == list(range(1, 11))
    assert len({rv(r) for r in results}) == 10


async def test_update_precondition_uid_conflict(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    created = await stack.store.create(key, pod("foo", uid="uid-1"))
    with pytest.raises(ConflictError) as exc:
        await stack.store.guaranteed_update(
            key, set_spec(v=2), preconditions=Preconditions(uid="uid-2")
        )
    assert exc.value.code == 409
    got = await stack.store.get(key)
    assert got is not None and rv(got) == rv(created)
    out = await stack.store.guaranteed_update(
        key, set_spec(v=2), preconditions=Preconditions(uid="uid-1")
    )
    assert out["spec"]["v"] == 2


async def test_update_precondition_resource_version_conflict(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    created = await stack.store.create(key, pod("foo"))
    second = await stack.store.guaranteed_update(key, set_spec(v=2))
    with pytest.raises(ConflictError):
        await stack.store.guaranteed_update(
            key, set_spec(v=3), preconditions=Preconditions(resource_version=str(rv(created)))
        )
    got = await stack.store.get(key)
    assert got is not None and got["spec"]["v"] == 2
    out = await stack.store.guaranteed_update(
        key, set_spec(v=3), preconditions=Preconditions(resource_version=str(rv(second)))
    )
    assert out["spec"]["v"] == 3


async def test_update_noop_writes_nothing(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    created = await stack.store.create(key, pod("foo"))
    out = await stack.store.guaranteed_update(key, lambda cur: copy.deepcopy(cur))
    assert rv(out) == rv(created)
    assert without_rv(out) == without_rv(created)
    got = await stack.store.get(key)
    assert got is not None and rv(got) == rv(created)
    raw, _ = await stack.kv.get(stack.bottom_key(key))
    assert raw is not None and raw.mod_revision == rv(created)


async def test_update_ignore_not_found_creates(stack: Stack) -> None:
    key = stack.key("ns", "new")
    received: list[dict[str, Any]] = []

    def fn(cur: dict[str, Any]) -> dict[str, Any]:
        received.append(cur)
        return pod("new", spec={"created": True})

    out = await stack.store.guaranteed_update(key, fn, ignore_not_found=True)
    assert received and received[0] == {}
    assert out["spec"] == {"created": True} and rv(out) > 0
    got = await stack.store.get(key)
    assert got is not None and rv(got) == rv(out)


async def test_update_missing_key_not_found(stack: Stack) -> None:
    called = []
    with pytest.raises(NotFoundError):
        await stack.store.guaranteed_update(
            stack.key("ns", "missing"), lambda cur: called.append(cur) or cur
        )
    assert called == []
    assert await stack.store.get(stack.key("ns", "missing"), ignore_not_found=True) is None


async def test_update_with_stale_suggestion(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    stale = await stack.store.create(key, pod("foo", spec={"count": 0}))
    fresh = await stack.store.guaranteed_update(key, set_spec(count=1))

    def inc(cur: dict[str, Any]) -> dict[str, Any]:
        cur = copy.deepcopy(cur)
        cur["spec"]["count"] += 1
        return cur

    out = await stack.store.guaranteed_update(key, inc, suggestion=stale)
    assert out["spec"]["count"] == 2
    assert rv(out) > rv(fresh)
    got = await stack.store.get(key)
    assert got is not None and got["spec"]["count"] == 2


async def test_update_stale_suggestion_noop_returns_current(stack: Stack) -> None:
    """A no-op against a stale suggestion must not return the stale object."""
    key = stack.key("ns", "foo")
    stale = await stack.store.create(key, pod("foo", spec={"v": 1}))
    fresh = await stack.store.guaranteed_update(key, set_spec(v=2))
    out = await stack.store.guaranteed_update(key, set_spec(v=2), suggestion=stale)
    assert rv(out) == rv(fresh)
    assert out["spec"]["v"] == 2


async def test_update_stale_suggestion_precondition_rechecked(stack: Stack) -> None:
    """Preconditions failing only against a stale suggestion are re-checked on a fresh
    read (the Kubernetes store re-reads before reporting a conflict)."""
    key = stack.key("ns", "foo")
    stale = await stack.store.create(key, pod("foo"))
    fresh = await stack.store.guaranteed_update(key, set_spec(v=2))
    out = await stack.store.guaranteed_update(
        key,
        set_spec(v=3),
        suggestion=stale,
        preconditions=Preconditions(resource_version=str(rv(fresh))),
    )
    assert out["spec"]["v"] == 3


async def test_update_suggestion_for_deleted_key(stack: Stack) -> None:
    """A suggestion for an object deleted since is not trusted: NotFound, nothing made."""
    key = stack.key("ns", "foo")
    stale = await stack.store.create(key, pod("foo"))
    await stack.store.delete(key)
    with pytest.raises(NotFoundError):
        await stack.store.guaranteed_update(key, set_spec(v=2), suggestion=stale)
    assert await stack.store.get(key, ignore_not_found=True) is None


class Refused(Exception):
    pass


async def test_update_fn_error_propagates(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    created = await stack.store.create(key, pod("foo"))

    def fn(cur: dict[str, Any]) -> dict[str, Any]:
        raise Refused("no")

    with pytest.raises(Refused):
        await stack.store.guaranteed_update(key, fn)
    got = await stack.store.get(key)
    assert got is not None and rv(got) == rv(created)
    assert await stack.store.current_resource_version() >= rv(created)


# =======================================================================================
# delete


async def test_delete_returns_last_object(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    await stack.store.create(key, pod("foo"))
    last = await stack.store.guaranteed_update(key, set_spec(v=2))
    out = await stack.store.delete(key)
    assert out["metadata"]["name"] == "foo"
    assert out["spec"]["v"] == 2
    assert rv(out) >= rv(last)
    with pytest.raises(NotFoundError):
        await stack.store.get(key)
    assert await stack.store.current_resource_version() > rv(last)


async def test_delete_not_found(stack: Stack) -> None:
    with pytest.raises(NotFoundError) as exc:
        await stack.store.delete(stack.key("ns", "missing"))
    assert exc.value.code == 404


async def test_delete_precondition_uid_conflict(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    await stack.store.create(key, pod("foo", uid="uid-1"))
    with pytest.raises(ConflictError):
        await stack.store.delete(key, preconditions=Preconditions(uid="uid-2"))
    assert await stack.store.get(key) is not None
    out = await stack.store.delete(key, preconditions=Preconditions(uid="uid-1"))
    assert out["metadata"]["uid"] == "uid-1"


async def test_delete_stale_resource_version_precondition_conflict(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    created = await stack.store.create(key, pod("foo"))
    current = await stack.store.guaranteed_update(key, set_spec(v=2))
    with pytest.raises(ConflictError) as exc:
        await stack.store.delete(
            key, preconditions=Preconditions(resource_version=str(rv(created)))
        )
    assert exc.value.code == 409
    got = await stack.store.get(key)
    assert got is not None and rv(got) == rv(current)
    await stack.store.delete(key, preconditions=Preconditions(resource_version=str(rv(current))))
    assert await stack.store.get(key, ignore_not_found=True) is None


async def test_delete_validation_error_propagates(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    created = await stack.store.create(key, pod("foo"))

    def refuse(cur: dict[str, Any]) -> None:
        raise Refused("keep it")

    with pytest.raises(Refused):
        await stack.store.delete(key, validate=refuse)
    got = await stack.store.get(key)
    assert got is not None and rv(got) == rv(created)


async def test_delete_validation_sees_current_object(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    await stack.store.create(key, pod("foo"))
    current = await stack.store.guaranteed_update(key, set_spec(v=5))
    seen: list[dict[str, Any]] = []

    async def validate(cur: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        seen.append(copy.deepcopy(cur))

    await stack.store.delete(key, validate=validate)
    assert seen and seen[-1]["spec"]["v"] == 5 and rv(seen[-1]) == rv(current)


async def test_delete_concurrent_exactly_one_succeeds(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    await stack.store.create(key, pod("foo"))
    results = await asyncio.gather(
        *(stack.store.delete(key) for _ in range(6)), return_exceptions=True
    )
    ok = [r for r in results if isinstance(r, dict)]
    errors = [r for r in results if not isinstance(r, dict)]
    assert len(ok) == 1, results
    assert all(isinstance(e, NotFoundError) for e in errors), errors


async def test_delete_then_recreate(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    first = await stack.store.create(key, pod("foo", uid="uid-1"))
    await stack.store.delete(key)
    second = await stack.store.create(key, pod("foo", uid="uid-2"))
    assert rv(second) > rv(first)
    got = await stack.store.get(key)
    assert got is not None and got["metadata"]["uid"] == "uid-2"


# =======================================================================================
# count, current_resource_version, ready


async def test_count(stack: Stack) -> None:
    await seed(stack, {"ns1": ["a", "b", "c"], "ns1x": ["d"], "ns2": ["e"]})
    assert await stack.store.count(stack.prefix) == 5
    assert await stack.store.count(stack.ns_key("ns1")) == 3
    assert await stack.store.count(stack.ns_key("empty")) == 0
    await stack.store.delete(stack.key("ns1", "a"))
    assert await stack.store.count(stack.ns_key("ns1")) == 2


async def test_current_resource_version_increases(stack: Stack) -> None:
    r0 = await stack.store.current_resource_version()
    created = await stack.store.create(stack.key("ns", "a"), pod("a"))
    r1 = await stack.store.current_resource_version()
    assert r1 >= rv(created) > r0
    updated = await stack.store.guaranteed_update(stack.key("ns", "a"), set_spec(v=1))
    r2 = await stack.store.current_resource_version()
    assert r2 >= rv(updated) > r1 - 1
    await stack.store.delete(stack.key("ns", "a"))
    assert await stack.store.current_resource_version() > rv(updated)


async def test_ready(stack: Stack) -> None:
    assert await stack.store.ready() is True


async def test_update_labels_visible_to_selector_list(stack: Stack) -> None:
    key = stack.key("ns", "foo")
    await stack.store.create(key, pod("foo", labels={"app": "db"}))
    await stack.store.guaranteed_update(key, set_labels({"app": "web"}))
    out = await stack.store.get_list(
        stack.ns_key("ns"), ListOptions(recursive=True, predicate=selector("app=web"))
    )
    assert names(out.items) == ["foo"]


# =======================================================================================
# conflicts resolved by retrying, corrupt data


async def test_update_retries_after_conflicting_write(stack: Stack) -> None:
    """A write landing between the read and the write makes update_fn run again on the
    fresh object; nothing is lost and no Conflict reaches the caller."""
    key = stack.key("ns", "foo")
    await stack.store.create(key, pod("foo", spec={"mine": 0, "theirs": 0}))
    calls: list[dict[str, Any]] = []

    async def fn(cur: dict[str, Any]) -> dict[str, Any]:
        calls.append(copy.deepcopy(cur))
        if len(calls) == 1:
            await stack.bottom.guaranteed_update(stack.bottom_key(key), set_spec(theirs=1))
        return set_spec(mine=1)(cur)

    out = await stack.store.guaranteed_update(key, fn)
    assert len(calls) == 2
    assert calls[1]["spec"]["theirs"] == 1 and rv(calls[1]) > rv(calls[0])
    assert out["spec"] == {"mine": 1, "theirs": 1}
    got = await stack.store.get(key)
    assert got is not None and got["spec"] == {"mine": 1, "theirs": 1} and rv(got) == rv(out)


async def test_delete_retries_after_conflicting_write(stack: Stack) -> None:
    """Delete re-reads, re-checks and re-validates when the object changed under it, and
    returns the state it actually deleted."""
    key = stack.key("ns", "foo")
    await stack.store.create(key, pod("foo"))
    seen: list[dict[str, Any]] = []

    async def validate(cur: dict[str, Any]) -> None:
        seen.append(copy.deepcopy(cur))
        if len(seen) == 1:
            await stack.bottom.guaranteed_update(stack.bottom_key(key), set_spec(v=2))

    out = await stack.store.delete(key, validate=validate)
    assert len(seen) == 2 and seen[1]["spec"]["v"] == 2
    assert out["spec"]["v"] == 2
    assert await stack.store.get(key, ignore_not_found=True) is None


async def test_delete_precondition_rechecked_after_conflicting_write(stack: Stack) -> None:
    """A UID precondition that held on the first read but not after a concurrent
    delete-and-recreate fails with Conflict, leaving the new object in place."""
    key = stack.key("ns", "foo")
    await stack.store.create(key, pod("foo", uid="uid-1"))
    calls = 0

    async def validate(cur: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await stack.bottom.delete(stack.bottom_key(key))
            await stack.bottom.create(stack.bottom_key(key), pod("foo", uid="uid-2"))

    with pytest.raises(ConflictError):
        await stack.store.delete(key, preconditions=Preconditions(uid="uid-1"), validate=validate)
    got = await stack.store.get(key)
    assert got is not None and got["metadata"]["uid"] == "uid-2"


async def test_list_paginated_at_old_resource_version(stack: Stack) -> None:
    """limit with an RV (and no match) reads every page at exactly that RV, as the
    Kubernetes store does for paginated lists."""
    created = await seed(stack, {"ns": ["a", "b", "c"]})
    at = rv(created["ns/c"])
    await stack.store.create(stack.key("ns", "aa"), pod("aa"))
    await stack.store.delete(stack.key("ns", "b"))
    first = await stack.store.get_list(
        stack.ns_key("ns"),
        ListOptions(
            resource_version=str(at), resource_version_match=EXACT, recursive=True, limit=2
        ),
    )
    assert names(first.items) == ["a", "b"]
    assert first.resource_version == at and first.continue_
    rest = await stack.store.get_list(
        stack.ns_key("ns"), ListOptions(recursive=True, limit=2, continue_=first.continue_)
    )
    assert names(rest.items) == ["c"]
    assert rest.resource_version == at and rest.continue_ == ""


@pytest.mark.not_cached("a watch cache skips values it cannot decode when it fills itself")
async def test_list_corrupt_value_is_an_error(stack: Stack) -> None:
    """A stored value that cannot be decoded fails the list (500), never silently drops."""
    await seed(stack, {"ns": ["a"]})
    res = await stack.kv.create(stack.bottom_key(stack.key("ns", "broken")), b"\x00not json")
    assert res.succeeded
    with pytest.raises(StorageError) as exc:
        await stack.store.get_list(stack.ns_key("ns"), ListOptions(recursive=True))
    assert exc.value.code == 500
