"""KV drivers: the etcd-shaped `KV` contract and the drivers that implement it.

Drivers register themselves by URL scheme, as kine's drivers do, so that nothing above
this package names a driver: `open_kv("sqlite://data/ts.db")` or
`open_kv("etcd://127.0.0.1:2379")`. A driver module is imported on first use only (the
etcd driver pulls in gRPC). An embedder can add a driver with `register_driver`.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable

from .kv import (
    KV,
    CompactedError,
    InvalidKVInputError,
    KeyValue,
    KVEvent,
    KVEventType,
    KVWatch,
    RangeResult,
    TxnResult,
    prefix_end,
)

__all__ = [
    "KV",
    "CompactedError",
    "InvalidKVInputError",
    "KVEvent",
    "KVEventType",
    "KVWatch",
    "KeyValue",
    "RangeResult",
    "TxnResult",
    "UnknownDriverError",
    "open_kv",
    "prefix_end",
    "register_driver",
]

Opener = Callable[[str], Awaitable[KV]]

# scheme -> opener, filled by the driver modules when they are imported.
_openers: dict[str, Opener] = {}
# scheme -> module that registers it on import (loaded lazily by `open_kv`).
_lazy: dict[str, str] = {
    "sqlite": "tenantstore.backends.sqlite",
    "etcd": "tenantstore.backends.etcd",
    "http": "tenantstore.backends.etcd",
}


class UnknownDriverError(ValueError):
    """A backend URL whose scheme no driver serves."""


def register_driver(scheme: str, opener: Opener) -> None:
    """Serve `scheme://...` URLs with `opener(url)`; a later registration replaces one."""
    _openers[scheme] = opener


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme if sep else ""


async def open_kv(url: str) -> KV:
    """Open the KV a backend URL names: `sqlite://PATH` (its parent directory is created)
    or `etcd://HOST:PORT[,HOST:PORT]`, or a scheme registered with `register_driver`."""
    scheme = _scheme(url)
    if scheme not in _openers and scheme in _lazy:
        importlib.import_module(_lazy[scheme])
    opener = _openers.get(scheme)
    if opener is None:
        known = ", ".join(f"{s}://" for s in sorted({*_lazy, *_openers}))
        raise UnknownDriverError(f"unknown backend URL {url!r}: expected one of {known}")
    return await opener(url)
