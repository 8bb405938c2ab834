"""Server metrics, registered once in prometheus-client's default registry.

`/metrics` renders the whole default registry, so the cacher and tenancy metrics (which
already live there) and prometheus-client's process collector (RSS, CPU, open fds on
Linux) come with these. Labels are bounded: verb, resource (`plural` or
`plural.group`) and code, never the project, so thousands of projects do not mean
thousands of series. The per-project figures (requests in flight, refusals, objects and
bytes) are totals plus the busiest N projects only (see `ProjectMetrics`).

Process-level gauges are computed at scrape time:

* `tenantstore_python_heap_blocks`: `sys.getallocatedblocks()`, the number of memory
  blocks the Python allocator holds. A cheap proxy for the Python heap; tracemalloc would
  give bytes but slows every allocation. Read with `process_resident_memory_bytes`.
* `tenantstore_threads`: `threading.active_count()`.
* `tenantstore_asyncio_tasks`: tasks of the server's event loop (Go's goroutine count in
  the reference's scale harness; here the unit of per-project cost to watch).
"""

from __future__ import annotations

import asyncio
import heapq
import sys
import threading
import tracemalloc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..tenancy import ProjectUsage
from ..tenancy.factory import KV

__all__ = [
    "DEFAULT_TOP_PROJECTS",
    "REQUESTS",
    "REQUEST_LATENCY",
    "WATCHES_OPEN",
    "ProjectMetrics",
    "bind_loop",
    "bind_projects",
    "unbind_projects",
]

REQUESTS = Counter(
    "tenantstore_http_requests_total",
    "HTTP requests served, by Kubernetes verb, resource and status code",
    ["verb", "resource", "code"],
)
REQUEST_LATENCY = Histogram(
    "tenantstore_http_request_duration_seconds",
    "Time to the response headers, by verb and resource (watches: until the stream starts)",
    ["verb", "resource"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WATCHES_OPEN = Gauge("tenantstore_http_watches_open", "Watch streams being served", ["resource"])
PYTHON_HEAP_BLOCKS = Gauge(
    "tenantstore_python_heap_blocks",
    "Memory blocks held by the Python allocator (sys.getallocatedblocks())",
)
THREADS = Gauge("tenantstore_threads", "Live Python threads (threading.active_count())")
ASYNCIO_TASKS = Gauge("tenantstore_asyncio_tasks", "asyncio tasks of the server's event loop")

PYTHON_HEAP_BLOCKS.set_function(sys.getallocatedblocks)
THREADS.set_function(threading.active_count)

_loop: asyncio.AbstractEventLoop | None = None


def _task_count() -> float:
    loop = _loop
    if loop is None or loop.is_closed():
        return 0
    return len(asyncio.all_tasks(loop))


ASYNCIO_TASKS.set_function(_task_count)


def bind_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    """Count the tasks of `loop` (the server's) from now on; None to unbind."""
    global _loop
    _loop = loop


PYTHON_HEAP_BYTES = Gauge(
    "tenantstore_python_heap_bytes",
    "Bytes allocated through Python's allocator as traced by tracemalloc; 0 unless the "
    "server runs with tracing on (PYTHONTRACEMALLOC=1, as the scale harness starts it)",
)
PYTHON_HEAP_BYTES.set_function(
    lambda: tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
)
BACKEND_WATCHES = Gauge(
    "tenantstore_backend_watches",
    "Watches this server holds open on its backend (etcd watches or SQLite log watches)",
)
_backend: KV | None = None


def _backend_watches() -> float:
    kv = _backend
    return 0.0 if kv is None else float(kv.watch_count)


BACKEND_WATCHES.set_function(_backend_watches)


def bind_backend(kv: KV | None) -> None:
    """Report the open watches of `kv` (the server's KV) from now on; None to unbind."""
    global _backend
    _backend = kv


# -- per project, bounded ------------------------------------------------------------
#
# One series per project would make /metrics (and every Prometheus storing it) grow with
# the project count. So each per-project quantity is exported twice: a total without a
# project label, and the busiest `top` projects labelled by name (`--metrics-top-projects`,
# 0 for totals only). A project leaves the top-N series when others pass it; the root
# scope counts in the totals but is not a project, so it is never in the top-N.

DEFAULT_TOP_PROJECTS = 10


@dataclass
class ProjectMetrics:
    """Where the per-project figures live (the server's state), read at scrape time."""

    inflight: Mapping[str | None, int]
    rejected: Mapping[str, int]
    rejected_by_reason: Mapping[str, int]
    usage: ProjectUsage | None
    top: int = DEFAULT_TOP_PROJECTS


def _top(values: Mapping[str | None, int] | Mapping[str, int], n: int) -> list[tuple[str, int]]:
    if n <= 0:
        return []
    named = ((p, v) for p, v in values.items() if p is not None and v > 0)
    return heapq.nlargest(n, named, key=lambda pv: (pv[1], pv[0]))


class _ProjectCollector(Collector):
    def describe(self) -> list[Metric]:
        # Nothing up front: the families exist only while a server is bound.
        return []

    def collect(self) -> Iterator[Metric]:
        source = _projects
        if source is None:
            return
        n = source.top
        yield from _total_and_top(
            GaugeMetricFamily,
            "inflight_requests",
            "Requests in flight (watch streams not included)",
            sum(source.inflight.values()),
            _top(source.inflight, n),
        )
        rejected = CounterMetricFamily(
            "tenantstore_rejected_requests",
            "Requests refused by fair sharing (reason too_many_requests, a 429) or a project "
            "quota (reason quota, a 403)",
            labels=["reason"],
        )
        for reason in ("too_many_requests", "quota"):
            rejected.add_metric([reason], source.rejected_by_reason.get(reason, 0))
        yield rejected
        top = CounterMetricFamily(
            "tenantstore_top_project_rejected_requests",
            f"Requests refused (429 or quota 403) of the {n} most refused projects",
            labels=["project"],
        )
        for project, value in _top(source.rejected, n):
            top.add_metric([project], value)
        yield top
        usage = source.usage
        if usage is None:
            return  # per-project mode: no usage table
        yield from _total_and_top(
            GaugeMetricFamily,
            "objects",
            "Objects stored, across every resource",
            sum(usage.objects().values()),
            _top(usage.objects(), n),
        )
        yield from _total_and_top(
            GaugeMetricFamily,
            "object_bytes",
            "Encoded bytes of the objects stored (JSON, without resourceVersion)",
            sum(usage.bytes().values()),
            _top(usage.bytes(), n),
        )
        yield GaugeMetricFamily(
            "tenantstore_projects_with_objects",
            "Projects holding at least one object",
            value=sum(1 for p in usage.objects() if p is not None),
        )


def _total_and_top(
    family: type[GaugeMetricFamily],
    name: str,
    help: str,
    total: float,
    top: list[tuple[str, int]],
) -> Iterator[Metric]:
    yield family(f"tenantstore_{name}", f"{help}: all projects and the root scope", value=total)
    labelled = family(
        f"tenantstore_top_project_{name}",
        f"{help}: the projects with the most (--metrics-top-projects of them)",
        labels=["project"],
    )
    for project, value in top:
        labelled.add_metric([project], value)
    yield labelled


_projects: ProjectMetrics | None = None
REGISTRY.register(_ProjectCollector())


def bind_projects(source: ProjectMetrics | None) -> None:
    """Report `source`'s per-project figures from now on; None to unbind."""
    global _projects
    _projects = source


def unbind_projects(source: ProjectMetrics | None) -> None:
    """Unbind `source` if it is still the one reported (another server may have taken
    its place in the same process, as in tests)."""
    global _projects
    if _projects is source:
        _projects = None
