"""The store layer: Kubernetes storage semantics, written once over any KV driver.

`KVStorage` is what the Kubernetes etcd3 store is to the etcd client: the `Storage`
protocol (create, get, list, guaranteed update, delete, watch) over the few primitives
of `tenantstore.backends.kv.KV`.
"""

from ..storage.key_schema import validate_key
from .kv_storage import MAX_PAGE, KVStorage

__all__ = ["MAX_PAGE", "KVStorage", "validate_key"]
