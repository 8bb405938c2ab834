"""The key rewriter over the shared stack: scoping, errors, continue tokens, attacks."""

from __future__ import annotations

import asyncio
import base64

import orjson
import pytest
from prometheus_client import REGISTRY

from tenantstore.keys import InvalidProjectError
from tenantstore.storage import (
    AlreadyExistsError,
    BadRequestError,
    EventType,
    InvalidError,
    ListOptions,
    NotFoundError,
    QueueWatch,
    StorageError,
)
from tenantstore.storage.errors import GoneError, not_found
from tenantstore.storage.events import error_event
from tenantstore.tenancy import KeyRewriter, SharedStorageFactory, all_projects, project_scope

from .conftest import obj


def _token(rv: int, start: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _rejections(prefix: str) -> float:
    value = REGISTRY.get_sample_value(
        "tenantstore_continue_token_rejections_total", {"resource": prefix}
    )
    return value or 0.0


async def _names(store: object, key: str, project: str | None) -> list[str]:
    with project_scope(project):
        got = await store.get_list(key, ListOptions(recursive=True))  # type: ignore[attr-defined]
    return sorted(
        f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}" for o in got.items
    )


async def test_same_name_in_each_scope_is_separate(
    factory: SharedStorageFactory, prefix: str
) -> None:
    store = factory.storage(prefix)
    last = 0
    for project in ("p1", "p2", None):
        with project_scope(project):
            created = await store.create(f"{prefix}/ns/a", obj("a", who=str(project)))
            last = int(created["metadata"]["resourceVersion"])
    # Consistent GETs read the store, so wait for the cache before looking into it.
    await factory.cacher(prefix).wait_for_revision(last)
    for project in ("p1", "p2", None):
        with project_scope(project):
            got = await store.get(f"{prefix}/ns/a")
            assert got is not None and got["data"]["who"] == str(project)
            assert await store.count(prefix) == 1
            with pytest.raises(AlreadyExistsError) as err:
                await store.create(f"{prefix}/ns/a", obj("a"))
            assert "clusters" not in str(err.value) and "/root" not in str(err.value)
    # Consistent GETs are the store's: let the cache catch up before reading its keys.
    cacher = factory.cacher(prefix)
    rv = await cacher.current_resource_version()
    await cacher.get_list(prefix, ListOptions(resource_version=str(rv), recursive=True))
    keys = cacher.index.keys()
    assert keys == sorted(
        [f"{prefix}/clusters/p1/ns/a", f"{prefix}/clusters/p2/ns/a", f"{prefix}/root/ns/a"]
    )
    # Nothing tenant-related on the objects.
    with project_scope("p1"):
        got = await store.get(f"{prefix}/ns/a")
    assert got is not None and set(got) == {"apiVersion", "kind", "metadata", "data"}
    assert set(got["metadata"]) == {"name", "namespace", "uid", "resourceVersion"}


async def test_errors_name_the_callers_key_only(factory: SharedStorageFactory, prefix: str) -> None:
    store = factory.storage(prefix)
    with project_scope("p1"):
        with pytest.raises(NotFoundError) as nf:
            await store.get(f"{prefix}/ns/missing")
        assert str(nf.value) == f'key "{prefix}/ns/missing" not found'
        assert nf.value.key == f"{prefix}/ns/missing"
        assert nf.value.__context__ is None and nf.value.__cause__ is None
        assert "p1" not in str(nf.value.to_status())
        with pytest.raises(NotFoundError) as nf2:
            await store.delete(f"{prefix}/ns/missing")
        assert "clusters" not in str(nf2.value.to_status())
        with pytest.raises(NotFoundError) as nf3:
            await store.guaranteed_update(f"{prefix}/ns/missing", lambda o: o)
        assert "clusters" not in repr(nf3.value.__dict__)
        with pytest.raises(InvalidError) as bad:
            await store.get(f"{prefix}/ns/../../x")
        assert "clusters" not in str(bad.value)


def test_scrub_rewrites_every_scope_segment() -> None:
    rw = KeyRewriter(None, "/r/cm")  # type: ignore[arg-type]
    assert rw.scrub('key "/r/cm/clusters/p1/ns/a" not found') == 'key "/r/cm/ns/a" not found'
    assert rw.scrub("/r/cm/root/ns/a and /r/cm/clusters/p-2") == "/r/cm/ns/a and /r/cm"
    assert rw.scrub("/r/cmx/clusters/p1/a") == "/r/cmx/clusters/p1/a"
    assert rw.scrub("/r/cm/rooted/a") == "/r/cm/rooted/a"
    err = rw.scrub_error(GoneError("too old: /r/cm/clusters/p9/a", key="/r/cm/clusters/p9/a"))
    assert isinstance(err, GoneError) and err.code == 410
    assert err.message == "too old: /r/cm/a" and err.key == "/r/cm/a"


async def test_watch_error_events_are_scrubbed() -> None:
    class FakeInner:
        async def watch(self, key: str, opts: ListOptions) -> QueueWatch:
            w = QueueWatch()
            w.finish(error_event(not_found(key + "/x").to_status()))
            return w

    rw = KeyRewriter(FakeInner(), "/r/cm")  # type: ignore[arg-type]
    with project_scope("p1"):
        w = await rw.watch("/r/cm/ns", ListOptions(recursive=True))
    events = [ev async for ev in w]
    assert [e.type for e in events] == [EventType.ERROR]
    assert events[0].object["message"] == 'key "/r/cm/ns/x" not found'


async def test_keys_outside_the_resource_prefix_are_refused(
    factory: SharedStorageFactory, prefix: str
) -> None:
    """A storage built for one resource never reaches another's keys (upstream's
    `RunTestKeySchema`): ancestors, siblings and other resources are all a 422."""
    store = factory.storage(prefix)
    with project_scope("p1"):
        await store.create(f"{prefix}/ns/a", obj("a"))
    with project_scope("p2"):
        for outside in ("/", prefix.rsplit("/", 1)[0], prefix + "x", "/registry/secrets/root/ns/s"):
            with pytest.raises(InvalidError):
                await store.get_list(outside, ListOptions(recursive=True))
            with pytest.raises(InvalidError):
                await store.watch(outside, ListOptions(recursive=True))
            with pytest.raises(InvalidError):
                await store.count(outside)
            with pytest.raises(InvalidError):
                await store.get(outside)
            with pytest.raises(InvalidError):
                await store.delete(outside)
            with pytest.raises(InvalidError):
                await store.guaranteed_update(outside, lambda o: o)
        # The cache's out-of-scope keys cannot be named.
        for key in ("\x00unmapped/u", f"{prefix}/\x00", "relative/key", "", ".", ".."):
            with pytest.raises(InvalidError):
                await store.get(key)


async def test_all_projects_is_read_only_and_whole_resource(
    factory: SharedStorageFactory, prefix: str
) -> None:
    store = factory.storage(prefix)
    for project in ("p1", "p2", None):
        with project_scope(project):
            await store.create(f"{prefix}/ns/a", obj("a"))
    # An ordinary root request sees only root objects.
    assert await _names(store, prefix, None) == ["ns/a"]
    with project_scope(None):
        assert await store.count(prefix) == 1
    with all_projects():
        got = await store.get_list(prefix, ListOptions(recursive=True))
        assert len(got.items) == 3
        assert await store.count(prefix) == 3
        w = await store.watch(prefix, ListOptions(recursive=True, resource_version="0"))
        events = [await asyncio.wait_for(w.__anext__(), 5) for _ in range(3)]
        w.stop()
        assert {e.type for e in events} == {EventType.ADDED}
        # paginated, with its token checked against <prefix>/
        page = await store.get_list(prefix, ListOptions(recursive=True, limit=2))
        assert len(page.items) == 2 and page.continue_
        rest = await store.get_list(
            prefix, ListOptions(recursive=True, limit=2, continue_=page.continue_)
        )
        assert len(rest.items) == 1
        for call in (
            store.get(f"{prefix}/ns/a"),
            store.create(f"{prefix}/ns/b", obj("b")),
            store.delete(f"{prefix}/ns/a"),
            store.guaranteed_update(f"{prefix}/ns/a", lambda o: o),
            store.get_list(f"{prefix}/ns/a", ListOptions()),
            store.get_list(f"{prefix}/ns", ListOptions(recursive=True)),
            store.watch(f"{prefix}/ns/a", ListOptions()),
        ):
            with pytest.raises(BadRequestError):
                await call


async def test_continue_token_from_another_project_is_refused(
    factory: SharedStorageFactory, prefix: str
) -> None:
    """Tokens are bound to the scope that minted them (milo's `validateContinue`): one
    replayed in another project, or in the root scope, is a 400 and is counted."""
    store = factory.storage(prefix)
    with project_scope("p2"):
        for i in range(6):
            await store.create(f"{prefix}/ns/z{i}", obj(f"z{i}", secret="p2"))
        page = await store.get_list(prefix, ListOptions(recursive=True, limit=2))
        assert page.continue_
        # Same-scope paging keeps working.
        rest = await store.get_list(
            prefix, ListOptions(recursive=True, limit=10, continue_=page.continue_)
        )
        assert [o["metadata"]["name"] for o in rest.items] == ["z2", "z3", "z4", "z5"]
    with project_scope("p1"):
        for i in range(4):
            await store.create(f"{prefix}/ns/a{i}", obj(f"a{i}", secret="p1"))
    before = _rejections(prefix)
    for scope in ("p1", None):
        with project_scope(scope), pytest.raises(BadRequestError) as err:
            await store.get_list(
                prefix, ListOptions(recursive=True, limit=10, continue_=page.continue_)
            )
        assert err.value.message == "continue token does not belong to the current scope"
    assert _rejections(prefix) == before + 2


async def test_forged_continue_tokens_fail_with_400(
    factory: SharedStorageFactory, prefix: str
) -> None:
    store = factory.storage(prefix)
    with project_scope("p2"):
        await store.create(f"{prefix}/ns/secret", obj("secret", secret="p2"))
    with project_scope("p1"):
        await store.create(f"{prefix}/ns/a", obj("a", secret="p1"))
        await store.create(f"{prefix}/ns/b", obj("b", secret="p1"))
        page = await store.get_list(prefix, ListOptions(recursive=True, limit=1))
        rv = page.resource_version
        before = _rejections(prefix)
        forged = [
            page.continue_[:-3] + ("AAA" if not page.continue_.endswith("AAA") else "BBB"),
            page.continue_[:10] + "@@@@" + page.continue_[14:],
            page.continue_[: len(page.continue_) // 2],
            "x" * 9000,
            _token(rv, "/../clusters/p2/ns/secret"),
            _token(rv, "/../p2/ns/secret"),
            _token(rv, "/ns/../../../clusters/p2/ns/"),
            _token(rv, "/./x"),
            _token(rv, "/clusters/p2/"),
            _token(rv, "ns/a"),
            _token(rv, "/a\x00b"),
            _token(0, "/ns/a"),
            # Another project's keys, in every spelling, and a token in the unscoped
            # (relative to the list) form, which names no scope.
            _token(rv, "/clusters/p2/ns/secret"),
            _token(rv, "/clusters/p2"),
            _token(rv, f"{prefix}/clusters/p2/ns/a"),
            _token(rv, "/ns/a"),
            base64.urlsafe_b64encode(b'{"v":"meta.k8s.io/v1","rv":1}').decode(),
        ]
        for token in forged:
            with pytest.raises(BadRequestError) as err:
                await store.get_list(prefix, ListOptions(recursive=True, limit=5, continue_=token))
            assert err.value.code == 400
            # It may echo the client's own input, never a scoped storage key.
            assert f"{prefix}/clusters" not in err.value.message
        assert _rejections(prefix) == before + len(forged)
        # The caller's own token, re-encoded by hand, still resumes.
        got = await store.get_list(
            prefix,
            ListOptions(recursive=True, limit=5, continue_=_token(rv, "/clusters/p1/ns/a\x00")),
        )
        assert [o["metadata"]["name"] for o in got.items] == ["b"]


async def test_names_containing_clusters_stay_in_scope(
    factory: SharedStorageFactory, prefix: str
) -> None:
    store = factory.storage(prefix)
    with project_scope("p1"):
        await store.create(f"{prefix}/ns/a", obj("a", secret="p1"))
    with project_scope("p2"):
        # Keys that *look* like p1's storage keys are nested inside p2's scope.
        tricky = [
            (f"{prefix}/clusters/p1/ns/a", obj("p1/ns/a", ns="clusters", secret="p2")),
            (f"{prefix}/ns/x/clusters/p1", obj("x/clusters/p1", secret="p2")),
            (f"{prefix}/root/ns/a", obj("ns/a", ns="root", secret="p2")),
        ]
        for key, o in tricky:
            await store.create(key, o)
        for key, _ in tricky:
            got = await store.get(key)
            assert got is not None and got["data"]["secret"] == "p2"
        assert await store.count(prefix) == 3
    assert await _names(store, prefix, "p1") == ["ns/a"]
    assert await _names(store, prefix, None) == []
    with project_scope("p1"):
        got = await store.get(f"{prefix}/ns/a")
        assert got is not None and got["data"]["secret"] == "p1"
        with pytest.raises(NotFoundError):
            await store.get(f"{prefix}/clusters/p1/ns/a")


async def test_invalid_project_ids_never_reach_storage(
    factory: SharedStorageFactory, prefix: str
) -> None:
    for bad in ("a/b", "..", "P1", "", "p1/../p2"):
        with pytest.raises(InvalidProjectError), project_scope(bad):
            pass
    assert len(factory.cacher(prefix).index) == 0


async def test_watch_sees_only_its_scope(factory: SharedStorageFactory, prefix: str) -> None:
    store = factory.storage(prefix)
    with project_scope("p1"):
        w1 = await store.watch(prefix, ListOptions(recursive=True, resource_version="0"))
    with project_scope(None):
        w0 = await store.watch(f"{prefix}/ns", ListOptions(recursive=True))
    for project in ("p2", None, "p1", "p3"):
        with project_scope(project):
            await store.create(f"{prefix}/ns/a", obj("a", who=str(project)))
    with project_scope("p1"):
        await store.delete(f"{prefix}/ns/a")
    ev = await asyncio.wait_for(w1.__anext__(), 5)
    assert ev.type is EventType.ADDED and ev.object["data"]["who"] == "p1"
    ev = await asyncio.wait_for(w1.__anext__(), 5)
    assert ev.type is EventType.DELETED and ev.object["data"]["who"] == "p1"
    ev = await asyncio.wait_for(w0.__anext__(), 5)
    assert ev.type is EventType.ADDED and ev.object["data"]["who"] == "None"
    await asyncio.sleep(0.3)
    assert w1.pending() == 0  # type: ignore[attr-defined]
    assert all(e.type is EventType.BOOKMARK for e in _drain(w0))
    w1.stop()
    w0.stop()


def _drain(w: object) -> list[object]:
    out = []
    buf = getattr(w, "_inner", w)
    while buf.pending():  # type: ignore[attr-defined]
        out.append(buf._buf.popleft())  # type: ignore[attr-defined]
    return out


async def test_storage_errors_from_below_keep_their_class(
    factory: SharedStorageFactory, prefix: str
) -> None:
    store = factory.storage(prefix)
    with project_scope("p1"):
        await store.create(f"{prefix}/ns/a", obj("a"))
        with pytest.raises(StorageError) as err:
            await store.create(f"{prefix}/ns/a", obj("a"))
    assert isinstance(err.value, AlreadyExistsError)
    assert err.value.to_status()["message"] == f'key "{prefix}/ns/a" already exists'
