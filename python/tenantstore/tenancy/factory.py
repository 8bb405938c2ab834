"""The wiring: a KV opened by URL, and a storage factory of either design over it.

`make_factory` builds the shared design (`shared.SharedStorageFactory`, one cacher per
resource for every project) or the per-project one it replaces
(`per_project.PerProjectStorageFactory`); both expose `storage(prefix)`, `start()`,
`stop()` and `stats()`. The server and the CLI reach the layers below tenancy only
through this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from ..backends import KV, UnknownDriverError, open_kv
from .cacher_setup import FactoryStats
from .per_project import PerProjectStorageFactory
from .shared import SharedStorageFactory

__all__ = [
    "KV",
    "FactoryStats",
    "PerProjectStorageFactory",
    "SharedStorageFactory",
    "StorageFactory",
    "UnknownDriverError",
    "make_factory",
    "open_kv",
]

StorageFactory = SharedStorageFactory | PerProjectStorageFactory


def make_factory(
    mode: Literal["shared", "per-project"],
    kv: KV,
    resource_prefixes: Iterable[str],
    **options: Any,
) -> StorageFactory:
    """Build the factory of `mode` ("shared" or "per-project") with the same options."""
    if mode == "shared":
        return SharedStorageFactory(kv, resource_prefixes, **options)
    if mode == "per-project":
        return PerProjectStorageFactory(kv, resource_prefixes, **options)
    raise ValueError(f"unknown storage mode {mode!r}: expected 'shared' or 'per-project'")
