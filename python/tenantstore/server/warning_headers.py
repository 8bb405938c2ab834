"""`Warning` response headers (RFC 7234's `299 - "text"`), as kube-apiserver sends them.

A handler records warnings on the request (`add_warnings`) and the dispatcher writes them
on whatever response the request ends with (`apply_warnings`), so a handler need not
thread headers through its response. A source replaces its own earlier warnings: an
update function that `guaranteed_update` retries warns once, for the attempt that
counted. client-go prints each one (`Warning: unknown field "spec.foo"`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["add_warnings", "apply_warnings"]

_KEY = "tenantstore_warnings"
# kube-apiserver caps a warning at 4 KiB and a response's warnings at 1 MiB.
_MAX_WARNING = 4096
_MAX_COUNT = 64


def add_warnings(request: Request, source: str, messages: list[str]) -> None:
    """Record `messages` as `source`'s warnings for this request (replacing earlier ones)."""
    scope_state = request.scope.setdefault("state", {})
    warnings: dict[str, list[str]] = scope_state.setdefault(_KEY, {})
    warnings[source] = messages


def _header(text: str) -> str:
    text = text[:_MAX_WARNING]
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{quoted}"'


def apply_warnings(request: Request, response: Response) -> None:
    """Write the request's warnings, if any, as `Warning` headers of `response`."""
    state = request.scope.get("state")
    warnings = state.get(_KEY) if isinstance(state, dict) else None
    if not warnings:
        return
    seen: set[str] = set()
    for messages in warnings.values():
        for text in messages:
            if text in seen or len(seen) >= _MAX_COUNT:
                continue
            seen.add(text)
            response.headers.append("Warning", _header(text))
