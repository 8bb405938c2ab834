"""Discovery documents: what kubectl and client libraries read before any request.

Legacy discovery: `/api` (APIVersions), `/api/v1` and `/apis/<group>/<version>`
(APIResourceList), `/apis` (APIGroupList), `/apis/<group>` (APIGroup). Aggregated
discovery (`apidiscovery.k8s.io/v2`, and `v2beta1`): `/api` and `/apis` answer one
`APIGroupDiscoveryList` holding every group, version and resource when the `Accept`
header asks for it, as kubectl 1.30+ and client-go do first, which saves them a request
per group version. The client recognises that answer by its `Content-Type` (the `g`, `v`
and `as` parameters), so the response carries them; a client that asks for plain JSON
gets the legacy document, hence `Vary: Accept`. `/version` reports a Kubernetes-like
version so clients' version checks pass. The documents are the same in every project:
the resource set is server-wide, only the data is per project.
"""

from __future__ import annotations

import platform
from typing import Any

from .. import __version__ as tenantstore_version
from .registry import Resource, ResourceRegistry

__all__ = [
    "KUBE_VERSION",
    "aggregated_content_type",
    "aggregated_discovery",
    "aggregated_version",
    "api_group",
    "api_group_list",
    "api_resource_list",
    "api_versions",
    "version_info",
]

#: The Kubernetes API level these REST conventions follow.
KUBE_VERSION = (1, 32)


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def api_resource_list(registry: ResourceRegistry, group: str, version: str) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [r.discovery() for r in registry.resources_of(group, version)],
    }


def api_group(registry: ResourceRegistry, group: str) -> dict[str, Any]:
    versions = [
        {"groupVersion": f"{group}/{v}", "version": v} for v in registry.group_versions(group)
    ]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": versions[0],
    }


def api_group_list(registry: ResourceRegistry) -> dict[str, Any]:
    groups = []
    for group in registry.groups:
        doc = api_group(registry, group)
        del doc["kind"], doc["apiVersion"]
        groups.append(doc)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def version_info() -> dict[str, str]:
    major, minor = KUBE_VERSION
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return {
        "major": str(major),
        "minor": str(minor),
        "gitVersion": f"v{major}.{minor}.0+tenantstore.{tenantstore_version}",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": f"python{platform.python_version()}",
        "compiler": "cpython",
        "platform": f"{platform.system().lower()}/{arch}",
    }


DISCOVERY_GROUP = "apidiscovery.k8s.io"
_AGGREGATED_VERSIONS = ("v2", "v2beta1")
# What a resource's `/status` allows, as upstream's status subresources advertise.
_STATUS_VERBS = ["get", "patch", "update"]


def aggregated_version(accept: str) -> str | None:
    """The `apidiscovery.k8s.io` version the `Accept` header prefers (`v2`, `v2beta1`), or
    None when a plain media type comes first (or nothing asks for aggregation)."""
    if DISCOVERY_GROUP not in accept:
        return None
    for entry in accept.split(","):
        media, *raw = (part.strip() for part in entry.split(";"))
        params = dict(p.partition("=")[::2] for p in raw)
        if "as" not in params:
            if media:
                return None
            continue
        if (
            media.lower() in ("application/json", "application/*", "*/*")
            and params.get("as") == "APIGroupDiscoveryList"
            and params.get("g") == DISCOVERY_GROUP
            and params.get("v") in _AGGREGATED_VERSIONS
        ):
            return params["v"]
    return None


def aggregated_content_type(version: str) -> str:
    return f"application/json;g={DISCOVERY_GROUP};v={version};as=APIGroupDiscoveryList"


def _kind_ref(res: Resource, kind: str) -> dict[str, str]:
    return {"group": res.group, "version": res.version, "kind": kind}


def _resource_discovery(res: Resource) -> dict[str, Any]:
    legacy = res.discovery()
    entry: dict[str, Any] = {
        "resource": res.plural,
        "responseKind": _kind_ref(res, res.kind),
        "scope": "Namespaced" if res.namespaced else "Cluster",
        "singularResource": res.singular_name,
        "verbs": legacy["verbs"],
    }
    for key in ("shortNames", "categories"):
        if key in legacy:
            entry[key] = legacy[key]
    if res.status_subresource:
        entry["subresources"] = [
            {
                "subresource": "status",
                "responseKind": _kind_ref(res, res.kind),
                "verbs": list(_STATUS_VERBS),
            }
        ]
    return entry


def aggregated_discovery(registry: ResourceRegistry, *, core: bool, version: str) -> dict[str, Any]:
    """The `APIGroupDiscoveryList` of `/api` (`core`: the core group) or `/apis` (every
    named group); versions in preference order, the preferred one first."""
    groups = [""] if core else registry.groups
    items = []
    for group in groups:
        versions = [
            {
                "version": v,
                "resources": [_resource_discovery(r) for r in registry.resources_of(group, v)],
                "freshness": "Current",
            }
            for v in registry.group_versions(group)
        ]
        meta: dict[str, Any] = {"name": group} if group else {}
        items.append({"metadata": meta, "versions": versions})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"{DISCOVERY_GROUP}/{version}",
        "metadata": {},
        "items": items,
    }
