"""The tenant-aware key function of the shared cacher.

The cacher indexes objects by `key_func(obj)`. Upstream derives the key from namespace and
name alone; with one cacher for all projects that would put every project's `ns/a` on one
key. This key function looks the object's UID up in the tenant map and returns the scoped key,
`<prefix>/clusters/<project>/<namespace>/<name>` (`/root/` for root objects), so the cache's
prefix scans line up exactly with the storage key subtrees the key rewriter produces.

* mapped: the scoped key. The tenant map only recorded the owner after checking that the
  storage key equals this very prediction, so it *is* the storage key;
* a record that is not the uid's owner's (the storage key the object was read from is not
  the key predicted for the owner: a copy planted in another scope, a body that
  disagrees with its key): `KeyDivergedError` - the cacher counts a key error and does
  not cache it (fail closed), while the owner's record keeps working;
* unmapped (never recorded, e.g. stored under a key that names no scope): keyed under
  `"\\x00unmapped/<uid>"`. Every scope lists under `<prefix>/...` (even `all_projects`,
  which lists `<prefix>/`), keys starting with NUL are refused by the key rewriter, so no
  request can reach it; it is kept (not refused) so that its later DELETED event finds it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ..cacher import KeyFunc
from ..keys import project_of_key
from ..storage.errors import InvalidError
from .tenant_map import UNMAPPED, TenantMap, object_key

__all__ = ["UNMAPPED_PREFIX", "KeyDivergedError", "tenant_admission", "tenant_key_func"]

#: Where objects without a mapping are kept in the cache: outside every scope's range.
UNMAPPED_PREFIX: Final = "\x00unmapped/"


class KeyDivergedError(ValueError):
    """The object's cache key cannot be trusted to equal its storage key."""


def tenant_key_func(tenant_map: TenantMap) -> KeyFunc:
    """A cacher `key_func` over `tenant_map` (one per shared cacher)."""
    prefix = tenant_map.resource_prefix

    def key_func(obj: dict[str, Any], storage_key: str = "") -> str:
        meta = obj.get("metadata")
        uid = meta.get("uid") if isinstance(meta, dict) else None
        if not isinstance(uid, str) or not uid:
            raise KeyDivergedError("object has no metadata.uid: cannot resolve its scope")
        owner = tenant_map.owner(uid)
        if owner is UNMAPPED:
            if storage_key and _names_a_scope(storage_key, prefix):
                # Read from a scope's keys, yet the map refused the record: its body does
                # not give the key it is stored at.
                raise KeyDivergedError(f"cache key diverged from storage key (uid {uid})")
            return UNMAPPED_PREFIX + uid
        assert owner is None or isinstance(owner, str)
        key = object_key(prefix, owner, obj)
        if key is None:
            raise KeyDivergedError(f"object has no usable name (uid {uid})")
        if storage_key and key != storage_key:
            # Not the record that owns the uid: a copy planted in another scope, or a
            # body that disagrees with its key. Refused; the owner's record is untouched.
            raise KeyDivergedError(f"cache key diverged from storage key (uid {uid})")
        return key

    return key_func


def _names_a_scope(storage_key: str, prefix: str) -> bool:
    try:
        project_of_key(storage_key, prefix)
    except ValueError:
        return False
    return storage_key.startswith(prefix + "/")


def tenant_admission(resource_prefix: str) -> Callable[[str, dict[str, Any]], None]:
    """The write-side twin of `tenant_key_func`: refuse, before anything is written, an
    object the key function would refuse once read back (no `metadata.uid`, or a name
    and namespace that do not give the key it is written at). Stored, such an object
    would be invisible to get, list and watch for ever, with a log line as the only sign.
    """
    prefix = resource_prefix.rstrip("/")

    def admit(scoped_key: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if not isinstance(meta, dict):
            raise InvalidError("metadata: Required value: an object needs metadata")
        uid = meta.get("uid")
        if not isinstance(uid, str) or not uid:
            raise InvalidError(
                "metadata.uid: Required value: the shared cache keys every object by its uid"
            )
        try:
            project = project_of_key(scoped_key, prefix)
        except ValueError:
            raise InvalidError(f'invalid key "{scoped_key}": names no scope') from None
        if object_key(prefix, project, obj) != scoped_key:
            raise InvalidError(
                "metadata.name/metadata.namespace: Invalid value: they do not give the key "
                "the object is written at"
            )

    return admit
