"""Fair sharing between projects: does a noisy project slow a quiet one down?

Run (about two minutes; prints a plain-text table)::

    python benches/bench_fairness.py
    python benches/bench_fairness.py --limit 4,2 --rounds 3 --phase-seconds 15 --out f.json

or through pytest (a smaller run)::

    pytest benches/bench_fairness.py -s -o timeout=0

A `tenantstore serve` process on SQLite (loopback) holds 20 ConfigMaps of about 500
bytes in project `quiet` and 50 in project `noisy`. The quiet client sends sequential
GETs of one of its ConfigMaps (no `resourceVersion`, as kubectl) on one keep-alive
connection. The noisy project sends from `--connections` connections (16), spread over
`--noise-procs` child processes, flat out: each connection sends its next request as
soon as the last one is answered, a mix of GET (50%), LIST of its 50 ConfigMaps (30%)
and writes (20%: creates, or deletes of its own earlier creates once it holds 10, so the
store does not grow). A 429 is answered as client-go does: the connection waits the
`Retry-After` seconds before its next request (`--ignore-retry-after` retries at once).

Each variant is a fresh server: without `--max-inflight-per-project`, then with it at
each `--limit` (4; several as `4,2`). Within a variant, rounds alternate two phases,
`alone` (noise off) and `noisy` (noise on), in alternating order so drift on a shared
machine hits both alike.
The figure of merit is the quiet project's GET p99 with the noise over its p99 without,
per variant; the target is at most 2x with the limit.

Both clients are minimal HTTP/1.1 clients over plain sockets (not httpx) so that the
client processes, which share the machine's CPUs with the server, cost as little as
possible; latencies still include the client's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from samples import Samples, percentile
from tenantstore.bench.processes import ServerProcess

QUIET = "/projects/quiet/control-plane/api/v1/namespaces/default/configmaps"
NOISY = "/projects/noisy/control-plane/api/v1/namespaces/default/configmaps"
QUIET_OBJECTS = 20
NOISY_OBJECTS = 50
NOISY_HELD = 10  # creates a noisy connection keeps before it deletes instead
PHASES = ("alone", "noisy")
TARGET_P99_RATIO = 2.0


# -- a minimal keep-alive HTTP/1.1 client ----------------------------------------------------


class RawHTTP:
    """One keep-alive connection; `request` returns (status, headers, body)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.addr = (host, int(port))
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buf = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buf = None, b""

    def _recv(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._recv()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._recv()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def request(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            return self._request(method, path, body)
        except OSError:
            self.close()
            raise

    def _request(
        self, method: str, path: str, body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        if self.sock is None:
            self.sock = socket.create_connection(self.addr, timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + (body or b""))
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        raw_head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            data = self._read(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self._line().split(b";", 1)[0], 16)
                if size == 0:
                    self._line()
                    break
                parts.append(self._read(size))
                self._read(2)
            data = b"".join(parts)
        else:
            data = b""
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, data


def _configmap(name: str | None, generate: str | None = None) -> bytes:
    meta: dict[str, Any] = {"labels": {"app": "bench"}}
    if name is not None:
        meta["name"] = name
    else:
        meta["generateName"] = generate
    body = {"metadata": meta, "data": {"config": "x" * 240, "mode": "bench"}}
    return json.dumps(body).encode()


# -- the noisy project (child processes, one thread per connection) ----------------------------


@dataclass
class NoiseCounters:
    ok: Synchronized[int]
    rejected: Synchronized[int]
    errors: Synchronized[int]


def _noisy_connection(
    url: str, seed: int, on: Event, stop: Event, until: float, ignore_retry: bool, c: NoiseCounters
) -> None:
    rnd = random.Random(seed)
    http = RawHTTP(url)
    held: list[str] = []
    ok = rejected = errors = 0
    flushed = time.monotonic()

    def flush() -> None:
        nonlocal ok, rejected, errors, flushed
        flushed = time.monotonic()
        for counter, n in ((c.ok, ok), (c.rejected, rejected), (c.errors, errors)):
            if n:
                with counter.get_lock():
                    counter.value += n
        ok = rejected = errors = 0

    while not stop.is_set() and time.time() < until:
        if not on.is_set():
            flush()
            on.wait(0.2)
            continue
        pick = rnd.random()
        try:
            if pick < 0.5:
                status, headers, _ = http.request("GET", f"{NOISY}/cm-{rnd.randrange(50)}")
            elif pick < 0.8:
                status, headers, _ = http.request("GET", NOISY)
            elif len(held) < NOISY_HELD:
                status, headers, body = http.request("POST", NOISY, _configmap(None, f"n{seed}-"))
                if status == 201:
                    held.append(json.loads(body)["metadata"]["name"])
            else:
                name = held.pop(0)
                status, headers, _ = http.request("DELETE", f"{NOISY}/{name}")
        except OSError:
            errors += 1
            time.sleep(0.05)
            continue
        if status == 429:
            rejected += 1
            if not ignore_retry:
                stop.wait(float(headers.get("retry-after", "1")))
        elif status < 300:
            ok += 1
        else:
            errors += 1
        if ok + rejected + errors >= 20 or time.monotonic() - flushed > 0.2:
            flush()
    flush()
    http.close()


def _noise_process(
    url: str,
    first: int,
    connections: int,
    on: Event,
    stop: Event,
    until: float,
    ignore_retry: bool,
    counters: NoiseCounters,
) -> None:  # runs in a child process
    """`connections` threads, each one noisy connection, until `stop` or `until`."""
    threads = [
        threading.Thread(
            target=_noisy_connection,
            args=(url, first + i, on, stop, until, ignore_retry, counters),
            daemon=True,
        )
        for i in range(connections)
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    except KeyboardInterrupt:
        pass


class Noise:
    """The noisy project's processes and their switch."""

    def __init__(
        self, url: str, connections: int, procs: int, ignore_retry: bool, max_seconds: float
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.on = ctx.Event()
        self.stop_event = ctx.Event()
        self.counters = NoiseCounters(ctx.Value("q", 0), ctx.Value("q", 0), ctx.Value("q", 0))
        per = [connections // procs + (1 if i < connections % procs else 0) for i in range(procs)]
        until = time.time() + max_seconds
        self.procs = []
        first = 0
        for n in per:
            p = ctx.Process(
                target=_noise_process,
                args=(url, first, n, self.on, self.stop_event, until, ignore_retry,
                      self.counters),
                daemon=True,
            )  # fmt: skip
            p.start()
            self.procs.append(p)
            first += n

    def totals(self) -> tuple[int, int, int]:
        c = self.counters
        return c.ok.value, c.rejected.value, c.errors.value

    def stop(self) -> None:
        self.stop_event.set()
        for p in self.procs:
            p.join(15)
            if p.is_alive():
                p.terminate()
                p.join(5)


# -- one variant -------------------------------------------------------------------------------


@dataclass
class Phase(Samples):
    noisy_ok: int = 0
    noisy_rejected: int = 0
    noisy_errors: int = 0
    seconds: float = 0.0


@dataclass
class Variant:
    name: str
    limit: int | None
    phases: dict[str, Phase] = field(default_factory=lambda: {ph: Phase() for ph in PHASES})

    def ratio(self, q: float) -> float:
        return self.phases["noisy"].p(q) / self.phases["alone"].p(q)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"variant": self.name, "max_inflight_per_project": self.limit}
        for ph, data in self.phases.items():
            secs = data.seconds or float("nan")
            out[ph] = {
                "quiet_get_samples": len(data.pooled()),
                "quiet_get_p50_ms": data.p(0.50),
                "quiet_get_p99_ms": data.p(0.99),
                "rounds_p99_ms": [percentile(sorted(r), 0.99) * 1000 for r in data.rounds],
                "noisy_ok_per_s": data.noisy_ok / secs,
                "noisy_429_per_s": data.noisy_rejected / secs,
                "noisy_errors": data.noisy_errors,
            }
        out["ratio_p50"] = self.ratio(0.50)
        out["ratio_p99"] = self.ratio(0.99)
        return out


@contextmanager
def _server(base: Path, limit: int | None) -> Iterator[tuple[str, int]]:
    base.mkdir()
    resources = base / "resources.yaml"
    resources.write_text("resources: []\n")  # the built-in resources only
    extra = ["--log-level", "warning", "--host", "127.0.0.1"]
    if limit is not None:
        extra += ["--max-inflight-per-project", str(limit)]
    server = ServerProcess(
        f"sqlite://{base / 'bench.db'}",
        "shared",
        resources,
        base / "server.log",
        trace_memory=False,
        extra_args=tuple(extra),
        ready_path="/healthz",
    )
    try:
        asyncio.run(server.start())
        assert server.proc is not None
        yield server.url, server.proc.pid
    finally:
        server.stop()


def _pin(server_pid: int, cpus: str) -> None:
    """The server's threads on the first CPU of `cpus` ("0,1"), this process and the noise
    processes it starts on the second, so the clients' CPU time and the server's do not
    compete (on 2 CPUs they otherwise do, and the quiet client's own scheduling delays
    count as the server's unfairness)."""
    server_cpu, client_cpu = (int(c) for c in cpus.split(","))
    for tid in os.listdir(f"/proc/{server_pid}/task"):
        os.sched_setaffinity(int(tid), {server_cpu})
    os.sched_setaffinity(0, {client_cpu})


def _seed(http: RawHTTP) -> None:
    for path, count in ((QUIET, QUIET_OBJECTS), (NOISY, NOISY_OBJECTS)):
        for i in range(count):
            status, _, body = http.request("POST", path, _configmap(f"cm-{i}"))
            if status not in (201, 409):
                raise RuntimeError(f"seed {path} cm-{i}: {status} {body[:200]!r}")


def _quiet_gets(
    http: RawHTTP, samples: int, max_seconds: float, resource_version: str = ""
) -> list[float]:
    query = f"?resourceVersion={resource_version}" if resource_version else ""
    lat: list[float] = []
    deadline = time.monotonic() + max_seconds
    for i in range(samples):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        status, _, body = http.request("GET", f"{QUIET}/cm-{i % QUIET_OBJECTS}{query}")
        elapsed = time.perf_counter() - t0
        if status != 200:
            raise RuntimeError(f"quiet GET: {status} {body[:200]!r}")
        lat.append(elapsed)
    return lat


def bench_variant(name: str, limit: int | None, args: argparse.Namespace, tmp: Path) -> Variant:
    result = Variant(name, limit)
    budget = args.rounds * 2 * (args.phase_seconds + args.settle + 2) + 60
    with _server(tmp, limit) as (url, pid), ExitStack() as stack:
        if args.pin:
            _pin(pid, args.pin)
        http = RawHTTP(url)
        stack.callback(http.close)
        _seed(http)
        _quiet_gets(http, args.warmup, args.phase_seconds)  # warms the caches; not recorded
        noise = Noise(url, args.connections, args.noise_procs, args.ignore_retry_after, budget)
        stack.callback(noise.stop)
        for rnd in range(args.rounds):
            order = PHASES if rnd % 2 == 0 else PHASES[::-1]
            for phase in order:
                if phase == "noisy":
                    noise.on.set()
                else:
                    noise.on.clear()
                time.sleep(args.settle)  # the noise reaches its pace, or dies down
                before, t0 = noise.totals(), time.monotonic()
                lat = _quiet_gets(http, args.samples, args.phase_seconds, args.quiet_rv)
                after, secs = noise.totals(), time.monotonic() - t0
                data = result.phases[phase]
                data.rounds.append(lat)
                data.seconds += secs
                data.noisy_ok += after[0] - before[0]
                data.noisy_rejected += after[1] - before[1]
                data.noisy_errors += after[2] - before[2]
            print(f"{name}: round {rnd + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        noise.on.clear()
    return result


def bench(args: argparse.Namespace) -> list[Variant]:
    variants: list[tuple[str, int | None]] = [("no limit", None)]
    for limit in args.limit:
        if limit:
            variants.append((f"--max-inflight-per-project {limit}", limit))
    with tempfile.TemporaryDirectory(prefix="tenantstore-fair-") as d:
        return [
            bench_variant(name, limit, args, Path(d) / f"variant-{i}")
            for i, (name, limit) in enumerate(variants)
        ]


# -- report -------------------------------------------------------------------------------------


def table(results: list[Variant], args: argparse.Namespace) -> str:
    retry = "retried at once" if args.ignore_retry_after else "Retry-After honoured"
    rv = f"resourceVersion={args.quiet_rv}" if args.quiet_rv else "no resourceVersion"
    lines = [
        f"quiet project: sequential GETs ({rv}), one connection; noisy project: {args.connections} "
        f"connections in {args.noise_procs} processes, flat out (50% GET, 30% LIST of "
        f"{NOISY_OBJECTS}, 20% create/delete; 429s {retry}); {args.rounds} rounds x "
        f"{args.phase_seconds:g} s cap x {args.samples} samples per phase; SQLite, shared mode, "
        f"loopback; {os.cpu_count()} CPUs",
        "",
        f"{'variant':<34}{'GET alone p50/p99':>20}{'GET noisy p50/p99':>20}"
        f"{'p50 x':>8}{'p99 x':>16}{'noisy ok/s':>12}{'noisy 429/s':>12}",
    ]
    for r in results:
        alone, noisy = r.phases["alone"], r.phases["noisy"]
        ratio = r.ratio(0.99)
        verdict = "ok" if ratio <= TARGET_P99_RATIO else "MISS"
        secs = noisy.seconds or float("nan")
        lines.append(
            f"{r.name:<34}"
            f"{f'{alone.p(0.5):.2f} / {alone.p(0.99):.2f}':>20}"
            f"{f'{noisy.p(0.5):.2f} / {noisy.p(0.99):.2f}':>20}"
            f"{f'{r.ratio(0.5):.2f}':>8}"
            f"{f'{ratio:.2f} {verdict}' if r.limit else f'{ratio:.2f}':>16}"
            f"{noisy.noisy_ok / secs:>12.0f}{noisy.noisy_rejected / secs:>12.0f}"
        )
    lines.append("")
    lines.append(
        f"latencies in ms; p99 x = quiet GET p99 with the noise / without it; target with "
        f"the limit: <= {TARGET_P99_RATIO:g}x"
    )
    for r in results:
        counts = ", ".join(f"{ph} {len(r.phases[ph].pooled())}" for ph in PHASES)
        errs = r.phases["noisy"].noisy_errors
        lines.append(f"{r.name}: quiet samples {counts}; noisy errors {errs}")
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument(
        "--limit",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[4],
        help="--max-inflight-per-project, or several (4,2): one variant each (0: none)",
    )
    ap.add_argument(
        "--pin",
        default="",
        metavar="SERVER_CPU,CLIENT_CPU",
        help="pin the server to one CPU and the clients to another (e.g. 0,1)",
    )
    ap.add_argument("--connections", type=int, default=16, help="noisy connections")
    ap.add_argument("--noise-procs", type=int, default=2, help="processes they run in")
    ap.add_argument("--ignore-retry-after", action="store_true", help="retry 429s at once")
    ap.add_argument(
        "--quiet-rv",
        default="",
        help="resourceVersion of the quiet GETs (default none: a consistent read, as "
        "kubectl; 0 reads the cache as it is)",
    )
    ap.add_argument("--samples", type=int, default=3000, help="quiet GETs per phase and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--phase-seconds", type=float, default=12.0, help="cap on one phase")
    ap.add_argument("--warmup", type=int, default=200, help="unrecorded quiet GETs")
    ap.add_argument("--settle", type=float, default=1.5, help="seconds before each phase")
    ap.add_argument("--out", default=None, help="also write the figures as JSON to this file")
    args = ap.parse_args(argv)
    if args.samples < 1 or args.rounds < 1 or args.connections < 1 or args.noise_procs < 1:
        ap.error("--samples, --rounds, --connections and --noise-procs must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    results = bench(args)
    print(table(results, args))
    if args.out:
        doc = {
            "args": vars(args),
            "target_p99_ratio": TARGET_P99_RATIO,
            "cpus": os.cpu_count(),
            "results": [r.to_json() for r in results],
        }
        Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")


def test_fairness() -> None:
    args = parse(["--rounds", "1", "--phase-seconds", "3", "--samples", "300", "--warmup", "20"])
    print("\n" + table(bench(args), args))


if __name__ == "__main__":
    main()
