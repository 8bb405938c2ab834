"""`/healthz`, `/livez` and `/readyz` with Kubernetes' named checks.

Liveness asks whether the process should be restarted: only `ping`, which answers as
long as the event loop does. Readiness asks whether it should get traffic, and so
tells the truth about what serving needs: the backend answering a cheap round trip
(and, for SQLite, taking the write lock) within a short timeout, every resource's
cache synced and following its watch, and no shutdown under way. Each probe runs the
checks afresh, so readiness fails within one probe of the backend going away and
recovers within one probe of it coming back.

As in Kubernetes: `?verbose` lists every check (`[+]name ok` / `[-]name failed:
reason`), a failure lists them always, `?exclude=name` skips one, and
`/readyz/<name>` runs one check. Reasons are short and generic: the endpoints are
open to anyone, so no address or backend message appears in them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..storage.errors import NotFoundError

__all__ = ["BACKEND_TIMEOUT", "Check", "HealthChecks"]

# A round trip to the backend that takes longer than this counts as a failure.
BACKEND_TIMEOUT = 1.0

# None when healthy, else a short reason.
Probe = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    probe: Probe


class HealthChecks:
    """The checks of one endpoint (`livez` or `readyz`), run on every request."""

    def __init__(self, endpoint: str, checks: Callable[[], list[Check]]) -> None:
        self.endpoint = endpoint
        # A function, so that checks follow what the server currently holds.
        self._checks = checks

    async def _run(self, check: Check) -> str | None:
        try:
            return await check.probe()
        except Exception as exc:  # a check that fails to run has failed
            return type(exc).__name__

    async def respond(self, request: Request, name: str | None) -> Response:
        checks = self._checks()
        if name is not None:
            chosen = [c for c in checks if c.name == name]
            if not chosen:
                raise NotFoundError(f"no {self.endpoint} check named {name!r}")
            reason = await self._run(chosen[0])
            if reason is None:
                return PlainTextResponse("ok")
            return PlainTextResponse(f"[-]{name} failed: {reason}\n", status_code=500)
        excluded = set(request.query_params.getlist("exclude"))
        checks = [c for c in checks if c.name not in excluded]
        reasons = await asyncio.gather(*(self._run(c) for c in checks))
        failed = any(r is not None for r in reasons)
        verbose = "verbose" in request.query_params
        if not failed and not verbose:
            return PlainTextResponse("ok")
        lines = [
            f"[+]{c.name} ok" if r is None else f"[-]{c.name} failed: {r}"
            for c, r in zip(checks, reasons, strict=True)
        ]
        lines += [f"[+]{n} excluded: ok" for n in sorted(excluded)]
        lines.append(f"{self.endpoint} check {'failed' if failed else 'passed'}")
        return PlainTextResponse("\n".join(lines) + "\n", status_code=500 if failed else 200)


async def ping() -> str | None:
    return None


async def within(timeout: float, probe: Callable[[], Awaitable[bool]], failure: str) -> str | None:
    """`failure` unless `probe()` answers True within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            ok = await probe()
    except TimeoutError:
        return f"{failure} (no answer within {timeout:g}s)"
    except Exception:
        return failure
    return None if ok else failure
