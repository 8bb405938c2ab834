"""A Kubernetes-style REST API server over tenantstore: many projects, one cache per resource.

`/projects/<project>/control-plane/...` serves an ordinary Kubernetes API confined to
`<project>` (any valid DNS-1123 label; there is no project registry); paths without the
prefix serve the root scope. See `app.create_app` and the `tenantstore serve` command.
"""

from .app import DEFAULT_BACKEND, ServerConfig, ServerState, create_app, open_kv
from .registry import BUILTIN_RESOURCES, RegistryError, Resource, ResourceRegistry
from .runner import TenantstoreServer, make_server

__all__ = [
    "BUILTIN_RESOURCES",
    "DEFAULT_BACKEND",
    "RegistryError",
    "Resource",
    "ResourceRegistry",
    "ServerConfig",
    "ServerState",
    "TenantstoreServer",
    "create_app",
    "make_server",
    "open_kv",
]
