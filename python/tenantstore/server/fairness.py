"""Fair sharing between projects: a cap on each project's requests in flight.

One project sending requests flat out must not take the server's time from the others.
Kubernetes' priority-and-fairness answers a request past its share with 429 and
`Retry-After`; here the share is simple and per project: at most `max_inflight`
ordinary requests at once, and at most `max_watches` open watch streams (which hold a
connection for minutes, so they are counted apart). The counters exist only for projects
with something in flight, so idle projects cost nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ..storage.errors import StorageError

__all__ = ["FairShare", "TooManyRequestsError"]

RETRY_AFTER_SECONDS = 1


class TooManyRequestsError(StorageError):
    code = 429
    reason = "TooManyRequests"


class FairShare:
    """Per-project in-flight counters (the root scope counts as a project too)."""

    def __init__(self, max_inflight: int | None, max_watches: int | None) -> None:
        self.max_inflight = max_inflight
        self.max_watches = max_watches
        self.inflight: Counter[str | None] = Counter()
        self.watches: Counter[str | None] = Counter()
        self.rejected: Counter[str] = Counter()

    def _take(
        self, counts: Counter[str | None], limit: int | None, project: str | None, what: str
    ) -> Callable[[], None]:
        if limit is not None and counts[project] >= limit:
            self.rejected[what] += 1
            where = f'project "{project}"' if project is not None else "the root scope"
            raise TooManyRequestsError(
                f"too many {what} in flight for {where} (at most {limit}); retry later",
                retry_after_seconds=RETRY_AFTER_SECONDS,
            )
        counts[project] += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            counts[project] -= 1
            if counts[project] <= 0:
                del counts[project]

        return release

    def request(self, project: str | None) -> Callable[[], None]:
        """Admit one ordinary request (or 429); call the returned function when done."""
        return self._take(self.inflight, self.max_inflight, project, "requests")

    def watch(self, project: str | None) -> Callable[[], None]:
        """Admit one watch stream (or 429); call the returned function when it ends."""
        return self._take(self.watches, self.max_watches, project, "watches")
