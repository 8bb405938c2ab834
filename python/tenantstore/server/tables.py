"""Server-side printing: `meta.k8s.io` Tables and `PartialObjectMetadata` views of reads.

`kubectl get` does not format objects itself: it asks the server for a Table
(`Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...,application/json`) and prints
the cells it gets, so the columns a user sees are the server's. These are the columns
kube-apiserver's printers give the built-in types (`printers.go`: names, types, formats,
priorities; the server always sends the wide columns, kubectl hides priority > 0 unless
`-o wide`), and the ones a custom resource's `additionalPrinterColumns` declare, with
their JSONPath evaluated as the CRD table convertor does (missing values are `null`
cells, never an error).

A Table is for people, so it is built from decoded objects (the dict path), never from
the watch cache's pre-encoded bytes: the JSON fast path stays untouched for machines.

`includeObject` says what each row carries: `Metadata` (the default) a
`PartialObjectMetadata`, `Object` the whole object, `None` nothing. In a watch each
event's object is a one-row Table; only the first event carries the column definitions
(later ones have `columnDefinitions: null`), as upstream's watch encoder does.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from ..storage.errors import BadRequestError, StorageError
from ..storage.events import EventType, WatchEvent
from .registry import Resource
from .status import public_status

__all__ = [
    "NotAcceptableError",
    "View",
    "human_duration",
    "jsonpath_values",
    "requested_view",
]

META_GROUP = "meta.k8s.io"
_VERSIONS = ("v1", "v1beta1")
_KINDS = ("Table", "PartialObjectMetadata", "PartialObjectMetadataList")
_JSON_TYPES = ("application/json", "application/*", "*/*")


class NotAcceptableError(StorageError):
    """No media type of the request's `Accept` can be produced (406, as upstream)."""

    code = 406
    reason = "NotAcceptable"


# -- negotiation -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class View:
    """What a read is answered as: `kind` of `meta.k8s.io/<version>`, rows carrying
    `include` (Tables only)."""

    kind: str
    version: str
    include: str = "Metadata"

    @property
    def api_version(self) -> str:
        return f"{META_GROUP}/{self.version}"

    # -- single objects and lists ------------------------------------------------------
    def render_object(self, obj: dict[str, Any], res: Resource) -> dict[str, Any]:
        """The view of one object (a GET)."""
        if self.kind == "PartialObjectMetadataList":
            raise NotAcceptableError(
                "you requested PartialObjectMetadataList, but the requested object is not a list"
            )
        if self.kind == "PartialObjectMetadata":
            return self._partial(obj)
        rv = _meta(obj).get("resourceVersion")
        meta = {"resourceVersion": rv} if isinstance(rv, str) and rv else {}
        return self.table(res, [obj], meta)

    def render_list(
        self, items: Sequence[dict[str, Any]], res: Resource, meta: dict[str, Any]
    ) -> dict[str, Any]:
        """The view of a LIST page; `meta` is the list's `metadata`."""
        if self.kind == "PartialObjectMetadata":
            raise NotAcceptableError(
                "you requested PartialObjectMetadata, but the requested object is a list"
            )
        if self.kind == "PartialObjectMetadataList":
            return {
                "kind": "PartialObjectMetadataList",
                "apiVersion": self.api_version,
                "metadata": meta,
                "items": [self._partial(o) for o in items],
            }
        return self.table(res, items, meta)

    def table(
        self,
        res: Resource,
        items: Sequence[dict[str, Any]],
        meta: dict[str, Any],
        *,
        headers: bool = True,
    ) -> dict[str, Any]:
        printer = printer_for(res)
        now = time.time()
        rows = [{"cells": printer.cells(o, now), "object": self._row_object(o)} for o in items]
        return {
            "kind": "Table",
            "apiVersion": self.api_version,
            "metadata": meta,
            "columnDefinitions": printer.columns if headers else None,
            "rows": rows,
        }

    def _partial(self, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": "PartialObjectMetadata",
            "apiVersion": self.api_version,
            "metadata": _meta(obj),
        }

    def _row_object(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        if self.include == "Object":
            return obj
        if self.include == "None":
            return None
        return self._partial(obj)

    # -- watches -----------------------------------------------------------------------
    def watch_encoder(self, res: Resource) -> Callable[[WatchEvent], bytes]:
        """Encodes a watch stream's events as this view; column definitions go with the
        first event only."""
        first = True

        def encode(ev: WatchEvent) -> bytes:
            nonlocal first
            obj = ev.object
            if ev.type == EventType.ERROR:
                out: dict[str, Any] = public_status(obj)
            elif self.kind != "Table":
                out = self._partial(obj)
            else:
                rv = _meta(obj).get("resourceVersion")
                meta = {"resourceVersion": rv} if isinstance(rv, str) and rv else {}
                # A bookmark names a revision, not an object: no row to print.
                items = [] if ev.type == EventType.BOOKMARK else [obj]
                out = self.table(res, items, meta, headers=first)
                first = False
            return orjson.dumps({"type": ev.type.value, "object": out}) + b"\n"

        return encode


def _media_params(entry: str) -> tuple[str, dict[str, str]]:
    media, *params = entry.split(";")
    parsed: dict[str, str] = {}
    for param in params:
        key, sep, value = param.partition("=")
        if sep:
            parsed[key.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), parsed


def requested_view(request: Request) -> View | None:
    """The view a read's `Accept` asks for, or None for the plain object.

    Entries are tried in order, as upstream's negotiation does: the first one that is a
    plain media type (no `as=`) means the plain object; a `meta.k8s.io` conversion this
    server makes is taken; one it does not make (another group, protobuf) is skipped.
    When every entry is a conversion and none can be made, the answer is a 406.
    """
    accept = request.headers.get("accept", "")
    if "as=" not in accept:
        return None
    skipped = False
    for entry in accept.split(","):
        if not entry.strip():
            continue
        media, params = _media_params(entry)
        target = params.get("as")
        if target is None:
            return None
        if (
            media in _JSON_TYPES
            and target in _KINDS
            and params.get("g") == META_GROUP
            and params.get("v") in _VERSIONS
        ):
            return View(target, params["v"], _include_object(request) if target == "Table" else "")
        skipped = True
    if skipped:
        raise NotAcceptableError(
            "only the following media types are accepted: application/json, "
            "application/json;as=Table;v=v1;g=meta.k8s.io, "
            "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io, "
            "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
        )
    return None


def _include_object(request: Request) -> str:
    value = request.query_params.get("includeObject", "")
    if value == "":
        return "Metadata"
    if value not in ("None", "Metadata", "Object"):
        raise BadRequestError(
            "Unable to convert to Table as requested: includeObject: Unsupported value: "
            f'"{value}": supported values: "Metadata", "None", "Object"'
        )
    return value


# -- cells -----------------------------------------------------------------------------


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _get(obj: Any, *path: str) -> Any:
    for step in path:
        obj = obj.get(step) if isinstance(obj, Mapping) else None
    return obj


def _count(value: Any) -> int:
    return len(value) if isinstance(value, dict | list) else 0


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def human_duration(seconds: float) -> str:
    """A duration as kubectl's AGE column prints it (`HumanDuration`: 2 to 3 figures,
    `45s`, `3m20s`, `5h`, `3d4h`, `2y10d`; a moment up to 2s in the future, clock skew,
    is `0s`)."""
    s = int(seconds)  # truncated toward zero, as Go converts a Duration
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def _since(value: Any, now: float) -> str:
    """`translateTimestampSince`: the age of a timestamp; `<unknown>` without one."""
    when = _parse_time(value)
    return "<unknown>" if when is None else human_duration(now - when)


def _age(obj: Mapping[str, Any], now: float) -> str:
    return _since(_meta(obj).get("creationTimestamp"), now)


def _column(
    name: str, kind: str, description: str, *, fmt: str = "", priority: int = 0
) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


_NAME = _column(
    "Name",
    "string",
    "Name must be unique within a namespace; clients use it to refer to the object.",
    fmt="name",
)
_AGE = _column(
    "Age",
    "string",
    "CreationTimestamp: when the server created the object (shown as the time since).",
)


@dataclass(frozen=True, slots=True)
class Printer:
    """The columns of one resource and how a row's cells are computed."""

    columns: list[dict[str, Any]]
    cells: Callable[[dict[str, Any], float], list[Any]]


def _configmap(obj: dict[str, Any], now: float) -> list[Any]:
    size = _count(obj.get("data")) + _count(obj.get("binaryData"))
    return [_str(_meta(obj).get("name")), size, _age(obj, now)]


def _secret(obj: dict[str, Any], now: float) -> list[Any]:
    # `stringData` is write-only upstream (merged into `data`); count its keys too, once.
    data = obj.get("data")
    keys = set(data) if isinstance(data, dict) else set()
    string_data = obj.get("stringData")
    if isinstance(string_data, dict):
        keys.update(string_data)
    return [_str(_meta(obj).get("name")), _str(obj.get("type")), len(keys), _age(obj, now)]


def _namespace(obj: dict[str, Any], now: float) -> list[Any]:
    return [_str(_meta(obj).get("name")), _str(_get(obj, "status", "phase")), _age(obj, now)]


def _service_account(obj: dict[str, Any], now: float) -> list[Any]:
    return [_str(_meta(obj).get("name")), _count(obj.get("secrets")), _age(obj, now)]


def _first_non_empty(*values: Any) -> str:
    return next((v for v in values if isinstance(v, str) and v), "")


def _event(obj: dict[str, Any], now: float) -> list[Any]:
    first = _since(obj.get("firstTimestamp"), now)
    if _parse_time(obj.get("firstTimestamp")) is None:
        first = _since(obj.get("eventTime"), now)
    last = _since(obj.get("lastTimestamp"), now)
    if _parse_time(obj.get("lastTimestamp")) is None:
        last = first
    count = obj.get("count")
    count = count if isinstance(count, int) and not isinstance(count, bool) else 0
    series = obj.get("series")
    if isinstance(series, dict):
        last = _since(series.get("lastObservedTime"), now)
        series_count = series.get("count")
        count = series_count if isinstance(series_count, int) else 0
    elif count == 0:
        count = 1  # a singleton event of the newer API carries no count
    involved = obj.get("involvedObject")
    involved = involved if isinstance(involved, dict) else {}
    kind, name = _str(involved.get("kind")).lower(), _str(involved.get("name"))
    target = f"{kind}/{name}" if name else kind
    component = _first_non_empty(_get(obj, "source", "component"), obj.get("reportingComponent"))
    instance = _first_non_empty(_get(obj, "source", "host"), obj.get("reportingInstance"))
    source = f"{component}, {instance}" if instance else component
    return [
        last,
        _str(obj.get("type")),
        _str(obj.get("reason")),
        target,
        _str(involved.get("fieldPath")),
        source,
        _str(obj.get("message")).strip(),
        first,
        count,
        _str(_meta(obj).get("name")),
    ]


_BUILTIN_PRINTERS: dict[str, Printer] = {
    "configmaps": Printer(
        [_NAME, _column("Data", "string", "Number of entries in data and binaryData."), _AGE],
        _configmap,
    ),
    "secrets": Printer(
        [
            _NAME,
            _column("Type", "string", "The secret's type, which says what its data holds."),
            _column("Data", "string", "Number of entries in data."),
            _AGE,
        ],
        _secret,
    ),
    "namespaces": Printer(
        [_NAME, _column("Status", "string", "The status of the namespace"), _AGE],
        _namespace,
    ),
    "serviceaccounts": Printer(
        [_NAME, _column("Secrets", "string", "Number of secrets the account lists."), _AGE],
        _service_account,
    ),
    "events": Printer(
        [
            _column("Last Seen", "string", "When the event was last observed."),
            _column("Type", "string", "Type of the event (Normal or Warning)."),
            _column("Reason", "string", "Why the event happened, in one CamelCase word."),
            _column("Object", "string", "The object the event is about."),
            _column("Subobject", "string", "Which part of the object.", priority=1),
            _column("Source", "string", "The component reporting the event.", priority=1),
            _column("Message", "string", "A human-readable description of the event."),
            _column("First Seen", "string", "When the event was first observed.", priority=1),
            _column("Count", "string", "How many times the event occurred.", priority=1),
            {**_NAME, "priority": 1},
        ],
        _event,
    ),
}


# -- custom resources: additionalPrinterColumns ----------------------------------------


_Step = str | int | None  # a member name, a list index, or `[*]` (None)


def _parse_jsonpath(path: str) -> list[_Step] | None:
    """The steps of a simple JSONPath (`.a.b`, `.a[0].b`, `.a['x.y']`, `.a[*].b`, within
    `{...}` or not); None for what this evaluator does not handle (filters, slices,
    recursive descent), whose cells are then `null`."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    steps: list[_Step] = []
    i = 0
    while i < len(text):
        if text[i] == ".":
            i += 1
            start = i
            while i < len(text) and text[i] not in ".[":
                i += 1
            if i == start:
                return None
            steps.append(text[start:i])
        elif text[i] == "[":
            end = text.find("]", i)
            if end < 0:
                return None
            inner = text[i + 1 : end].strip()
            i = end + 1
            if inner == "*":
                steps.append(None)
            elif len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
                steps.append(inner[1:-1])
            else:
                try:
                    steps.append(int(inner))
                except ValueError:
                    return None
        else:
            return None
    return steps


def jsonpath_values(obj: Any, path: str) -> list[Any]:
    """Every value `path` selects in `obj` (missing keys select nothing)."""
    steps = _parse_jsonpath(path)
    if steps is None:
        return []
    current = [obj]
    for step in steps:
        found: list[Any] = []
        for value in current:
            if step is None:
                if isinstance(value, list):
                    found.extend(value)
                elif isinstance(value, dict):
                    found.extend(value.values())
            elif isinstance(step, int):
                if isinstance(value, list) and -len(value) <= step < len(value):
                    found.append(value[step])
            elif isinstance(value, dict) and step in value:
                found.append(value[step])
        current = found
    return current


def _go_text(value: Any) -> str:
    """A value as JSONPath output prints it: strings as they are, lists and maps as JSON
    (keys sorted, as Go marshals maps), scalars as Go formats them."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def _cell(kind: str, value: Any, now: float) -> Any:
    """A custom column's cell for its declared type; `null` when the value does not fit."""
    if value is None:
        return None
    if kind == "string":
        return _go_text(value)
    if isinstance(value, bool):
        return value if kind == "boolean" else None
    if kind == "integer" and isinstance(value, int | float):
        return int(value)
    if kind == "number" and isinstance(value, int | float):
        return float(value)
    if kind == "date" and isinstance(value, str):
        when = _parse_time(value)
        return "<invalid>" if when is None else human_duration(now - when)
    return None


def _custom_printer(res: Resource) -> Printer:
    specs = [
        (c.name, c.type, c.json_path, c.description, c.format, c.priority)
        for c in res.printer_columns
    ]
    if not specs:
        # A CRD without columns prints its age, read as a `date` column.
        specs = [("Age", "date", ".metadata.creationTimestamp", _AGE["description"], "", 0)]
    columns = [_NAME]
    for name, kind, path, description, fmt, priority in specs:
        columns.append(
            _column(
                name,
                kind,
                description or f"Custom resource definition column (in JSONPath format): {path}",
                fmt=fmt,
                priority=priority,
            )
        )

    def cells(obj: dict[str, Any], now: float) -> list[Any]:
        row: list[Any] = [_str(_meta(obj).get("name"))]
        for _, kind, path, *_rest in specs:
            found = jsonpath_values(obj, path)
            row.append(_cell(kind, found[0], now) if found else None)
        return row

    return Printer(columns, cells)


_CUSTOM_PRINTERS: dict[Resource, Printer] = {}


def printer_for(res: Resource) -> Printer:
    if res.group == "" and res.plural in _BUILTIN_PRINTERS:
        return _BUILTIN_PRINTERS[res.plural]
    printer = _CUSTOM_PRINTERS.get(res)
    if printer is None:
        printer = _CUSTOM_PRINTERS[res] = _custom_printer(res)
    return printer
