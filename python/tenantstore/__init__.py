"""tenantstore: multi-tenant Kubernetes-style storage, one watch cache per resource for many projects."""

__version__ = "0.1.0"
