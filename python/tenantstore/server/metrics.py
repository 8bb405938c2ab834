"""Server metrics, registered once in prometheus-client's default registry.

`/metrics` renders the whole default registry, so the cacher and tenancy metrics (which
already live there) and prometheus-client's process collector (RSS, CPU, open fds on
Linux) come with these. Labels are bounded: verb, resource (`plural` or
`plural.group`) and code, never the project, so thousands of projects do not mean
thousands of series.

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
import sys
import threading
import tracemalloc

from prometheus_client import Counter, Gauge, Histogram

from ..tenancy.factory import KV

__all__ = ["REQUESTS", "REQUEST_LATENCY", "WATCHES_OPEN", "bind_loop"]

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
