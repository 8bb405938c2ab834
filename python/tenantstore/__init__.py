"""tenantstore: multi-tenant Kubernetes-style storage.

One watch cache per resource serves many projects; the project is part of the storage key.

The names below are the public API, importable from the package itself
(`from tenantstore import SqliteKV, SharedStorageFactory, project_scope`). They are
resolved on first use (PEP 562 `__getattr__`) because `import tenantstore` must stay
cheap: an embedder that only wants `__version__`, or only the SQLite backend, must not pay
for gRPC (`EtcdKV` pulls in `aetcd`), the Rust extension or the cacher. Type checkers see
the same names through the imports under `TYPE_CHECKING`, which never run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .backends import KV as KV
    from .backends import open_kv as open_kv
    from .backends.etcd import EtcdKV as EtcdKV
    from .backends.sqlite import SqliteKV as SqliteKV
    from .cacher import Cacher as Cacher
    from .storage import AlreadyExistsError as AlreadyExistsError
    from .storage import BadRequestError as BadRequestError
    from .storage import ConflictError as ConflictError
    from .storage import EventType as EventType
    from .storage import GoneError as GoneError
    from .storage import InternalError as InternalError
    from .storage import InvalidError as InvalidError
    from .storage import ListOptions as ListOptions
    from .storage import NotFoundError as NotFoundError
    from .storage import ObjectList as ObjectList
    from .storage import Preconditions as Preconditions
    from .storage import ResourceVersionMatch as ResourceVersionMatch
    from .storage import Storage as Storage
    from .storage import StorageError as StorageError
    from .storage import TooLargeResourceVersionError as TooLargeResourceVersionError
    from .storage import UnavailableError as UnavailableError
    from .storage import Watch as Watch
    from .storage import WatchEvent as WatchEvent
    from .store import KVStorage as KVStorage
    from .tenancy import PerProjectStorageFactory as PerProjectStorageFactory
    from .tenancy import SharedStorageFactory as SharedStorageFactory
    from .tenancy import all_projects as all_projects
    from .tenancy import current_project as current_project
    from .tenancy import make_factory as make_factory
    from .tenancy import project_scope as project_scope

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
