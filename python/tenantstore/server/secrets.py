"""What Kubernetes does to every Secret it decodes: `type` defaulted, `stringData` folded.

`stringData` is a write-only convenience (`kubectl create secret generic --from-literal`
sends plain strings there): kube-apiserver merges it into `data`, base64-encoded, with
`stringData` winning on a shared key, and never stores or returns it; an empty `type` is
`Opaque`. Doing the same on create, replace and patch, whatever the body's encoding, makes
a protobuf create and a JSON create of one Secret store the same object.
"""

from __future__ import annotations

import base64
from typing import Any

from ..storage.errors import BadRequestError
from .registry import Resource

__all__ = ["normalize_secret"]


def normalize_secret(res: Resource, obj: Any) -> Any:
    """`obj` (a new dict when anything changes) with `stringData` merged into `data` and
    `type` defaulted; 400 when `stringData` or `data` is not a map of strings, as
    Kubernetes' decoding refuses them. Other kinds pass through untouched."""
    if res.group or res.kind != "Secret" or not isinstance(obj, dict):
        return obj
    out = {k: v for k, v in obj.items() if k != "stringData"}
    if obj.get("type") in (None, ""):
        out["type"] = "Opaque"
    string_data = obj.get("stringData")
    if string_data is None:
        return out
    if not isinstance(string_data, dict) or not all(
        isinstance(v, str) for v in string_data.values()
    ):
        raise BadRequestError("Secret.stringData must be a map of string keys and string values")
    data = obj.get("data")
    if data is not None and not isinstance(data, dict):
        raise BadRequestError("Secret.data must be a map of string keys and base64 values")
    merged = dict(data or {})
    merged.update((k, base64.b64encode(v.encode()).decode("ascii")) for k, v in string_data.items())
    if merged or data is not None:
        out["data"] = merged
    return out
