"""Requests per second of the REST server, shared vs per-project storage, side by side.

Run (about a minute; prints a Markdown table)::

    python benches/bench_server.py
    python benches/bench_server.py --projects 20 --objects 5 --requests 4000 --rounds 3

or through pytest (a smaller run)::

    pytest benches/bench_server.py -s -o timeout=0

For each mode a ``tenantstore serve --mode <mode>`` subprocess on loopback over a fresh
SQLite file is seeded with ``projects x objects`` configmaps (namespace ``default``) and
warmed with one LIST per project (per-project mode builds its cachers lazily: the figures
compare steady state, not cold start). Then, per round and per mode (modes interleaved,
so drift on a shared machine hits both), a fixed number of requests with ``concurrency``
keep-alive connections in flight:

* ``healthz``: the HTTP floor (uvicorn + routing, no storage);
* ``GET``: single objects, round-robin over every project and object, ``resourceVersion``
  unset (a consistent read: the cache first confirms it has the backend's revision);
* ``GET rv=0``: the same from whatever the cache holds;
* ``LIST``/``LIST rv=0``: one project's namespace (``objects`` items), likewise.

The table shows the median round. The default driver is a minimal asyncio HTTP/1.1
keep-alive client: an ``httpx.AsyncClient`` costs about 2 ms of client CPU per request,
which caps one client process near 500 requests/s on the reference machine and would
measure the client, not the server (``--client httpx`` runs it anyway).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

CM = "/api/v1/namespaces/default/configmaps"
OPS = ("healthz", "GET", "GET rv=0", "LIST", "LIST rv=0")
_URL = re.compile(r"tenantstore serving on (http://\S+)")


@dataclass
class Result:
    mode: str
    op: str
    rps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)

    def add(self, seconds: float, lat: list[float]) -> None:
        lat.sort()
        self.rps.append(len(lat) / seconds)
        self.p50_ms.append(lat[len(lat) // 2] * 1000)
        self.p99_ms.append(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000)


def _start_server(mode: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    log = tmp / f"serve-{mode}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "tenantstore.cli", "serve", "--port", "0",
                "--mode", mode, "--backend", f"sqlite://{tmp / (mode + '.db')}",
                "--log-level", "warning",
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = _URL.search(log.read_text(errors="replace"))
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text()}")


def _paths(op: str, projects: int, objects: int, n: int) -> list[str]:
    if op == "healthz":
        return ["/healthz"] * n
    out = []
    for i in range(n):
        p = f"/projects/bench-{i % projects}/control-plane{CM}"
        path = f"{p}/cm-{(i // projects) % objects}" if op.startswith("GET") else p
        out.append(path + ("?resourceVersion=0" if op.endswith("rv=0") else ""))
    return out


async def _raw_worker(url: str, paths: list[str], lat: list[float]) -> None:
    """GETs over one keep-alive connection; bodies framed by Content-Length."""
    u = urlsplit(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    try:
        for path in paths:
            t0 = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{path}: {head[:60]!r}")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
    finally:
        writer.close()


async def _drive(
    url: str, paths: list[str], concurrency: int, client: str
) -> tuple[float, list[float]]:
    lat: list[float] = []
    chunks = [paths[i::concurrency] for i in range(concurrency)]
    if client == "raw":
        start = time.perf_counter()
        await asyncio.gather(*(_raw_worker(url, c, lat) for c in chunks))
        return time.perf_counter() - start, lat
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

        async def worker(chunk: list[str]) -> None:
            for path in chunk:
                t0 = time.perf_counter()
                resp = await http.get(path)
                lat.append(time.perf_counter() - t0)
                if resp.status_code != 200:
                    raise RuntimeError(f"{path}: {resp.status_code} {resp.text[:200]}")

        start = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in chunks))
        return time.perf_counter() - start, lat


async def _seed(url: str, projects: int, objects: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        sem = asyncio.Semaphore(16)

        async def one(p: int, o: int) -> None:
            async with sem:
                body = {"metadata": {"name": f"cm-{o}"}, "data": {"k": "v" * 64}}
                resp = await http.post(f"/projects/bench-{p}/control-plane{CM}", json=body)
                if resp.status_code not in (201, 409):
                    raise RuntimeError(resp.text)

        await asyncio.gather(*(one(p, o) for p in range(projects) for o in range(objects)))
        for p in range(projects):  # warm: per-project mode builds its cachers here
            await http.get(f"/projects/bench-{p}/control-plane{CM}")


def bench(args: argparse.Namespace) -> list[Result]:
    results = {(m, op): Result(m, op) for m in args.modes for op in OPS}
    with tempfile.TemporaryDirectory() as d:
        servers = {m: _start_server(m, Path(d)) for m in args.modes}
        try:
            for _, url in servers.values():
                asyncio.run(_seed(url, args.projects, args.objects))
            for _round in range(args.rounds):
                for mode, (_, url) in servers.items():
                    for op in OPS:
                        paths = _paths(op, args.projects, args.objects, args.requests)
                        seconds, lat = asyncio.run(
                            _drive(url, paths, args.concurrency, args.client)
                        )
                        results[(mode, op)].add(seconds, lat)
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=60)
    return list(results.values())


def table(results: list[Result], args: argparse.Namespace) -> str:
    lines = [
        f"{args.projects} projects x {args.objects} configmaps; {args.requests} requests per "
        f"cell, {args.concurrency} connections in flight, {args.client} client; SQLite; "
        f"loopback; median of {args.rounds} rounds; {os.cpu_count()} CPUs",
        "",
        "| op | " + " | ".join(f"{m} req/s | {m} p50 / p99 ms" for m in args.modes) + " |",
        "|---|" + "---:|---:|" * len(args.modes),
    ]
    by = {(r.mode, r.op): r for r in results}
    for op in OPS:
        cells = []
        for m in args.modes:
            r = by[(m, op)]
            cells.append(f"{statistics.median(r.rps):,.0f}")
            cells.append(f"{statistics.median(r.p50_ms):.1f} / {statistics.median(r.p99_ms):.1f}")
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--projects", type=int, default=20)
    ap.add_argument("--objects", type=int, default=5)
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--client", choices=["raw", "httpx"], default="raw")
    ap.add_argument("--modes", nargs="+", default=["shared", "per-project"])
    return ap.parse_args(argv)


def test_server_throughput() -> None:
    args = parse(["--requests", "1000", "--rounds", "1"])
    print("\n" + table(bench(args), args))


if __name__ == "__main__":
    ns = parse()
    print(table(bench(ns), ns))
