"""Running the application under uvicorn with a graceful shutdown.

uvicorn, on SIGTERM/SIGINT, stops accepting connections and then waits for every open
request before running the lifespan shutdown, so idle watch streams would hold it up
forever. `TenantstoreServer` ends them first (`ServerState.begin_shutdown`), then lets
uvicorn drain and run the lifespan (which stops the factory and closes the backend). It
also does not re-raise the captured signal after a clean shutdown (uvicorn's default,
which would turn a graceful SIGTERM into exit status 143): the process exits 0.

The HTTP parser and the event loop default to httptools and uvloop (uvicorn's `standard`
extras, dependencies of this package): measured side by side, they serve 1.3 to 2.7 times
the requests/s of h11 and asyncio (BENCHMARKS.md, "HTTP stack"). Where they cannot be
installed (no wheel for the platform), `auto` falls back to h11 and asyncio, which are
always there; `--http`/`--loop` (`TENANTSTORE_HTTP`, `TENANTSTORE_LOOP`) choose explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import ssl
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from ..index import tune_heap
from .app import ServerState
from .connection import with_header_deadline

__all__ = [
    "HTTP_CHOICES",
    "LOOP_CHOICES",
    "TenantstoreServer",
    "http_protocol",
    "make_server",
    "resolve_http",
    "resolve_loop",
]

HTTP_CHOICES = ("auto", "httptools", "h11")
LOOP_CHOICES = ("auto", "uvloop", "asyncio")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def resolve_http(name: str = "auto") -> str:
    """The HTTP parser `name` stands for: `auto` is httptools where it is installed, h11
    (uvicorn's own dependency) where it is not; an explicit choice that is not installed
    is a `ValueError`, so a server never silently runs a stack other than the one asked."""
    if name == "auto":
        return "httptools" if _installed("httptools") else "h11"
    if name not in HTTP_CHOICES:
        raise ValueError(f"unknown HTTP parser {name!r}: expected one of {HTTP_CHOICES}")
    if not _installed(name):
        raise ValueError(f"--http {name}: the {name} package is not installed")
    return name


def resolve_loop(name: str = "auto") -> str:
    """The event loop `name` stands for, as `resolve_http` (`auto`: uvloop, else asyncio)."""
    if name == "auto":
        return "uvloop" if _installed("uvloop") else "asyncio"
    if name not in LOOP_CHOICES:
        raise ValueError(f"unknown event loop {name!r}: expected one of {LOOP_CHOICES}")
    if name == "uvloop" and not _installed("uvloop"):
        raise ValueError("--loop uvloop: the uvloop package is not installed")
    return name


def http_protocol(name: str) -> type[asyncio.Protocol]:
    """uvicorn's protocol class for a resolved parser name (imported only when chosen:
    uvicorn's httptools module fails to import without httptools)."""
    if name == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    from uvicorn.protocols.http.h11_impl import H11Protocol

    return H11Protocol


class TenantstoreServer(uvicorn.Server):
    """uvicorn's server, ending watch streams on shutdown and announcing its URL."""

    def __init__(
        self,
        config: uvicorn.Config,
        state: ServerState,
        *,
        announce: bool = True,
        http: str = "h11",
        loop: str = "asyncio",
    ):
        super().__init__(config)
        self.state = state
        self.announce = announce
        self.url = ""
        # What this server runs, resolved (never `auto`): announced, and read by tests.
        self.http = http
        self.loop = loop

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # Re-read credentials on SIGHUP, as kube-apiserver operators expect; installed
            # before start-up, so an early SIGHUP cannot end the process. (Only in the main
            # thread: an embedder running the server in a thread keeps its own handlers.)
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGHUP, self.state.reload_credentials
            )
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit or not self.servers:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if self.config.ssl_certfile else "http"
        self.url = f"{scheme}://{shown}:{port}"
        if self.announce:
            cfg = self.state.config
            print(
                f"tenantstore serving on {self.url} (mode {cfg.mode}, backend {cfg.backend}, "
                f"http {self.http}, loop {self.loop}); "
                f"projects at {self.url}/projects/<project>/control-plane",
                flush=True,
            )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.state.begin_shutdown()
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # As uvicorn, minus recording the signal for re-raising after shutdown.
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True
        self.state.begin_shutdown()


#: glibc's own variables for the thresholds `keep_large_buffers` sets: when either is
#: in the environment, the operator chose, and the server leaves the heap alone.
_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 16 << 20


def keep_large_buffers() -> bool:
    """Let the C heap keep response-sized buffers (up to 4 MiB) and 16 MiB of free top
    between requests, instead of returning and re-faulting them on every LIST (see
    `index.tune_heap`: twice the LISTs of 500 per second here). The cache's own memory is
    unaffected: it is trimmed explicitly after each list it absorbs."""
    if any(name in os.environ for name in _MALLOC_ENV):
        return False
    return tune_heap(MMAP_THRESHOLD, TRIM_THRESHOLD)


def make_server(
    app: Starlette,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    log_level: str = "info",
    access_log: bool = False,
    announce: bool = True,
    tls_cert_file: str | None = None,
    tls_key_file: str | None = None,
    client_ca_file: str | None = None,
    http: str = "auto",
    loop: str = "auto",
) -> TenantstoreServer:
    """uvicorn, configured for tenantstore; HTTPS when given a certificate and key, and
    client certificates required (signed by `client_ca_file`) when given that CA.

    `http` and `loop` are resolved here (`ValueError` for one not installed), so the
    header deadline wraps the parser that will actually run."""
    state: ServerState = app.state.tenantstore
    keep_large_buffers()
    http_name, loop_name = resolve_http(http), resolve_loop(loop)
    tls: dict[str, Any] = {}
    if tls_cert_file is not None:
        tls = {"ssl_certfile": tls_cert_file, "ssl_keyfile": tls_key_file}
        if client_ca_file is not None:
            tls.update(ssl_ca_certs=client_ca_file, ssl_cert_reqs=ssl.CERT_REQUIRED)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        http=with_header_deadline(state.config.read_timeout, http_protocol(http_name)),
        loop=loop_name,
        timeout_graceful_shutdown=10,
        # Watch streams are long-lived; uvicorn's keep-alive timeout only affects idle ones.
        timeout_keep_alive=30,
        # Each request task starts from an empty context. Without this, uvicorn re-arms a
        # connection's reader (resume_reading after a body over 64 KiB paused it) from
        # inside the request task, so the connection's later requests inherit that request's
        # contextvars, among them the tenancy scope: a root request on the same keep-alive
        # connection would run in the previous request's project. httptools' protocol
        # re-arms it the same way (and starts pipelined requests from the finishing
        # request's task), and honours the same setting; uvloop's `create_task` takes the
        # fresh context as asyncio's does.
        reset_contextvars=True,
        **tls,
    )
    return TenantstoreServer(config, state, announce=announce, http=http_name, loop=loop_name)
