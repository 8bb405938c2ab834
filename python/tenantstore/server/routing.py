"""URL parsing: the project prefix, then an ordinary Kubernetes path.

`/projects/<project>/control-plane/<rest>` runs `<rest>` in `<project>`'s scope (the
URL layout of milo's virtual control planes); a path without the prefix is the root scope.
A malformed project id is a 400 (it must never fall through to the root scope), a path
under `/projects/` that is not a control-plane path is a 404.

`<rest>` is parsed into a `Target`: a discovery document, a server endpoint
(`/version`, `/healthz`...), or a resource collection / object.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import unquote

from ..keys import is_valid_project_id
from ..storage.errors import BadRequestError, NotFoundError
from .registry import Resource, ResourceRegistry

__all__ = ["Kind", "Target", "parse_path", "split_project"]

PROJECTS = "projects"
CONTROL_PLANE = "control-plane"


def split_project(path: str) -> tuple[str | None, str]:
    """`(project or None, rest of the path, still percent-encoded)`; raises 400/404.

    The project segment is split off before percent-decoding, so an encoded `/` or
    `..` stays inside the project id (and fails its validation) instead of moving the
    request to another path.

    >>> split_project("/projects/p1/control-plane/api/v1")
    ('p1', '/api/v1')
    """
    if path != "/projects" and not path.startswith("/projects/"):
        return None, path
    parts = path.split("/", 4)  # ["", "projects", project, "control-plane", rest]
    if len(parts) < 4 or parts[3] != CONTROL_PLANE:
        raise NotFoundError(f"the server could not find the requested resource ({path})")
    project = unquote(parts[2])
    if not is_valid_project_id(project):
        raise BadRequestError(
            f'invalid project id "{project}": must be a lowercase RFC 1123 label '
            "(at most 63 characters of a-z, 0-9 and '-', starting and ending alphanumeric)"
        )
    rest = "/" + parts[4] if len(parts) > 4 else "/"
    return project, rest


class Kind(enum.Enum):
    ROOT = "root"  # "/": the list of paths
    API_VERSIONS = "api"  # /api
    CORE_RESOURCES = "api/v1"  # /api/v1 and /apis/<g>/<v>: APIResourceList
    GROUP_LIST = "apis"  # /apis
    GROUP = "apis/<g>"  # /apis/<g>
    VERSION = "version"
    HEALTHZ = "healthz"
    READYZ = "readyz"
    LIVEZ = "livez"
    METRICS = "metrics"
    OPENAPI = "openapi"
    COLLECTION = "collection"
    OBJECT = "object"


@dataclass(frozen=True, slots=True)
class Target:
    kind: Kind
    group: str = ""
    version: str = ""
    resource: Resource | None = None
    namespace: str | None = None
    name: str = ""
    #: `status` for `<object>/status` (a resource with the status subresource), else "".
    subresource: str = ""


_SIMPLE = {
    "": Kind.ROOT,
    "api": Kind.API_VERSIONS,
    "apis": Kind.GROUP_LIST,
    "version": Kind.VERSION,
    "healthz": Kind.HEALTHZ,
    "readyz": Kind.READYZ,
    "livez": Kind.LIVEZ,
    "metrics": Kind.METRICS,
}


def _not_found(path: str) -> NotFoundError:
    return NotFoundError(f"the server could not find the requested resource ({path})")


def _plain_segment(seg: str) -> bool:
    """A namespace or name segment that cannot alter a storage key's shape (an encoded
    `/`, `..`, `.` or control character never reaches storage)."""
    return seg not in (".", "..") and "/" not in seg and seg.isprintable()


def parse_path(path: str, registry: ResourceRegistry) -> Target:
    """Parse a percent-encoded Kubernetes path (already stripped of any project prefix).

    The path is split on its literal slashes first and each segment decoded after, so an
    encoded `/` stays inside its segment (and fails `_plain_segment`) instead of
    shifting the segments: a name can never alias another path.
    """
    trimmed = path.strip("/")
    simple = _SIMPLE.get(unquote(trimmed))
    if simple is not None:
        return Target(simple)
    segs = [unquote(s) for s in trimmed.split("/")]
    if any(s == "" for s in segs):
        raise _not_found(path)
    if segs[0] in ("healthz", "readyz", "livez") and len(segs) == 2:
        return Target(_SIMPLE[segs[0]], name=segs[1])  # one named check
    if segs[0] == "openapi":
        # `v2`, `v3` or `v3/<group-version>`: `openapi.OpenAPIDocuments.respond` resolves it.
        return Target(Kind.OPENAPI, name="/".join(segs[1:]))
    if segs[0] == "api":
        if segs[1] != "v1":
            raise _not_found(path)
        group, version, rest = "", "v1", segs[2:]
    elif segs[0] == "apis":
        group = segs[1]
        if len(segs) == 2:
            if not registry.group_versions(group):
                raise _not_found(path)
            return Target(Kind.GROUP, group=group)
        version, rest = segs[2], segs[3:]
    else:
        raise _not_found(path)
    if not registry.has_group_version(group, version):
        raise _not_found(path)
    if not rest:
        return Target(Kind.CORE_RESOURCES, group=group, version=version)
    namespace: str | None = None
    # /namespaces/<ns>/<plural>[/<name>]; "/namespaces/<name>" is the namespace object.
    # (`/namespaces/<name>/status` is the namespace's own status subresource.)
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2:] != ["status"]:
        namespace, rest = rest[1], rest[2:]
    if namespace is not None and not _plain_segment(namespace):
        raise _not_found(path)
    if len(rest) >= 2 and not _plain_segment(rest[1]):
        raise _not_found(path)
    res = registry.lookup(group, version, rest[0])
    subresource = ""
    if res is not None and len(rest) == 3 and rest[2] == "status" and res.status_subresource:
        subresource, rest = "status", rest[:2]
    if res is None or len(rest) > 2:
        # Unknown resource, or a subresource not served (scale, or status undeclared).
        raise _not_found(path)
    if namespace is not None and not res.namespaced:
        raise _not_found(path)
    if len(rest) == 2:
        if res.namespaced and namespace is None:
            raise _not_found(path)
        return Target(
            Kind.OBJECT,
            group=group,
            version=version,
            resource=res,
            namespace=namespace,
            name=rest[1],
            subresource=subresource,
        )
    return Target(Kind.COLLECTION, group=group, version=version, resource=res, namespace=namespace)
