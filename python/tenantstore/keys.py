"""Per-project storage keys.

Every resource keeps one keyspace in etcd and one watch cache for all projects; the project is
encoded as a path segment right after the resource prefix:

    /registry/configmaps/ns/a  --(project "p1")-->  /registry/configmaps/clusters/p1/ns/a
    /registry/configmaps/ns/a  --(root, None)--->  /registry/configmaps/root/ns/a

The rewriting runs in the Rust core (`tenantstore._native`) because it sits on every storage
call and the batch form on every list/watch fan-out. These wrappers exist so callers import a
typed, documented module instead of the extension, and so the rules live in one place: the
segment names too come from the Rust core, so Python code that recognises scoped keys cannot
drift from the rewriting.

Project ids are DNS-1123 labels. Validation is not optional: a project id is spliced into a
storage path, so an id containing `/` (or an empty one) could address another tenant's keys.
Every function that takes a project validates it and raises `InvalidProjectError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from tenantstore import _native
from tenantstore._native import InvalidProjectError, OwnerMap

__all__ = [
    "CLUSTERS_SEGMENT",
    "ROOT_SEGMENT",
    "InvalidProjectError",
    "OwnerMap",
    "is_valid_project_id",
    "project_of_key",
    "projects_of_keys",
    "scope_prefix",
    "scoped_key",
    "scoped_keys",
    "validate_project_id",
]

#: Segment after the resource prefix that introduces a project: `<prefix>/clusters/<project>/`.
CLUSTERS_SEGMENT: Final[str] = _native.CLUSTERS_SEGMENT
#: Segment after the resource prefix for the root (unscoped) tenant: `<prefix>/root/`.
ROOT_SEGMENT: Final[str] = _native.ROOT_SEGMENT


def validate_project_id(project_id: str) -> None:
    """Raise `InvalidProjectError` unless `project_id` is a DNS-1123 label.

    A label is 1-63 characters of `a-z`, `0-9` and `-`, starting and ending with an
    alphanumeric. The same rule Kubernetes applies to namespace names, so a project id is safe
    as a path segment and as a label value.
    """
    _native.validate_project_id(project_id)


def is_valid_project_id(project_id: str) -> bool:
    """True when `project_id` is a DNS-1123 label (see `validate_project_id`).

    For callers that branch on validity (e.g. admission checks) rather than propagate an error.
    """
    try:
        _native.validate_project_id(project_id)
    except InvalidProjectError:
        return False
    return True


def scope_prefix(resource_prefix: str, project: str | None) -> str:
    """The key prefix of one project's slice of a resource.

    `<resource_prefix>/clusters/<project>/`, or `<resource_prefix>/root/` when `project` is
    None. A trailing slash on `resource_prefix` is ignored. Used as the range start for lists
    and as the watch-cache filter for one project.
    """
    return _native.scope_prefix(resource_prefix, project)


def scoped_key(key: str, resource_prefix: str, project: str | None) -> str:
    """Rewrite an unscoped storage key into `project`'s scope.

    The scope segment goes right after `resource_prefix`; the bare prefix (with or without a
    trailing slash) becomes `scope_prefix`. A key not under the prefix on a path-segment
    boundary (`/registry/configmapsX/a` is not under `/registry/configmaps`) is returned
    unchanged, the same object. Keys are not checked for being scoped already: scoping a scoped
    key nests it, so call this once, at the storage boundary.
    """
    return _native.scoped_key(key, resource_prefix, project)


def project_of_key(key: str, resource_prefix: str) -> str | None:
    """The project a scoped key belongs to, or None for a root key.

    Raises `ValueError` for a key that is not `<prefix>/clusters/<project>[/...]` or
    `<prefix>/root[/...]` (including keys outside the prefix), and `InvalidProjectError` when
    the project segment is empty or not a DNS-1123 label. Inverse of `scoped_key` for keys
    under the prefix.
    """
    return _native.project_of_key(key, resource_prefix)


def scoped_keys(keys: Iterable[str], resource_prefix: str, project: str | None) -> list[str]:
    """`scoped_key` over many keys, validating `project` once.

    Equal to `[scoped_key(k, resource_prefix, project) for k in keys]` but without a Python
    call per key. A single `str` is refused with TypeError (it would be read as characters).
    """
    return _native.scoped_keys(keys, resource_prefix, project)


def projects_of_keys(keys: Iterable[str], resource_prefix: str) -> list[str | None]:
    """`project_of_key` over many keys; raises on the first key that is not scoped."""
    return _native.projects_of_keys(keys, resource_prefix)
