"""Real etcd processes for tests: one member (`EtcdServer`) or a small cluster (`EtcdCluster`).

Runs Debian's `etcd` binary (package `etcd-server`, `/usr/bin/etcd`) on free 127.0.0.1
ports with a data dir under the given path. A missing binary is an error, never a skip:
`.ci/run` installs it.

Every process started here is killed at interpreter exit (`atexit`) and, on Linux, also
when the process that started it dies (PR_SET_PDEATHSIG), so a crashed test run never
leaves an etcd behind.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

ETCD_BINARY_CANDIDATES = ("/usr/bin/etcd", "/usr/local/bin/etcd")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
PROGRESS_NOTIFY_INTERVAL = "1s"

# ---------------------------------------------------------------------------------------
# process bookkeeping: kill everything we started at exit


_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()


def _kill_all_at_exit() -> None:
    with _live_lock:
        procs = list(_live)
        _live.clear()
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)


atexit.register(_kill_all_at_exit)


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGKILL when its parent thread dies (Linux).

    Only used from the main thread: PDEATHSIG fires when the *thread* that forked exits.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return preexec


# ---------------------------------------------------------------------------------------
# helpers


def etcd_binary() -> str:
    """Path of the etcd binary; raises (never skips) if it is not installed."""
    found = shutil.which("etcd")
    if found:
        return found
    for candidate in ETCD_BINARY_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(
        "etcd binary not found: install Debian's etcd-server package "
        "(`apt-get install -y etcd-server`; .ci/run does this)"
    )


_help_cache: dict[str, str] = {}


def _etcd_help(binary: str) -> str:
    if binary not in _help_cache:
        out = subprocess.run(
            [binary, "--help"], capture_output=True, text=True, timeout=30, check=False
        )
        _help_cache[binary] = out.stdout + out.stderr
    return _help_cache[binary]


def etcd_version(binary: str | None = None) -> str:
    binary = binary or etcd_binary()
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    for line in out.stdout.splitlines():
        if line.startswith("etcd Version:"):
            return line.split(":", 1)[1].strip()
    return out.stdout.strip()


def free_ports(n: int) -> list[int]:
    """`n` distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _http_get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body: bytes = resp.read()
        return body


def parse_metric(text: str, name: str) -> float | None:
    """The value of an unlabelled Prometheus sample `name` in a text exposition."""
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def read_metric(metrics_url: str, name: str) -> float | None:
    return parse_metric(_http_get(metrics_url).decode(), name)


async def etcd_watcher_total(metrics_url: str) -> int:
    """etcd's gauge of server-side watchers (`etcd_debugging_mvcc_watcher_total`)."""
    value = await asyncio.to_thread(read_metric, metrics_url, "etcd_debugging_mvcc_watcher_total")
    return int(value or 0)


# ---------------------------------------------------------------------------------------
# one member


class EtcdServer:
    """One etcd member on 127.0.0.1.

    A standalone server (the default) is a single-member cluster; `EtcdCluster` builds
    members with a shared `initial_cluster`. Ports are chosen once and kept across
    `restart()`, as is the data dir, so clients can reconnect to the same endpoint.
    """

    def __init__(
        self,
        data_dir: Path,
        name: str = "default",
        *,
        client_port: int | None = None,
        peer_port: int | None = None,
        initial_cluster: str | None = None,
        cluster_token: str = "tenantstore-test",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.base_dir = Path(data_dir)
        self.name = name
        if client_port is None or peer_port is None:
            client_port, peer_port = free_ports(2)
        self.client_port = client_port
        self.peer_port = peer_port
        self.initial_cluster = initial_cluster or f"{name}={self.peer_url}"
        self.cluster_token = cluster_token
        self.extra_args = list(extra_args)
        self.data_dir = self.base_dir / f"{name}.etcd"
        self.log_path = self.base_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    # -- addresses

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def metrics_url(self) -> str:
        return f"{self.client_url}/metrics"

    @property
    def health_url(self) -> str:
        return f"{self.client_url}/health"

    # -- process control

    def command(self) -> list[str]:
        binary = etcd_binary()
        help_text = _etcd_help(binary)
        cmd = [
            binary,
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={self.initial_cluster}",
            "--initial-cluster-state=new",
            f"--initial-cluster-token={self.cluster_token}",
            # Fast elections on loopback.
            "--heartbeat-interval=50",
            "--election-timeout=500",
            "--logger=zap",
            "--log-outputs=stderr",
            "--log-level=warn",
        ]
        if "--unsafe-no-fsync" in help_text:  # etcd >= 3.5
            cmd.append("--unsafe-no-fsync")
        if "--experimental-watch-progress-notify-interval" in help_text:
            cmd.append(f"--experimental-watch-progress-notify-interval={PROGRESS_NOTIFY_INTERVAL}")
        cmd.extend(self.extra_args)
        return cmd

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        """Start the process without waiting for it to serve (see `wait_ready`)."""
        if self.running:
            return
        self.base_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 (closed in _reap)
        log.write(f"\n=== start {time.strftime('%H:%M:%S')} ===\n".encode())
        log.flush()
        self._log_file = log
        proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent(),
        )
        with _live_lock:
            _live.add(proc)
        self.proc = proc

    def healthy(self) -> bool:
        try:
            body = _http_get(self.health_url, timeout=1.0)
        except (OSError, urllib.error.URLError):
            return False
        try:
            return bool(json.loads(body).get("health") in ("true", True))
        except ValueError:
            return False

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                code = self.proc.returncode
                self._reap()
                raise RuntimeError(
                    f"etcd {self.name} exited with {code} during start:\n{self.log_tail()}"
                )
            if self.healthy():
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"etcd {self.name} not healthy after {timeout}s at {self.health_url}:\n"
            f"{self.log_tail()}"
        )

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self.spawn()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Graceful shutdown (SIGTERM), then SIGKILL if it does not exit in time."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        self._reap()

    def kill(self) -> None:
        """SIGKILL: the member vanishes without closing its connections."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
        self._reap()

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Stop and start again on the same ports and data dir."""
        self.stop()
        self.start(timeout)

    def _reap(self) -> None:
        if self.proc is not None:
            with _live_lock:
                _live.discard(self.proc)
        self.proc = None
        log = self._log_file
        self._log_file = None
        if log is not None:
            with contextlib.suppress(OSError):
                log.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no etcd log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- introspection

    def metric(self, name: str) -> float | None:
        return read_metric(self.metrics_url, name)

    def watcher_total(self) -> int:
        """Server-side watchers (`etcd_debugging_mvcc_watcher_total`)."""
        return int(self.metric("etcd_debugging_mvcc_watcher_total") or 0)

    def is_leader(self) -> bool:
        try:
            return self.metric("etcd_server_is_leader") == 1.0
        except (OSError, urllib.error.URLError):
            return False

    def __enter__(self) -> EtcdServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EtcdServer({self.name!r}, {self.endpoint}, {state})"


# ---------------------------------------------------------------------------------------
# a cluster


class EtcdCluster:
    """`size` members on 127.0.0.1 forming one cluster (for failover tests)."""

    def __init__(self, data_dir: Path, size: int = 3, *, name_prefix: str = "m") -> None:
        self.base_dir = Path(data_dir)
        ports = free_ports(2 * size)
        names = [f"{name_prefix}{i}" for i in range(size)]
        peer_ports = ports[size:]
        initial = ",".join(
            f"{n}=http://127.0.0.1:{p}" for n, p in zip(names, peer_ports, strict=True)
        )
        token = f"tenantstore-cluster-{ports[0]}"
        self.members = [
            EtcdServer(
                self.base_dir,
                names[i],
                client_port=ports[i],
                peer_port=peer_ports[i],
                initial_cluster=initial,
                cluster_token=token,
            )
            for i in range(size)
        ]

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    @property
    def endpoint(self) -> str:
        """All client endpoints, comma-separated (accepted by `EtcdKV.connect`)."""
        return ",".join(self.endpoints)

    def start(self, timeout: float = START_TIMEOUT) -> None:
        # Members only become healthy once a quorum is up: spawn all, then wait.
        for m in self.members:
            m.spawn()
        try:
            for m in self.members:
                m.wait_ready(timeout)
        except BaseException:
            self.kill_all()
            raise

    def stop(self) -> None:
        for m in self.members:
            m.stop()

    def kill_all(self) -> None:
        for m in self.members:
            m.kill()

    def kill(self, i: int) -> None:
        self.members[i].kill()

    def restart(self, i: int, timeout: float = START_TIMEOUT) -> None:
        m = self.members[i]
        m.stop()
        m.spawn()
        m.wait_ready(timeout)

    def leader_index(self, timeout: float = 10.0) -> int:
        """Index of the current leader (via `etcd_server_is_leader`), waiting for one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, m in enumerate(self.members):
                if m.running and m.is_leader():
                    return i
            time.sleep(0.05)
        raise RuntimeError(f"no etcd leader within {timeout}s")

    def leader(self) -> EtcdServer:
        return self.members[self.leader_index()]

    def __enter__(self) -> EtcdCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
