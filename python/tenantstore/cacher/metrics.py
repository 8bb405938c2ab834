"""Prometheus metrics of the cachers, labelled by resource prefix.

Defined once at import: prometheus-client refuses duplicate registration, and one set of
families serves every cacher of the process (children are per resource).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

OBJECTS = Gauge("tenantstore_cacher_objects", "Objects held in the watch cache", ["resource"])
EVENTS_RECEIVED = Counter(
    "tenantstore_cacher_events_received_total",
    "Events received from the backend watch",
    ["resource"],
)
EVENTS_DISPATCHED = Counter(
    "tenantstore_cacher_events_dispatched_total",
    "Events delivered to watchers (one per watcher per event)",
    ["resource"],
)
WATCHERS = Gauge("tenantstore_cacher_watchers", "Watchers open on the cache", ["resource"])
WATCHERS_TERMINATED = Counter(
    "tenantstore_cacher_watchers_terminated_total",
    "Watchers ended for not keeping up",
    ["resource"],
)
KEY_ERRORS = Counter(
    "tenantstore_cacher_key_errors_total",
    "Objects refused by the key function (fail closed: not cached)",
    ["resource"],
)
RELISTS = Counter(
    "tenantstore_cacher_relists_total", "Times the reflector listed the backend", ["resource"]
)
LIST_LATENCY = Histogram(
    "tenantstore_cacher_list_duration_seconds",
    "Latency of lists served by the cacher",
    ["resource"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
