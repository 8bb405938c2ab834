"""The fields each resource may be selected on (`fieldSelector`), as upstream's per-type
`GetAttrs`/`ToSelectableFields` declare them.

Every resource selects on `metadata.name` and `metadata.namespace`; a few built-in types
add their own, which kubectl relies on: `kubectl describe` lists the described object's
events with `involvedObject.{name,namespace,kind,uid}`. Any other label is a 400
`field label not supported`, so a typo never silently selects everything (or nothing).
Custom resources select on the metadata fields only (a CRD's `selectableFields` is not
part of the `--resources` entry).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..storage.selectors import DEFAULT_FIELDS, FieldPaths
from .registry import Resource

__all__ = ["selectable_fields"]


def _at(*path: str) -> FieldPaths:
    return (path,)


_INVOLVED = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")

# core/v1 Event. `source` is the reporting component of either API generation:
# `source.component`, else `reportingComponent` (upstream's `ReportingController`). The
# `regarding.*` and `reportingController` labels are events.k8s.io/v1's names for the same
# fields; they are accepted here too, so a client written against either API selects alike.
_EVENT_FIELDS: dict[str, FieldPaths] = {
    **DEFAULT_FIELDS,
    **{f"involvedObject.{f}": _at("involvedObject", f) for f in _INVOLVED},
    **{f"regarding.{f}": _at("involvedObject", f) for f in _INVOLVED},
    "reason": _at("reason"),
    "reportingComponent": _at("reportingComponent"),
    "reportingController": _at("reportingComponent"),
    "source": (("source", "component"), ("reportingComponent",)),
    "type": _at("type"),
}

_BUILTIN: dict[str, Mapping[str, FieldPaths]] = {
    "events": _EVENT_FIELDS,
    "secrets": {**DEFAULT_FIELDS, "type": _at("type")},
    "namespaces": {**DEFAULT_FIELDS, "status.phase": _at("status", "phase")},
}


def selectable_fields(res: Resource) -> Mapping[str, FieldPaths]:
    """The field labels `res` may be selected on, and where each is read."""
    if res.group == "":
        return _BUILTIN.get(res.plural, DEFAULT_FIELDS)
    return DEFAULT_FIELDS
