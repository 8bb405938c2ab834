"""The `status` subresource: who may change `.status`, and when `generation` moves.

With `subresources: {status: {}}` a resource splits its writers as Kubernetes' custom
resource strategies do (`customResourceStrategy` and `statusStrategy`): clients write the
desired state through the object and controllers report the observed state through
`/status`, and neither can clobber the other's half with a stale copy:

* a create drops `.status` (a new object has observed nothing yet);
* an update of the object keeps the stored `.status`, whatever the body says;
* an update of `/status` keeps everything of the stored object but `.status` (metadata
  included: labels and annotations change through the object only) and `managedFields`,
  which server-side apply tracks per request;
* `metadata.generation` moves when anything but `metadata` changes: with the status
  frozen on the object path, that is a spec change.

Without the subresource, `.status` is an ordinary field of a custom resource, so it also
moves `generation`, as upstream; built-in resources keep the older rule (anything outside
`metadata` and `status`).
"""

from __future__ import annotations

import copy
from typing import Any

from ..storage.interface import Object
from .registry import Resource

__all__ = ["STATUS", "for_create", "for_object_update", "for_status_update", "generation_moves"]

STATUS = "status"


def for_create(res: Resource, obj: Object) -> None:
    """Drop `.status` from a new object (in place) when the subresource owns it."""
    if res.status_subresource:
        obj.pop("status", None)


def for_object_update(res: Resource, current: Object, new: Object) -> None:
    """Keep the stored `.status` in `new` (in place) when the subresource owns it."""
    if not res.status_subresource:
        return
    if "status" in current:
        new["status"] = copy.deepcopy(current["status"])
    else:
        new.pop("status", None)


def for_status_update(current: Object, new: Object) -> Object:
    """The stored object with `new`'s `.status` (and `managedFields`) only."""
    result = copy.deepcopy(current)
    meta = result.get("metadata")
    new_meta = new.get("metadata")
    if isinstance(meta, dict) and isinstance(new_meta, dict):
        if "managedFields" in new_meta:
            meta["managedFields"] = new_meta["managedFields"]
        else:
            meta.pop("managedFields", None)
    if "status" in new:
        result["status"] = new["status"]
    else:
        result.pop("status", None)
    return result


def _relevant(res: Resource, obj: Object) -> dict[str, Any]:
    skip = ("metadata",) if res.group and not res.status_subresource else ("metadata", "status")
    return {k: v for k, v in obj.items() if k not in skip}


def generation_moves(res: Resource, current: Object, new: Object) -> bool:
    """Whether an update from `current` to `new` moves `metadata.generation`."""
    return _relevant(res, new) != _relevant(res, current)
