"""The deletion tracker: keeps a tenant map bounded by its cacher's live set.

One per shared cacher (per resource), never per project. Two mechanisms:

* **forget on delete**: a cacher listener (`Cacher.add_listener`, called synchronously with
  every applied event) drops the UID of every DELETED object. The reference ran a second watch
  on the cacher for this; a listener costs no task, no queue and cannot fall behind. Forgetting
  is a dict deletion that cannot fail, so there is no retry queue (the reference retried with a
  1 s..30 s backoff because its forget could). The listener never raises into the cacher.
* **reconcile**: every `interval` seconds (default 5 min) entries whose UID is not in the
  cache (`cacher.index`) are pruned, except those recorded during the last `grace` seconds
  (default 30 s; decoded, not yet inserted). The grace window is opened `grace` seconds
  before each reconcile (`TenantMap.begin_grace`), so the map needs no timestamp per entry.
  It catches what the listener cannot see: objects decoded by a read that never reached the
  cache (backend fallbacks, updates), objects refused by the key function, lost DELETED events.

A lost or pruned mapping of a live object is repaired by the object's next event (every event
goes through the tenant codec before the key function), not by the reconciler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from ..cacher import CacheEvent, Cacher
from ..storage.events import EventType
from .tenant_map import TenantMap

__all__ = ["DeletionTracker"]

log = logging.getLogger(__name__)

DEFAULT_RECONCILE_INTERVAL = 300.0
DEFAULT_GRACE = 30.0
# Cached objects read per step of a reconcile.
LIVE_PAGE = 500


class DeletionTracker:
    def __init__(
        self,
        cacher: Cacher,
        tenant_map: TenantMap,
        *,
        reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        if reconcile_interval <= 0 or grace < 0:
            raise ValueError("reconcile_interval must be > 0 and grace >= 0")
        self.cacher = cacher
        self.tenant_map = tenant_map
        self.reconcile_interval = reconcile_interval
        self.grace = grace
        self.forgotten = 0
        self.reconciles = 0
        self.pruned = 0
        self._task: asyncio.Task[None] | None = None
        self._listening = False
        self._active = False

    @property
    def tasks(self) -> int:
        """asyncio tasks owned (0 or 1)."""
        return 1 if self._task is not None and not self._task.done() else 0

    def start(self) -> None:
        self._active = True
        if not self._listening:
            self.cacher.add_listener(self._on_event)
            self._listening = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name=f"tenancy-tracker {self.tenant_map.resource_prefix}"
            )

    async def stop(self) -> None:
        self._active = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- forget on delete ---------------------------------------------------------------
    def _on_event(self, ev: CacheEvent) -> None:
        if not self._active or ev.type is not EventType.DELETED:
            return
        try:
            uid = ev.object.uid
            if uid and self.tenant_map.forget(uid):
                self.forgotten += 1
        except Exception:  # never break the cacher's reflector
            log.exception("tenancy tracker: forgetting a deleted object failed")

    # -- reconcile ----------------------------------------------------------------------
    def live_uids(self) -> set[str]:
        return set(self.iter_live_uids())

    def iter_live_uids(self) -> Iterator[str]:
        """The UIDs of the cached objects, read from the index a page at a time: one list
        of every cached object would be a peak the process keeps as RSS after it."""
        last: str | None = None
        while page := self.cacher.index.range("", start_after=last, limit=LIVE_PAGE):
            for _key, _rv, obj in page:
                uid = obj.uid
                if uid is not None:
                    yield uid
            last = page[-1][0]

    def reconcile(self) -> int:
        """Prune now: entries not live and not recorded since the grace window opened.

        Without a prior `tenant_map.begin_grace()` there is no grace (tests, operators).
        Synchronous: no event is applied to the cache while the live UIDs are read.
        """
        removed = self.tenant_map.prune(self.iter_live_uids())
        self.reconciles += 1
        self.pruned += removed
        return removed

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(max(self.reconcile_interval - self.grace, 0.0))
            self.tenant_map.begin_grace()
            await asyncio.sleep(self.grace)
            if self.cacher.stopped:
                return  # stopped with its cacher
            try:
                removed = self.reconcile()
            except Exception:
                log.exception("tenancy tracker: reconcile failed")
                continue
            if removed:
                log.debug(
                    "tenancy tracker %s: pruned %d entries",
                    self.tenant_map.resource_prefix,
                    removed,
                )
