"""Isolation under random operation sequences (hypothesis), compared with a model.

Each example runs a generated sequence of creates, updates, deletes, gets, paginated lists
(sometimes resuming with another scope's continue token) and counts across three projects and
root, with a watch open in every scope, against a fresh shared stack. Every object carries its
scope in ``data.who`` (set by the test, not by tenantstore), so anything seen in the wrong scope
is caught. Checks: each read, list page, count and watch event shows only the caller's objects,
lists equal the model exactly, errors never name a scope, and each watch replays to the model.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenantstore.backends.kv import KV
from tenantstore.storage import (
    AlreadyExistsError,
    BadRequestError,
    EventType,
    ListOptions,
    NotFoundError,
    StorageError,
    Watch,
)
from tenantstore.tenancy import SharedStorageFactory, project_scope

from .conftest import obj, wait_until

SCOPES: list[str | None] = ["p1", "p2", "p3", None]
NAMES = ["a", "b", "c", "d", "e"]
NAMESPACES = ["ns1", "ns2"]

scope_idx = st.integers(0, len(SCOPES) - 1)
target = st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(NAMES))
op = st.one_of(
    st.tuples(st.just("create"), scope_idx, target),
    st.tuples(st.just("create"), scope_idx, target),
    st.tuples(st.just("update"), scope_idx, target),
    st.tuples(st.just("delete"), scope_idx, target),
    st.tuples(st.just("get"), scope_idx, target),
    st.tuples(st.just("list"), scope_idx, st.sampled_from([None, *NAMESPACES]), st.integers(0, 3)),
    st.tuples(st.just("steal"), scope_idx, scope_idx, st.integers(1, 2)),
    st.tuples(st.just("count"), scope_idx, st.sampled_from([None, *NAMESPACES])),
)


def _who(scope: str | None) -> str:
    return scope or "<root>"


def _check_error(exc: StorageError) -> None:
    text = str(exc.to_status())
    assert "/clusters/" not in text and "/root/" not in text, text


class Model:
    def __init__(self) -> None:
        self.objects: dict[str | None, dict[tuple[str, str], str]] = {s: {} for s in SCOPES}
        self.version = 0

    def names(self, scope: str | None, ns: str | None) -> list[tuple[str, str]]:
        return sorted(k for k in self.objects[scope] if ns is None or k[0] == ns)


async def _run(kv: KV, ops: list[tuple[Any, ...]]) -> None:
    prefix = f"/iso-{uuid.uuid4().hex[:10]}/configmaps"
    factory = SharedStorageFactory(kv, [prefix], bookmark_interval=0.2)
    await factory.start()
    watches: dict[str | None, Watch] = {}
    try:
        store = factory.storage(prefix)
        model = Model()
        for scope in SCOPES:
            with project_scope(scope):
                watches[scope] = await store.watch(prefix, ListOptions(recursive=True))

        def seen_ok(scope: str | None, o: dict[str, Any]) -> None:
            assert o["data"]["who"] == _who(scope), (scope, o)

        async def full_list(scope: str | None, ns: str | None, limit: int) -> list[Any]:
            key = f"{prefix}/{ns}" if ns else prefix
            items: list[Any] = []
            token = ""
            while True:
                page = await store.get_list(
                    key, ListOptions(recursive=True, limit=limit, continue_=token)
                )
                for o in page.items:
                    seen_ok(scope, o)
                items.extend(page.items)
                token = page.continue_
                if not token:
                    return items

        tokens: dict[str | None, str] = {}
        for step in ops:
            kind, si = step[0], step[1]
            scope = SCOPES[si]
            with project_scope(scope):
                try:
                    if kind in ("create", "update", "delete", "get"):
                        ns, name = step[2]
                        key = f"{prefix}/{ns}/{name}"
                        present = (ns, name) in model.objects[scope]
                        if kind == "create":
                            model.version += 1
                            v = str(model.version)
                            try:
                                await store.create(key, obj(name, ns=ns, who=_who(scope), v=v))
                                assert not present
                                model.objects[scope][(ns, name)] = v
                            except AlreadyExistsError as exc:
                                assert present
                                _check_error(exc)
                        elif kind == "update":
                            model.version += 1
                            v = str(model.version)

                            def set_v(
                                cur: dict[str, Any], v: str = v, scope: str | None = scope
                            ) -> dict[str, Any]:
                                seen_ok(scope, cur)
                                cur["data"]["v"] = v
                                return cur

                            try:
                                out = await store.guaranteed_update(key, set_v)
                                seen_ok(scope, out)
                                assert present
                                model.objects[scope][(ns, name)] = v
                            except NotFoundError as exc:
                                assert not present
                                _check_error(exc)
                        elif kind == "delete":
                            try:
                                out = await store.delete(key)
                                seen_ok(scope, out)
                                assert present
                                del model.objects[scope][(ns, name)]
                            except NotFoundError as exc:
                                assert not present
                                _check_error(exc)
                        else:
                            got = await store.get(key, ignore_not_found=True)
                            if present:
                                assert got is not None
                                seen_ok(scope, got)
                                assert got["data"]["v"] == model.objects[scope][(ns, name)]
                            else:
                                assert got is None
                    elif kind == "list":
                        ns, limit = step[2], step[3]
                        items = await full_list(scope, ns, limit)
                        got_names = sorted(
                            (o["metadata"]["namespace"], o["metadata"]["name"]) for o in items
                        )
                        assert got_names == model.names(scope, ns)
                        for o in items:
                            k = (o["metadata"]["namespace"], o["metadata"]["name"])
                            assert o["data"]["v"] == model.objects[scope][k]
                        page = await store.get_list(prefix, ListOptions(recursive=True, limit=1))
                        if page.continue_:
                            tokens[scope] = page.continue_
                    elif kind == "steal":
                        # Resume a list with a token another scope was given.
                        other = SCOPES[step[2]]
                        token = tokens.get(other)
                        if token:
                            try:
                                page = await store.get_list(
                                    prefix,
                                    ListOptions(recursive=True, limit=step[3], continue_=token),
                                )
                                for o in page.items:
                                    seen_ok(scope, o)
                            except (BadRequestError, StorageError) as exc:
                                assert exc.code in (400, 410), exc
                                _check_error(exc)
                    elif kind == "count":
                        ns = step[2]
                        key = f"{prefix}/{ns}" if ns else prefix
                        # Cacher.count reads the index without a freshness wait: sync first.
                        await store.get_list(key, ListOptions(recursive=True, limit=1))
                        assert await store.count(key) == len(model.names(scope, ns))
                except StorageError as exc:
                    _check_error(exc)
                    raise

        # Every watch replays exactly its scope's final state, and nothing else.
        for scope, w in watches.items():
            state: dict[tuple[str, str], str] = {}
            want = model.objects[scope]

            async def drained(
                w: Watch = w,
                state: dict[tuple[str, str], str] = state,
                scope: str | None = scope,
                want: dict[Any, str] = want,
            ) -> bool:
                while w.pending():
                    ev = await w.__anext__()
                    if ev.type is EventType.BOOKMARK:
                        continue
                    assert ev.type is not EventType.ERROR, ev
                    seen_ok(scope, ev.object)
                    k = (ev.object["metadata"]["namespace"], ev.object["metadata"]["name"])
                    if ev.type is EventType.DELETED:
                        state.pop(k, None)
                    else:
                        state[k] = ev.object["data"]["v"]
                return state == want

            await wait_until(drained, within=10)
    finally:
        for w in watches.values():
            w.stop()
        await factory.stop()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(op, min_size=30, max_size=60))
async def test_random_operations_never_cross_scopes(kv: KV, ops: list[tuple[Any, ...]]) -> None:
    await asyncio.wait_for(_run(kv, ops), timeout=60)
