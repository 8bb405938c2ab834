"""The patch formats Kubernetes accepts: JSON merge patch (RFC 7386), JSON patch (RFC 6902)
and strategic merge patch (`strategic_patch.py`, built-in types only, as upstream).
Apply patches (`application/apply-patch+yaml`) are not patches of the object but
configurations merged into it by field ownership: `managed_fields.py`.

Both functions return a new document and never modify their inputs (the object being
patched may be the watch cache's shared copy).
"""

from __future__ import annotations

import copy
from typing import Any

from ..storage.errors import BadRequestError, InvalidError
from .field_schema import Schema
from .status import UnsupportedMediaTypeError
from .strategic_patch import strategic_merge_patch

__all__ = [
    "APPLY",
    "JSON_PATCH",
    "MERGE",
    "STRATEGIC",
    "apply_patch",
    "json_patch",
    "merge_patch",
]

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class _PatchError(InvalidError):
    """A JSON patch operation that cannot apply (Kubernetes answers 422 as well)."""


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise BadRequestError(f"invalid JSON pointer {path!r}")
    return [_unescape(t) for t in path.split("/")[1:]] if path else []


def _index(container: list[Any], token: str, *, for_add: bool) -> int:
    if for_add and token == "-":
        return len(container)
    if not (token.isascii() and token.isdigit()) or (token != "0" and token.startswith("0")):
        raise _PatchError(f"invalid array index {token!r}")
    idx = int(token)
    limit = len(container) if for_add else len(container) - 1
    if idx > limit:
        raise _PatchError(f"array index {idx} out of range")
    return idx


def _parent(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise _PatchError(f"path element {token!r} not found")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, for_add=False)]
        else:
            raise _PatchError(f"cannot traverse into a scalar at {token!r}")
    return node


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _PatchError(f"path element {last!r} not found")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, for_add=False)]
    raise _PatchError(f"cannot read {last!r} of a scalar")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_add=True), value)
    else:
        raise _PatchError(f"cannot add {last!r} to a scalar")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise _PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _PatchError(f"path element {last!r} not found")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, for_add=False)]
    else:
        raise _PatchError(f"cannot remove {last!r} from a scalar")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 over a deep copy of `target`; 400 for malformed ops, 422 for failing ones."""
    if not isinstance(operations, list):
        raise BadRequestError("a JSON patch must be a JSON array of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise BadRequestError(f"invalid JSON patch operation {op!r}")
        kind = op["op"]
        tokens = _pointer(op.get("path"))
        if kind in ("add", "replace", "test") and "value" not in op:
            raise BadRequestError(f"JSON patch {kind} needs a value")
        if kind == "add":
            doc = _add(doc, tokens, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc = _remove(doc, tokens)
        elif kind == "replace":
            _get(doc, tokens)  # must exist
            if tokens:
                doc = _remove(doc, tokens)
            doc = _add(doc, tokens, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            source = _pointer(op.get("from"))
            if kind == "move" and tokens[: len(source)] == source and tokens != source:
                raise _PatchError("cannot move a value into one of its children")
            value = copy.deepcopy(_get(doc, source))
            if kind == "move":
                doc = _remove(doc, source)
            doc = _add(doc, tokens, value)
        elif kind == "test":
            if _get(doc, tokens) != op["value"]:
                raise _PatchError(f"test operation failed at {op.get('path')!r}")
        else:
            raise BadRequestError(f"unknown JSON patch operation {kind!r}")
    return doc


def apply_patch(content_type: str, target: Any, patch: Any, schema: Schema = None) -> Any:
    """Apply `patch` of `content_type` (its media type; parameters ignored); a strategic
    patch merges lists by the strategies of `schema`."""
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        if media == STRATEGIC:
            return strategic_merge_patch(target, patch, schema)
        if media == MERGE:
            if not isinstance(patch, dict):
                raise BadRequestError("a merge patch must be a JSON object")
            return merge_patch(target, patch)
        if media == JSON_PATCH:
            return json_patch(target, patch)
    except RecursionError:
        # Both formats recurse (merge_patch, copy.deepcopy) over the patch's nesting, which
        # the JSON parser allows up to 1024 levels: a client error, not a 500.
        raise InvalidError("the patch is nested too deeply to apply") from None
    raise UnsupportedMediaTypeError(
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{JSON_PATCH}, {MERGE}, {STRATEGIC}"
    )
