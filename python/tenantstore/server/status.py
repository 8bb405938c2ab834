"""HTTP-level errors the storage layer has no kind for, rendered as `metav1.Status`.

They subclass `StorageError` so one `to_status()` path renders every failure, storage or
HTTP, as the body Kubernetes clients expect.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from ..storage.errors import StorageError

__all__ = [
    "MethodNotAllowedError",
    "RequestEntityTooLargeError",
    "UnsupportedMediaTypeError",
    "json_response",
    "status_response",
    "success_status",
]

JSON = "application/json"


class MethodNotAllowedError(StorageError):
    code = 405
    reason = "MethodNotAllowed"


class RequestEntityTooLargeError(StorageError):
    code = 413
    reason = "RequestEntityTooLarge"


class UnsupportedMediaTypeError(StorageError):
    code = 415
    reason = "UnsupportedMediaType"


def json_response(body: Any, code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=code, media_type=JSON)


def status_response(err: StorageError) -> Response:
    headers = {}
    if err.retry_after_seconds is not None:
        headers["Retry-After"] = str(err.retry_after_seconds)
    return Response(
        orjson.dumps(err.to_status()), status_code=err.code, media_type=JSON, headers=headers
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
