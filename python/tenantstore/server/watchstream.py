"""Watch streaming: storage watch events as newline-delimited JSON over one HTTP response.

The stream runs in the request's project scope (the scope is re-entered around the whole
ASGI call, so anything the stream touches in storage is confined to the project) and
ends, cleanly (the final empty chunk), on the first of:

* the storage watch ending (an ERROR event such as 410 for a slow consumer comes first),
* `timeoutSeconds` (default 30 minutes),
* server shutdown (`stopping` is set before uvicorn waits for open connections, so a
  SIGTERM never hangs on idle watches),
* the client going away (noticed through `http.disconnect` even while no event flows).

The storage watch is always stopped on the way out, which unregisters it from the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..index import CachedWatchEvent
from ..storage.events import EventType, WatchEvent
from ..storage.watch import Watch
from ..tenancy import project_scope
from .metrics import WATCHES_OPEN
from .registry import Resource
from .status import public_status

__all__ = ["DEFAULT_WATCH_TIMEOUT", "WatchResponse", "encode_event"]

DEFAULT_WATCH_TIMEOUT = 1800.0
# How often an open stream checks that its client is still there.
DISCONNECT_PROBE_INTERVAL = 5.0
# How long one write to a watch client may block before the client counts as gone.
WRITE_TIMEOUT = 30.0


def typed(obj: dict[str, Any], res: Resource) -> dict[str, Any]:
    """`obj` with kind and apiVersion set (a new dict only when they are missing)."""
    if obj.get("kind") == res.kind and obj.get("apiVersion") == res.api_version:
        return obj
    return {**obj, "kind": res.kind, "apiVersion": res.api_version}


def encode_event(ev: WatchEvent, res: Resource) -> bytes:
    if isinstance(ev, CachedWatchEvent):
        # Encoded from the cache's bytes once, for every watcher that receives the event.
        return ev.encode_line(res.kind, res.api_version)
    obj = public_status(ev.object) if ev.type == EventType.ERROR else typed(ev.object, res)
    return orjson.dumps({"type": ev.type.value, "object": obj}) + b"\n"


class WatchResponse(Response):
    """An ASGI response streaming one storage `Watch` (see the module docstring)."""

    media_type = "application/json"

    def __init__(
        self,
        watch: Watch,
        *,
        resource: Resource,
        project: str | None,
        timeout: float,
        stopping: asyncio.Event,
        open_streams: set[Watch],
        on_close: Callable[[], None] | None = None,
        encode: Callable[[WatchEvent], bytes] | None = None,
    ) -> None:
        super().__init__(status_code=200, media_type=self.media_type)
        # No content-length: the body is chunked.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.raw_headers.append((b"cache-control", b"no-cache, private"))
        self.watch = watch
        self.resource = resource
        self.project = project
        self.timeout = timeout
        self.stopping = stopping
        # The server stops every watch in here when it shuts down.
        self.open_streams = open_streams
        # Called once the stream has ended (the project's watch slot is given back).
        self.on_close = on_close
        # How an event becomes a line when the client asked for another view of the
        # object (a Table, see `tables.py`) or another encoding (protobuf frames); None:
        # the object as stored, in JSON.
        self.encode = encode

    def use_encoding(
        self, media_type: str, encode: Callable[[WatchEvent, Resource], bytes]
    ) -> None:
        """Stream in another type than newline-delimited JSON (protobuf frames)."""
        self.media_type = media_type
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-type"]
        self.raw_headers.append((b"content-type", media_type.encode("latin-1")))
        resource = self.resource
        self.encode = lambda ev: encode(ev, resource)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gauge = WATCHES_OPEN.labels(self.resource.label)
        gauge.inc()
        try:
            async with project_scope(self.project):
                await self._stream(receive, send)
        finally:
            self.watch.stop()
            gauge.dec()
            if self.on_close is not None:
                self.on_close()

    async def _stream(self, receive: Receive, send: Send) -> None:
        """Pump events in the request's own task: no helper task per watch, so an open
        watch costs the server one asyncio task. Timeouts and the disconnect probe are
        timers; shutdown stops the storage watch, which ends the loop."""
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        if self.stopping.is_set():
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        self.open_streams.add(self.watch)
        try:
            client_gone = await self._pump(receive, send)
        finally:
            self.open_streams.discard(self.watch)
        if not client_gone:
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, receive: Receive, send: Send) -> bool:
        """Stream until the watch ends, the timeout passes or the client leaves; True if
        the client left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        next_probe = loop.time() + DISCONNECT_PROBE_INTERVAL
        watch = self.watch
        while True:
            now = loop.time()
            if now >= deadline:
                return False
            try:
                ev = await watch.next_within(min(deadline, next_probe) - now)
            except StopAsyncIteration:
                return False
            if ev is not None:
                encode = self.encode
                body = encode_event(ev, self.resource) if encode is None else encode(ev)
                try:
                    # A client that stops reading blocks the write once the socket buffers
                    # fill; give up on it (a timer, not a task) so it cannot pin the
                    # connection and the events queued for it.
                    async with asyncio.timeout(WRITE_TIMEOUT):
                        await send({"type": "http.response.body", "body": body, "more_body": True})
                except (OSError, TimeoutError):
                    return True
            if loop.time() >= next_probe:
                if await _client_left(receive):
                    return True
                next_probe = loop.time() + DISCONNECT_PROBE_INTERVAL


async def _client_left(receive: Receive) -> bool:
    """Has the client disconnected? (uvicorn swallows writes to a closed connection, so
    only `receive` tells; asked with a short timeout, never left pending.)"""
    try:
        message = await asyncio.wait_for(receive(), 0.001)
    except TimeoutError:
        return False
    return bool(message["type"] == "http.disconnect")
