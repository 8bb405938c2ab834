"""Helpers for the conformance suite: object builders and bounded waits on watches."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from tenantstore.storage import EventType, ListOptions, Predicate, Storage, Watch, WatchEvent

# Every wait in the suite is bounded by a timeout; no test asserts on elapsed time.
TIMEOUT = 10.0


def pod(
    name: str,
    namespace: str = "ns",
    *,
    labels: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
    uid: str | None = None,
) -> dict[str, Any]:
    """A Kubernetes-shaped Pod dict without a resourceVersion."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid or str(uuid.uuid4())}
    if labels:
        meta["labels"] = dict(labels)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": dict(spec) if spec is not None else {"nodeName": "node-1"},
    }


def rv(obj: dict[str, Any] | None) -> int:
    """The object's metadata.resourceVersion as an int (it must be a decimal string)."""
    assert obj is not None
    value = obj["metadata"]["resourceVersion"]
    assert isinstance(value, str), f"resourceVersion must be a string, got {value!r}"
    assert value.isdigit(), f"resourceVersion must be a decimal revision, got {value!r}"
    return int(value)


def name_of(obj: dict[str, Any]) -> str:
    name: str = obj["metadata"]["name"]
    return name


def names(items: list[dict[str, Any]]) -> list[str]:
    return [name_of(o) for o in items]


def without_rv(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out.get("metadata", {}).pop("resourceVersion", None)
    return out


def list_opts(**kwargs: Any) -> ListOptions:
    return ListOptions(**kwargs)


def selector(label: str = "", field: str = "") -> Predicate:
    return Predicate.parse(label, field)


async def create(store: Storage, key: str, obj: dict[str, Any]) -> dict[str, Any]:
    return await store.create(key, obj)


def set_spec(**values: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An update function setting spec fields."""

    def fn(cur: dict[str, Any]) -> dict[str, Any]:
        cur = copy.deepcopy(cur)
        cur.setdefault("spec", {}).update(values)
        return cur

    return fn


def set_labels(labels: dict[str, str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def fn(cur: dict[str, Any]) -> dict[str, Any]:
        cur = copy.deepcopy(cur)
        cur["metadata"]["labels"] = dict(labels)
        return cur

    return fn


# -- watches ------------------------------------------------------------------------------


class WatchEnded(AssertionError):
    """The watch stream ended while the test still expected an event."""


async def next_event(w: Watch, within: float = TIMEOUT, *, bookmarks: bool = False) -> WatchEvent:
    """The next event (skipping BOOKMARKs unless `bookmarks`), or fail after `within` seconds."""

    async def pull() -> WatchEvent:
        while True:
            try:
                ev = await w.__anext__()
            except StopAsyncIteration:
                raise WatchEnded("the watch ended") from None
            if ev.type == EventType.BOOKMARK and not bookmarks:
                continue
            return ev

    try:
        return await asyncio.wait_for(pull(), within)
    except TimeoutError:
        raise AssertionError(f"no watch event within {within}s") from None


async def collect(w: Watch, n: int, within: float = TIMEOUT) -> list[WatchEvent]:
    """Exactly the next `n` non-bookmark events."""
    return [await next_event(w, within) for _ in range(n)]


async def collect_until(
    w: Watch, done: Callable[[list[WatchEvent]], bool], within: float = TIMEOUT
) -> list[WatchEvent]:
    """Non-bookmark events until `done(events)` holds."""
    events: list[WatchEvent] = []
    while not done(events):
        events.append(await next_event(w, within))
    return events


async def expect_end(w: Watch, within: float = TIMEOUT) -> list[WatchEvent]:
    """Drain the watch until it ends; return what was still delivered."""
    rest: list[WatchEvent] = []

    async def drain() -> None:
        async for ev in w:
            rest.append(ev)

    try:
        await asyncio.wait_for(drain(), within)
    except TimeoutError:
        raise AssertionError(f"the watch did not end within {within}s (got {rest})") from None
    return rest


def summary(ev: WatchEvent) -> tuple[str, str, int]:
    """(type, name, resourceVersion) of a non-bookmark event."""
    return (str(ev.type), name_of(ev.object), rv(ev.object))


async def fence(store: Storage, w: Watch, key: str, obj: dict[str, Any]) -> WatchEvent:
    """Create `obj` at `key` and return the watch's next event, which must be its ADDED.

    Used instead of "wait and see nothing": any event the watch should not have delivered
    before the fence shows up as the wrong next event.
    """
    created = await store.create(key, obj)
    ev = await next_event(w)
    assert ev.type == EventType.ADDED and name_of(ev.object) == name_of(obj), (
        f"expected the fence ADDED {name_of(obj)}, got {ev.type} {ev.object}"
    )
    assert rv(ev.object) == rv(created)
    return ev


async def wait_until(
    cond: Callable[[], Awaitable[bool]], within: float = TIMEOUT, interval: float = 0.1
) -> bool:
    """Poll `cond` until true; False if it never held within `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        if await cond():
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval)


# -- upstream store_tests.go ports ----------------------------------------------------------


def token_for(stack: Any, rel_key: str, resource_version: int, listed: str = "") -> str:
    """A continue token as a client builds it with upstream's `EncodeContinue`, resuming at
    `rel_key` (relative to the resource prefix: `"second/bar\x00"`) in a list of
    `listed` (relative too; "" for the whole resource).

    The store writes the start key relative to the listed prefix, as upstream does; the
    tenancy layer writes it relative to the resource prefix with the scope segment in it
    (`"clusters/p1/second/bar\x00"`: the binding it checks), so on tenancy stacks the
    token is built that way.
    """
    from tenantstore.storage import encode_continue

    nul = rel_key.endswith("\x00")
    full = stack.bottom_key(f"{stack.prefix}/{rel_key.rstrip(chr(0))}") + ("\x00" if nul else "")
    probe = f"{stack.prefix}/x"
    if stack.bottom_key(probe) != probe:
        base = stack.prefix + "/"
    else:
        base = f"{stack.prefix}/{listed}/" if listed else stack.prefix + "/"
    return encode_continue(full, base, resource_version)


async def increase_rv(stack: Any) -> int:
    """Upstream's `IncreaseRVFunc`: one write outside the resource's key range (the store's
    revision moves; no object of the resource changes). Returns the new revision."""
    res = await stack.kv.create(f"{stack.prefix}-bump/{uuid.uuid4()}", b"{}")
    revision: int = res.revision
    return revision


async def corrupt(stack: Any, key: str, value: bytes = b"{not json") -> int:
    """Overwrite the stored value of `key` with bytes no codec reads, behind every layer's
    back (upstream injects a failing transformer instead). Returns the write's revision."""
    raw, _ = await stack.kv.get(stack.bottom_key(key))
    assert raw is not None, f"{key} is not stored"
    res = await stack.kv.update(
        stack.bottom_key(key), value, expected_mod_revision=raw.mod_revision
    )
    assert res.succeeded
    revision: int = res.revision
    return revision
