"""The tenancy stack for the shared conformance suite (and the tenancy tests).

`tenancy_stack(kv, key_prefix, scope)` builds a factory over `kv` for the resource
`<key_prefix>/pods` and yields a `TenancyStack` whose `store` runs every call inside
`scope` (a project id, or None for the root scope), so a test written against a plain
`Storage` exercises the whole path: key rewriter, shared cacher, tenant key function,
framing transformer and tenant codec. Registering it in `tests/conformance/conftest.py`:

    @register_stack("tenancy-project")
    @contextlib.asynccontextmanager
    async def tenancy_project_stack(kv, key_prefix):
        async with tenancy_stack(kv, key_prefix, "p1") as s:
            yield Stack(name="tenancy-project", store=s.store, bottom=s.bottom, kv=kv,
                        prefix=s.prefix, cached=True, bottom_key=s.scoped)

`bottom` is a bare `KVStorage` over the same KV for writes behind the cache's back: it
sees *scoped* keys, so address it with `stack.scoped(key)`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tenantstore.backends.kv import KV
from tenantstore.keys import scoped_key
from tenantstore.storage import ListOptions, ObjectList, Preconditions, Stats, Storage, Watch
from tenantstore.storage.interface import Object, UpdateFunc, ValidateDeletion
from tenantstore.store import KVStorage
from tenantstore.tenancy import StorageFactory, make_factory, project_scope


class ScopedStorage:
    """A `Storage` that enters `scope` around every call (the server's job per request).

    A watch is created inside the scope; the returned `Watch` keeps working after the call
    (dispatch does not depend on the caller's context).
    """

    def __init__(self, inner: Storage, scope: str | None) -> None:
        self.inner = inner
        self.scope = scope

    async def create(self, key: str, obj: Object, *, ttl: int | None = None) -> Object:
        with project_scope(self.scope):
            return await self.inner.create(key, obj, ttl=ttl)

    async def get(
        self, key: str, *, resource_version: str = "", ignore_not_found: bool = False
    ) -> Object | None:
        with project_scope(self.scope):
            return await self.inner.get(
                key, resource_version=resource_version, ignore_not_found=ignore_not_found
            )

    async def get_list(self, key: str, opts: ListOptions) -> ObjectList:
        with project_scope(self.scope):
            return await self.inner.get_list(key, opts)

    async def guaranteed_update(
        self,
        key: str,
        update_fn: UpdateFunc,
        *,
        ignore_not_found: bool = False,
        preconditions: Preconditions | None = None,
        suggestion: Object | None = None,
    ) -> Object:
        with project_scope(self.scope):
            return await self.inner.guaranteed_update(
                key,
                update_fn,
                ignore_not_found=ignore_not_found,
                preconditions=preconditions,
                suggestion=suggestion,
            )

    async def delete(
        self,
        key: str,
        *,
        preconditions: Preconditions | None = None,
        validate: ValidateDeletion | None = None,
        ignore_store_read_error: bool = False,
    ) -> Object:
        with project_scope(self.scope):
            return await self.inner.delete(
                key,
                preconditions=preconditions,
                validate=validate,
                ignore_store_read_error=ignore_store_read_error,
            )

    async def watch(self, key: str, opts: ListOptions) -> Watch:
        with project_scope(self.scope):
            return await self.inner.watch(key, opts)

    async def count(self, key: str) -> int:
        with project_scope(self.scope):
            return await self.inner.count(key)

    async def stats(self, key: str) -> Stats:
        with project_scope(self.scope):
            return await self.inner.stats(key)

    async def current_resource_version(self) -> int:
        return await self.inner.current_resource_version()

    async def request_watch_progress(self) -> bool:
        return await self.inner.request_watch_progress()

    async def ready(self) -> bool:
        return await self.inner.ready()

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class TenancyStack:
    name: str
    store: Storage
    bottom: KVStorage
    kv: KV
    # The unscoped resource prefix the store is addressed with, e.g. "/registry-1a2b/pods".
    prefix: str
    scope: str | None
    factory: StorageFactory
    cached: bool = True
    remaining_item_count: bool = True
    supports_ttl: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def scoped(self, key: str) -> str:
        """The key in `bottom` (and in the KV) of `key` as the store under test sees it."""
        return scoped_key(key, self.prefix, self.scope)

    @property
    def bottom_key(self) -> Callable[[str], str]:
        return self.scoped

    def key(self, namespace: str, name: str) -> str:
        return f"{self.prefix}/{namespace}/{name}"

    async def compact(self) -> int:
        rev = await self.kv.current_revision()
        await self.kv.compact(rev)
        return rev


@contextlib.asynccontextmanager
async def tenancy_stack(
    kv: KV,
    key_prefix: str,
    scope: str | None,
    *,
    mode: Literal["shared", "per-project"] = "shared",
    **factory_options: Any,
) -> AsyncIterator[TenancyStack]:
    prefix = f"{key_prefix}/pods"
    factory = make_factory(mode, kv, [prefix], **factory_options)
    kv_store = KVStorage(kv, owns_kv=False)
    await factory.start()
    try:
        yield TenancyStack(
            name=f"tenancy-{mode}-{'root' if scope is None else 'project'}",
            store=ScopedStorage(factory.storage(prefix), scope),
            bottom=kv_store,
            kv=kv,
            prefix=prefix,
            scope=scope,
            factory=factory,
        )
    finally:
        await factory.stop()
        await kv_store.close()
