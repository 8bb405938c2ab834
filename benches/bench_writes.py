"""Writes through `tenantstore serve` against the backend's own rate, on etcd.

Run (about two minutes; prints a plain-text table)::

    python benches/bench_writes.py --out bench-results/writes.json
    python benches/bench_writes.py --profile /tmp/serve-writes.svg   # + a py-spy flame graph
    python benches/bench_writes.py --rounds 1 --profile /tmp/serve-writes.txt  # collapsed stacks

A throwaway etcd and a `tenantstore serve --backend etcd` (shared mode) run on loopback.
Two cells, alternated over `--rounds` rounds (order flipped each round, so drift on a
shared machine hits both alike), each for `--seconds`:

* `serve`: `--writers` (16) keep-alive connections, spread over `--procs` child
  processes, each POSTing ConfigMaps of about 300 bytes of JSON as fast as they are
  answered, in project `w` (each connection its own namespace);
* `raw`: the same number of concurrent aetcd puts of values of the same size (the size
  the server stores: the object plus its storage-key frame), from one child process.

The figure is serve creates/s over raw puts/s (the issue's target: >= 40%). Both clients
are lean (raw sockets; aetcd's own client) so that the client side costs little, but on
2 CPUs the clients, etcd and the server still share the machine.

`--profile FILE` also records the server with py-spy (if installed) during one extra
`serve` phase and writes a flame graph, to see where a create's time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

from bench_fairness import RawHTTP
from tenantstore.bench.processes import EtcdProcess, ServerProcess

PROJECT = "w"
DATA = "x" * 200  # a ConfigMap of about 300 bytes of JSON with its metadata


def _configmap(name: str) -> bytes:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "data": {"config": DATA, "mode": "bench"},
    }
    return json.dumps(body, separators=(",", ":")).encode()


# -- the serve cell: writer connections in child processes ------------------------------------


def _writer(url: str, ns: str, until: float, counter: Synchronized[int], errors: list[str]) -> None:
    http = RawHTTP(url)
    base = f"/projects/{PROJECT}/control-plane/api/v1/namespaces"
    path = f"{base}/{ns}/configmaps"
    # The namespace first: creates in a namespace that does not exist are refused (404).
    status, _headers, body = http.request(
        "POST", base, json.dumps({"metadata": {"name": ns}}).encode()
    )
    if status not in (201, 409):
        errors.append(f"namespace {ns}: {status} {body[:200]!r}")
    n = ok = 0
    while time.time() < until:
        n += 1
        status, _headers, body = http.request("POST", path, _configmap(f"cm-{os.getpid()}-{n}"))
        if status == 201:
            ok += 1
        elif len(errors) < 3:
            errors.append(f"{status} {body[:200]!r}")
    http.close()
    with counter.get_lock():
        counter.value += ok


def _writer_process(
    url: str, first: int, count: int, until: float, counter: Synchronized[int]
) -> None:
    errors: list[str] = []
    threads = [
        threading.Thread(target=_writer, args=(url, f"ns-{first + i}", until, counter, errors))
        for i in range(count)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print("writer errors:", errors, file=sys.stderr)


def serve_cell(url: str, args: argparse.Namespace) -> float:
    ctx = multiprocessing.get_context("spawn")
    counter: Synchronized[int] = ctx.Value("q", 0)  # type: ignore[assignment]
    until = time.time() + args.seconds + 1.0  # children start within the extra second
    per = [args.writers // args.procs + (i < args.writers % args.procs) for i in range(args.procs)]
    procs, first = [], 0
    for count in per:
        p = ctx.Process(target=_writer_process, args=(url, first, count, until, counter))
        first += count
        p.start()
        procs.append(p)
    started = time.time()
    for p in procs:
        p.join()
    return counter.value / max(time.time() - started, 1e-9)


# -- the raw cell: aetcd puts from one child process ------------------------------------------

_RAW = """
import asyncio, sys, time
import aetcd

async def main(endpoint, writers, seconds, size):
    host, port = endpoint.rsplit(":", 1)
    value = b"v" * size
    async with aetcd.Client(host=host, port=int(port)) as client:
        await client.put(b"/raw/warm", value)
        until = time.monotonic() + seconds
        counts = [0] * writers

        async def one(i):
            n = 0
            while time.monotonic() < until:
                n += 1
                await client.put(b"/raw/%d/%d" % (i, n), value)
            counts[i] = n

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(writers)))
        print(sum(counts) / (time.monotonic() - started))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])))
"""


def raw_cell(endpoint: str, args: argparse.Namespace, size: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _RAW, endpoint, str(args.writers), str(args.seconds), str(size)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


# -- the run -----------------------------------------------------------------------------------


def stored_size() -> int:
    """Bytes the server stores per ConfigMap: the JSON with its server-set fields and the
    storage-key frame, about what `tenantstore.codec` writes (within a few bytes)."""
    obj = json.loads(_configmap("cm-00000-000000"))
    obj["metadata"].update(
        namespace="ns-00",
        uid="00000000-0000-0000-0000-000000000000",
        creationTimestamp="2026-01-01T00:00:00Z",
        generation=1,
    )
    key = f"/registry/configmaps/clusters/{PROJECT}/ns-00/cm-00000-000000"
    return len(json.dumps(obj, separators=(",", ":"))) + len(key) + 8


def profile(url: str, pid: int, args: argparse.Namespace) -> None:
    spy = shutil.which("py-spy")
    if spy is None:
        print("py-spy not installed: no profile", file=sys.stderr)
        return
    rec = subprocess.Popen(
        [
            *(spy, "record", "-p", str(pid), "-o", args.profile),
            *("-d", str(int(args.seconds) + 1)),
            # A .txt file gets collapsed stacks (one line per stack, with its samples).
            *(("--format", "raw") if args.profile.endswith(".txt") else ()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    serve_cell(url, args)
    rec.wait()
    print(f"profile written to {args.profile}", file=sys.stderr)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    size = stored_size()
    cells: dict[str, list[float]] = {"serve": [], "raw": []}
    with tempfile.TemporaryDirectory(prefix="tenantstore-writes-") as d:
        base = Path(d)
        etcd = EtcdProcess(base)
        asyncio.run(etcd.start())
        resources = base / "resources.yaml"
        resources.write_text("resources: []\n")
        server = ServerProcess(
            f"etcd://{etcd.endpoint}",
            "shared",
            resources,
            base / "server.log",
            trace_memory=False,
            extra_args=("--log-level", "warning", "--host", "127.0.0.1"),
        )
        try:
            asyncio.run(server.start())
            for rnd in range(args.rounds):
                order = ("serve", "raw") if rnd % 2 == 0 else ("raw", "serve")
                for cell in order:
                    rate = (
                        serve_cell(server.url, args)
                        if cell == "serve"
                        else raw_cell(etcd.endpoint, args, size)
                    )
                    cells[cell].append(rate)
                    print(f"round {rnd + 1}: {cell} {rate:.0f}/s", file=sys.stderr, flush=True)
            if args.profile and server.proc is not None:
                profile(server.url, server.proc.pid, args)
        finally:
            server.stop()
            etcd.stop()
    serve = sorted(cells["serve"])[len(cells["serve"]) // 2]
    raw = sorted(cells["raw"])[len(cells["raw"]) // 2]
    return {
        "args": vars(args),
        "value_bytes": size,
        "cpus": os.cpu_count(),
        "serve_creates_per_s": cells["serve"],
        "raw_puts_per_s": cells["raw"],
        "median_serve": serve,
        "median_raw": raw,
        "ratio": serve / raw,
        "target": 0.4,
    }


def table(res: dict[str, Any]) -> str:
    a = res["args"]
    verdict = "met" if res["ratio"] >= res["target"] else "MISSED"
    return "\n".join(
        [
            f"{a['writers']} writers ({a['procs']} processes for serve), values of "
            f"{res['value_bytes']} bytes, {a['rounds']} rounds x {a['seconds']:g} s per cell, "
            f"etcd on loopback, {res['cpus']} CPUs",
            "",
            f"{'cell':<28}{'per round':>30}{'median':>10}",
            f"{'tenantstore serve creates/s':<28}"
            f"{' '.join(f'{v:.0f}' for v in res['serve_creates_per_s']):>30}"
            f"{res['median_serve']:>10.0f}",
            f"{'raw aetcd puts/s':<28}"
            f"{' '.join(f'{v:.0f}' for v in res['raw_puts_per_s']):>30}"
            f"{res['median_raw']:>10.0f}",
            "",
            f"serve / raw: {res['ratio']:.0%} (target >= 40%: {verdict})",
        ]
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--writers", type=int, default=16)
    ap.add_argument("--procs", type=int, default=2, help="processes the serve writers run in")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0, help="per cell and round")
    ap.add_argument("--profile", default=None, help="py-spy flame graph of one serve phase")
    ap.add_argument("--out", default=None, help="also write the figures as JSON")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    res = bench(args)
    print(table(res))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")


def test_writes() -> None:
    args = parse(["--rounds", "1", "--seconds", "2"])
    print("\n" + table(bench(args)))


if __name__ == "__main__":
    main()
