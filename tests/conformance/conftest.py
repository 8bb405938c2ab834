"""The conformance suite's fixtures: one suite, many storage stacks.

A *stack* is a `Storage` under test built over a real KV (the `kv` fixture of
`tests/conftest.py`, a fresh SQLite file or a client of the session's etcd). Stacks are
registered by name in `STACKS`; every test that asks for `stack` (or `store`) runs once
per (stack, KV backend) pair, with ids like `kv-sqlite` and `kv-etcd`.

Adding a stack (the cacher, a tenancy decorator inside a project scope, ...):

    @register_stack("cacher")
    @contextlib.asynccontextmanager
    async def cacher_stack(kv, key_prefix):
        kv_store = KVStorage(kv, owns_kv=False)
        cacher = Cacher(kv_store, ...)
        try:
            yield Stack(name="cacher", store=cacher, bottom=kv_store, kv=kv,
                        prefix=f"{key_prefix}/pods", cached=True)
        finally:
            await cacher.close()
            await kv_store.close()

A builder that needs state around the test body (e.g. a context variable holding the
project scope) sets it before `yield` and resets it after; async fixtures share the test's
context (pytest-asyncio propagates context variables set in async fixtures).

`TENANTSTORE_STACKS` filters what runs: a comma-separated list of stack names ("kv") or
full ids ("kv-etcd").

Semantics that legitimately differ on a cached stack (a read at RV "0" may be served from
a slightly stale cache) are *marked* on the tests with `@pytest.mark.not_cached(reason)`;
those tests are skipped, not weakened, on stacks with `cached=True`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import pytest

from tenantstore.backends.kv import KV
from tenantstore.storage import Storage
from tests.conftest import BACKENDS

# ---------------------------------------------------------------------------------------
# the Stack handed to tests


@dataclass
class Stack:
    """One storage stack under test, and what tests need to drive it."""

    name: str
    # The Storage under test.
    store: Storage
    # The bare KVStorage at the bottom of the stack, for writes "behind the cache's back".
    bottom: Storage
    # The raw KV (compaction, raw value checks).
    kv: KV
    # The resource key prefix tests use, e.g. "/registry-1a2b/pods".
    prefix: str
    # True when reads at RV "0" (and watches from "0") may be served from a cache.
    cached: bool = False
    # The stack reports ObjectList.remaining_item_count for unfiltered paginated lists.
    remaining_item_count: bool = True
    # The stack supports create(..., ttl=...).
    supports_ttl: bool = True
    # Maps a key as the store under test sees it to the key in `bottom` (and in `kv`: a
    # tenancy decorator rewrites keys; identity otherwise).
    bottom_key: Callable[[str], str] = field(default=lambda key: key)
    # Overrides the default compaction (the KV's current revision).
    compact_fn: Callable[[], Awaitable[int]] | None = None
    # The revision the stack's cache has reached (cached stacks): `compact` waits for it.
    cache_revision: Callable[[], int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self, namespace: str, name: str) -> str:
        return f"{self.prefix}/{namespace}/{name}"

    def ns_key(self, namespace: str) -> str:
        return f"{self.prefix}/{namespace}"

    async def compact(self) -> int:
        """Compact the underlying KV at its current revision; return that revision.

        Every revision older than the returned one is gone afterwards (reads at it: 410).
        """
        if self.compact_fn is not None:
            return await self.compact_fn()
        rev = await self.kv.current_revision()
        await self._cache_reaches(rev)
        await self.kv.compact(rev)
        return rev

    async def _cache_reaches(self, rev: int) -> None:
        """A cache compacted past events its backend watch has yet to deliver re-lists
        and ends its watchers with 410, as upstream's would; real compaction runs far
        behind the head (`--compaction-interval`), so the tests compact only what the
        cache has seen, as a real server does."""
        if self.cache_revision is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while self.cache_revision() < rev and loop.time() < deadline:
            await asyncio.sleep(0.01)


StackBuilder = Callable[[KV, str], AbstractAsyncContextManager[Stack]]


@dataclass(frozen=True)
class StackSpec:
    builder: StackBuilder
    # KV backends this stack runs over (default: all of the session's).
    backends: tuple[str, ...] | None = None


STACKS: dict[str, StackSpec] = {}


def register_stack(
    name: str, *, backends: tuple[str, ...] | None = None
) -> Callable[[StackBuilder], StackBuilder]:
    """Register a stack builder under `name` (a decorator)."""

    def deco(builder: StackBuilder) -> StackBuilder:
        if name in STACKS:
            raise ValueError(f"stack {name!r} registered twice")
        STACKS[name] = StackSpec(builder, backends)
        return builder

    return deco


# ---------------------------------------------------------------------------------------
# the stacks


@register_stack("kv")
@contextlib.asynccontextmanager
async def kv_stack(kv: KV, key_prefix: str) -> AsyncIterator[Stack]:
    """KVStorage directly over the KV: the reference semantics."""
    from tenantstore.store import KVStorage

    prefix = f"{key_prefix}/pods"
    # Bound to its resource, as a server's store is (upstream's `RunTestKeySchema`).
    store = KVStorage(kv, owns_kv=False, resource_prefix=prefix)
    try:
        yield Stack(name="kv", store=store, bottom=store, kv=kv, prefix=prefix)
    finally:
        await store.close()


@register_stack("cacher")
@contextlib.asynccontextmanager
async def cacher_stack(kv: KV, key_prefix: str) -> AsyncIterator[Stack]:
    """The shared watch cache over KVStorage, as Kubernetes runs its store tests."""
    from tenantstore.cacher import Cacher
    from tenantstore.store import KVStorage

    prefix = f"{key_prefix}/pods"
    kv_store = KVStorage(kv, owns_kv=False, skip_corrupt=True, resource_prefix=prefix)
    cacher = Cacher(kv_store, prefix, bookmark_interval=0.5)
    await cacher.start()
    await asyncio.wait_for(cacher.wait_ready(), 10)
    try:
        yield Stack(
            name="cacher",
            store=cacher,
            bottom=kv_store,
            kv=kv,
            prefix=prefix,
            cached=True,
            cache_revision=lambda: cacher.resource_version,
        )
    finally:
        await cacher.stop()
        await kv_store.close()


def _cache_revision(factory: Any, prefix: str) -> int:
    from tenantstore.tenancy import SharedStorageFactory

    assert isinstance(factory, SharedStorageFactory)
    return factory.cacher(prefix).resource_version


def _tenancy(name: str, scope: str | None) -> StackBuilder:
    @contextlib.asynccontextmanager
    async def build(kv: KV, key_prefix: str) -> AsyncIterator[Stack]:
        """The whole tenancy path (key rewriter, shared cacher with the tenant key
        function, framing transformer and tenant codec), every call in `scope`."""
        from tests.tenancy.stack import tenancy_stack

        async with tenancy_stack(kv, key_prefix, scope) as s:
            yield Stack(
                name=name,
                store=s.store,
                bottom=s.bottom,
                kv=kv,
                prefix=s.prefix,
                cached=True,
                bottom_key=s.scoped,
                cache_revision=lambda: _cache_revision(s.factory, s.prefix),
            )

    return build


register_stack("tenancy-project")(_tenancy("tenancy-project", "p1"))
register_stack("tenancy-root")(_tenancy("tenancy-root", None))


# ---------------------------------------------------------------------------------------
# parametrization


def stack_params() -> list[Any]:
    """(stack name, KV backend) pairs, filtered by TENANTSTORE_STACKS."""
    wanted = {w.strip() for w in os.environ.get("TENANTSTORE_STACKS", "").split(",") if w.strip()}
    params = []
    for name, spec in STACKS.items():
        for backend in BACKENDS:
            if spec.backends is not None and backend not in spec.backends:
                continue
            ident = f"{name}-{backend}"
            if wanted and name not in wanted and ident not in wanted:
                continue
            params.append(pytest.param(name, backend, id=ident))
    return params


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "not_cached(reason): the scenario's semantics do not hold on a cached stack "
        "(skipped where Stack.cached is True)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Parametrize the stack name and the upstream `kv` fixture (indirectly) together, so
    # ids read "kv-sqlite". Added as a mark so pytest's fixture parametrization of `kv`
    # (sqlite/etcd) defers to it instead of multiplying.
    if "stack_name" not in metafunc.fixturenames:
        return
    params = stack_params()
    if not params:
        params = [pytest.param(None, None, id="no-stack", marks=pytest.mark.skip("no stack"))]
    metafunc.definition.add_marker(
        pytest.mark.parametrize(("stack_name", "kv"), params, indirect=True)
    )


@pytest.fixture
def stack_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def stack(
    request: pytest.FixtureRequest, stack_name: str, kv: KV, key_prefix: str
) -> AsyncIterator[Stack]:
    spec = STACKS[stack_name]
    async with spec.builder(kv, key_prefix) as built:
        marker = request.node.get_closest_marker("not_cached")
        if marker is not None and built.cached:
            reason = marker.args[0] if marker.args else "not applicable to a cached stack"
            pytest.skip(f"not_cached: {reason}")
        yield built


@pytest.fixture
def store(stack: Stack) -> Storage:
    return stack.store
