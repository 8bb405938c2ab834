"""Shared machinery of the reliability tests: a model of acknowledged writes, load writers, and
watch clients that check what they receive.

Writers own their keys (one writer per (resource, project) scope), so the model of each key is
exact except after a write whose outcome is unknown (it failed with `UnavailableError`: it may
or may not have been applied, maybe later). Such a key holds a set of possible states until the
next acknowledged write on it: every write tenantstore issues is a compare-and-swap, so an
unknown write cannot land after a later acknowledged write on the same key.

A `WatchClient` consumes a watch the way a Kubernetes client does: it keeps the state the events
describe, and when the stream ends (an ERROR event, or end of stream) it re-lists and watches
again from the list's RV. Each stretch between re-lists is a `Segment`, checked on its own:
strictly increasing RVs, ADDED/MODIFIED/DELETED consistent with the state, and every
acknowledged write of the scope with an RV inside the segment present with the written value.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tenantstore.cacher import Cacher
from tenantstore.index import decode
from tenantstore.keys import scope_prefix
from tenantstore.storage import (
    AlreadyExistsError,
    EventType,
    GoneError,
    ListOptions,
    NotFoundError,
    ObjectList,
    Storage,
    TooLargeResourceVersionError,
    UnavailableError,
    Watch,
)
from tenantstore.store import KVStorage

SOAK = bool(os.environ.get("TENANTSTORE_SOAK"))
soak_only = pytest.mark.skipif(not SOAK, reason="soak variant: set TENANTSTORE_SOAK=1")

# Errors a client retries (a read or write that may succeed later).
TRANSIENT: tuple[type[BaseException], ...] = (UnavailableError, TooLargeResourceVersionError)

# (rv, value) of a key; value is the object's data.v.
State = dict[str, tuple[int, str]]


def make_obj(name: str, value: str, ns: str = "ns") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "uid": str(uuid.uuid4())},
        "data": {"v": value},
    }


def rv_of(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def rel_key(obj: dict[str, Any]) -> str:
    """The key of an object relative to its scope: "<namespace>/<name>"."""
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def value_of(obj: dict[str, Any]) -> str:
    return str((obj.get("data") or {}).get("v"))


def state_of(items: list[dict[str, Any]]) -> State:
    return {rel_key(o): (rv_of(o), value_of(o)) for o in items}


@dataclass(frozen=True, slots=True)
class Ack:
    rv: int
    key: str  # relative "ns/name"
    value: str | None  # None: deleted


@dataclass
class ScopeLog:
    """Everything known about one (resource, project) scope."""

    resource: str
    project: str
    acked: list[Ack] = field(default_factory=list)
    # Possible current values per relative key (None = absent); one entry = definite.
    options: dict[str, list[str | None]] = field(default_factory=dict)
    # RV of the last acknowledged write per key (while the key is definite).
    last_rv: dict[str, int] = field(default_factory=dict)
    unknown: int = 0

    def ack(self, rv: int, key: str, value: str | None) -> None:
        self.acked.append(Ack(rv, key, value))
        self.options[key] = [value]
        self.last_rv[key] = rv

    def state_at(self, rv: int) -> State:
        """The scope's state at `rv` (exact when every write was acknowledged)."""
        out: State = {}
        for a in sorted(self.acked, key=lambda a: a.rv):
            if a.rv > rv:
                break
            if a.value is None:
                out.pop(a.key, None)
            else:
                out[a.key] = (a.rv, a.value)
        return out

    def check_final(self, actual: State, errors: list[str]) -> None:
        """`actual` (the backend's state of the scope) against the model."""
        for key, opts in self.options.items():
            got = actual.get(key)
            value = got[1] if got is not None else None
            if value not in opts:
                errors.append(
                    f"{self.resource} {self.project} {key}: backend has {got}, "
                    f"acknowledged/possible {opts}"
                )
            elif len(opts) == 1 and got is not None and got[0] != self.last_rv.get(key):
                errors.append(
                    f"{self.resource} {self.project} {key}: backend RV {got[0]}, "
                    f"acknowledged RV {self.last_rv.get(key)}"
                )
        for key in actual:
            if key not in self.options:
                errors.append(f"{self.resource} {self.project}: unexpected key {key} {actual}")


class Writer:
    """create / update / delete on a few keys of one scope, as fast as the store answers."""

    def __init__(
        self,
        store: Storage,
        prefix: str,
        log: ScopeLog,
        errors: list[str],
        *,
        names: int = 6,
        allow_unknown: bool = False,
        seed: int = 0,
        pause: float = 0.0,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.log = log
        self.errors = errors
        self.names = [f"k{i}" for i in range(names)]
        self.allow_unknown = allow_unknown
        self.rng = random.Random(seed)
        self.pause = pause
        self.ops = 0
        self.failed = 0
        self._n = 0

    def _error(self, what: str) -> None:
        self.errors.append(f"writer {self.log.resource} {self.log.project}: {what}")

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.step()
            except TRANSIENT as exc:
                self.failed += 1
                if not self.allow_unknown:
                    self._error(f"unexpected {type(exc).__name__}: {exc}")
                    return
                await asyncio.sleep(0.05)
            except Exception as exc:
                self._error(f"unexpected {type(exc).__name__}: {exc}")
                return
            if self.pause:
                await asyncio.sleep(self.pause)
            else:
                await asyncio.sleep(0)

    async def step(self) -> None:
        name = self.rng.choice(self.names)
        rel = f"ns/{name}"
        key = f"{self.prefix}/{rel}"
        opts = self.log.options.get(rel, [None])
        if len(opts) > 1:
            got = await self.store.get(key, ignore_not_found=True)
            observed = value_of(got) if got is not None else None
            if observed not in opts:
                self._error(f"read {rel} = {observed!r}, possible {opts}")
            present = got is not None
        else:
            present = opts[0] is not None
        self._n += 1
        value = f"{self.log.project}-{self._n}"
        attempted: str | None
        try:
            if not present:
                attempted = value
                res = await self.store.create(key, make_obj(name, value))
                self.log.ack(rv_of(res), rel, value)
            elif self.rng.random() < 0.7:
                attempted = value
                res = await self.store.guaranteed_update(key, lambda o: {**o, "data": {"v": value}})
                if value_of(res) != value:
                    self._error(f"update of {rel} returned {value_of(res)!r}, wrote {value!r}")
                self.log.ack(rv_of(res), rel, value)
            else:
                attempted = None
                res = await self.store.delete(key)
                self.log.ack(rv_of(res), rel, None)
            self.ops += 1
        except UnavailableError:
            if self.allow_unknown:
                self.log.unknown += 1
                if attempted not in opts:
                    self.log.options[rel] = [*opts, attempted]
            raise
        except (AlreadyExistsError, NotFoundError) as exc:
            # Only possible when an earlier write of unknown outcome landed after our read.
            if len(opts) == 1:
                self._error(f"{type(exc).__name__} on {rel} whose state was known: {opts}")


@dataclass
class WatchEventRecord:
    type: EventType
    key: str
    rv: int
    value: str


@dataclass
class Segment:
    """One watch stretch: from a list (or the initial events) to an ERROR / end of stream."""

    start_rv: int
    initial: State
    events: list[WatchEventRecord] = field(default_factory=list)
    ended_by: str = ""  # "" while open, else why it ended
    # RVs a reconnect resumed from (diagnostics).
    resumed_from: list[int] = field(default_factory=list)


class WatchClient:
    """Consumes one scope's watch like a Kubernetes informer, recording every event."""

    def __init__(
        self,
        name: str,
        list_fn: Callable[[], Awaitable[ObjectList]],
        watch_fn: Callable[[str], Awaitable[Watch]],
        errors: list[str],
        *,
        allowed_error_codes: tuple[int, ...] | None = None,
        resume_every: float = 0.0,
        reconnect_delay: float = 0.0,
    ) -> None:
        self.name = name
        self.reconnect_delay = reconnect_delay
        self.list_fn = list_fn
        self.watch_fn = watch_fn
        self.errors = errors
        self.allowed_error_codes = allowed_error_codes
        self.resume_every = resume_every
        self.segments: list[Segment] = []
        self.state: State = {}
        self.error_codes: list[int] = []
        self.resumes = 0
        self.relists = 0
        self._watch: Watch | None = None

    async def open_initial(self, expected: State) -> None:
        """Watch from RV "0" (the scope holds exactly `expected`) and take its initial events."""
        w = await self.watch_fn("0")
        start = max((rv for rv, _ in expected.values()), default=0)
        got: State = {}
        for _ in range(len(expected)):
            ev = await asyncio.wait_for(w.__anext__(), 10)
            if ev.type is not EventType.ADDED:
                self.errors.append(f"{self.name}: initial event {ev.type} {ev.object}")
                continue
            got[rel_key(ev.object)] = (rv_of(ev.object), value_of(ev.object))
        if got != expected:
            self.errors.append(f"{self.name}: initial events {got} != scope state {expected}")
        self.segments.append(Segment(start, dict(expected)))
        self.state = dict(expected)
        self._watch = w

    def _last_rv(self) -> int:
        seg = self.segments[-1]
        return seg.events[-1].rv if seg.events else seg.start_rv

    async def _relist(self, stop: asyncio.Event) -> bool:
        """List and watch again from the list's RV; False if stopped first."""
        delay = 0.05
        while not stop.is_set():
            try:
                page = await self.list_fn()
                w = await self.watch_fn(str(page.resource_version))
            except TRANSIENT:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            except GoneError:
                # A paginated list overtaken by compaction: list again.
                await asyncio.sleep(0.01)
                continue
            except Exception as exc:
                self.errors.append(f"{self.name}: re-list failed: {type(exc).__name__}: {exc}")
                return False
            self.relists += 1
            self.state = state_of(page.items)
            self.segments.append(Segment(page.resource_version, dict(self.state)))
            self._watch = w
            return True
        return False

    async def _resume(self) -> bool:
        """Stop and watch again from the last RV seen (a reconnect): same segment."""
        assert self._watch is not None
        self._watch.stop()
        self.resumes += 1
        # Disconnected for a while (compaction may pass the last RV meanwhile).
        await asyncio.sleep(self.reconnect_delay)
        self.segments[-1].resumed_from.append(self._last_rv())
        try:
            self._watch = await self.watch_fn(str(self._last_rv()))
        except TRANSIENT:
            self._watch = None
            return False
        return True

    def _apply(self, ev: Any) -> None:
        seg = self.segments[-1]
        obj = ev.object
        rec = WatchEventRecord(ev.type, rel_key(obj), rv_of(obj), value_of(obj))
        seg.events.append(rec)
        if ev.type is EventType.DELETED:
            self.state.pop(rec.key, None)
        else:
            self.state[rec.key] = (rec.rv, rec.value)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        next_resume = loop.time() + self.resume_every if self.resume_every else None
        try:
            while not stop.is_set():
                if self._watch is None:
                    if not await self._relist(stop):
                        return
                    continue
                if next_resume is not None and loop.time() >= next_resume:
                    next_resume = loop.time() + self.resume_every
                    if not await self._resume():
                        self.segments[-1].ended_by = "resume failed"
                    continue
                try:
                    ev = await asyncio.wait_for(self._watch.__anext__(), 0.2)
                except TimeoutError:
                    continue
                except StopAsyncIteration:
                    self.segments[-1].ended_by = "end of stream"
                    self._watch = None
                    continue
                if ev.type is EventType.BOOKMARK:
                    continue
                if ev.type is EventType.ERROR:
                    code = int(ev.object.get("code", 0))
                    self.error_codes.append(code)
                    self.segments[-1].ended_by = f"ERROR {code}"
                    if (
                        self.allowed_error_codes is not None
                        and code not in self.allowed_error_codes
                    ):
                        self.errors.append(f"{self.name}: ERROR event {ev.object}")
                    self._watch.stop()
                    self._watch = None
                    continue
                self._apply(ev)
        except Exception as exc:
            self.errors.append(f"{self.name}: watch client failed: {type(exc).__name__}: {exc}")
        finally:
            if self._watch is not None:
                self._watch.stop()

    def check(self, acked: list[Ack]) -> None:
        """Every segment: strictly increasing RVs, transitions consistent with the state, and
        every acknowledged write inside the segment's RV span delivered with its value."""
        for i, seg in enumerate(self.segments):
            where = f"{self.name} segment {i} (from {seg.start_rv}, ended {seg.ended_by or '-'})"
            state = dict(seg.initial)
            last = seg.start_rv
            for ev in seg.events:
                if ev.rv <= last:
                    self.errors.append(f"{where}: RV {ev.rv} after {last} ({ev.type} {ev.key})")
                last = max(last, ev.rv)
                present = ev.key in state
                if ev.type is EventType.ADDED and present:
                    self.errors.append(f"{where}: ADDED {ev.key}@{ev.rv} already present")
                if ev.type in (EventType.MODIFIED, EventType.DELETED) and not present:
                    self.errors.append(f"{where}: {ev.type} {ev.key}@{ev.rv} of an absent key")
                if ev.type is EventType.DELETED:
                    state.pop(ev.key, None)
                else:
                    state[ev.key] = (ev.rv, ev.value)
            seen = {ev.rv: ev for ev in seg.events}
            for a in acked:
                if not (seg.start_rv < a.rv <= last):
                    continue
                got = seen.get(a.rv)
                want = "DELETED" if a.value is None else a.value
                have = (
                    None
                    if got is None
                    else ("DELETED" if got.type is EventType.DELETED else got.value)
                )
                if got is None or got.key != a.key or have != want:
                    self.errors.append(
                        f"{where}: acknowledged write {a} missing or wrong (event {got})"
                    )


# -- building blocks over the tenancy stack ----------------------------------------------------


def scoped_list_fn(
    store: Storage, prefix: str, *, limit: int = 0
) -> Callable[[], Awaitable[ObjectList]]:
    async def list_all() -> ObjectList:
        return await list_pages(store, prefix, limit=limit)

    return list_all


async def list_pages(
    store: Storage, prefix: str, *, limit: int = 0, page_delay: float = 0.0
) -> ObjectList:
    """A full (possibly paginated) consistent list; raises what a page raises."""
    page = await store.get_list(prefix, ListOptions(recursive=True, limit=limit))
    items = list(page.items)
    rv = page.resource_version
    while page.continue_:
        if page_delay:
            await asyncio.sleep(page_delay)
        page = await store.get_list(
            prefix, ListOptions(recursive=True, limit=limit, continue_=page.continue_)
        )
        if page.resource_version != rv:
            raise AssertionError(f"page at RV {page.resource_version}, list at {rv}")
        items.extend(page.items)
    return ObjectList(items=items, resource_version=rv)


def watch_fn(store: Storage, prefix: str) -> Callable[[str], Awaitable[Watch]]:
    async def open_watch(rv: str) -> Watch:
        return await store.watch(prefix, ListOptions(resource_version=rv, recursive=True))

    return open_watch


async def store_state(store: KVStorage, resource: str, project: str) -> State:
    """A consistent read of one scope straight from the store (no cache)."""
    delay = 0.05
    for _ in range(100):
        try:
            page = await list_pages(store, scope_prefix(resource, project).rstrip("/"))
            return state_of(page.items)
        except TRANSIENT:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
    raise AssertionError(f"backend unreachable listing {resource} {project}")


def cacher_state(cacher: Cacher, resource: str, project: str) -> State:
    prefix = scope_prefix(resource, project)
    out: State = {}
    for key, rv, cached in cacher.index.range(prefix):
        obj = decode(cached)
        if key != f"{prefix}{rel_key(obj)}":
            out[f"!mismatched key {key}"] = (rv, value_of(obj))
        out[rel_key(obj)] = (rv, value_of(obj))
    return out


async def eventually_equal(
    get_a: Callable[[], Any], get_b: Callable[[], Any], within: float = 20.0
) -> tuple[Any, Any]:
    """Poll until a() == b() (each sync or async); return the last pair either way."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        a, b = get_a(), get_b()
        if asyncio.iscoroutine(a):
            a = await a
        if asyncio.iscoroutine(b):
            b = await b
        if a == b or loop.time() > deadline:
            return a, b
        await asyncio.sleep(0.1)


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
