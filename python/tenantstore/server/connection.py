"""A deadline for a request's headers, which uvicorn does not have.

uvicorn closes an idle keep-alive connection, but a connection that sends part of a
request line or of its headers and then nothing (slowloris), or nothing at all after
connecting, is kept open for ever: each one holds a socket and a protocol object, and
enough of them exhaust the server. Go's `http.Server.ReadHeaderTimeout`, which
kube-apiserver sets, closes such connections; this does the same for uvicorn's
protocol classes. The body has its own deadline in `validation.read_body`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["DEFAULT_READ_TIMEOUT", "with_header_deadline"]

# Seconds a client has to send a request's headers (and, separately, its body).
DEFAULT_READ_TIMEOUT = 30.0


def with_header_deadline(
    timeout: float, base: type[asyncio.Protocol] = H11Protocol
) -> type[asyncio.Protocol]:
    """`base` (uvicorn's HTTP protocol) closing connections whose headers are late.

    Works for both of uvicorn's parsers: each sets `self.cycle` while it parses the
    headers of a request (h11 on its `Request` event, httptools in `on_headers_complete`,
    both from inside `data_received`), so "no cycle, or a finished one" after
    `data_received` means the next request's headers are still awaited."""

    class HeaderDeadlineProtocol(base):  # type: ignore[valid-type,misc]
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._awaiting_headers():
                self._arm()
            else:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # Bytes of the next request may have come with (or before) the end of this
            # one, in the same `data_received` that found a request in progress: its
            # headers are awaited from now on, so the deadline starts now too.
            if self._awaiting_headers():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _awaiting_headers(self) -> bool:
            cycle = getattr(self, "cycle", None)
            return cycle is None or bool(cycle.response_complete)

        def _arm(self) -> None:
            if self._deadline is None:
                loop = asyncio.get_running_loop()
                self._deadline = loop.call_later(timeout, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            transport = getattr(self, "transport", None)
            if self._awaiting_headers() and transport is not None and not transport.is_closing():
                transport.close()

    HeaderDeadlineProtocol.__name__ = f"HeaderDeadline{base.__name__}"
    return HeaderDeadlineProtocol
