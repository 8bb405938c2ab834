"""A minimal asyncio HTTP/1.1 client for the scale harness: plain sockets, no pool.

The harness holds one open watch per project, thousands of them, and sends tens of
requests per project to bootstrap them. Kept in one `httpx.AsyncClient`, the watches
made the harness the bottleneck: httpcore's pool scans every connection it holds each
time it assigns a request, so at N = 3,000 the harness had burned four times the
server's CPU before the bootstrap finished. Even with the watches out of the pool,
httpx spends more CPU per request than the server under test does. So here a watch is
a socket and a `StreamReader` that nothing scans, and each bootstrap worker owns one
keep-alive `Connection`: the harness's CPU per request stays a fraction of the server's.

It speaks just enough HTTP/1.1 for the server's responses: a status line and headers,
then a body sized by `Content-Length`, chunked, or delimited by the connection's close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

__all__ = ["Connection", "HTTPStatusError", "WatchStream"]

_LIMIT = 1024 * 1024


class HTTPStatusError(RuntimeError):
    """The server answered with something other than 2xx."""

    def __init__(self, method: str, target: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {target} answered {status}: {body[:300]!r}")
        self.status = status
        self.body = body


def _address(base_url: str) -> tuple[str, int]:
    url = urlsplit(base_url)
    return url.hostname or "127.0.0.1", url.port or 80


def _target(path: str, params: Mapping[str, str] | None) -> str:
    return path + ("?" + urlencode(params) if params else "")


class _Body:
    """The body of one response, read piece by piece from the connection."""

    def __init__(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
        self._reader = reader
        self.chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        self.remaining: int | None = None
        if not self.chunked and "content-length" in headers:
            self.remaining = int(headers["content-length"])
        self.keep_alive = headers.get("connection", "").lower() != "close" and (
            self.chunked or self.remaining is not None
        )

    async def next(self) -> bytes | None:
        """The next piece, or `None` at the body's end."""
        if self.chunked:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")  # no trailers from this server
                return None
            return (await self._reader.readexactly(size + 2))[:-2]
        if self.remaining is not None:
            if self.remaining == 0:
                return None
            data = await self._reader.readexactly(self.remaining)
            self.remaining = 0
            return data
        return await self._reader.read(65536) or None

    async def read_all(self) -> bytes:
        parts = []
        while (data := await self.next()) is not None:
            parts.append(data)
        return b"".join(parts)


async def _send(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    host: str,
    method: str,
    target: str,
    body: bytes | None,
) -> tuple[int, _Body]:
    head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"\r\n" + (body or b""))
    await writer.drain()
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return status, _Body(reader, headers)


class Connection:
    """One keep-alive connection for sequential requests (reconnects when closed)."""

    def __init__(self, base_url: str) -> None:
        self._host, self._port = _address(base_url)
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> bytes:
        """The response body of a 2xx; any other status raises `HTTPStatusError`."""
        if self._streams is None:
            self._streams = await asyncio.open_connection(self._host, self._port, limit=_LIMIT)
        reader, writer = self._streams
        target = _target(path, params)
        body = None if json_body is None else json.dumps(json_body).encode()
        try:
            status, response = await _send(
                reader, writer, f"{self._host}:{self._port}", method, target, body
            )
            data = await response.read_all()
        except BaseException:
            await self.close()
            raise
        if not response.keep_alive:
            await self.close()
        if not 200 <= status < 300:
            raise HTTPStatusError(method, target, status, data)
        return data

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return json.loads(await self.request("GET", path, params=params))

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class WatchStream:
    """One watch request on its own connection; `events` yields the decoded events."""

    def __init__(self, writer: asyncio.StreamWriter, body: _Body) -> None:
        self._writer = writer
        self._body = body
        self._pending = b""

    @classmethod
    async def open(
        cls, base_url: str, path: str, params: Mapping[str, str] | None = None
    ) -> WatchStream:
        """Connect, send the GET and read the response head (`HTTPStatusError` if not 200)."""
        host, port = _address(base_url)
        reader, writer = await asyncio.open_connection(host, port, limit=_LIMIT)
        target = _target(path, params)
        try:
            status, body = await _send(reader, writer, f"{host}:{port}", "GET", target, None)
            if status != 200:
                raise HTTPStatusError("GET", target, status, await body.read_all())
        except BaseException:
            writer.close()
            raise
        return cls(writer, body)

    async def lines(self) -> AsyncIterator[bytes]:
        """Each non-empty line of the body, as the server framed it.

        What is read past a line stays on the stream, so a caller may stop iterating
        after the event it waited for and iterate again later.
        """
        while True:
            while b"\n" in self._pending:
                line, self._pending = self._pending.split(b"\n", 1)
                if line.strip():
                    yield line
            data = await self._body.next()
            if data is None:
                if self._pending.strip():
                    line, self._pending = self._pending, b""
                    yield line
                return
            self._pending += data

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Each watch event, decoded."""
        async for line in self.lines():
            event: dict[str, Any] = json.loads(line)
            yield event

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
