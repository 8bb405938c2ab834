"""Running the application under uvicorn with a graceful shutdown.

uvicorn, on SIGTERM/SIGINT, stops accepting connections and then waits for every open
request before running the lifespan shutdown, so idle watch streams would hold it up
forever. `TenantstoreServer` ends them first (`ServerState.begin_shutdown`), then lets
uvicorn drain and run the lifespan (which stops the factory and closes the backend). It
also does not re-raise the captured signal after a clean shutdown (uvicorn's default,
which would turn a graceful SIGTERM into exit status 143): the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from .app import ServerState
from .connection import with_header_deadline

__all__ = ["TenantstoreServer", "make_server"]


class TenantstoreServer(uvicorn.Server):
    """uvicorn's server, ending watch streams on shutdown and announcing its URL."""

    def __init__(self, config: uvicorn.Config, state: ServerState, *, announce: bool = True):
        super().__init__(config)
        self.state = state
        self.announce = announce
        self.url = ""

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
                f"tenantstore serving on {self.url} (mode {cfg.mode}, backend {cfg.backend}); "
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
) -> TenantstoreServer:
    """uvicorn, configured for tenantstore; HTTPS when given a certificate and key, and
    client certificates required (signed by `client_ca_file`) when given that CA."""
    state: ServerState = app.state.tenantstore
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
        http=with_header_deadline(state.config.read_timeout),
        timeout_graceful_shutdown=10,
        # Watch streams are long-lived; uvicorn's keep-alive timeout only affects idle ones.
        timeout_keep_alive=30,
        # Each request task starts from an empty context. Without this, uvicorn re-arms a
        # connection's reader (resume_reading after a body over 64 KiB paused it) from
        # inside the request task, so the connection's later requests inherit that request's
        # contextvars, among them the tenancy scope: a root request on the same keep-alive
        # connection would run in the previous request's project.
        reset_contextvars=True,
        **tls,
    )
    return TenantstoreServer(config, state, announce=announce)
