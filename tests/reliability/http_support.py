"""Shared machinery of the HTTP reliability tests (test_http_hostile, test_load): a
`tenantstore serve` subprocess fixture, a raw-socket HTTP client for requests httpx
refuses to send, and a /metrics reader."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import ServeProcess

SOAK = bool(os.environ.get("TENANTSTORE_SOAK"))
soak_only = pytest.mark.skipif(not SOAK, reason="soak variant: set TENANTSTORE_SOAK=1")


def start_serve(tmp: Path, *extra: str) -> ServeProcess:
    """`tenantstore serve` on a fresh SQLite file in `tmp` (default limits)."""
    tmp.mkdir(parents=True, exist_ok=True)
    db = tmp / "store.db"
    args = ["--backend", f"sqlite://{db}", "--log-level", "warning", *extra]
    return ServeProcess(args, tmp).wait_started()


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    proc = start_serve(tmp_path_factory.mktemp("serve"))
    try:
        yield proc
    finally:
        proc.stop()


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


_STATUS = re.compile(rb"\AHTTP/1\.[01] (\d{3}) ")


def raw_request(
    url: str, data: bytes, *, timeout: float = 30.0, half_close: bool = False
) -> tuple[int | None, bytes]:
    """Send `data` as is on a fresh connection; (status or None if the server closed
    without answering, everything read). Reads until the server closes the connection,
    the response's Content-Length is complete, or headers of a chunked response arrive
    (a watch stream is not read to its end). With `half_close`, the sending side is shut
    down after `data`, so a request the server considers incomplete ends at EOF instead of
    waiting for more bytes."""
    with socket.create_connection(host_port(url), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything we send
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
                if m and len(body) >= int(m.group(1)):
                    break
                if re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
                    break
    m = _STATUS.match(buf)
    return (int(m.group(1)) if m else None), buf


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if series != name and not series.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


def scrape(http: httpx.Client | None, url: str) -> str:
    if http is None:
        return httpx.get(url + "/metrics", timeout=30).text
    return http.get("/metrics").text
