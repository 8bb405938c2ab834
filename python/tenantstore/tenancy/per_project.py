"""The per-project design the reference replaced, kept for comparison (tests, harness).

For each (scope, resource) a separate Cacher over a KVStorage for the scoped prefix, built
lazily on the first call in that scope, each with its own backend watch and tasks; the
storage object routes every call by the current scope after the same key rewriting. Its
cost grows with the number of projects ever touched and never shrinks.

This module is wiring: it is allowed to import every layer below tenancy, to build them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from ..backends.kv import KV
from ..cacher import Cacher
from ..codec import JSONCodec
from ..storage.interface import Storage
from ..storage.watch import DEFAULT_CAPACITY
from ..store import KVStorage
from ..transformers import IDENTITY, Transformer
from .cacher_setup import CacherOptions, FactoryStats, normalize_prefixes
from .rewriter import KeyRewriter
from .scope_router import ScopeRouter


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
        self._routers: dict[str, ScopeRouter] = {}
        self._storages: dict[str, KeyRewriter] = {}
        for prefix in normalize_prefixes(resource_prefixes):
            router = ScopeRouter(self, prefix)
            self._routers[prefix] = router
            self._storages[prefix] = KeyRewriter(
                router, prefix, resource_label=self.labels.get(prefix)
            )

    def new_store(self, resource_prefix: str) -> KVStorage:
        return KVStorage(
            self.kv,
            codec=JSONCodec(),
            transformer=self.transformer,
            watch_capacity=self.options.watcher_capacity,
            owns_kv=False,
            skip_corrupt=True,
            resource_prefix=resource_prefix,
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
        """The cacher built for `project`'s slice of `prefix`, if any yet."""
        built = self._routers[prefix.rstrip("/")].cachers.get(project)
        return built[1] if built is not None else None

    def cache_health(self, prefix: str) -> str | None:
        """The first reason any of `prefix`'s per-scope caches is not following the store
        (None when all are, or none is built yet); broken ones are retried at once."""
        reasons = []
        for _store, cacher in self._routers[prefix.rstrip("/")].cachers.values():
            reason = cacher.health()
            if reason is not None:
                cacher.retry_now()
                reasons.append(reason)
        return reasons[0] if reasons else None

    async def start(self) -> None:
        """Nothing to start: cachers are built on each scope's first call."""

    async def stop(self) -> None:
        for router in self._routers.values():
            await router.close_all()

    def stats(self) -> FactoryStats:
        cachers = [c for r in self._routers.values() for c in r.cachers.values()]
        stores = [s for s, _ in cachers]
        for r in self._routers.values():
            if r.all_store is not None:
                stores.append(r.all_store)
        watches = sum(s.open_watches for s in stores)
        return FactoryStats(
            cachers=len(cachers),
            tenant_map_entries=0,
            tasks=sum(c.live_tasks for _, c in cachers) + watches,
            backend_watches=watches,
        )

    async def __aenter__(self) -> PerProjectStorageFactory:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
