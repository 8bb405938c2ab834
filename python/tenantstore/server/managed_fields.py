"""`metadata.managedFields` and server-side apply, as Kubernetes' field manager keeps them.

Every write records which manager set which fields. A non-apply write (create, PUT, a
merge, JSON or strategic patch) is an `Update`: its manager gains the fields it added or
changed, and every other manager loses them (an update always wins). An apply
(`application/apply-patch+yaml`) is an `Apply`: the applied configuration is merged into
the live object, its manager's set becomes exactly the fields of that configuration, the
fields it applied last time and no longer does are removed from the object unless
another manager still owns them, and changing a field another manager owns is a conflict
(409) unless `force`, which takes the field over. A field two managers set to the same
value is owned by both, without a conflict. This is structured-merge-diff's `Updater`
(`merge/update.go`) with the field manager's bookkeeping around it (`managedfields`:
strip the server's own metadata, `before-first-apply`, one entry per manager, operation
and subresource, at most ten `Update` entries, the `kubectl` applier keeping the
client-side `last-applied-configuration` annotation in step).

The walkers below read list and map semantics from `field_schema`; they never modify
their inputs (the live object may be the watch cache's copy).
"""

from __future__ import annotations

import copy
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ..codec import MAX_DEPTH
from ..storage.errors import BadRequestError, ConflictError, InvalidError
from .field_schema import Schema, atomic_map, child, items, list_semantics, schema_for
from .fieldpath import FieldSet, FieldsV1Error, key_element, path_text, value_element
from .registry import Resource

__all__ = [
    "ApplyConflictError",
    "apply",
    "compare",
    "field_manager",
    "fields_of",
    "merge",
    "record_update",
    "remove",
]

#: Metadata the server owns or that names the object: never anyone's field.
_STRIPPED_META = frozenset(
    (
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    )
)
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_BEFORE_FIRST_APPLY = "before-first-apply"
_ANCIENT = "ancient-changes"
_MAX_UPDATE_MANAGERS = 10
_MAX_MANAGER_LENGTH = 128
_MISSING: Any = object()


class ApplyConflictError(ConflictError):
    """An apply that would change fields other managers own (upstream's wording, with one
    `FieldManagerConflict` cause per field), answered as it is, not re-worded."""


# -- typed walkers ---------------------------------------------------------------------


def _element(item: Any, kind: str, keys: tuple[str, ...], index: int) -> str:
    if kind == "set":
        return value_element(item)
    if kind == "map" and isinstance(item, dict):
        found = {k: item[k] for k in keys if k in item}
        if found:
            return key_element(found)
    return f"i:{index}"


def _list_elements(value: list[Any], kind: str, keys: tuple[str, ...]) -> list[str]:
    return [_element(item, kind, keys, i) for i, item in enumerate(value)]


#: The longest path tracked: below it a subtree is one field. Its `FieldsV1` sits five
#: levels down in the stored object (`metadata.managedFields[i].fieldsV1`), so an object
#: the codec accepts (`MAX_DEPTH` levels) is never refused for its own managed fields.
_DEEPEST = MAX_DEPTH - 5


def _fields(
    value: Any, schema: Schema, out: FieldSet, element: str, parents: bool, depth: int
) -> None:
    """Add `element` (holding `value`, `depth` elements down) to `out`: its leaves, list
    items and, with `parents`, every map on the way (what an added subtree counts as)."""
    if depth >= _DEEPEST:
        out.members.add(element)
        return
    if isinstance(value, dict) and not atomic_map(schema):
        if parents:
            out.members.add(element)
        if value:
            sub = out.child(element)
            for k, v in value.items():
                _fields(v, child(schema, k), sub, "f:" + k, parents, depth + 1)
        return
    if isinstance(value, list):
        kind, keys = list_semantics(schema)
        if kind != "atomic":
            if parents:
                out.members.add(element)
            if value:
                sub = out.child(element)
                item_schema = items(schema)
                for i, item in enumerate(value):
                    el = _element(item, kind, keys, i)
                    sub.members.add(el)
                    if kind == "map" and isinstance(item, dict) and not atomic_map(item_schema):
                        inner = sub.child(el)
                        for k, v in item.items():
                            _fields(v, child(item_schema, k), inner, "f:" + k, parents, depth + 2)
            return
    out.members.add(element)


def _subtree_v1(value: Any, schema: Schema, depth: int) -> dict[str, Any]:
    """The `FieldsV1` of an added subtree whose root is a member: `fields_of(...,
    parents=True)` written directly, without building a `FieldSet` (every create)."""
    if depth >= _DEEPEST:
        return {}
    if isinstance(value, dict) and not atomic_map(schema):
        if not value:
            return {}
        out: dict[str, Any] = {".": {}}
        for k in sorted(value):
            out["f:" + k] = _subtree_v1(value[k], child(schema, k), depth + 1)
        return out
    if isinstance(value, list) and value:
        kind, keys = list_semantics(schema)
        if kind != "atomic":
            item_schema = items(schema)
            elements: dict[str, Any] = {}
            for i, item in enumerate(value):
                el = _element(item, kind, keys, i)
                if (
                    kind == "map"
                    and isinstance(item, dict)
                    and item
                    and not atomic_map(item_schema)
                ):
                    elements[el] = {
                        ".": {},
                        **{
                            "f:" + k: _subtree_v1(item[k], child(item_schema, k), depth + 2)
                            for k in sorted(item)
                        },
                    }
                else:
                    elements[el] = {}
            return {".": {}, **dict(sorted(elements.items()))}
    return {}


def _added_v1(obj: dict[str, Any], schema: Schema) -> dict[str, Any]:
    out = {"f:" + k: _subtree_v1(obj[k], child(schema, k), 1) for k in sorted(obj)}
    meta = out.get("f:metadata")
    if meta is not None:
        meta.pop(".", None)  # `metadata` itself is nobody's
        if not meta:
            del out["f:metadata"]
    return out


def fields_of(obj: dict[str, Any], schema: Schema, *, parents: bool = False) -> FieldSet:
    """The field set of an object: its leaves and list items (an applied configuration's
    set), or with `parents` also every map (everything an added object adds)."""
    out = FieldSet()
    for k, v in obj.items():
        _fields(v, child(schema, k), out, "f:" + k, parents, 1)
    return out


class _Comparison:
    __slots__ = ("added", "modified", "removed")

    def __init__(self) -> None:
        self.added = FieldSet()
        self.modified = FieldSet()
        self.removed = FieldSet()

    def down(self, element: str) -> _Comparison:
        sub = _Comparison()
        sub.added = self.added.child(element)
        sub.modified = self.modified.child(element)
        sub.removed = self.removed.child(element)
        return sub


def _compare_map(
    old: dict[str, Any], new: dict[str, Any], schema: Schema, c: _Comparison, depth: int
) -> None:
    for k, nv in new.items():
        ov = old.get(k, _MISSING)
        if ov is _MISSING:
            _fields(nv, child(schema, k), c.added, "f:" + k, True, depth + 1)
        elif ov != nv:
            _compare_value(ov, nv, child(schema, k), "f:" + k, c, depth + 1)
    for k, ov in old.items():
        if k not in new:
            _fields(ov, child(schema, k), c.removed, "f:" + k, True, depth + 1)


def _compare_value(
    old: Any, new: Any, schema: Schema, element: str, c: _Comparison, depth: int
) -> None:
    if depth >= _DEEPEST:
        c.modified.members.add(element)
        return
    if isinstance(old, dict) and isinstance(new, dict) and not atomic_map(schema):
        _compare_map(old, new, schema, c.down(element), depth)
        return
    if isinstance(old, list) and isinstance(new, list):
        kind, keys = list_semantics(schema)
        if kind != "atomic":
            item_schema = items(schema)
            olds = dict(zip(_list_elements(old, kind, keys), old, strict=True))
            news = dict(zip(_list_elements(new, kind, keys), new, strict=True))
            sub = c.down(element)
            for el, nv in news.items():
                ov = olds.get(el, _MISSING)
                if ov is _MISSING:
                    _fields(nv, item_schema, sub.added, el, True, depth + 1)
                elif ov != nv:
                    _compare_value(ov, nv, item_schema, el, sub, depth + 1)
            for el, ov in olds.items():
                if el not in news:
                    _fields(ov, item_schema, sub.removed, el, True, depth + 1)
            return
    c.modified.members.add(element)


def compare(
    old: dict[str, Any], new: dict[str, Any], schema: Schema
) -> tuple[FieldSet, FieldSet, FieldSet]:
    """`(added, modified, removed)` from `old` to `new`; an added or removed subtree
    counts with every path in it, a changed leaf or atomic value as modified."""
    c = _Comparison()
    _compare_map(old, new, schema, c, 0)
    return c.added, c.modified, c.removed


def _merge(live: Any, config: Any, schema: Schema) -> Any:
    if isinstance(live, dict) and isinstance(config, dict) and not atomic_map(schema):
        out = dict(live)
        for k, v in config.items():
            out[k] = _merge(live[k], v, child(schema, k)) if k in live else v
        return out
    if isinstance(live, list) and isinstance(config, list):
        kind, keys = list_semantics(schema)
        if kind != "atomic":
            result = list(live)
            where = {el: i for i, el in enumerate(_list_elements(live, kind, keys))}
            item_schema = items(schema)
            for el, item in zip(_list_elements(config, kind, keys), config, strict=True):
                at = where.get(el)
                if at is None:
                    where[el] = len(result)
                    result.append(item)
                elif kind == "map":
                    result[at] = _merge(result[at], item, item_schema)
            return result
    return config


def merge(live: dict[str, Any], config: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """`config` merged into `live`: maps and associative lists by their keys, sets by
    value, anything atomic replaced."""
    out = _merge(live, config, schema)
    assert isinstance(out, dict)
    return out


def _remove(value: Any, rm: FieldSet, schema: Schema, drop_emptied: bool) -> Any:
    if isinstance(value, dict) and not atomic_map(schema):
        out: dict[str, Any] = {}
        for k, v in value.items():
            el = "f:" + k
            if el in rm.members:
                continue
            sub = rm.children.get(el)
            if sub is not None:
                v2 = _remove(v, sub, child(schema, k), drop_emptied)
                if drop_emptied and v2 in ({}, []) and v not in ({}, []):
                    continue  # Go's `omitempty`: a map or list pruned empty disappears
                v = v2
            out[k] = v
        return out
    if isinstance(value, list):
        kind, keys = list_semantics(schema)
        if kind != "atomic":
            kept = []
            item_schema = items(schema)
            for el, item in zip(_list_elements(value, kind, keys), value, strict=True):
                if el in rm.members:
                    continue
                sub = rm.children.get(el)
                kept.append(_remove(item, sub, item_schema, drop_emptied) if sub else item)
            return kept
    return value


def remove(
    obj: dict[str, Any], rm: FieldSet, schema: Schema, *, drop_emptied: bool = False
) -> dict[str, Any]:
    """`obj` without the paths of `rm` (a member goes with everything below it)."""
    out = _remove(obj, rm, schema, drop_emptied)
    assert isinstance(out, dict)
    return out


def _prunable(candidates: FieldSet, others: FieldSet, applied: FieldSet) -> FieldSet:
    """Of the paths an applier dropped, those to remove from the object: not owned by
    anyone else, and (for a whole subtree) with nothing below still owned or applied."""
    out = FieldSet()
    for el in candidates.members:
        if el in others.members:
            continue
        below_others, below_applied = others.children.get(el), applied.children.get(el)
        if (below_others is not None and not below_others.empty()) or (
            below_applied is not None and not below_applied.empty()
        ):
            continue
        out.members.add(el)
    for el, sub in candidates.children.items():
        if el in out.members:
            continue
        pruned = _prunable(sub, others.children.get(el, _EMPTY), applied.children.get(el, _EMPTY))
        if not pruned.empty():
            out.children[el] = pruned
    return out


_EMPTY = FieldSet()


# -- managers ------------------------------------------------------------------------


@dataclass(slots=True)
class _Manager:
    manager: str
    operation: str
    subresource: str
    api_version: str
    time: str | None
    fields: FieldSet

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def encode(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time is not None:
            entry["time"] = self.time
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = self.fields.to_fields_v1()
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry


def _decode(entries: Any) -> list[_Manager] | None:
    """The managers of a `managedFields` list; None when absent or not well formed (then
    the live object's are used, so a client that mangles them cannot lose them)."""
    if not isinstance(entries, list) or not entries:
        return None
    out: list[_Manager] = []
    seen: set[tuple[str, str, str]] = set()
    try:
        for entry in entries:
            if not isinstance(entry, dict):
                return None
            manager, op = entry.get("manager", ""), entry.get("operation")
            sub, version = entry.get("subresource", ""), entry.get("apiVersion", "")
            time, kind = entry.get("time"), entry.get("fieldsType", "FieldsV1")
            if not (
                isinstance(manager, str)
                and op in ("Apply", "Update")
                and isinstance(sub, str)
                and isinstance(version, str)
                and (time is None or isinstance(time, str))
                and kind == "FieldsV1"
            ):
                return None
            m = _Manager(
                manager, op, sub, version, time, FieldSet.from_fields_v1(entry.get("fieldsV1", {}))
            )
            if m.key in seen:
                return None
            seen.add(m.key)
            out.append(m)
    except (FieldsV1Error, RecursionError):
        return None
    return out


def _encode(managers: list[_Manager]) -> list[dict[str, Any]]:
    ordered = sorted(
        managers, key=lambda m: (m.operation, m.time or "", m.manager, m.api_version, m.subresource)
    )
    return [m.encode() for m in ordered]


def _cap_updates(managers: list[_Manager], now: str) -> list[_Manager]:
    """At most ten `Update` entries: the oldest fold into `ancient-changes`, as upstream's
    cap keeps `managedFields` from growing with every client that ever wrote."""
    updates = [m for m in managers if m.operation == "Update" and m.manager != _ANCIENT]
    if len(updates) <= _MAX_UPDATE_MANAGERS:
        return managers
    updates.sort(key=lambda m: m.time or "")
    fold = updates[: len(updates) - _MAX_UPDATE_MANAGERS + 1]
    ancient = next((m for m in managers if m.key == (_ANCIENT, "Update", "")), None)
    kept = [m for m in managers if m not in fold and m is not ancient]
    merged = ancient.fields if ancient is not None else FieldSet()
    for m in fold:
        merged = merged.union(m.fields)
    api_version = fold[-1].api_version
    kept.append(_Manager(_ANCIENT, "Update", "", api_version, now, merged))
    return kept


def _tracked(obj: dict[str, Any], reset: tuple[str, ...], only: str | None) -> dict[str, Any]:
    """The part of `obj` whose fields managers own: not `apiVersion`, `kind`, the
    server's metadata, nor what the write resets (`status` through the main resource of
    a type with a status subresource); only `only` when written through a subresource."""
    if only is not None:
        return {only: obj[only]} if only in obj else {}
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    for k in reset:
        out.pop(k, None)
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if k not in _STRIPPED_META}
        if kept:
            out["metadata"] = kept
    return out


def _scope(res: Resource, subresource: str) -> tuple[tuple[str, ...], str | None]:
    if subresource == "status":
        return ((), "status")
    return (("status",) if res.status_subresource else (), None)


def _strip(fields: FieldSet) -> FieldSet:
    fields.members.discard("f:metadata")
    return fields


def _untracked(live: dict[str, Any], tracked_keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in live.items() if k not in tracked_keys}


# -- the two operations ---------------------------------------------------------------


def _too_deep() -> InvalidError:
    # The walkers recurse; the codec would refuse such an object anyway, with this text.
    return InvalidError(f"object is nested more than {MAX_DEPTH} levels deep")


def record_update(
    res: Resource,
    live: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    now: str,
    subresource: str = "",
) -> None:
    """Set `new`'s `managedFields` (`new` is a private copy with its own `metadata`)
    after a non-apply write by `manager` that turned `live` (None on create) into `new`.

    A `managedFields` of `[]` in `new` clears them; a well-formed list replaces the live
    one (clients may edit it); anything else, or none, keeps the live one."""
    try:
        _record_update(res, live, new, manager, now, subresource)
    except RecursionError:
        raise _too_deep() from None


def _record_update(
    res: Resource,
    live: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    now: str,
    subresource: str,
) -> None:
    meta = new.get("metadata")
    assert isinstance(meta, dict)
    sent = meta.get("managedFields", _MISSING)
    if isinstance(sent, list) and not sent:
        meta.pop("managedFields", None)
        return
    managers = _decode(sent) if sent is not _MISSING else None
    if managers is None:
        live_meta = live.get("metadata") if live else None
        managers = _decode(live_meta.get("managedFields")) if isinstance(live_meta, dict) else None
    schema = schema_for(res)
    reset, only = _scope(res, subresource)
    if live is None and not managers:
        # A create nobody else tracks: everything is added, by this manager alone.
        fields = _added_v1(_tracked(new, reset, only), schema)
        if fields:
            entry = _Manager(manager, "Update", subresource, res.api_version, now, _EMPTY)
            meta["managedFields"] = [{**entry.encode(), "fieldsV1": fields}]
        else:
            meta.pop("managedFields", None)
        return
    managers = managers or []
    added, modified, removed = compare(
        _tracked(live or {}, reset, only), _tracked(new, reset, only), schema
    )
    changed = _strip(added.union(modified))
    removed = _strip(removed)
    key = (manager, "Update", subresource)
    mine = next((m for m in managers if m.key == key), None)
    kept: list[_Manager] = []
    for m in managers:
        if m is not mine:
            m.fields = m.fields.difference(changed).difference(removed)
            if not m.fields.empty():
                kept.append(m)
    if not changed.empty():
        if mine is None:
            mine = _Manager(manager, "Update", subresource, res.api_version, now, FieldSet())
        mine.fields = mine.fields.difference(removed).union(changed)
        mine.time, mine.api_version = now, res.api_version
    elif mine is not None:
        mine.fields = mine.fields.difference(removed)
    if mine is not None and not mine.fields.empty():
        kept.append(mine)
    kept = _cap_updates(kept, now)
    if kept:
        meta["managedFields"] = _encode(kept)
    else:
        meta.pop("managedFields", None)


def apply(
    res: Resource,
    live: dict[str, Any],
    config: dict[str, Any],
    manager: str,
    *,
    force: bool,
    now: str,
    subresource: str = "",
) -> dict[str, Any]:
    """The object an apply of `config` by `manager` makes of `live` (`{}` when absent),
    with its `managedFields`; `ApplyConflictError` when it would change fields other
    managers own and not `force`. Name, namespace and the server's metadata are the
    caller's to set."""
    try:
        return _apply(res, live, config, manager, force, now, subresource)
    except RecursionError:
        raise _too_deep() from None


def _apply(
    res: Resource,
    live: dict[str, Any],
    config: dict[str, Any],
    manager: str,
    force: bool,
    now: str,
    subresource: str,
) -> dict[str, Any]:
    schema = schema_for(res)
    reset, only = _scope(res, subresource)
    live_meta = live.get("metadata") if isinstance(live.get("metadata"), dict) else {}
    assert isinstance(live_meta, dict)
    managers = _decode(live_meta.get("managedFields")) or []
    live_view = _tracked(live, reset, only)
    if live and not managers:
        # An object no manager tracks yet: its fields belong to an updater, so an apply
        # that changes them conflicts, as upstream's `before-first-apply`.
        seeded = _strip(fields_of(live_view, schema, parents=True))
        if not seeded.empty():
            managers = [_Manager(_BEFORE_FIRST_APPLY, "Update", "", res.api_version, now, seeded)]
    config_view = _tracked(config, reset, only)
    applied = fields_of(config_view, schema)
    key = (manager, "Apply", subresource)
    mine = next((m for m in managers if m.key == key), None)
    others = [m for m in managers if m is not mine]
    merged = merge(live_view, config_view, schema)
    if mine is not None:
        owned = FieldSet()
        for m in others:
            owned = owned.union(m.fields)
        dropped = _prunable(mine.fields.difference(applied), owned, applied)
        if not dropped.empty():
            merged = remove(merged, dropped, schema, drop_emptied=not res.group)
    added, modified, removed = compare(live_view, merged, schema)
    changed = _strip(added.union(modified))
    removed = _strip(removed)
    conflicts = [(m, m.fields.intersection(changed)) for m in others]
    conflicts = [(m, c) for m, c in conflicts if not c.empty()]
    if conflicts and not force and manager == "kubectl":
        allowed = _last_applied_fields(live, live_view, schema, reset, only)
        conflicts = [(m, c.difference(allowed)) for m, c in conflicts]
        conflicts = [(m, c) for m, c in conflicts if not c.empty()]
    if conflicts and not force:
        raise _conflict_error(conflicts)
    kept: list[_Manager] = []
    for m in others:
        m.fields = m.fields.difference(changed).difference(removed)
        if not m.fields.empty():
            kept.append(m)
    object_changed = not (added.empty() and modified.empty() and removed.empty())
    if mine is None or object_changed or mine.fields != applied or mine.time is None:
        time: str | None = now
    else:
        time = mine.time
    if not applied.empty():
        kept.append(_Manager(manager, "Apply", subresource, res.api_version, time, applied))
    new = _untracked(live, set(live_view))
    new.update({k: v for k, v in merged.items() if k != "metadata"})
    if only is not None:
        meta = dict(live_meta)
    else:
        meta = {k: v for k, v in live_meta.items() if k in _STRIPPED_META}
        meta.update(merged.get("metadata") or {})
    if kept:
        meta["managedFields"] = _encode(_cap_updates(kept, now))
    else:
        meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if manager == "kubectl" and isinstance(annotations, dict) and _LAST_APPLIED in annotations:
        meta["annotations"] = {**annotations, _LAST_APPLIED: _last_applied(config)}
    new["metadata"] = meta
    return new


def _last_applied_fields(
    live: dict[str, Any],
    live_view: dict[str, Any],
    schema: Schema,
    reset: tuple[str, ...],
    only: str | None,
) -> FieldSet:
    """The fields `kubectl apply --server-side` may take over without a conflict when it
    follows client-side `kubectl apply`: those of the `last-applied-configuration`
    annotation that still hold their applied value, as upstream's `lastAppliedManager`
    upgrades an object from client-side to server-side apply."""
    notes = (live.get("metadata") or {}).get("annotations")
    text = notes.get(_LAST_APPLIED) if isinstance(notes, dict) else None
    if not isinstance(text, str) or not text:
        return FieldSet()
    try:
        last = orjson.loads(text)
    except orjson.JSONDecodeError:
        return FieldSet()
    if not isinstance(last, dict) or last.get("apiVersion") != live.get("apiVersion"):
        return FieldSet()
    last_view = _tracked(last, reset, only)
    added, modified, removed = compare(last_view, live_view, schema)
    return fields_of(last_view, schema).difference(modified).difference(added).difference(removed)


def _last_applied(config: dict[str, Any]) -> str:
    """The client-side apply annotation for an applied configuration: the configuration
    itself, without that annotation, so `kubectl apply` after `--server-side` diffs
    against what was last applied either way."""
    doc = copy.deepcopy(config)
    meta = doc.get("metadata")
    if isinstance(meta, dict):
        notes = meta.get("annotations")
        if isinstance(notes, dict):
            notes.pop(_LAST_APPLIED, None)
            if not notes:
                meta.pop("annotations")
    return orjson.dumps(doc).decode() + "\n"


def _manager_text(m: _Manager) -> str:
    shown = orjson.dumps(m.manager).decode()
    if m.subresource:
        shown += f" with subresource {orjson.dumps(m.subresource).decode()}"
    if m.operation == "Update":
        return f"{shown} using {m.api_version}"
    return shown


def _conflict_error(conflicts: list[tuple[_Manager, FieldSet]]) -> ApplyConflictError:
    rows = [(_manager_text(m), path_text(p)) for m, c in conflicts for p in c.paths()]
    causes = [
        {"reason": "FieldManagerConflict", "message": f"conflict with {who}", "field": field}
        for who, field in rows
    ]
    if len(rows) == 1:
        message = f"Apply failed with 1 conflict: conflict with {rows[0][0]}: {rows[0][1]}"
    else:
        lines: list[str] = []
        for who in sorted({who for who, _ in rows}):
            lines.append(f"conflicts with {who}:")
            lines.extend(f"- {field}" for w, field in rows if w == who)
        message = f"Apply failed with {len(rows)} conflicts: " + "\n".join(lines)
    return ApplyConflictError(message, details={"causes": causes})


# -- request options -------------------------------------------------------------------


def _options_invalid(kind: str, field: str, reason: str, detail: str) -> InvalidError:
    return InvalidError(
        f'{kind}.meta.k8s.io "" is invalid: {field}: {detail}',
        details={
            "group": "meta.k8s.io",
            "kind": kind,
            "causes": [{"reason": reason, "message": detail, "field": field}],
        },
    )


def field_manager(
    query: Mapping[str, str], user_agent: str, options_kind: str, *, apply: bool = False
) -> str:
    """The manager a write is recorded under: `fieldManager`, else (not for apply, where
    it is required) the User-Agent's product name, as upstream's `prefixFromUserAgent`
    (`kubectl-client-side-apply/v1.32.0 (linux/amd64) ...` gives
    `kubectl-client-side-apply`). 422 on the options kind for a missing or bad name."""
    name = query.get("fieldManager", "")
    if not name:
        if apply:
            raise _options_invalid(
                options_kind,
                "fieldManager",
                "FieldValueRequired",
                "Required value: is required for apply patch",
            )
        product = user_agent.split("/", 1)[0]
        out: list[str] = []
        size = 0
        for ch in product:
            if not _printable(ch):
                continue
            size += len(ch.encode())
            if size > _MAX_MANAGER_LENGTH:
                break
            out.append(ch)
        return "".join(out)
    if len(name) > _MAX_MANAGER_LENGTH:
        raise _options_invalid(
            options_kind,
            "fieldManager",
            "FieldValueTooLong",
            f"Too long: may not be more than {_MAX_MANAGER_LENGTH} bytes",
        )
    for i, ch in enumerate(name):
        if not _printable(ch):
            raise _options_invalid(
                options_kind,
                "fieldManager",
                "FieldValueInvalid",
                f"Invalid value: {orjson.dumps(name).decode()}: invalid character "
                f"U+{ord(ch):04X} (at position {i})",
            )
    return name


def _printable(ch: str) -> bool:
    """Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and the
    ASCII space."""
    return ch == " " or unicodedata.category(ch)[0] in "LMNPS"


def parse_force(query: Mapping[str, str], apply: bool) -> bool:
    """`force` of a patch: a boolean, and only for apply (422 otherwise, as upstream)."""
    value = query.get("force")
    if value is None:
        return False
    if not apply:
        raise _options_invalid(
            "PatchOptions",
            "force",
            "FieldValueForbidden",
            "Forbidden: may not be specified for non-apply patch",
        )
    if value in ("true", "True", "1"):
        return True
    if value in ("", "false", "False", "0"):
        return False
    raise BadRequestError(f'invalid value for "force": "{value}" (want true or false)')
