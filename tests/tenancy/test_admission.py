"""The shared stack refuses to store what it could not read back, and refuses every key
outside its resource, on every layer (upstream's `RunTestKeySchema`, as a property)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenantstore.backends.kv import KV, prefix_end
from tenantstore.backends.sqlite import SqliteKV
from tenantstore.storage import InvalidError, ListOptions, Storage
from tenantstore.store import KVStorage
from tenantstore.tenancy import SharedStorageFactory, project_scope

from .conftest import obj


async def _stored(kv: KV, prefix: str) -> list[str]:
    got = await kv.range(prefix, prefix_end(prefix))
    return [k.key for k in got.kvs]


@pytest.mark.parametrize("scope", ["p1", None])
async def test_an_object_without_uid_is_refused_before_anything_is_written(
    kv: KV, factory: SharedStorageFactory, prefix: str, scope: str | None
) -> None:
    store = factory.storage(prefix)
    no_uid = obj("a")
    del no_uid["metadata"]["uid"]
    with project_scope(scope):
        with pytest.raises(InvalidError) as err:
            await store.create(f"{prefix}/ns/a", no_uid)
        assert "metadata.uid" in err.value.message
        empty_uid = obj("a", uid="x")
        empty_uid["metadata"]["uid"] = ""
        with pytest.raises(InvalidError):
            await store.create(f"{prefix}/ns/a", empty_uid)
    assert await _stored(kv, prefix) == []


async def test_a_name_that_does_not_give_the_key_is_refused(
    kv: KV, factory: SharedStorageFactory, prefix: str
) -> None:
    store = factory.storage(prefix)
    with project_scope("p1"):
        for key, body in [
            (f"{prefix}/ns/a", obj("b")),  # another name
            (f"{prefix}/ns/a", obj("a", ns="other")),  # another namespace
            (f"{prefix}/a", obj("a")),  # namespaced object at a cluster-scoped key
        ]:
            with pytest.raises(InvalidError):
                await store.create(key, body)
    assert await _stored(kv, prefix) == []


async def test_an_update_that_drops_the_uid_is_refused_and_nothing_changes(
    factory: SharedStorageFactory, prefix: str
) -> None:
    store = factory.storage(prefix)
    with project_scope("p1"):
        made = await store.create(f"{prefix}/ns/a", obj("a", v="1"))

        def drop_uid(current: dict[str, Any]) -> dict[str, Any]:
            meta = {k: v for k, v in current["metadata"].items() if k != "uid"}
            return {**current, "metadata": meta, "data": {"v": "2"}}

        with pytest.raises(InvalidError):
            await store.guaranteed_update(f"{prefix}/ns/a", drop_uid)
        got = await store.get(f"{prefix}/ns/a")
    assert got is not None and got["data"] == {"v": "1"}
    assert got["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]


# -- the key schema, as a property, on the store, the cacher and the tenancy layer ---------

_segment = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=0, max_size=12
)


@st.composite
def _outside_keys(draw: st.DrawFn, prefix: str) -> str:
    """Keys that are not `prefix` and not below it: ancestors, siblings, other resources,
    relative and unclean paths."""
    kind = draw(st.sampled_from(["fixed", "sibling", "other", "relative", "climb"]))
    if kind == "fixed":
        return draw(st.sampled_from(["", ".", "..", "/", "//", prefix.rsplit("/", 1)[0]]))
    if kind == "sibling":
        return prefix + draw(st.text(alphabet="x-_.0", min_size=1, max_size=4)) + "/ns/a"
    if kind == "other":
        return "/registry/secrets/root/default/" + draw(_segment)
    if kind == "relative":
        return draw(_segment).lstrip("/")
    return f"{prefix}/ns/../../secrets/root/default/s1"


async def _every_operation_refuses(storage: Storage, key: str) -> None:
    calls = [
        lambda: storage.get(key),
        lambda: storage.get_list(key, ListOptions(recursive=True)),
        lambda: storage.get_list(key, ListOptions()),
        lambda: storage.watch(key, ListOptions(recursive=True)),
        lambda: storage.count(key),
        lambda: storage.create(key, obj("a")),
        lambda: storage.guaranteed_update(key, lambda o: o, ignore_not_found=True),
        lambda: storage.delete(key),
    ]
    for call in calls:
        with pytest.raises(InvalidError):
            await call()


PREFIX = "/registry/configmaps"


class _Stacks:
    """Every layer over one in-memory SQLite KV, on a private loop (hypothesis drives
    synchronous tests)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.kv = self.loop.run_until_complete(SqliteKV.open(":memory:"))
        self.factory = SharedStorageFactory(self.kv, [PREFIX], bookmark_interval=0)
        self.loop.run_until_complete(self.factory.start())
        self.layers: dict[str, tuple[Storage, str | None]] = {
            "store": (KVStorage(self.kv, owns_kv=False, resource_prefix=PREFIX), None),
            "cacher": (self.factory.cacher(PREFIX), None),
            "tenancy-project": (self.factory.storage(PREFIX), "p1"),
            "tenancy-root": (self.factory.storage(PREFIX), None),
        }

    def close(self) -> None:
        self.loop.run_until_complete(self.factory.stop())
        self.loop.run_until_complete(self.kv.close())
        self.loop.close()


@pytest.fixture(scope="module")
def stacks() -> Iterator[_Stacks]:
    s = _Stacks()
    try:
        yield s
    finally:
        s.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=_outside_keys(PREFIX))
def test_keys_outside_the_resource_are_refused_on_every_layer(stacks: _Stacks, key: str) -> None:
    for storage, scope in stacks.layers.values():

        async def run(storage: Storage = storage, scope: str | None = scope) -> None:
            with project_scope(scope):
                await _every_operation_refuses(storage, key)

        stacks.loop.run_until_complete(run())
    stored = stacks.loop.run_until_complete(stacks.kv.range("/", prefix_end("/")))
    assert stored.kvs == []
