"""tenantstore: multi-tenant Kubernetes-style storage.

One watch cache per resource serves many projects; the project is part of the storage key.

The names below are the public API, importable from the package itself
(`from tenantstore import SqliteKV, SharedStorageFactory, project_scope`). They are
resolved on first use (PEP 562 `__getattr__`) because `import tenantstore` must stay
cheap: an embedder that only wants `__version__`, or only the SQLite backend, must not pay
for gRPC (`EtcdKV` pulls in `aetcd`), the Rust extension or the cacher. Type checkers read
the same names from `__init__.pyi`; the package root may not import the layers itself
(`tests/architecture/test_layers.py` treats it as shared vocabulary).
"""

from __future__ import annotations

__version__ = "0.1.0"

# public name -> the module that defines it (imported on first access).
_LAZY: dict[str, str] = {
    # KV backends
    "KV": "tenantstore.backends",
    "open_kv": "tenantstore.backends",
    "SqliteKV": "tenantstore.backends.sqlite",
    "EtcdKV": "tenantstore.backends.etcd",
    # store and cache
    "KVStorage": "tenantstore.store",
    "Cacher": "tenantstore.cacher",
    # tenancy
    "SharedStorageFactory": "tenantstore.tenancy",
    "PerProjectStorageFactory": "tenantstore.tenancy",
    "make_factory": "tenantstore.tenancy",
    "project_scope": "tenantstore.tenancy",
    "all_projects": "tenantstore.tenancy",
    "current_project": "tenantstore.tenancy",
    # the storage vocabulary
    "Storage": "tenantstore.storage",
    "ListOptions": "tenantstore.storage",
    "ObjectList": "tenantstore.storage",
    "Preconditions": "tenantstore.storage",
    "ResourceVersionMatch": "tenantstore.storage",
    "Watch": "tenantstore.storage",
    "WatchEvent": "tenantstore.storage",
    "EventType": "tenantstore.storage",
    "StorageError": "tenantstore.storage",
    "NotFoundError": "tenantstore.storage",
    "AlreadyExistsError": "tenantstore.storage",
    "ConflictError": "tenantstore.storage",
    "GoneError": "tenantstore.storage",
    "InvalidError": "tenantstore.storage",
    "BadRequestError": "tenantstore.storage",
    "UnavailableError": "tenantstore.storage",
    "InternalError": "tenantstore.storage",
    "TooLargeResourceVersionError": "tenantstore.storage",
}

__all__ = [
    "KV",
    "AlreadyExistsError",
    "BadRequestError",
    "Cacher",
    "ConflictError",
    "EtcdKV",
    "EventType",
    "GoneError",
    "InternalError",
    "InvalidError",
    "KVStorage",
    "ListOptions",
    "NotFoundError",
    "ObjectList",
    "PerProjectStorageFactory",
    "Preconditions",
    "ResourceVersionMatch",
    "SharedStorageFactory",
    "SqliteKV",
    "Storage",
    "StorageError",
    "TooLargeResourceVersionError",
    "UnavailableError",
    "Watch",
    "WatchEvent",
    "__version__",
    "all_projects",
    "current_project",
    "make_factory",
    "open_kv",
    "project_scope",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        # AttributeError (not ImportError) so `from . import submodule` falls back to
        # importing the submodule, as it must for `tenantstore._native` and friends.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # here, not at the top: it costs `import tenantstore` a few ms

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    # The lazy names are not in the module's namespace until first used; completion and
    # `help()` should show them all the same.
    return sorted({*globals(), *__all__})
