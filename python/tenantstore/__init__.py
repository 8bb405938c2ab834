"""tenantstore: multi-tenant Kubernetes-style storage.

One watch cache per resource serves many projects; the project is part of the storage key.
"""

__version__ = "0.1.0"
