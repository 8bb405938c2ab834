"""HTTP-level errors the storage layer has no kind for, rendered as `metav1.Status`.

They subclass `StorageError` so one `to_status()` path renders every failure, storage or
HTTP, as the body Kubernetes clients expect.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..storage.errors import RequestEntityTooLargeError, StorageError

__all__ = [
    "MethodNotAllowedError",
    "RequestEntityTooLargeError",
    "RequestTimeoutError",
    "UnsupportedMediaTypeError",
    "json_response",
    "public_status",
    "status_response",
    "success_status",
]

JSON = "application/json"

log = logging.getLogger("tenantstore.server")

# What a tenant is told of a server-side failure. The detail (an etcd address, a gRPC
# status name, a storage key) is for the operator's log, never for the response body:
# it would tell one tenant about the backend every tenant shares.
_GENERIC = {
    500: "an internal error occurred; the server logged the details",
    503: "the storage backend is unavailable; retry later",
}


def public_status(status: dict[str, Any]) -> dict[str, Any]:
    """`status` as a tenant may see it: the message of a 500 or 503 replaced (and logged)."""
    code = status.get("code")
    generic = _GENERIC.get(code) if isinstance(code, int) else None
    if generic is None or status.get("message") == generic:
        return status
    log.warning("answered %s %s: %s", code, status.get("reason"), status.get("message"))
    public = {k: v for k, v in status.items() if k not in ("message", "details")}
    public["message"] = generic
    details = status.get("details")
    if isinstance(details, dict) and "retryAfterSeconds" in details:
        public["details"] = {"retryAfterSeconds": details["retryAfterSeconds"]}
    return public


class MethodNotAllowedError(StorageError):
    code = 405
    reason = "MethodNotAllowed"


class RequestTimeoutError(StorageError):
    """The client did not send its request body in time (the connection is closed)."""

    code = 408
    reason = "Timeout"


class UnsupportedMediaTypeError(StorageError):
    code = 415
    reason = "UnsupportedMediaType"


def json_response(body: Any, code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=code, media_type=JSON)


def list_head(envelope: dict[str, Any]) -> tuple[bytes, bytes]:
    """The JSON of `envelope` (whose last member is an empty `items` list) split around
    that list's contents: `head + items + tail` is byte for byte what encoding the
    envelope with the decoded items gives, for `items` encoded and joined by commas."""
    head = orjson.dumps(envelope)
    assert head.endswith(b"[]}")
    return head[:-2], b"]}"


class PartsResponse(Response):
    """A body sent in parts, one after the other: a LIST from the cache is its envelope
    around the page of items Rust assembled, and joining them first copied half a
    megabyte per LIST of 500 for nothing. `body` still joins them for code that reads it
    (a protobuf conversion)."""

    parts: tuple[bytes, ...] = ()

    def __init__(self, parts: tuple[bytes, ...], media_type: str = JSON) -> None:
        super().__init__(b"", media_type=media_type)
        self.parts = parts
        length = str(sum(map(len, parts))).encode("latin-1")
        self.raw_headers = [
            (k, length if k == b"content-length" else v) for k, v in self.raw_headers
        ]

    @property
    def body(self) -> bytes:
        return b"".join(self.parts)

    @body.setter
    def body(self, value: bytes) -> None:
        if value:
            self.parts = (value,)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        last = len(self.parts) - 1
        for i, part in enumerate(self.parts):
            await send({"type": "http.response.body", "body": part, "more_body": i < last})


def status_response(err: StorageError) -> Response:
    headers = {}
    if err.retry_after_seconds is not None:
        headers["Retry-After"] = str(err.retry_after_seconds)
    return Response(
        orjson.dumps(public_status(err.to_status())),
        status_code=err.code,
        media_type=JSON,
        headers=headers,
    )


def success_status(details: dict[str, Any] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
    }
    if details:
        status["details"] = details
    return status
