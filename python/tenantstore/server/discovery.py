"""Discovery documents: what kubectl and client libraries read before any request.

Legacy (unaggregated) discovery only: `/api` (APIVersions), `/api/v1` and
`/apis/<group>/<version>` (APIResourceList), `/apis` (APIGroupList), `/apis/<group>`
(APIGroup). kubectl asks for aggregated discovery first and falls back to these when the
answer is a plain `application/json` document. `/version` reports a Kubernetes-like
version so clients' version checks pass. The documents are the same in every project:
the resource set is server-wide, only the data is per project.
"""

from __future__ import annotations

import platform
from typing import Any

from .. import __version__ as tenantstore_version
from .registry import ResourceRegistry

__all__ = [
    "KUBE_VERSION",
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
