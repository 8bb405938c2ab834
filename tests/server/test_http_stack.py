"""Both HTTP stacks `tenantstore serve` can run: httptools + uvloop (the default where
installed) and h11 + asyncio (the fallback). The properties the server builds on top of
uvicorn's protocol classes (the header deadline, the fresh context per request on a
keep-alive connection, watch streams ended on SIGTERM, SIGHUP reloads) are checked on
each, since each parser re-arms reads and starts request tasks in its own code.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tenantstore.server.runner import http_protocol, resolve_http, resolve_loop

from .conftest import ServeProcess

ROOT_CM = "/api/v1/namespaces/default/configmaps"
P1_CM = "/projects/p1/control-plane" + ROOT_CM

STACKS = [
    pytest.param(("httptools", "uvloop"), id="httptools-uvloop"),
    pytest.param(("h11", "asyncio"), id="h11-asyncio"),
]


@pytest.fixture(scope="module", params=STACKS)
def stack_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, ServeProcess]]:
    http, loop = request.param
    tmp = tmp_path_factory.mktemp(f"stack-{http}")
    proc = ServeProcess(
        [
            "--backend",
            f"sqlite://{tmp / 'store.db'}",
            "--http",
            http,
            "--loop",
            loop,
            "--request-read-timeout",
            "1",
            "--log-level",
            "warning",
        ],
        tmp,
    ).wait_started()
    try:
        yield http, loop, proc
    finally:
        proc.stop()


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def test_auto_prefers_the_standard_extras_where_installed() -> None:
    """`auto` is what the server runs when nothing is chosen: the extras when installed
    (they are dependencies), else the stack that is always there."""
    import importlib.util

    has_httptools = importlib.util.find_spec("httptools") is not None
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    assert resolve_http("auto") == ("httptools" if has_httptools else "h11")
    assert resolve_loop("auto") == ("uvloop" if has_uvloop else "asyncio")
    assert resolve_http("h11") == "h11" and resolve_loop("asyncio") == "asyncio"
    assert http_protocol("h11").__name__ == "H11Protocol"
    with pytest.raises(ValueError, match="unknown HTTP parser"):
        resolve_http("zz")
    with pytest.raises(ValueError, match="unknown event loop"):
        resolve_loop("zz")


def test_the_server_announces_the_stack_it_runs(
    stack_server: tuple[str, str, ServeProcess],
) -> None:
    http, loop, proc = stack_server
    assert f"http {http}, loop {loop})" in proc.output()


def test_keep_alive_requests_start_in_a_fresh_context(
    stack_server: tuple[str, str, ServeProcess],
) -> None:
    """A body over 64 KiB pauses the connection's reads, which the protocol resumes from
    inside the request's task: the next request on that connection must not inherit the
    project scope of the first (it would read p1's object as the root's)."""
    _, _, proc = stack_server
    blob = "x" * (200 * 1024)
    with httpx.Client(base_url=proc.url, timeout=30) as conn:
        r = conn.post(P1_CM, json={"metadata": {"name": "scoped"}, "data": {"b": blob}})
        assert r.status_code == 201, r.text[:300]
        root = conn.get(f"{ROOT_CM}/scoped")
        assert root.status_code == 404, root.text[:300]
        listed = conn.get("/api/v1/configmaps").json()["items"]
        assert [o["metadata"]["name"] for o in listed] == []
        again = conn.get(f"{P1_CM}/scoped")
        assert again.status_code == 200 and again.json()["data"]["b"] == blob


def test_pipelined_requests_start_in_a_fresh_context(
    stack_server: tuple[str, str, ServeProcess],
) -> None:
    """Pipelined requests are started from the task of the one before them (httptools'
    `on_response_complete`): a root request pipelined behind a project's must be root."""
    _, _, proc = stack_server
    with httpx.Client(base_url=proc.url, timeout=30) as http:
        r = http.post(P1_CM, json={"metadata": {"name": "piped"}})
        assert r.status_code == 201, r.text
    requests = (
        f"GET {P1_CM}/piped HTTP/1.1\r\nHost: x\r\n\r\n"
        f"GET {ROOT_CM}/piped HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(_host_port(proc.url), timeout=30) as sock:
        sock.sendall(requests)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
    assert statuses == [b"200", b"404"], data[:600]


def test_a_connection_that_never_finishes_its_headers_is_closed(
    stack_server: tuple[str, str, ServeProcess],
) -> None:
    _, _, proc = stack_server
    with socket.create_connection(_host_port(proc.url), timeout=60) as sock:
        sock.sendall(f"GET {ROOT_CM} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode())
        try:
            closed = sock.recv(65536) == b""
        except ConnectionResetError:
            closed = True
        assert closed


def test_a_keep_alive_connection_idle_after_a_response_is_closed(
    stack_server: tuple[str, str, ServeProcess],
) -> None:
    """After a complete response the deadline is armed again for the next headers."""
    _, _, proc = stack_server
    with socket.create_connection(_host_port(proc.url), timeout=60) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHo")
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    assert data.startswith(b"HTTP/1.1 200") and data.count(b"HTTP/1.1") == 1, data[:300]


@pytest.mark.parametrize("stack", STACKS)
def test_sighup_reloads_and_sigterm_ends_watches(tmp_path: Path, stack: tuple[str, str]) -> None:
    """SIGHUP re-reads the token file without stopping the server; SIGTERM ends open watch
    streams and exits 0 (uvloop installs signal handlers its own way)."""
    http, loop = stack
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('t1,alice,1,"system:masters"\n')
    proc = ServeProcess(
        [
            "--backend",
            f"sqlite://{tmp_path / 'store.db'}",
            "--http",
            http,
            "--loop",
            loop,
            "--token-auth-file",
            str(tokens),
        ],
        tmp_path,
    ).wait_started()
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as client:
            assert client.get(ROOT_CM, headers={"authorization": "Bearer t2"}).status_code == 401
            tokens.write_text('t2,bob,2,"system:masters"\n')
            proc.proc.send_signal(signal.SIGHUP)
            status = 401
            for _ in range(300):  # the reload runs on the loop; poll, no timing bound
                status = client.get(ROOT_CM, headers={"authorization": "Bearer t2"}).status_code
                if status == 200:
                    break
                threading.Event().wait(0.05)
            assert status == 200
            assert proc.proc.poll() is None
            r = client.post(
                P1_CM, json={"metadata": {"name": "w"}}, headers={"authorization": "Bearer t2"}
            )
            assert r.status_code == 201, r.text

        ended: list[list[str]] = []
        opened = threading.Barrier(2, timeout=30)

        def watch() -> None:
            with (
                httpx.Client(base_url=proc.url, timeout=60) as c,
                c.stream(
                    "GET", P1_CM, params={"watch": "1"}, headers={"authorization": "Bearer t2"}
                ) as resp,
            ):
                lines = resp.iter_lines()
                first = next(lines)
                opened.wait()
                ended.append([first, *lines])

        t = threading.Thread(target=watch, daemon=True)
        t.start()
        opened.wait()
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=30) == 0, proc.output()
        t.join(timeout=30)
        assert not t.is_alive()
        assert len(ended) == 1 and orjson.loads(ended[0][0])["type"] == "ADDED"
    finally:
        proc.stop()


def test_auto_falls_back_to_h11_and_asyncio_without_the_extras(tmp_path: Path) -> None:
    """Where httptools and uvloop cannot be imported (blocked here as a platform without
    wheels would lack them), `tenantstore serve` still starts, on h11 and asyncio, and an
    explicit `--http httptools` is a one-line configuration error, not a traceback."""
    block = "import sys; sys.modules['httptools'] = None; sys.modules['uvloop'] = None; "
    run = "from tenantstore.cli import main; sys.exit(main(sys.argv[1:]))"
    backend = f"sqlite://{tmp_path / 'store.db'}"
    explicit = subprocess.run(
        [sys.executable, "-c", block + run, "serve", "--backend", backend, "--http", "httptools"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert explicit.returncode == 2, explicit.stderr
    assert "httptools package is not installed" in explicit.stderr
    assert "Traceback" not in explicit.stderr
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", block + run, "serve", "--port", "0", "--backend", backend],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        match = None
        for _ in range(600):  # poll the log for the startup line; no timing bound asserted
            match = re.search(r"tenantstore serving on (http://\S+)", log.read_text())
            if match or proc.poll() is not None:
                break
            threading.Event().wait(0.05)
        assert match, log.read_text()
        assert "http h11, loop asyncio)" in log.read_text()
        with httpx.Client(base_url=match.group(1), timeout=30) as client:
            assert client.post(P1_CM, json={"metadata": {"name": "fb"}}).status_code == 201
            assert client.get(f"{ROOT_CM}/fb").status_code == 404
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0, log.read_text()
