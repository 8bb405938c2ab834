"""`ScopeRouter`: the per-project design's `Storage`, a cacher per scope behind one face.

It takes already-scoped keys (a `KeyRewriter` sits above it) and routes each call to the
cacher of the calling scope, building that cacher on the scope's first call.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from ..cacher import Cacher
from ..keys import scope_prefix
from ..storage.interface import Object, Storage, UpdateFunc, ValidateDeletion
from ..storage.options import ListOptions, ObjectList, Preconditions, Stats
from ..storage.watch import Watch
from ..store import KVStorage
from .cacher_setup import start_cacher
from .context import AllProjects, Scope, current_scope

if TYPE_CHECKING:
    from .per_project import PerProjectStorageFactory


class ScopeRouter:
    """`Storage` over already-scoped keys that routes each call to its scope's cacher."""

    def __init__(self, factory: PerProjectStorageFactory, prefix: str) -> None:
        self.factory = factory
        self.prefix = prefix
        self.cachers: dict[str | None, tuple[KVStorage, Cacher]] = {}
        self._building: dict[str | None, asyncio.Task[Cacher]] = {}
        # The all-projects scope reads the store directly (no cacher spans the scopes).
        self.all_store: KVStorage | None = None

    async def _target(self) -> Storage:
        scope: Scope = current_scope()
        if isinstance(scope, AllProjects):
            if self.all_store is None:
                self.all_store = self.factory.new_store(self.prefix)
            return self.all_store
        built = self.cachers.get(scope)
        if built is not None:
            return built[1]
        task = self._building.get(scope)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._build(scope))
            self._building[scope] = task
        return await asyncio.shield(task)

    async def _build(self, project: str | None) -> Cacher:
        try:
            store = self.factory.new_store(self.prefix)
            opts = self.factory.options
            cacher = Cacher(
                store,
                scope_prefix(self.prefix, project).rstrip("/"),
                window_seconds=opts.window_seconds,
                wait_timeout=opts.wait_timeout,
                watcher_capacity=opts.watcher_capacity,
                bookmark_interval=opts.bookmark_interval,
                resource_label=self.factory.labels.get(self.prefix),
            )
            try:
                await start_cacher(cacher, opts.ready_timeout)
            except BaseException:
                await store.close()
                raise
            self.cachers[project] = (store, cacher)
            return cacher
        finally:
            self._building.pop(project, None)

    async def close_all(self) -> None:
        for task in list(self._building.values()):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for store, cacher in self.cachers.values():
            await cacher.stop()
            await store.close()
        self.cachers.clear()
        if self.all_store is not None:
            await self.all_store.close()
            self.all_store = None

    # -- Storage ----------------------------------------------------------------------------
    async def create(self, key: str, obj: Object, *, ttl: int | None = None) -> Object:
        return await (await self._target()).create(key, obj, ttl=ttl)

    async def get(
        self, key: str, *, resource_version: str = "", ignore_not_found: bool = False
    ) -> Object | None:
        target = await self._target()
        return await target.get(
            key, resource_version=resource_version, ignore_not_found=ignore_not_found
        )

    async def get_list(self, key: str, opts: ListOptions) -> ObjectList:
        return await (await self._target()).get_list(key, opts)

    async def guaranteed_update(
        self,
        key: str,
        update_fn: UpdateFunc,
        *,
        ignore_not_found: bool = False,
        preconditions: Preconditions | None = None,
        suggestion: Object | None = None,
    ) -> Object:
        target = await self._target()
        return await target.guaranteed_update(
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
        target = await self._target()
        return await target.delete(
            key,
            preconditions=preconditions,
            validate=validate,
            ignore_store_read_error=ignore_store_read_error,
        )

    async def watch(self, key: str, opts: ListOptions) -> Watch:
        return await (await self._target()).watch(key, opts)

    async def count(self, key: str) -> int:
        return await (await self._target()).count(key)

    async def stats(self, key: str) -> Stats:
        return await (await self._target()).stats(key)

    async def current_resource_version(self) -> int:
        return await self.factory.kv.current_revision()

    async def request_watch_progress(self) -> bool:
        # Each scope's cacher asks its own store when it needs to; nothing to route.
        return False

    async def ready(self) -> bool:
        return await self.factory.kv.ready()

    async def close(self) -> None:
        await self.close_all()


if TYPE_CHECKING:
    # mypy proves the protocol is implemented (Go's `var _ storage.Interface = ...`).

    _: Storage = ScopeRouter.__new__(ScopeRouter)
