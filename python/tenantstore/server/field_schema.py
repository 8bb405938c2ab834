"""How the fields of each served type merge: the list and map semantics that server-side
apply (`managed_fields.py`) and strategic merge patch (`strategic_patch.py`) need.

Both need the same few facts, which Kubernetes keeps in its OpenAPI extensions: whether a
list is `atomic` (replaced whole), a `set` of scalars, or a `map` of objects keyed by some
of their fields (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`), whether an object
is `atomic` (`x-kubernetes-map-type`), and, for strategic merge patch, the older
`x-kubernetes-patch-strategy`/`x-kubernetes-patch-merge-key` pair. A list with a merge
strategy but no list type is associative on its merge key (a set without one), as
kube-openapi's conversion for server-side apply reads it.

The built-in types carry only the fields where these differ from the defaults (maps are
granular, lists atomic), copied from Kubernetes' Go types (`ObjectMeta`, `ServiceAccount`,
`Namespace`, `Event`); custom resources use the entry's `schema.openAPIV3Schema`, whose
lists are atomic unless they declare a list type, as for CRDs. Any schema node here is a
plain OpenAPI mapping, so the OpenAPI documents can serve richer schemas of the same shape.
"""

from __future__ import annotations

from typing import Any

from .registry import Resource

__all__ = [
    "Schema",
    "atomic_map",
    "child",
    "items",
    "list_semantics",
    "patch_strategy",
    "schema_for",
]

#: An OpenAPI schema node, or None where nothing is known (granular maps, atomic lists).
Schema = dict[str, Any] | None

_ATOMIC_REF: dict[str, Any] = {"type": "object", "x-kubernetes-map-type": "atomic"}

_OBJECT_META: dict[str, Any] = {
    "type": "object",
    "properties": {
        "finalizers": {
            "type": "array",
            "items": {"type": "string"},
            "x-kubernetes-list-type": "set",
            "x-kubernetes-patch-strategy": "merge",
        },
        "ownerReferences": {
            "type": "array",
            "items": {"type": "object", "x-kubernetes-map-type": "atomic"},
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["uid"],
            "x-kubernetes-patch-strategy": "merge",
            "x-kubernetes-patch-merge-key": "uid",
        },
    },
}

_BUILTIN: dict[str, dict[str, Any]] = {
    "ServiceAccount": {
        "secrets": {
            "type": "array",
            "items": _ATOMIC_REF,
            "x-kubernetes-patch-strategy": "merge",
            "x-kubernetes-patch-merge-key": "name",
        },
        "imagePullSecrets": {"type": "array", "items": _ATOMIC_REF},
    },
    "Namespace": {
        "spec": {
            "type": "object",
            "properties": {
                "finalizers": {"type": "array", "x-kubernetes-list-type": "atomic"},
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "conditions": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["type"],
                    "x-kubernetes-patch-strategy": "merge",
                    "x-kubernetes-patch-merge-key": "type",
                },
            },
        },
    },
    "Event": {"involvedObject": _ATOMIC_REF, "related": _ATOMIC_REF},
    "ConfigMap": {},
    "Secret": {},
}


_SCHEMAS: dict[int, tuple[Resource, dict[str, Any]]] = {}


def schema_for(res: Resource) -> dict[str, Any]:
    """The schema merges follow for objects of `res` (metadata always `ObjectMeta`'s),
    built once per resource (every write asks)."""
    cached = _SCHEMAS.get(id(res))
    if cached is not None and cached[0] is res:
        return cached[1]
    schema = _build(res)
    _SCHEMAS[id(res)] = (res, schema)  # holds `res`, so its id is not reused
    return schema


def _build(res: Resource) -> dict[str, Any]:
    if not res.group and res.kind in _BUILTIN:
        return {"type": "object", "properties": {**_BUILTIN[res.kind], "metadata": _OBJECT_META}}
    base = res.schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    props = base.get("properties")
    return {
        **base,
        "properties": {**(props if isinstance(props, dict) else {}), "metadata": _OBJECT_META},
    }


def child(schema: Schema, name: str) -> Schema:
    """The schema of field `name` of an object: a declared property, else
    `additionalProperties` (a map's values), else unknown."""
    if schema is None:
        return None
    props = schema.get("properties")
    if isinstance(props, dict):
        sub = props.get(name)
        if isinstance(sub, dict):
            return sub
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def items(schema: Schema) -> Schema:
    if schema is None:
        return None
    sub = schema.get("items")
    return sub if isinstance(sub, dict) else None


def atomic_map(schema: Schema) -> bool:
    return schema is not None and schema.get("x-kubernetes-map-type") == "atomic"


def list_semantics(schema: Schema) -> tuple[str, tuple[str, ...]]:
    """`("atomic"|"set"|"map", keys)` for a list: its declared type, else what its patch
    strategy implies, else atomic."""
    if schema is None:
        return ("atomic", ())
    kind = schema.get("x-kubernetes-list-type")
    if kind == "map":
        keys = schema.get("x-kubernetes-list-map-keys")
        if isinstance(keys, list) and keys and all(isinstance(k, str) for k in keys):
            return ("map", tuple(keys))
        return ("atomic", ())
    if kind == "set":
        return ("set", ())
    if kind == "atomic":
        return ("atomic", ())
    strategy, key = patch_strategy(schema)
    if "merge" in strategy:
        return ("map", (key,)) if key else ("set", ())
    return ("atomic", ())


def patch_strategy(schema: Schema) -> tuple[tuple[str, ...], str]:
    """A field's strategic-merge-patch strategies (`merge`, `retainKeys`) and merge key."""
    if schema is None:
        return ((), "")
    strategy = schema.get("x-kubernetes-patch-strategy")
    key = schema.get("x-kubernetes-patch-merge-key")
    parts = tuple(strategy.split(",")) if isinstance(strategy, str) else ()
    return (parts, key if isinstance(key, str) else "")
