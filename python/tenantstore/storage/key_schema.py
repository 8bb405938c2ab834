"""Which keys a storage accepts: clean absolute paths, at or below its resource prefix.

Every layer checks the same rule (the store, the cacher, the key rewriter), so a key
that one layer would refuse cannot slip through another: a path that climbs (`..`),
hides a NUL, or names another resource is an `InvalidError` before anything is read
or written. Upstream's `RunTestKeySchema` expects the same of every storage.
"""

from __future__ import annotations

import posixpath

from .errors import InvalidError

__all__ = ["check_key", "validate_key"]


def validate_key(key: str) -> str:
    """Refuse keys that could climb the hierarchy or confuse range scans."""
    if not isinstance(key, str) or not key.startswith("/"):
        raise InvalidError(f'invalid key "{key}": must be an absolute path')
    if "\x00" in key or (posixpath.normpath(key) != key.rstrip("/") and key != "/"):
        raise InvalidError(f'invalid key "{key}": must be a clean path')
    return key


def check_key(key: str, resource_prefix: str | None) -> str:
    """`validate_key`, and the key is `resource_prefix` or below it (None: any key)."""
    validate_key(key)
    if resource_prefix is not None:
        prefix = resource_prefix.rstrip("/")
        if key.rstrip("/") != prefix and not key.startswith(prefix + "/"):
            raise InvalidError(f'invalid key "{key}": not under the resource prefix "{prefix}"')
    return key
