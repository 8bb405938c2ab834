"""Framing transformer, tenant codec, tenant map and key function; values planted in the KV."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tenantstore.backends.kv import KV
from tenantstore.codec import JSONCodec
from tenantstore.frames import frame
from tenantstore.keys import scoped_key
from tenantstore.storage import InternalError, ListOptions, NotFoundError, StorageError
from tenantstore.store import KVStorage
from tenantstore.tenancy import (
    UNMAPPED,
    UNMAPPED_PREFIX,
    FramingTransformer,
    KeyDivergedError,
    SharedStorageFactory,
    TenantCodec,
    TenantMap,
    all_projects,
    object_key,
    project_scope,
    tenant_key_func,
)
from tenantstore.transformers import IDENTITY, AESGCMTransformer

from .conftest import obj, wait_until

P = "/r/cm"


def test_framing_roundtrip_and_strip() -> None:
    t = FramingTransformer(IDENTITY)
    framed, stale = t.from_storage(b'{"a":1}', "/r/cm/clusters/p1/ns/a")
    assert framed == frame(b"/r/cm/clusters/p1/ns/a", b'{"a":1}') and not stale
    assert t.to_storage(framed, "/r/cm/clusters/p1/ns/a") == b'{"a":1}'
    assert t.to_storage(b'{"a":1}', "/k") == b'{"a":1}'
    with pytest.raises(InternalError):
        t.to_storage(b"\x7ftsk\x01\x00\x00\x00\xff/k", "/k")
    # A stored value carrying a frame (planted) is refused on the way out.
    with pytest.raises(InternalError):
        t.from_storage(frame(b"/r/cm/clusters/p2/ns/a", b"{}"), "/r/cm/clusters/p1/ns/a")


def test_framing_over_aes_binds_the_key() -> None:
    t = FramingTransformer(AESGCMTransformer([("k1", b"0" * 32)]))
    stored = t.to_storage(b'{"a":1}', "/r/cm/clusters/p1/ns/a")
    framed, _ = t.from_storage(stored, "/r/cm/clusters/p1/ns/a")
    assert framed == frame(b"/r/cm/clusters/p1/ns/a", b'{"a":1}')
    with pytest.raises(InternalError):
        t.from_storage(stored, "/r/cm/clusters/p2/ns/a")


def test_codec_records_owner_and_nothing_on_the_object() -> None:
    m = TenantMap(P)
    codec = TenantCodec(JSONCodec(), m, P)
    body = JSONCodec().encode(obj("a", uid="u1"))
    got = codec.decode(frame(b"/r/cm/clusters/p1/ns/a", body), 7)
    assert got == {
        **obj("a", uid="u1"),
        "metadata": {**obj("a", uid="u1")["metadata"], "resourceVersion": "7"},
    }
    assert m.owner("u1") == "p1"
    codec.decode(frame(b"/r/cm/root/a", JSONCodec().encode(obj("a", ns=None, uid="u2"))), 8)
    assert m.owner("u2") is None
    # Unframed: plain decode, nothing recorded.
    codec.decode(JSONCodec().encode(obj("a", uid="u3")), 9)
    assert m.owner("u3") is UNMAPPED
    # A corrupt frame is an error, never a plain decode.
    with pytest.raises(InternalError):
        codec.decode(b"\x7ftsk\x01\x00\x00\x00\xff/r/cm/clusters/p1/ns/a{}", 1)
    with pytest.raises(InternalError):
        codec.decode(b"\x7fXXXX", 1)


def _refused(prefix: str) -> float:
    got = REGISTRY.get_sample_value("tenantstore_tenant_map_refused_total", {"resource": prefix})
    return got or 0.0


def test_map_rules_and_key_func() -> None:
    m = TenantMap(P)
    kf = tenant_key_func(m)
    a = obj("a", uid="ua")
    assert m.record("/r/cm/clusters/p1/ns/a", a)
    assert kf(a) == "/r/cm/clusters/p1/ns/a" == object_key(P, "p1", a)
    assert kf(a, "/r/cm/clusters/p1/ns/a") == "/r/cm/clusters/p1/ns/a"
    # Same scope again: fine. Another scope: refused; the first claim keeps the uid, and
    # the key function refuses the other record by its storage key.
    assert m.record(b"/r/cm/clusters/p1/ns/a", a)
    assert not m.record("/r/cm/clusters/p2/ns/a", a)
    assert m.owner("ua") == "p1"
    assert kf(a, "/r/cm/clusters/p1/ns/a") == "/r/cm/clusters/p1/ns/a"
    with pytest.raises(KeyDivergedError):
        kf(a, "/r/cm/clusters/p2/ns/a")
    # Storage key differing from the key predicted from the body: refused, not mapped.
    b = obj("b", uid="ub")
    assert not m.record("/r/cm/clusters/p1/ns/other", b)
    assert kf(b) == UNMAPPED_PREFIX + "ub"
    # Keys naming no valid scope: not recorded; the object is keyed out of every scope.
    c = obj("c", uid="uc")
    for key in ("/r/cm/ns/c", "/r/cm/clusters/P1/ns/c", "/r/cm/clusters//ns/c", "/other/c"):
        assert not m.record(key, c)
    assert kf(c) == UNMAPPED_PREFIX + "uc"
    # ... and such a key for a mapped uid changes nothing of the owner's entry.
    d = obj("d", uid="ud")
    m.record("/r/cm/root/ns/d", d)
    assert kf(d) == "/r/cm/root/ns/d"
    assert not m.record("/r/cm/garbage/ns/d", d)
    assert m.owner("ud") is None
    with pytest.raises(KeyDivergedError):
        kf(d, "/r/cm/garbage/ns/d")
    # No uid: refused.
    with pytest.raises(KeyDivergedError):
        kf({"metadata": {"name": "x"}})
    assert not m.record("/r/cm/root/x", {"metadata": {"name": "x"}})


def test_map_keeps_every_uid_form_exactly() -> None:
    """The map keeps canonical UUIDs as 16 bytes: a UID that only looks like one (upper
    case, no hyphens, one digit short) must stay a distinct UID, and every UID must come
    back as the very string recorded, or the reconciler would prune live entries."""
    m = TenantMap(P)
    canonical = "0f8fad5b-d9cb-469f-a165-70867728950e"
    lookalikes = [canonical.upper(), canonical.replace("-", ""), canonical[:-1], "ua"]
    assert m.record("/r/cm/clusters/p1/ns/a", obj("a", uid=canonical))
    for i, uid in enumerate(lookalikes):
        assert m.record(f"/r/cm/clusters/p2/ns/b{i}", obj(f"b{i}", uid=uid))
    assert m.uids() == {canonical, *lookalikes}
    assert m.owner(canonical) == "p1"
    assert {m.owner(u) for u in lookalikes} == {"p2"}
    # First claim wins on the compact form too; the refusal leaves the owner alone.
    assert not m.record("/r/cm/clusters/p2/ns/a", obj("a", uid=canonical))
    assert m.owner(canonical) == "p1"
    assert m.prune(live_uids={canonical, "ua"}) == 3
    assert m.uids() == {canonical, "ua"}
    assert m.forget(canonical) and not m.forget(canonical)
    assert m.owner(canonical) is UNMAPPED and canonical not in m
    assert 42 not in m
    # A prune's marks do not outlive it: "ua", live at the last prune, is not now.
    assert m.prune(live_uids=iter([canonical])) == 1
    assert len(m) == 0


def test_object_key_matches_rust_scoped_key() -> None:
    for project in ("p1", None):
        for o in (obj("a"), obj("a", ns=None), obj("x.y-z", ns="kube-system")):
            meta = o["metadata"]
            plain = (
                f"{P}/{meta['namespace']}/{meta['name']}"
                if "namespace" in meta
                else f"{P}/{meta['name']}"
            )
            assert object_key(P, project, o) == scoped_key(plain, P, project)


def test_grace_window_protects_young_entries() -> None:
    m = TenantMap(P)
    m.record("/r/cm/clusters/p1/ns/a", obj("a", uid="old"))
    m.begin_grace()
    m.record("/r/cm/clusters/p1/ns/b", obj("b", uid="young"))
    assert m.prune(live_uids=set()) == 1
    assert "young" in m and "old" not in m
    assert m.prune(live_uids=set()) == 1
    assert len(m) == 0


# -- values planted directly in the KV, bypassing tenantstore ------------------------------


async def _stack_names(store: object, prefix: str, project: str | None) -> list[str]:
    with project_scope(project):
        got = await store.get_list(prefix, ListOptions(recursive=True))  # type: ignore[attr-defined]
    return sorted(o["metadata"]["name"] for o in got.items)


async def test_raw_value_without_frame_is_only_its_keys_scope(
    kv: KV, factory: SharedStorageFactory, prefix: str
) -> None:
    store = factory.storage(prefix)
    raw = JSONCodec().encode(obj("raw", uid="raw-uid", secret="planted"))
    await kv.create(scoped_key(f"{prefix}/ns/raw", prefix, "p1"), raw)
    # A raw value whose body does not match its key, and one outside every scope.
    await kv.create(
        scoped_key(f"{prefix}/ns/liar", prefix, "p2"),
        JSONCodec().encode(obj("raw", uid="liar-uid", secret="planted")),
    )
    await kv.create(
        f"{prefix}/noscope/ns/x", JSONCodec().encode(obj("x", ns="ns", uid="noscope-uid"))
    )
    with project_scope("p3"):
        await store.create(f"{prefix}/ns/fence", obj("fence"))
    await wait_until(lambda: _refused(prefix) >= 1)
    assert await _stack_names(store, prefix, "p1") == ["raw"]  # its own key's scope
    assert await _stack_names(store, prefix, "p2") == []  # diverged: not cached
    assert await _stack_names(store, prefix, None) == []
    assert await _stack_names(store, prefix, "p3") == ["fence"]
    with all_projects():
        got = await store.get_list(prefix, ListOptions(recursive=True))
    assert sorted(o["metadata"]["name"] for o in got.items) == ["fence", "raw"]
    with project_scope("p2"), pytest.raises(NotFoundError):
        await store.get(f"{prefix}/ns/liar")
    index = factory.cacher(prefix).index
    assert index.keys(UNMAPPED_PREFIX) == [UNMAPPED_PREFIX + "noscope-uid"]
    key_errors = REGISTRY.get_sample_value(
        "tenantstore_cacher_key_errors_total", {"resource": prefix}
    )
    assert key_errors is not None and key_errors >= 1


async def test_value_copied_to_another_project_is_refused(
    kv: KV, factory: SharedStorageFactory, prefix: str
) -> None:
    store = factory.storage(prefix)
    with project_scope("p1"):
        await store.create(f"{prefix}/ns/a", obj("a", uid="victim", secret="p1"))
    stored, _ = await kv.get(scoped_key(f"{prefix}/ns/a", prefix, "p1"))
    assert stored is not None
    # Someone with backend access copies p1's bytes under p2's key.
    before = _refused(prefix)
    await kv.create(scoped_key(f"{prefix}/ns/a", prefix, "p2"), stored.value)
    await wait_until(lambda: _refused(prefix) > before)
    assert factory.tenant_map(prefix).owner("victim") == "p1"
    with project_scope("p2"):
        await store.create(f"{prefix}/ns/fence", obj("fence"))
        assert await store.get(f"{prefix}/ns/a", ignore_not_found=True) is None
    assert await _stack_names(store, prefix, "p2") == ["fence"]


async def test_frame_with_wrong_length_planted_in_kv(kv: KV, key_prefix: str) -> None:
    """A planted frame fails with an error on every path, never decoded for anyone."""
    prefix = f"{key_prefix}/configmaps"
    tenant_map = TenantMap(prefix)
    kv_store = KVStorage(
        kv,
        codec=TenantCodec(JSONCodec(), tenant_map, prefix),
        transformer=FramingTransformer(IDENTITY),
        owns_kv=False,
    )
    key = scoped_key(f"{prefix}/ns/a", prefix, "p2")
    body = JSONCodec().encode(obj("a", uid="planted"))
    for planted in (
        b"\x7ftsk\x01\x00\x00\x00\xff" + key.encode() + body,  # key length past the end
        b"\x7ftsk\x01\x00\x00\x00\x02" + key.encode() + body,  # key length too short
        frame(scoped_key(f"{prefix}/ns/a", prefix, "p1").encode(), body),  # valid, other key
    ):
        await kv.create(key, planted)
        with pytest.raises(StorageError) as err:
            await kv_store.get(key)
        assert err.value.code == 500
        with pytest.raises(StorageError):
            await kv_store.get_list(prefix, ListOptions(recursive=True))
        assert "planted" not in tenant_map
        cur, _ = await kv.get(key)
        assert cur is not None
        await kv.delete(key, expected_mod_revision=cur.mod_revision)
    await kv_store.close()


@pytest.mark.parametrize("plant_scope", ["p2", None])
async def test_a_planted_uid_never_blocks_the_owner(
    kv: KV, factory: SharedStorageFactory, prefix: str, plant_scope: str | None
) -> None:
    """A value planted in etcd that reuses another project's uid: the owner's writes keep
    showing up (they used to freeze in the cache), the plant is never visible, and nothing
    lingers once it is gone."""
    store = factory.storage(prefix)
    with project_scope("p1"):
        await store.create(f"{prefix}/ns/a", obj("a", uid="victim", v="1"))
        await store.create(f"{prefix}/ns/b", obj("b", uid="victim-b", v="1"))
    planted_key = scoped_key(f"{prefix}/ns/a", prefix, plant_scope)
    before = _refused(prefix)
    await kv.create(planted_key, JSONCodec().encode(obj("a", uid="victim", v="planted")))
    await wait_until(lambda: _refused(prefix) > before)

    async def cached(scope: str | None, name: str) -> dict[str, object] | None:
        with project_scope(scope):
            got = await store.get(
                f"{prefix}/ns/{name}", resource_version="0", ignore_not_found=True
            )
        return got

    with project_scope("p1"):
        await store.guaranteed_update(f"{prefix}/ns/a", lambda o: {**o, "data": {"v": "2"}})
    await wait_until(
        lambda: _is(cached("p1", "a"), lambda o: o is not None and o["data"] == {"v": "2"})
    )
    assert await cached(plant_scope, "a") is None
    with project_scope(plant_scope):
        assert await store.get(f"{prefix}/ns/a", ignore_not_found=True) is None  # consistent
        listed = await store.get_list(prefix, ListOptions(recursive=True))
        assert listed.items == []
    with project_scope("p1"):
        await store.delete(f"{prefix}/ns/a")
    await wait_until(lambda: _is(cached("p1", "a"), lambda o: o is None))
    with project_scope("p1"):
        names = [o["metadata"]["name"] for o in (await store.get_list(prefix, _ALL)).items]
    assert names == ["b"]
    # The plant goes; nothing of it lingers, and the owner's other object is untouched.
    cur, _ = await kv.get(planted_key)
    assert cur is not None
    await kv.delete(planted_key, expected_mod_revision=cur.mod_revision)
    with project_scope(plant_scope):
        assert (await store.get_list(prefix, _ALL)).items == []
    with project_scope("p1"):
        await store.guaranteed_update(f"{prefix}/ns/b", lambda o: {**o, "data": {"v": "3"}})
    await wait_until(
        lambda: _is(cached("p1", "b"), lambda o: o is not None and o["data"] == {"v": "3"})
    )


_ALL = ListOptions(recursive=True)


async def _is(got: Awaitable[Any], check: Callable[[Any], bool]) -> bool:
    return check(await got)


def _data_is(data: dict[str, str]) -> Callable[[Any], bool]:
    return lambda o: o is not None and o["data"] == data
