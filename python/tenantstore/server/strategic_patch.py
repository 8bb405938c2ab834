"""Strategic merge patch (`application/strategic-merge-patch+json`) for the built-in types.

A JSON merge patch with per-field knowledge: lists whose field declares the `merge`
strategy merge item by item (objects by their `patchMergeKey`, scalars as a set) instead
of being replaced, and the patch may carry directives, as upstream's `strategicpatch`
package reads them (`kubectl apply` computes its three-way patches in this form):

* `$patch: replace` in an object replaces it whole; `$patch: delete` deletes it; in a
  merging list, `{"$patch": "replace"}` replaces the list with the patch's other items
  and `{<key>: v, "$patch": "delete"}` deletes the item with that key;
* `$deleteFromPrimitiveList/<field>: [...]` removes those values from a merging list of
  scalars;
* `$setElementOrder/<field>: [...]` orders a merging list (items the patch does not name
  keep their place among the others);
* `$retainKeys: [...]` drops the object's other keys before merging.

`null` deletes a key, and is dropped where there is nothing to delete. Custom resources
have no patch strategies, so, as Kubernetes, the server answers 415 to a strategic patch
of one (`patch.py`).
"""

from __future__ import annotations

from typing import Any

from ..storage.errors import BadRequestError
from .field_schema import Schema, child, items, patch_strategy

__all__ = ["strategic_merge_patch"]

_DIRECTIVE = "$patch"
_DELETE_PRIMITIVES = "$deleteFromPrimitiveList/"
_SET_ORDER = "$setElementOrder/"
_RETAIN_KEYS = "$retainKeys"


def _bad(message: str) -> BadRequestError:
    return BadRequestError(f"invalid strategic merge patch: {message}")


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """`patch` merged into a copy of `original` (`$patch: delete` empties it, as
    upstream, which leaves the emptied map in place)."""
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "replace":
            rest = {k: v for k, v in patch.items() if k != _DIRECTIVE}
            return _merge_map({}, rest, schema)
        if directive == "delete":
            return {}
        if directive != "merge":
            raise _bad(f"unknown $patch directive {directive!r}")
        patch = {k: v for k, v in patch.items() if k != _DIRECTIVE}
    out = dict(original)
    retain = patch.get(_RETAIN_KEYS)
    if retain is not None:
        if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
            raise _bad("$retainKeys must be a list of strings")
        for k in patch:
            if not k.startswith("$") and k not in retain:
                raise _bad(f'key "{k}" is not present in $retainKeys {retain}')
        out = {k: v for k, v in out.items() if k in retain}
    orders: dict[str, Any] = {}
    for k, v in patch.items():
        if k == _RETAIN_KEYS:
            continue
        if k.startswith(_SET_ORDER):
            orders[k[len(_SET_ORDER) :]] = v
            continue
        if k.startswith(_DELETE_PRIMITIVES):
            field = k[len(_DELETE_PRIMITIVES) :]
            if not isinstance(v, list):
                raise _bad(f"{k} must be a list")
            current = out.get(field)
            if isinstance(current, list):
                out[field] = [x for x in current if x not in v]
            continue
        if k.startswith("$"):
            raise _bad(f"unknown directive {k!r}")
        if v is None:
            out.pop(k, None)
            continue
        sub = child(schema, k)
        current = out.get(k)
        if isinstance(v, dict):
            strategies, _ = patch_strategy(sub)
            base = current if isinstance(current, dict) and "replace" not in strategies else {}
            # A key the original lacks merges into an empty map: directives and nulls
            # have nothing to act on there and go.
            out[k] = _merge_map(base, v, sub)
        elif isinstance(v, list):
            out[k] = _merge_list(current if isinstance(current, list) else [], v, sub)
        else:
            out[k] = v
    for field, order in orders.items():
        if not isinstance(order, list):
            raise _bad(f"{_SET_ORDER}{field} must be a list")
        _, key = patch_strategy(child(schema, field))
        _check_order(field, order, patch.get(field), key)
        current = out.get(field)
        if isinstance(current, list):
            out[field] = _reorder(current, order, key)
    return out


def _merge_list(original: list[Any], patch: list[Any], schema: Schema) -> list[Any]:
    strategies, key = patch_strategy(schema)
    if "merge" not in strategies:
        return [_merge_map({}, x, items(schema)) if isinstance(x, dict) else x for x in patch]
    if not any(isinstance(x, dict) for x in [*original, *patch]):
        out = []
        for x in [*original, *patch]:
            if x not in out:
                out.append(x)
        return _reorder(out, patch, "", only_named=False)
    if not key:
        raise _bad("cannot merge lists of objects without a merge key")
    item_schema = items(schema)
    out = list(original)
    rest: list[dict[str, Any]] = []
    for x in patch:
        if not isinstance(x, dict):
            raise _bad(f"list items must be objects (merge key {key!r})")
        directive = x.get(_DIRECTIVE)
        if directive == "replace":
            return [
                _merge_map({}, y, item_schema)
                for y in patch
                if isinstance(y, dict) and y.get(_DIRECTIVE) != "replace"
            ]
        if directive == "delete":
            if key not in x:
                raise _bad(f"delete directive {x} does not contain merge key {key!r}")
            # One item per directive, as upstream (a list with duplicates sheds one).
            at = _find(out, key, x[key])
            if at is not None:
                del out[at]
            continue
        if directive is not None and directive != "merge":
            raise _bad(f"unknown $patch directive {directive!r}")
        if key not in x:
            raise _bad(f"map: {x} does not contain declared merge key: {key}")
        rest.append(x)
    for x in rest:
        at = _find(out, key, x[key])
        if at is None:
            out.append(_merge_map({}, x, item_schema))
        else:
            out[at] = _merge_map(out[at], x, item_schema)
    if rest:
        out = _reorder(out, rest, key, only_named=False)
    return out


def _check_order(field: str, order: list[Any], patched: Any, key: str) -> None:
    """The patch's items must appear in `$setElementOrder` in the same order (upstream
    refuses a patch whose two lists disagree)."""
    if not isinstance(patched, list):
        return
    rank = {_identity(x, key): i for i, x in enumerate(order)}
    seen = [
        rank.get(_identity(x, key), -1)
        for x in patched
        if not (isinstance(x, dict) and _DIRECTIVE in x)
    ]
    if any(r < 0 for r in seen) or seen != sorted(seen):
        raise _bad(f"the order of {field} doesn't match {_SET_ORDER}{field}")


def _find(seq: list[Any], key: str, value: Any) -> int | None:
    return next((i for i, y in enumerate(seq) if isinstance(y, dict) and y.get(key) == value), None)


def _identity(item: Any, key: str) -> Any:
    if key and isinstance(item, dict):
        return ("k", repr(item.get(key)))
    return ("v", repr(item))


def _reorder(current: list[Any], order: list[Any], key: str, only_named: bool = True) -> list[Any]:
    """`current` with the items `order` names in that order; the others keep their
    place relative to the items around them in `current`, as upstream's
    `normalizeElementOrder` merges the patch's order with the server's."""
    rank: dict[tuple[str, str], int] = {}
    for i, x in enumerate(order):
        rank.setdefault(_identity(x, key), i)
    named = sorted(
        (x for x in current if _identity(x, key) in rank), key=lambda x: rank[_identity(x, key)]
    )
    if not only_named and len(named) == len(current):
        return named
    position = {_identity(x, key): i for i, x in enumerate(current)}
    others = [x for x in current if _identity(x, key) not in rank]
    out: list[Any] = []
    i = j = 0
    while i < len(named) and j < len(others):
        if position[_identity(others[j], key)] < position[_identity(named[i], key)]:
            out.append(others[j])
            j += 1
        else:
            out.append(named[i])
            i += 1
    out.extend(named[i:])
    out.extend(others[j:])
    return out


def strategic_merge_patch(original: Any, patch: Any, schema: Schema) -> dict[str, Any]:
    """`patch` applied to `original` by the strategies of `schema`; a new document that
    shares the untouched parts of `original` and never modifies it."""
    if not isinstance(patch, dict):
        raise BadRequestError("a strategic merge patch must be a JSON object")
    return _merge_map(original if isinstance(original, dict) else {}, patch, schema)
