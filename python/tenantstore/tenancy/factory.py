"""Assembly of the storage stacks: the shared design and the per-project one it replaces.

Shared (``SharedStorageFactory``), per resource prefix, built once whatever the project count::

    KeyRewriter(prefix)                      scope from the context, token check, error scrub
      -> Cacher(key_func=tenant_key_func)    ONE watch cache, ONE backend watch
         -> KVStorage(codec=TenantCodec(JSONCodec), transformer=FramingTransformer(inner))
            -> kv (shared, not owned)
    + TenantMap (uid -> owner) + DeletionTracker (listener + periodic reconcile)

Per project (``PerProjectStorageFactory``), the architecture the reference replaced: for each
(scope, resource) a separate Cacher over a KVStorage for the scoped prefix, built lazily on the
first call in that scope, each with its own backend watch and tasks; the storage object routes
every call by the current scope after the same key rewriting. Kept for comparison (tests, the
scale harness): its cost grows with the number of projects ever touched and never shrinks.

Both expose ``stats()`` (cachers, tenant map entries, asyncio tasks owned, backend watches).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..backends.kv import KV
from ..backends.store import KVStorage
from ..cacher import Cacher
from ..codec import JSONCodec
from ..keys import scope_prefix
from ..storage.errors import UnavailableError
from ..storage.interface import Object, Storage, UpdateFunc, ValidateDeletion
from ..storage.options import ListOptions, ObjectList, Preconditions
from ..storage.watch import DEFAULT_CAPACITY, Watch
from ..transformers import IDENTITY, Transformer
from .context import AllProjects, Scope, current_scope
from .framing import FramingTransformer, TenantCodec
from .keyfunc import tenant_key_func
from .rewriter import KeyRewriter
from .tenant_map import TenantMap
from .tracker import DEFAULT_GRACE, DEFAULT_RECONCILE_INTERVAL, DeletionTracker

__all__ = [
    "FactoryStats",
    "PerProjectStorageFactory",
    "SharedStorageFactory",
    "StorageFactory",
    "make_factory",
]


@dataclass(frozen=True, slots=True)
class FactoryStats:
    """What a factory holds; the scale harness reports these per project."""

    cachers: int
    tenant_map_entries: int
    # asyncio tasks owned: cacher reflectors/bookmarkers, backend watch tasks, trackers.
    tasks: int
    # Backend (etcd / SQLite) watch streams open.
    backend_watches: int


@dataclass(frozen=True, slots=True)
class CacherOptions:
    window_seconds: float = 75.0
    wait_timeout: float = 3.0
    watcher_capacity: int = DEFAULT_CAPACITY
    bookmark_interval: float = 1.0
    ready_timeout: float | None = 30.0


def _live_tasks(cacher: Cacher) -> int:
    tasks: list[asyncio.Task[None]] = getattr(cacher, "_tasks", [])
    return sum(1 for t in tasks if not t.done())


def _watch_tasks(backend: KVStorage) -> int:
    tasks: set[asyncio.Task[None]] = getattr(backend, "_watch_tasks", set())
    return sum(1 for t in tasks if not t.done())


def _normalize(prefixes: Iterable[str]) -> list[str]:
    out: list[str] = []
    for p in prefixes:
        norm = p.rstrip("/")
        if not norm.startswith("/"):
            raise ValueError(f"resource prefix must be an absolute path: {p!r}")
        if norm in out:
            raise ValueError(f"resource prefix listed twice: {p!r}")
        out.append(norm)
    return out


async def _start_cacher(cacher: Cacher, ready_timeout: float | None) -> None:
    await cacher.start()
    try:
        async with asyncio.timeout(ready_timeout):
            await cacher.wait_ready()
    except TimeoutError:
        await cacher.stop()
        raise UnavailableError(f"watch cache of {cacher.prefix} did not become ready") from None


# -- shared ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _SharedResource:
    prefix: str
    tenant_map: TenantMap
    backend: KVStorage
    cacher: Cacher
    tracker: DeletionTracker
    storage: KeyRewriter


class SharedStorageFactory:
    """One cacher, tenant map and tracker per resource prefix, for every project."""

    mode: Literal["shared"] = "shared"

    def __init__(
        self,
        kv: KV,
        resource_prefixes: Iterable[str],
        *,
        transformer: Transformer | None = None,
        window_seconds: float = 75.0,
        wait_timeout: float = 3.0,
        watcher_capacity: int = DEFAULT_CAPACITY,
        bookmark_interval: float = 1.0,
        ready_timeout: float | None = 30.0,
        reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL,
        reconcile_grace: float = DEFAULT_GRACE,
        resource_labels: Mapping[str, str] | None = None,
    ) -> None:
        self.kv = kv
        self.ready_timeout = ready_timeout
        self._resources: dict[str, _SharedResource] = {}
        labels = {k.rstrip("/"): v for k, v in (resource_labels or {}).items()}
        for prefix in _normalize(resource_prefixes):
            label = labels.get(prefix)
            tenant_map = TenantMap(prefix, resource_label=label)
            backend = KVStorage(
                kv,
                codec=TenantCodec(JSONCodec(), tenant_map, prefix),
                transformer=FramingTransformer(transformer or IDENTITY),
                watch_capacity=watcher_capacity,
                owns_kv=False,
                skip_corrupt=True,
            )
            cacher = Cacher(
                backend,
                prefix,
                key_func=tenant_key_func(tenant_map),
                window_seconds=window_seconds,
                wait_timeout=wait_timeout,
                watcher_capacity=watcher_capacity,
                bookmark_interval=bookmark_interval,
                resource_label=label,
            )
            tracker = DeletionTracker(
                cacher,
                tenant_map,
                reconcile_interval=reconcile_interval,
                grace=reconcile_grace,
            )
            storage = KeyRewriter(cacher, prefix, resource_label=label)
            self._resources[prefix] = _SharedResource(
                prefix, tenant_map, backend, cacher, tracker, storage
            )
        self._started = False

    @property
    def resource_prefixes(self) -> list[str]:
        return list(self._resources)

    def _resource(self, prefix: str) -> _SharedResource:
        try:
            return self._resources[prefix.rstrip("/")]
        except KeyError:
            raise KeyError(f"no storage for resource prefix {prefix!r}") from None

    def storage(self, prefix: str) -> Storage:
        """The scope-confined ``Storage`` of one resource."""
        return self._resource(prefix).storage

    # Exposed for the tracker tests, the scale harness and operators.
    def cacher(self, prefix: str) -> Cacher:
        return self._resource(prefix).cacher

    def tenant_map(self, prefix: str) -> TenantMap:
        return self._resource(prefix).tenant_map

    def tracker(self, prefix: str) -> DeletionTracker:
        return self._resource(prefix).tracker

    async def start(self) -> None:
        """Start every cacher and tracker; return when every cache is ready."""
        if self._started:
            return
        self._started = True
        for res in self._resources.values():
            res.tracker.start()
        await asyncio.gather(
            *(_start_cacher(r.cacher, self.ready_timeout) for r in self._resources.values())
        )

    async def stop(self) -> None:
        for res in self._resources.values():
            await res.tracker.stop()
            await res.cacher.stop()
            await res.backend.close()
        self._started = False

    def stats(self) -> FactoryStats:
        res = list(self._resources.values())
        return FactoryStats(
            cachers=len(res),
            tenant_map_entries=sum(len(r.tenant_map) for r in res),
            tasks=sum(
                _live_tasks(r.cacher) + _watch_tasks(r.backend) + r.tracker.tasks for r in res
            ),
            backend_watches=sum(_watch_tasks(r.backend) for r in res),
        )

    async def __aenter__(self) -> SharedStorageFactory:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


# -- per project ----------------------------------------------------------------------------


class _ScopeRouter:
    """``Storage`` over already-scoped keys that routes each call to its scope's cacher."""

    def __init__(self, factory: PerProjectStorageFactory, prefix: str) -> None:
        self.factory = factory
        self.prefix = prefix
        self.cachers: dict[str | None, tuple[KVStorage, Cacher]] = {}
        self._building: dict[str | None, asyncio.Task[Cacher]] = {}
        # The all-projects scope reads the backend directly (no cacher spans the scopes).
        self.all_backend: KVStorage | None = None

    async def _target(self) -> Storage:
        scope: Scope = current_scope()
        if isinstance(scope, AllProjects):
            if self.all_backend is None:
                self.all_backend = self.factory._new_backend()
            return self.all_backend
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
            backend = self.factory._new_backend()
            opts = self.factory.options
            cacher = Cacher(
                backend,
                scope_prefix(self.prefix, project).rstrip("/"),
                window_seconds=opts.window_seconds,
                wait_timeout=opts.wait_timeout,
                watcher_capacity=opts.watcher_capacity,
                bookmark_interval=opts.bookmark_interval,
                resource_label=self.factory.labels.get(self.prefix),
            )
            try:
                await _start_cacher(cacher, opts.ready_timeout)
            except BaseException:
                await backend.close()
                raise
            self.cachers[project] = (backend, cacher)
            return cacher
        finally:
            self._building.pop(project, None)

    async def close_all(self) -> None:
        for task in list(self._building.values()):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for backend, cacher in self.cachers.values():
            await cacher.stop()
            await backend.close()
        self.cachers.clear()
        if self.all_backend is not None:
            await self.all_backend.close()
            self.all_backend = None

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
    ) -> Object:
        target = await self._target()
        return await target.delete(key, preconditions=preconditions, validate=validate)

    async def watch(self, key: str, opts: ListOptions) -> Watch:
        return await (await self._target()).watch(key, opts)

    async def count(self, key: str) -> int:
        return await (await self._target()).count(key)

    async def current_resource_version(self) -> int:
        return await self.factory.kv.current_revision()

    async def ready(self) -> bool:
        return await self.factory.kv.ready()

    async def close(self) -> None:
        await self.close_all()


class PerProjectStorageFactory:
    """A cacher per (scope, resource), built on first use: the pre-#647 architecture."""

    mode: Literal["per-project"] = "per-project"

    def __init__(
        self,
        kv: KV,
        resource_prefixes: Iterable[str],
        *,
        transformer: Transformer | None = None,
        window_seconds: float = 75.0,
        wait_timeout: float = 3.0,
        watcher_capacity: int = DEFAULT_CAPACITY,
        bookmark_interval: float = 1.0,
        ready_timeout: float | None = 30.0,
        resource_labels: Mapping[str, str] | None = None,
        **_ignored: Any,
    ) -> None:
        self.kv = kv
        self.transformer = transformer or IDENTITY
        self.options = CacherOptions(
            window_seconds, wait_timeout, watcher_capacity, bookmark_interval, ready_timeout
        )
        self.labels = {k.rstrip("/"): v for k, v in (resource_labels or {}).items()}
        self._routers: dict[str, _ScopeRouter] = {}
        self._storages: dict[str, KeyRewriter] = {}
        for prefix in _normalize(resource_prefixes):
            router = _ScopeRouter(self, prefix)
            self._routers[prefix] = router
            self._storages[prefix] = KeyRewriter(
                router, prefix, resource_label=self.labels.get(prefix)
            )

    def _new_backend(self) -> KVStorage:
        return KVStorage(
            self.kv,
            codec=JSONCodec(),
            transformer=self.transformer,
            watch_capacity=self.options.watcher_capacity,
            owns_kv=False,
            skip_corrupt=True,
        )

    @property
    def resource_prefixes(self) -> list[str]:
        return list(self._routers)

    def storage(self, prefix: str) -> Storage:
        try:
            return self._storages[prefix.rstrip("/")]
        except KeyError:
            raise KeyError(f"no storage for resource prefix {prefix!r}") from None

    def cacher(self, prefix: str, project: str | None) -> Cacher | None:
        """The cacher built for ``project``'s slice of ``prefix``, if any yet."""
        built = self._routers[prefix.rstrip("/")].cachers.get(project)
        return built[1] if built is not None else None

    async def start(self) -> None:
        """Nothing to start: cachers are built on each scope's first call."""

    async def stop(self) -> None:
        for router in self._routers.values():
            await router.close_all()

    def stats(self) -> FactoryStats:
        cachers = [c for r in self._routers.values() for c in r.cachers.values()]
        backends = [b for b, _ in cachers]
        for r in self._routers.values():
            if r.all_backend is not None:
                backends.append(r.all_backend)
        watches = sum(_watch_tasks(b) for b in backends)
        return FactoryStats(
            cachers=len(cachers),
            tenant_map_entries=0,
            tasks=sum(_live_tasks(c) for _, c in cachers) + watches,
            backend_watches=watches,
        )

    async def __aenter__(self) -> PerProjectStorageFactory:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


StorageFactory = SharedStorageFactory | PerProjectStorageFactory


def make_factory(
    mode: Literal["shared", "per-project"],
    kv: KV,
    resource_prefixes: Iterable[str],
    **options: Any,
) -> StorageFactory:
    """Build the factory of ``mode`` ("shared" or "per-project") with the same options."""
    if mode == "shared":
        return SharedStorageFactory(kv, resource_prefixes, **options)
    if mode == "per-project":
        return PerProjectStorageFactory(kv, resource_prefixes, **options)
    raise ValueError(f"unknown storage mode {mode!r}: expected 'shared' or 'per-project'")
