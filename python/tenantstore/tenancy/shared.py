"""The shared design: one cacher, tenant map and tracker per resource, for every project.

Per resource prefix, built once whatever the project count:

    KeyRewriter(prefix)                      scope from the context, token check, error scrub
      -> Cacher(key_func=tenant_key_func)    ONE watch cache, ONE backend watch
         -> KVStorage(codec=TenantCodec(JSONCodec), transformer=FramingTransformer(inner))
            -> kv (shared, not owned)
    + TenantMap (uid -> owner) + DeletionTracker (listener + periodic reconcile)

and, across every resource, one `ProjectUsage` (objects and bytes per project, for
quotas and metrics) fed by a listener on each cacher.

This module is wiring: it is allowed to import every layer below tenancy, to build them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from ..backends.kv import KV
from ..cacher import Cacher
from ..codec import JSONCodec
from ..keys import CLUSTERS_SEGMENT
from ..storage.interface import Storage
from ..storage.watch import DEFAULT_CAPACITY
from ..store import KVStorage
from ..transformers import IDENTITY, Transformer
from .cacher_setup import FactoryStats, normalize_prefixes, start_cacher
from .framing import FramingTransformer, TenantCodec
from .keyfunc import tenant_admission, tenant_key_func
from .rewriter import KeyRewriter
from .tenant_map import TenantMap
from .tracker import DEFAULT_GRACE, DEFAULT_RECONCILE_INTERVAL, DeletionTracker
from .usage import ProjectUsage


@dataclass(slots=True)
class _SharedResource:
    prefix: str
    tenant_map: TenantMap
    store: KVStorage
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
        # Objects and bytes per project across every resource (quotas, metrics).
        self.usage = ProjectUsage()
        labels = {k.rstrip("/"): v for k, v in (resource_labels or {}).items()}
        for prefix in normalize_prefixes(resource_prefixes):
            label = labels.get(prefix)
            tenant_map = TenantMap(prefix, resource_label=label)
            store = KVStorage(
                kv,
                codec=TenantCodec(JSONCodec(), tenant_map, prefix),
                transformer=FramingTransformer(transformer or IDENTITY),
                watch_capacity=watcher_capacity,
                owns_kv=False,
                skip_corrupt=True,
                resource_prefix=prefix,
            )
            cacher = Cacher(
                store,
                prefix,
                key_func=tenant_key_func(tenant_map),
                window_seconds=window_seconds,
                wait_timeout=wait_timeout,
                watcher_capacity=watcher_capacity,
                bookmark_interval=bookmark_interval,
                resource_label=label,
                # Every project's key starts `<prefix>/clusters/`: held once, not per object.
                index_prefix=f"{prefix}/{CLUSTERS_SEGMENT}/",
            )
            tracker = DeletionTracker(
                cacher,
                tenant_map,
                reconcile_interval=reconcile_interval,
                grace=reconcile_grace,
            )
            self.usage.attach(prefix, cacher)
            storage = KeyRewriter(
                cacher, prefix, resource_label=label, admit=tenant_admission(prefix)
            )
            self._resources[prefix] = _SharedResource(
                prefix, tenant_map, store, cacher, tracker, storage
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
        """The scope-confined `Storage` of one resource."""
        return self._resource(prefix).storage

    # Exposed for the tracker tests, the scale harness and operators.
    def cacher(self, prefix: str) -> Cacher:
        return self._resource(prefix).cacher

    def tenant_map(self, prefix: str) -> TenantMap:
        return self._resource(prefix).tenant_map

    def tracker(self, prefix: str) -> DeletionTracker:
        return self._resource(prefix).tracker

    def cache_health(self, prefix: str) -> str | None:
        """None while `prefix`'s cache follows the store, else why not; a broken watch
        is retried at once (readiness asks when the backend may be back)."""
        cacher = self._resource(prefix).cacher
        reason = cacher.health()
        if reason is not None:
            cacher.retry_now()
        return reason

    async def start(self) -> None:
        """Start every cacher and tracker; return when every cache is ready."""
        if self._started:
            return
        self._started = True
        for res in self._resources.values():
            res.tracker.start()
        await asyncio.gather(*(self._start_cacher(r) for r in self._resources.values()))

    async def _start_cacher(self, res: _SharedResource) -> None:
        await start_cacher(res.cacher, self.ready_timeout)
        # Ready: its first list is in the index, which the usage table counts once.
        self.usage.seed(res.prefix)

    async def stop(self) -> None:
        self.usage.stop()
        for res in self._resources.values():
            await res.tracker.stop()
            await res.cacher.stop()
            await res.store.close()
        self._started = False

    def stats(self) -> FactoryStats:
        res = list(self._resources.values())
        return FactoryStats(
            cachers=len(res),
            tenant_map_entries=sum(len(r.tenant_map) for r in res),
            tasks=sum(r.cacher.live_tasks + r.store.open_watches + r.tracker.tasks for r in res),
            backend_watches=sum(r.store.open_watches for r in res),
        )

    async def __aenter__(self) -> SharedStorageFactory:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
