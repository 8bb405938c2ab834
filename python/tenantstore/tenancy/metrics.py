"""Prometheus metrics of the tenancy layer, labelled by resource.

Defined once at import (prometheus-client refuses duplicate registration); children are per
resource, never per project, so the metric cardinality does not grow with the project count.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONTINUE_TOKEN_REJECTIONS = Counter(
    "tenantstore_continue_token_rejections_total",
    "Continue tokens refused by the key rewriter (undecodable, or outside the caller's scope)",
    ["resource"],
)
TENANT_MAP_ENTRIES = Gauge(
    "tenantstore_tenant_map_entries",
    "Objects whose owning project the tenant map records",
    ["resource"],
)
TENANT_MAP_REFUSED = Counter(
    "tenantstore_tenant_map_refused_total",
    "UIDs refused by the tenant map: claimed by two scopes, or stored under a key that does "
    "not match the object (fail closed: the object is not cached)",
    ["resource"],
)
TENANT_MAP_PRUNED = Counter(
    "tenantstore_tenant_map_pruned_total",
    "Tenant map entries removed by the reconciler (not in the cache's live set)",
    ["resource"],
)
