"""The processes the scale harness measures: the server (alone in its process, so its
memory is its own) and, unless given one, an etcd on free loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def raise_fd_limit() -> int | None:
    """Raise the soft open-file limit to the hard one, and return the soft limit now.

    Thousands of open watch streams need thousands of descriptors at both ends: one per
    watch in the harness, one per watch in the server. The children started afterwards
    (the server, etcd) inherit the raised limit, which is how the server gets it: a
    shared-mode run at N = 10,000 holds 10,000 sockets in each process, more than the
    common default of 1,024. `None` where the platform has no `resource` module.
    """
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds(pid: int | None = None) -> float | None:
    """User + system CPU seconds of a process (this one when `pid` is `None`).

    Read from `/proc/PID/stat` for a child: the harness compares its own CPU with the
    server's and etcd's to show which side a run was bound by. `None` where there is no
    `/proc` (the child's figure is then simply not reported).
    """
    if pid is None:
        return time.process_time()
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: count fields after its closing paren.
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# Every child started and not yet stopped: `stop_all` is the last line of defence when
# the harness is told to stop (SIGTERM, Ctrl-C) at a point no `finally` covers.
_LIVE: dict[subprocess.Popen[bytes], None] = {}


def stop_all() -> None:
    """Stop every child still running (servers before etcd, newest first)."""
    for proc in reversed(list(_LIVE)):
        _stop(proc)
    _LIVE.clear()


async def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    # httpx comes with the `bench` extra, not with tenantstore: imported here, so that
    # `tenantstore --help` (whose parser lists the bench commands) works without it.
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{what} not ready at {url} after {timeout:.0f} s")


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    _LIVE.pop(proc, None)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class EtcdProcess:
    """A throwaway single-member etcd (Debian's etcd-server) on 127.0.0.1."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.endpoint}/metrics"

    async def start(self) -> None:
        self._launch()
        assert self.proc is not None
        await _wait_http(f"http://{self.endpoint}/health", self.proc, "etcd", 30)

    def _launch(self) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            raise RuntimeError(
                "etcd not found: install Debian's etcd-server, or use --backend sqlite"
            )
        client, peer = f"http://{self.endpoint}", f"http://127.0.0.1:{self.peer_port}"
        self.log = open(self.data_dir / "etcd.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                binary,
                "--name=scale",
                f"--data-dir={self.data_dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=scale={peer}",
                "--logger=zap",
                "--log-level=warn",
                "--experimental-watch-progress-notify-interval=1s",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        _LIVE[self.proc] = None

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.log.close()


class ServerProcess:
    """`tenantstore serve` in a child process (tracemalloc on for heap figures, unless
    `trace_memory=False`).

    `start` returns once `ready_path` answers 200: `/readyz` by default (every cache
    built), `/healthz` for a caller that warms the caches itself and must not depend on
    the readiness checks.
    """

    def __init__(
        self,
        backend_url: str,
        mode: str,
        resources: Path,
        log_path: Path,
        *,
        trace_memory: bool = True,
        extra_args: tuple[str, ...] = (),
        ready_path: str = "/readyz",
    ) -> None:
        self.port = free_port()
        self.backend_url = backend_url
        self.mode = mode
        self.resources = resources
        self.log_path = log_path
        # tracemalloc gives the heap figure, but slows every allocation: off under load.
        self.trace_memory = trace_memory
        self.extra_args = extra_args
        self.ready_path = ready_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._launch()
        assert self.proc is not None
        await _wait_http(f"{self.url}{self.ready_path}", self.proc, "tenantstore serve", 60)

    def _launch(self) -> None:
        # Before the fork, so that the server inherits the raised open-file limit.
        raise_fd_limit()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONTRACEMALLOC"}
        if self.trace_memory:
            env["PYTHONTRACEMALLOC"] = "1"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tenantstore.cli",
                "serve",
                "--backend",
                self.backend_url,
                "--mode",
                self.mode,
                "--resources",
                str(self.resources),
                "--port",
                str(self.port),
                *self.extra_args,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        _LIVE[self.proc] = None

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.log.close()
