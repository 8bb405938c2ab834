"""The watch cache's ordered index, kept in the Rust core.

`Index` maps each cached key to `(resource_version, object)` in key order, so a LIST is
a range scan and a paginated LIST resumes from a key; `Index.snapshot()` is O(1) (a
persistent map), so every page of a paginated LIST reads the state its first page saw.
The map lives in Rust because the cacher touches it on every event and every read; this
module is the typed face of that extension, as `keys` and `frames` are of theirs.
"""

from __future__ import annotations

from tenantstore._native import Index, IndexSnapshot

__all__ = ["Index", "IndexSnapshot"]
