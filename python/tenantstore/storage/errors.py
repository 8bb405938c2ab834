"""The storage error hierarchy.

Every failure a caller can act on is a `StorageError` carrying the HTTP status code and
the `reason` Kubernetes uses for it, so the server layer renders any of them as a
`metav1.Status` without a lookup table and clients written for Kubernetes react as they
would there (re-list on 410, retry on 504/503, re-read on 409).
"""

from __future__ import annotations

from typing import Any, ClassVar


class StorageError(Exception):
    """Base class: an error with a Kubernetes status code and reason."""

    code: ClassVar[int] = 500
    reason: ClassVar[str] = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        key: str = "",
        resource_version: int = 0,
        retry_after_seconds: int | None = None,
        details: dict[str, Any] | None = None,
        continue_: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        self.resource_version = resource_version
        self.retry_after_seconds = retry_after_seconds
        self.details = details or {}
        # A continue token the client may resume with (the `metadata.continue` of the
        # Status): a 410 for a compacted continuation carries an inconsistent one, as
        # upstream's, so the client can finish its list instead of starting over.
        self.continue_ = continue_

    def to_status(self) -> dict[str, Any]:
        """Render as a `metav1.Status` dict, the body Kubernetes clients expect."""
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {"continue": self.continue_} if self.continue_ else {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        details = dict(self.details)
        if self.retry_after_seconds is not None:
            details["retryAfterSeconds"] = self.retry_after_seconds
        if details:
            status["details"] = details
        return status


class BadRequestError(StorageError):
    """Malformed input the caller must fix (a bad continue token or selector)."""

    code = 400
    reason = "BadRequest"


class NotFoundError(StorageError):
    code = 404
    reason = "NotFound"


class AlreadyExistsError(StorageError):
    code = 409
    reason = "AlreadyExists"


class ConflictError(StorageError):
    """A precondition (UID or resourceVersion) did not hold; the caller re-reads."""

    code = 409
    reason = "Conflict"


class GoneError(StorageError):
    """The requested resourceVersion has been compacted: the client must re-list."""

    code = 410
    reason = "Expired"


# Kubernetes calls the same condition ResourceExpired in the storage package.
ResourceExpiredError = GoneError


class RequestEntityTooLargeError(StorageError):
    """An object too large for the backend to store (or a request body past the limit)."""

    code = 413
    reason = "RequestEntityTooLarge"


class InvalidError(StorageError):
    code = 422
    reason = "Invalid"


class InternalError(StorageError):
    code = 500
    reason = "InternalError"


class UnavailableError(StorageError):
    """The backend cannot be reached; safe to retry later."""

    code = 503
    reason = "ServiceUnavailable"


class TooLargeResourceVersionError(StorageError):
    """The cache has not reached the requested resourceVersion in time (retry later)."""

    code = 504
    reason = "Timeout"

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("retry_after_seconds", 1)
        super().__init__(message, **kwargs)
        self.details.setdefault(
            "causes", [{"reason": "ResourceVersionTooLarge", "message": message}]
        )


def to_status(err: BaseException) -> dict[str, Any]:
    """Render any exception as a `metav1.Status`; unknown ones become a 500 without detail.

    The message of an unexpected exception is not echoed: it may carry storage keys of
    another tenant.
    """
    if isinstance(err, StorageError):
        return err.to_status()
    return InternalError("internal error").to_status()


def not_found(key: str) -> NotFoundError:
    return NotFoundError(f'key "{key}" not found', key=key)


# Upstream's message for a list at a revision the store has compacted away.
LIST_TOO_OLD = "The resourceVersion for the provided list is too old."
CONTINUE_TOO_OLD = (
    "The provided continue parameter is too old to display a consistent list result. You "
    "can start a new list without the continue parameter, or use the continue token in "
    "this response to retrieve the remainder of the results. Continuing with the provided "
    "token results in an inconsistent list - objects that were created, modified, or "
    "deleted between the time the first chunk was returned and now may show up in the list."
)


def too_old(requested: int, oldest: int) -> GoneError:
    return GoneError(
        f"too old resource version: {requested} ({oldest})", resource_version=requested
    )
