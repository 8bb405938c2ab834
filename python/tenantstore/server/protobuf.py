"""Content negotiation between JSON and Kubernetes' protobuf, for the built-in kinds.

kubectl's typed subcommands and client-go's typed clients send protobuf bodies
(`Content-Type: application/vnd.kubernetes.protobuf`) and ask for protobuf first
(`Accept: application/vnd.kubernetes.protobuf, */*`). The server stores and works on JSON
only: a protobuf body is converted to the JSON a Go client would have sent for the same
object as it is read (`read_object`, `read_delete_options`), and a response is converted
from its JSON once the handler has built it (`Negotiated.encode`), errors included, as
kube-apiserver answers a `Status` in the negotiated type. Patch bodies stay JSON, as in
Kubernetes.

Custom resources are JSON-only, as in Kubernetes: a protobuf body is a 415, and a client
that accepts nothing but protobuf is a 406 NotAcceptable, decided before the request does
anything. `Accept` is read as kube-apiserver reads it: media ranges by `q`, then in order;
`*/*` and `application/*` mean JSON; ranges this server cannot produce are skipped.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..kubeproto import (
    KINDS,
    ProtobufDecodeError,
    ProtobufEncodeError,
    json_to_protobuf,
    protobuf_to_json,
    protobuf_watch_frame,
)
from ..storage.errors import BadRequestError, StorageError
from ..storage.events import WatchEvent
from .registry import BUILTIN_RESOURCES, Resource
from .status import JSON, UnsupportedMediaTypeError, public_status, status_response
from .validation import decode_json, read_body, read_json_body
from .watchstream import WatchResponse, encode_event

__all__ = [
    "PROTOBUF",
    "Negotiated",
    "NotAcceptableError",
    "negotiate",
    "read_delete_options",
    "read_object",
    "speaks_protobuf",
]

PROTOBUF = "application/vnd.kubernetes.protobuf"
PROTOBUF_WATCH = f"{PROTOBUF};stream=watch"
_JSON_RANGES = frozenset({JSON, "application/*", "*/*"})
# What the 406 and 415 messages list, as kube-apiserver's do.
_SERVED = f"{JSON}, {PROTOBUF}"


class NotAcceptableError(StorageError):
    """Nothing in the client's `Accept` is a type the server can answer in."""

    code = 406
    reason = "NotAcceptable"


_BUILTIN = frozenset(
    (r.api_version, r.kind, r.plural) for r in BUILTIN_RESOURCES if (r.api_version, r.kind) in KINDS
)


def speaks_protobuf(res: Resource) -> bool:
    """Built-in kinds only: a custom resource named like one (`kind: ConfigMap` in another
    group) is still JSON-only. (The registry refuses custom resources that would take a
    built-in's name, so the triple identifies a built-in.)"""
    return (res.api_version, res.kind, res.plural) in _BUILTIN


def _media_type(header: str) -> str:
    return header.split(";", 1)[0].strip().lower()


def _ranges(accept: str) -> list[tuple[str, dict[str, str]]]:
    """The media ranges of an `Accept` header, most preferred first (`q`, then order);
    ranges with `q=0` are left out."""
    ranges: list[tuple[float, int, str, dict[str, str]]] = []
    for index, part in enumerate(accept.split(",")):
        media, *raw_params = part.split(";")
        media = media.strip().lower()
        if not media:
            continue
        params: dict[str, str] = {}
        for raw in raw_params:
            name, _, value = raw.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 1.0
        if q > 0:
            ranges.append((-q, index, media, params))
    ranges.sort(key=lambda r: (r[0], r[1]))
    return [(media, params) for _, _, media, params in ranges]


@dataclass(frozen=True, slots=True)
class Negotiated:
    """How one response is written: `protobuf` when the client prefers it (and the kind
    has it), and whether JSON would do when an object turns out to have no protobuf form."""

    protobuf: bool
    json_ok: bool

    def encode(self, response: Response) -> Response:
        """`response` (JSON, as the handlers build it) in the negotiated type."""
        if not self.protobuf:
            return response
        if isinstance(response, WatchResponse):
            response.use_encoding(PROTOBUF_WATCH, _watch_frame)
            return response
        if response.media_type != JSON:
            return response
        try:
            body = json_to_protobuf(bytes(response.body))
        except ProtobufEncodeError:
            # Stored JSON a Go client could not have written (a JSON client may store a
            # number where a string belongs): JSON if the client takes it, else a 406.
            if self.json_ok:
                return response
            err = NotAcceptableError(f"the object cannot be encoded as {PROTOBUF}")
            return Negotiated(protobuf=True, json_ok=False).encode(status_response(err))
        out = Response(body, status_code=response.status_code, media_type=PROTOBUF)
        out.raw_headers += [
            (k, v) for k, v in response.raw_headers if k not in (b"content-type", b"content-length")
        ]
        return out


def negotiate(request: Request, res: Resource) -> Negotiated:
    """The response type of a request for `res`, from its `Accept` header; 406 when the
    client accepts nothing the server can write."""
    protobuf_ok = speaks_protobuf(res)
    negotiated = _negotiate(request.headers.get("accept", ""), protobuf_ok)
    if negotiated is None:
        served = _SERVED if protobuf_ok else JSON
        raise NotAcceptableError(f"only the following media types are accepted: {served}")
    return negotiated


@functools.lru_cache(maxsize=256)
def _negotiate(accept: str, protobuf_ok: bool) -> Negotiated | None:
    """Cached: clients send a handful of distinct headers, and every resource request
    asks."""
    if not accept.strip():
        return Negotiated(protobuf=False, json_ok=True)
    chosen: str | None = None
    json_ok = False
    for media, params in _ranges(accept):
        if media == PROTOBUF and protobuf_ok and "as" not in params:
            chosen = chosen or PROTOBUF
        elif media in _JSON_RANGES:
            chosen = chosen or JSON
            json_ok = True
    if chosen is None:
        return None
    return Negotiated(protobuf=chosen == PROTOBUF, json_ok=json_ok)


def _unsupported(media: str, res: Resource) -> UnsupportedMediaTypeError:
    served = _SERVED if speaks_protobuf(res) else JSON
    return UnsupportedMediaTypeError(
        f'the body of the request was in an unknown format "{media}" - accepted media types '
        f"include: {served}"
    )


def _decode(raw: bytes, api_version: str, kind: str) -> Any:
    try:
        text = protobuf_to_json(raw, api_version, kind)
    except ProtobufDecodeError as err:
        raise BadRequestError(f"the body is not a valid {kind} in protobuf: {err}") from None
    return decode_json(text)


async def read_object(
    request: Request,
    res: Resource,
    max_bytes: int,
    timeout: float,
    decode_json_body: Callable[[bytes], Any] | None = None,
) -> Any:
    """The body of a create or update, as JSON: 415 for other types (and for protobuf
    bodies of custom resources), 400 when malformed, 413 past `max_bytes`.

    `decode_json_body` decodes a JSON body when given (field validation's decoder, which
    also notes repeated fields); a protobuf body cannot repeat a field, so it is not used
    there."""
    media = _media_type(request.headers.get("content-type", ""))
    if media == PROTOBUF and speaks_protobuf(res):
        return _decode(await read_body(request, max_bytes, timeout), res.api_version, res.kind)
    if media not in ("", JSON, "*/*"):
        raise _unsupported(media, res)
    if decode_json_body is not None:
        return decode_json_body(await read_body(request, max_bytes, timeout))
    return await read_json_body(request, max_bytes, timeout)


def read_delete_options(request: Request, res: Resource, raw: bytes) -> Any:
    """A DELETE's `DeleteOptions` body (already read, not empty), as JSON."""
    media = _media_type(request.headers.get("content-type", ""))
    if media == PROTOBUF and speaks_protobuf(res):
        return _decode(raw, "v1", "DeleteOptions")
    if media not in ("", JSON, "*/*"):
        raise _unsupported(media, res)
    return decode_json(raw, "DeleteOptions")


def _watch_frame(event: WatchEvent, res: Resource) -> bytes:
    """One protobuf watch frame, made from the event's JSON line (which the cache encodes
    once for all its watchers). An object with no protobuf form ends up as an ERROR event:
    the stream cannot change its type midway."""
    line = encode_event(event, res)
    try:
        return protobuf_watch_frame(line)
    except ProtobufEncodeError:
        err = StorageError(f"an object cannot be encoded as {PROTOBUF}")
        status = public_status(err.to_status())
        return protobuf_watch_frame(orjson.dumps({"type": "ERROR", "object": status}))
