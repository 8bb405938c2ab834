"""Tenancy: many projects served from one watch cache per resource.

The project is part of the storage key (`<prefix>/clusters/<project>/...`, `<prefix>/root/`
for the root scope); the layers, outermost first:

* `context`: the request's scope (`project_scope`, root, the explicit `all_projects`);
* `rewriter`: `KeyRewriter`, a `Storage` decorator that scopes keys, checks continue
  tokens and scrubs scoped keys from errors;
* the shared `Cacher` with `keyfunc.tenant_key_func`, over a `KVStorage` whose
  `framing.FramingTransformer` and `framing.TenantCodec` carry the storage key to the
  `tenant_map.TenantMap`;
* `tracker`: the `DeletionTracker` keeping the map bounded by the cache;
* `usage`: `ProjectUsage`, objects and bytes per project from the caches (quotas);
* `shared`: `SharedStorageFactory`, the assembly of all of the above per resource;
* `per_project` and `scope_router`: the per-project architecture, for comparison;
* `factory`: the wiring the server uses (`open_kv`, `make_factory`).
"""

from .context import (
    ALL_PROJECTS,
    ScopeError,
    all_projects,
    current_project,
    current_scope,
    in_all_projects,
    project_scope,
)
from .factory import (
    FactoryStats,
    PerProjectStorageFactory,
    SharedStorageFactory,
    StorageFactory,
    make_factory,
)
from .framing import FramingTransformer, TenantCodec
from .keyfunc import UNMAPPED_PREFIX, KeyDivergedError, tenant_key_func
from .rewriter import KeyRewriter
from .scope_router import ScopeRouter
from .tenant_map import UNMAPPED, TenantMap, object_key
from .tracker import DeletionTracker
from .usage import ProjectUsage, Usage, object_size

__all__ = [
    "ALL_PROJECTS",
    "UNMAPPED",
    "UNMAPPED_PREFIX",
    "DeletionTracker",
    "FactoryStats",
    "FramingTransformer",
    "KeyDivergedError",
    "KeyRewriter",
    "PerProjectStorageFactory",
    "ProjectUsage",
    "ScopeError",
    "ScopeRouter",
    "SharedStorageFactory",
    "StorageFactory",
    "TenantCodec",
    "TenantMap",
    "Usage",
    "all_projects",
    "current_project",
    "current_scope",
    "in_all_projects",
    "make_factory",
    "object_key",
    "object_size",
    "project_scope",
    "tenant_key_func",
]
