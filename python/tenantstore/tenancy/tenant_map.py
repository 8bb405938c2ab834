"""The per-cacher tenant map: which scope owns each cached object, by UID.

The tenant codec records an entry every time it decodes a framed value (every list page and
watch event the shared cacher reads passes through it), and the tenant-aware key function
(`keyfunc.py`) reads it to place the object in the cache under its scoped key.

Layout, and why it is small
---------------------------
The reference keeps `uid -> (tenant, storage key, recorded_at)`: a tuple, a copy of the
storage key and a float per object. Here an entry is one slot of a Rust table
(`keys.OwnerMap`), `uid -> owner`, holding no Python object:

* a UID in the canonical UUID form is kept as its 16 bytes (any other UID as its string),
  and the owner as a small integer naming the interned project id, or `""` for root, which
  is not a valid project id, so the encodings cannot collide. An earlier layout was a dict
  whose keys were the decoded objects' own UID strings: once the cache kept bytes instead of
  dicts, those strings were all that survived of each decoded list page, and they kept
  the interpreter's allocator arenas resident around them (measured: about 350 B per cached
  object in a running server, more than the map's own bytes);
* the storage key is not stored: it is checked *when recorded*. The codec sees the storage
  key (from the frame) next to the body; the entry is only written if the key is exactly the
  key predicted from the body (`<prefix>/clusters/<project>/<namespace>/<name>` or
  `/root/`). The key function recomputes the same prediction from the same body, so it
  yields the storage key without having to keep it;
* no timestamp: the reconciler's grace period is kept with a "young" set that only exists
  during the grace window before each reconcile (UIDs recorded while it is open are not
  pruned by that reconcile), so the steady-state cost per entry is the table slot alone.

`benches/bench_tenancy.py` measures the layouts at 100k entries.

Fail-closed rules
-----------------
The first claim on a UID wins. A record that disagrees is refused and counted
(`tenantstore_tenant_map_refused_total`): one from another scope (a value copied to another
project's key, or planted there behind tenantstore's back), one whose storage key does not
match its body, one under a key that names no valid scope. The refusal touches nothing of
the owner's entry, and the key function, which sees the storage key of every object the
cache reads, refuses the disagreeing record by where it lives, so:

* the refused record is never cached, in any scope;
* the owner's object keeps receiving its writes (an earlier design poisoned the UID,
  which froze the owner's cached object until a restart);
* nothing needs healing once the bad record is gone.

A UID that was never recorded is *unmapped*: the key function keys it where no scope can
list it. On a cold start that finds two scopes claiming one UID, the first in key order
wins; the reconciler and the owner's next write keep the map equal to the cache.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any, Final

from ..keys import OwnerMap, project_of_key, scope_prefix
from . import metrics

__all__ = ["UNMAPPED", "TenantMap", "object_key"]

# Owner encodings (table values).
_ROOT: Final = ""


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: `TenantMap.owner` result for a UID that has no entry.
UNMAPPED: Final = _Sentinel("UNMAPPED")


def object_key(resource_prefix: str, project: str | None, obj: dict[str, Any]) -> str | None:
    """The storage key an object must live at in `project`'s scope, or None if it has none.

    `<prefix>/clusters/<project>/<namespace>/<name>` (`/root/` for None), without the
    namespace segment for cluster-scoped objects - the key the registry writes it under.
    """
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return None
    name = meta.get("name")
    ns = meta.get("namespace")
    if not isinstance(name, str) or not name or (ns is not None and not isinstance(ns, str)):
        return None
    base = scope_prefix(resource_prefix, project)
    return f"{base}{ns}/{name}" if ns else f"{base}{name}"


class TenantMap:
    """`uid -> owning scope` for the objects of one shared cacher."""

    __slots__ = ("__weakref__", "_m_refused", "_owners", "_young", "label", "resource_prefix")

    def __init__(self, resource_prefix: str, *, resource_label: str | None = None) -> None:
        self.resource_prefix = resource_prefix.rstrip("/")
        self.label = resource_label or self.resource_prefix
        self._owners = OwnerMap()
        # UIDs recorded since the grace window opened; None outside the window.
        self._young: set[str] | None = None
        self._m_refused = metrics.TENANT_MAP_REFUSED.labels(self.label)
        ref = weakref.ref(self)

        def size() -> float:
            m = ref()
            return float(len(m._owners)) if m is not None else 0.0

        metrics.TENANT_MAP_ENTRIES.labels(self.label).set_function(size)

    # -- recording (the tenant codec) -----------------------------------------------
    def record(self, storage_key: str | bytes, obj: dict[str, Any]) -> bool:
        """Record the owner of `obj` read from `storage_key`; True if it is now mapped.

        Not recorded (and counted as refused): an object under a key that names no valid
        scope, one whose body does not give the key it is stored at, and one whose uid
        another scope already owns. The first claim wins: a record planted later in
        another scope with an owner's uid is refused, and the owner's own writes keep
        flowing (the key function refuses the planted record by its storage key). Not
        recorded and not counted: an object without a uid (the key function refuses it).
        """
        meta = obj.get("metadata")
        uid = meta.get("uid") if isinstance(meta, dict) else None
        if not isinstance(uid, str) or not uid:
            return False
        try:
            key = storage_key.decode("utf-8") if isinstance(storage_key, bytes) else storage_key
            project = project_of_key(key, self.resource_prefix)
        except ValueError:  # includes InvalidProjectError and UnicodeDecodeError
            self._m_refused.inc()
            return False
        if key != object_key(self.resource_prefix, project, obj):
            self._m_refused.inc()
            return False
        if not self._owners.claim(uid, project if project is not None else _ROOT):
            self._m_refused.inc()
            return False
        young = self._young
        if young is not None:
            young.add(uid)
        return True

    # -- lookups (the key function) -----------------------------------------------------
    def owner(self, uid: str) -> str | _Sentinel | None:
        """The owning project (None for root), or `UNMAPPED`."""
        value = self._owners.owner(uid)
        if value is None:
            return UNMAPPED
        if value == _ROOT:
            return None
        return value

    def __len__(self) -> int:
        return len(self._owners)

    def __contains__(self, uid: object) -> bool:
        return uid in self._owners

    def uids(self) -> set[str]:
        return set(self._owners.uids())

    # -- forgetting (the deletion tracker) ----------------------------------------------
    def forget(self, uid: str) -> bool:
        """Drop the entry of a deleted object."""
        return self._owners.forget(uid)

    def begin_grace(self) -> None:
        """Open the grace window: UIDs recorded from now on survive the next `prune`."""
        self._young = set()

    def prune(self, live_uids: Iterable[str]) -> int:
        """Drop entries not in `live_uids` and not recorded since `begin_grace`.

        `live_uids` may be a generator: each is marked in the table as it comes, so no
        set of every live UID is built (about 5 MB of Python heap at 40,000 objects, every
        reconcile, which the interpreter then keeps). Closes the grace window. Returns the
        number of entries removed.
        """
        young = self._young or set()
        self._young = None
        for uid in live_uids:
            self._owners.mark(uid)
        removed = self._owners.sweep(young)
        if removed:
            metrics.TENANT_MAP_PRUNED.labels(self.label).inc(removed)
        return removed

    def __repr__(self) -> str:
        return f"TenantMap({self.resource_prefix!r}, entries={len(self._owners)})"
