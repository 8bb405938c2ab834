"""Real servers for the server tests: uvicorn in a background thread, or `tenantstore serve`
as a subprocess, on a free 127.0.0.1 port, over a SQLite file in a tmp dir or the
session's etcd. Tests talk to them over real HTTP only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from tenantstore.server import ServerConfig, TenantstoreServer, create_app, make_server

STARTUP_TIMEOUT = 30.0
RESOURCES_YAML = """\
resources:
  - {group: example.com, version: v1, kind: Widget, plural: widgets, namespaced: true,
     shortNames: [wd]}
  - {group: example.com, version: v1, kind: Cluster, plural: clusters, namespaced: false}
"""

BACKEND_MODES = [("sqlite", "shared"), ("sqlite", "per-project"), ("etcd", "shared")]
if os.environ.get("TENANTSTORE_NO_ETCD"):
    BACKEND_MODES = [bm for bm in BACKEND_MODES if bm[0] != "etcd"]


class ThreadServer:
    """The application under uvicorn in a daemon thread (its own event loop)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        # Fast bookmarks so bookmark tests need not wait long.
        config.factory_options.setdefault("bookmark_interval", 0.2)
        self.app = create_app(config)
        self.server: TenantstoreServer = make_server(
            self.app, "127.0.0.1", 0, log_level="warning", announce=False
        )
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def start(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.server.url:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "server thread did not stop"


def backend_url(kind: str, tmp: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite://{tmp / 'store.db'}"
    server = request.getfixturevalue("etcd_server")
    return f"etcd://{server.endpoint}"


@pytest.fixture(scope="module")
def resources_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resources") / "resources.yaml"
    path.write_text(RESOURCES_YAML)
    return path


def _start(
    kind: str, mode: str, resources: Path, tmp: Path, request: pytest.FixtureRequest
) -> ThreadServer:
    config = ServerConfig(
        backend=backend_url(kind, tmp, request),
        mode=mode,  # type: ignore[arg-type]
        resources_file=str(resources),
        max_body_bytes=64 * 1024,
    )
    return ThreadServer(config).start()


@pytest.fixture(scope="module", params=BACKEND_MODES, ids=lambda p: f"{p[0]}-{p[1]}")
def any_server(
    request: pytest.FixtureRequest,
    resources_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ThreadServer]:
    """A server per (backend, mode) of the matrix."""
    kind, mode = request.param
    server = _start(kind, mode, resources_file, tmp_path_factory.mktemp("srv"), request)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest,
    resources_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ThreadServer]:
    """One SQLite-backed shared-mode server for the module."""
    srv = _start("sqlite", "shared", resources_file, tmp_path_factory.mktemp("srv"), request)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def http(server: ThreadServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


# -- `tenantstore serve` as a subprocess ---------------------------------------------


_URL_LINE = re.compile(r"tenantstore serving on (https?://\S+)")


class ServeProcess:
    """`python -m tenantstore.cli serve --port 0 ...`; the URL is read from its stdout."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.log = cwd / "serve.log"
        self._log_fh: IO[bytes] = open(self.log, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tenantstore.cli", "serve", "--port", "0", *args],
            cwd=cwd,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
        )
        self.url = ""

    def wait_started(self) -> ServeProcess:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            m = _URL_LINE.search(self.log.read_text(errors="replace"))
            if m:
                self.url = m.group(1)
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tenantstore serve did not start:\n{self.log.read_text()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._log_fh.close()
