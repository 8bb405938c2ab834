"""HTTP-stack measurements behind `tenantstore bench http|floor|watches|memory`.

* `http`: requests/s of the same application under h11 + asyncio, httptools + uvloop
  (uvicorn) and granian, side by side: `/livez`, `/healthz`, GET and LIST, cells alternated.
* `floor`: a LIST of 500 ConfigMaps and a GET against a precomputed body of the same
  bytes served by the same server process (`asgi_child`'s static route).
* `watches`: RSS per open watch connection, one watch per project, per stack.
* `memory`: RSS of a running server per cached object, against an empty server, both
  on SQLite files seeded through the library.

Every server runs in its own process on loopback over SQLite; the client is a minimal
asyncio HTTP/1.1 keep-alive client (an `httpx` client costs more CPU per request than
the server on this machine, and would measure itself). The machine these run on is
shared: cells alternate between what they compare, so drift hits each alike, and the
figures to read are the ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .processes import free_port, raise_fd_limit

CM_PREFIX = "/registry/configmaps"
CM_PATH = "/api/v1/namespaces/default/configmaps"
STATIC = "/__bench/static/"
STACKS = ("h11", "httptools", "granian")
STACK_NAMES = {"h11": "h11+asyncio", "httptools": "httptools+uvloop", "granian": "granian"}
T = TypeVar("T")

# -- running things --------------------------------------------------------------------


def run(coro: Coroutine[Any, Any, T]) -> T:
    """The client side on uvloop where installed: less client CPU per request, on a
    machine where the client and the server share two cores."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def rss_bytes(pid: int) -> int:
    """Resident set of `pid` and its descendants (granian serves from a worker child)."""
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{p}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def _tree(pid: int) -> Iterator[int]:
    yield pid
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                for child in fh.read().split():
                    yield from _tree(int(child))


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    return "?"


class Server:
    """One server process on a free loopback port: uvicorn (`asgi_child`, through
    `make_server`, as `tenantstore serve`) with a parser and loop, or granian."""

    def __init__(self, stack: str, backend: str, log: Path, pythonpath: str | None = None) -> None:
        self.stack = stack
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, TENANTSTORE_BENCH_BACKEND=backend)
        env.pop("PYTHONTRACEMALLOC", None)
        if pythonpath is not None:  # another build of tenantstore, to compare in one run
            env["PYTHONPATH"] = pythonpath
        if stack == "granian":
            cmd = [
                sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                "--loop", "uvloop", "--http", "1", "--no-ws", "--log-level", "warning",
                "tenantstore.bench.asgi_child:bench_app",
            ]  # fmt: skip
        else:
            loop = "uvloop" if stack == "httptools" else "asyncio"
            cmd = [
                sys.executable, "-m", "tenantstore.bench.asgi_child", "--backend", backend,
                "--port", str(self.port), "--http", stack, "--loop", loop,
            ]  # fmt: skip
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    async def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.stack} server exited with {self.proc.returncode}")
            with contextlib.suppress(OSError, RuntimeError, asyncio.IncompleteReadError):
                status, _ = await fetch(self.url, "/readyz")
                if status == 200:
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.stack} server not ready after {timeout:.0f} s")

    def rss(self) -> int:
        return rss_bytes(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# -- a minimal HTTP/1.1 client -----------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked = -1, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                return status, b"".join(p[:-2] for p in parts)
    return status, await reader.readexactly(max(length, 0))


def _request(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n"
    if body or method in ("PUT", "POST"):
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def fetch(url: str, path: str, method: str = "GET", body: bytes = b"") -> tuple[int, bytes]:
    """One request on its own connection."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(_request(method, path, body))
        return await _read_response(reader)
    finally:
        writer.close()


async def drive(url: str, paths: list[str], connections: int, seconds: float) -> float:
    """Requests/s over `connections` keep-alive connections for `seconds`, each
    connection cycling through `paths` from its own offset; any non-2xx fails the cell."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conns = [await asyncio.open_connection(host, int(port)) for _ in range(connections)]
    requests = [_request("GET", p) for p in paths]
    counts = [0] * connections
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(i: int) -> None:
        reader, writer = conns[i]
        j = i * 7
        while time.perf_counter() < deadline:
            writer.write(requests[j % len(requests)])
            status, body = await _read_response(reader)
            if status >= 300:
                raise RuntimeError(f"{paths[j % len(paths)]}: {status} {body[:200]!r}")
            j += 1
            counts[i] += 1

    try:
        await asyncio.gather(*(worker(i) for i in range(connections)))
        return sum(counts) / (time.perf_counter() - start)
    finally:
        for _, writer in conns:
            writer.close()


# -- seeding through the library ---------------------------------------------------------


def configmap(project: str, name: str, size: int) -> dict[str, Any]:
    """A ConfigMap whose JSON (as stored, without `resourceVersion`) is about `size` bytes;
    its uid is derived from its name, so every seeded file holds the same objects."""
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{project}/{name}")),
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": "bench", "tier": name[-1:]},
        },
        "data": {"payload": ""},
    }
    pad = size - len(json.dumps(obj, separators=(",", ":")))
    obj["data"]["payload"] = "x" * max(pad, 0)
    return obj


async def seed(db: Path, counts: dict[str, int], size: int, concurrency: int = 64) -> list[int]:
    """Write `counts[project]` ConfigMaps into each project of the SQLite file `db`
    through `SharedStorageFactory`, as an application would; returns the JSON sizes."""
    import orjson

    from ..tenancy import SharedStorageFactory, project_scope
    from ..tenancy.factory import open_kv

    sizes: list[int] = []
    kv = await open_kv(f"sqlite://{db}")
    try:
        async with SharedStorageFactory(kv, [CM_PREFIX]) as factory:
            store = factory.storage(CM_PREFIX)
            sem = asyncio.Semaphore(concurrency)

            async def one(project: str, i: int) -> None:
                obj = configmap(project, f"cm-{i}", size)
                sizes.append(len(orjson.dumps(obj)))
                async with sem:
                    with project_scope(project):
                        await store.create(f"{CM_PREFIX}/default/cm-{i}", obj)

            await asyncio.gather(*(one(p, i) for p, n in counts.items() for i in range(n)))
    finally:
        await kv.close()
    return sizes


def project_path(project: str, suffix: str = "") -> str:
    return f"/projects/{project}/control-plane{CM_PATH}{suffix}"


# -- results -------------------------------------------------------------------------------


@dataclass
class Cell:
    stack: str
    op: str
    rps: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.rps) if self.rps else float("nan")


def header(args: argparse.Namespace, what: str) -> dict[str, Any]:
    return {
        "bench": what,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "tenantstore bench " + " ".join(sys.argv[2:] if len(sys.argv) > 2 else []),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_start": load_average(),
        "args": {k: v for k, v in vars(args).items() if k not in ("func",)},
    }


def save(args: argparse.Namespace, name: str, doc: dict[str, Any]) -> None:
    doc["load_average_end"] = load_average()
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(json.dumps(doc, indent=2) + "\n")


def stacks_of(args: argparse.Namespace) -> list[str]:
    stacks = [s.strip() for s in args.stacks.split(",") if s.strip()]
    for s in stacks:
        if s not in STACKS:
            raise SystemExit(f"unknown stack {s!r}: expected some of {', '.join(STACKS)}")
        module = {"h11": "h11", "httptools": "httptools", "granian": "granian"}[s]
        if importlib.util.find_spec(module) is None:
            raise SystemExit(f"stack {s}: the {module} package is not installed")
    return stacks


# -- tenantstore bench http ----------------------------------------------------------------


# `/livez` is the HTTP floor (a loop ping); `/healthz` runs the backend checks afresh.
HTTP_OPS = ("livez", "healthz", "GET rv=0", "GET", "LIST rv=0", "LIST")


def _op_paths(op: str, projects: int, objects: int) -> list[str]:
    if op in ("livez", "healthz"):
        return [f"/{op}"]
    rv = "?resourceVersion=0" if op.endswith("rv=0") else ""
    paths = []
    for o in range(objects):
        for p in range(projects):
            name = f"/cm-{o}" if op.startswith("GET") else ""
            paths.append(project_path(f"bench-{p}", name + rv))
    return paths


def bench_http(args: argparse.Namespace) -> int:
    """Item: the same application under each stack, every op, cells alternated."""
    stacks = stacks_of(args)
    doc = header(args, "http")
    cells = {(s, op): Cell(s, op) for s in stacks for op in HTTP_OPS}
    with tempfile.TemporaryDirectory(prefix="ts-bench-http-") as d:
        tmp = Path(d)
        counts = {f"bench-{p}": args.objects for p in range(args.projects)}
        servers: dict[str, Server] = {}
        try:
            for s in stacks:
                run(seed(tmp / f"{s}.db", counts, args.size))
                servers[s] = Server(s, f"sqlite://{tmp / f'{s}.db'}", tmp / f"{s}.log")
            for srv in servers.values():
                run(srv.wait_ready())
                for p in counts:  # warm every path once
                    run(fetch(srv.url, project_path(p)))
            for rnd in range(args.rounds):
                for op in HTTP_OPS:
                    paths = _op_paths(op, args.projects, args.objects)
                    for s in stacks if rnd % 2 == 0 else reversed(stacks):
                        rps = run(drive(servers[s].url, paths, args.connections, args.seconds))
                        cells[(s, op)].rps.append(rps)
                        _progress(f"round {rnd + 1} {op:<9} {STACK_NAMES[s]:<17} {rps:8,.0f}/s")
        finally:
            for srv in servers.values():
                srv.stop()
    # Every later stack against the first, and the last against the second (granian
    # against httptools+uvloop, the adoption question).
    pairs = [(s, stacks[0]) for s in stacks[1:]]
    if len(stacks) > 2:
        pairs.append((stacks[-1], stacks[1]))
    lines = [
        f"| op | {' | '.join(STACK_NAMES[s] + ' req/s' for s in stacks)} | "
        + " | ".join(f"{STACK_NAMES[a]} / {STACK_NAMES[b]}" for a, b in pairs)
        + " |",
        "|---|" + "---:|" * (len(stacks) + len(pairs)),
    ]
    ratios: dict[str, float] = {}
    for op in HTTP_OPS:
        row = [f"{cells[(s, op)].median:,.0f}" for s in stacks]
        for a, b in pairs:
            ratio = cells[(a, op)].median / cells[(b, op)].median
            ratios[f"{op}: {a}/{b}"] = ratio
            row.append(f"{ratio:.2f}x")
        lines.append(f"| {op} | " + " | ".join(row) + " |")
    doc["ratios"] = ratios
    doc["cells"] = [asdict(c) | {"median": c.median} for c in cells.values()]
    doc["table"] = lines
    save(args, "http-stack.json", doc)
    print("\n".join(lines))
    return 0


# -- tenantstore bench floor ---------------------------------------------------------------


FLOOR_OPS = ("LIST rv=0", "LIST", "static LIST", "GET rv=0", "GET", "static GET")


def bench_floor(args: argparse.Namespace) -> int:
    """Item: LIST of `--objects` and a GET against static bodies of the same bytes."""
    stacks = stacks_of(args)
    doc = header(args, "floor")
    cells = {(s, op): Cell(s, op) for s in stacks for op in FLOOR_OPS}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="ts-bench-floor-") as d:
        tmp = Path(d)
        servers: dict[str, Server] = {}
        try:
            for s in stacks:
                run(seed(tmp / f"{s}.db", {"floor": args.objects}, args.size))
                servers[s] = Server(s, f"sqlite://{tmp / f'{s}.db'}", tmp / f"{s}.log")
            for srv in servers.values():
                run(srv.wait_ready())
                _, listed = run(fetch(srv.url, project_path("floor", "?resourceVersion=0")))
                _, got = run(fetch(srv.url, project_path("floor", "/cm-0?resourceVersion=0")))
                if json.loads(listed)["items"].__len__() != args.objects:
                    raise RuntimeError("the LIST does not hold every seeded object")
                sizes = {"LIST": len(listed), "GET": len(got)}
                for name, body in (("list", listed), ("get", got)):
                    status, _ = run(fetch(srv.url, STATIC + name, "PUT", body))
                    assert status == 204, status
            paths = {
                "LIST rv=0": [project_path("floor", "?resourceVersion=0")],
                "LIST": [project_path("floor")],
                "static LIST": [STATIC + "list"],
                "GET rv=0": [project_path("floor", "/cm-0?resourceVersion=0")],
                "GET": [project_path("floor", "/cm-0")],
                "static GET": [STATIC + "get"],
            }
            for rnd in range(args.rounds):
                for op in FLOOR_OPS:
                    for s in stacks if rnd % 2 == 0 else reversed(stacks):
                        srv = servers[s]
                        rps = run(drive(srv.url, paths[op], args.connections, args.seconds))
                        cells[(s, op)].rps.append(rps)
                        _progress(f"round {rnd + 1} {op:<11} {STACK_NAMES[s]:<17} {rps:8,.0f}/s")
        finally:
            for srv in servers.values():
                srv.stop()
    lines = [
        f"LIST of {args.objects} ConfigMaps: {sizes.get('LIST', 0):,} bytes; "
        f"GET: {sizes.get('GET', 0):,} bytes",
        "",
        "| stack | op | req/s | static req/s | ratio to floor |",
        "|---|---|---:|---:|---:|",
    ]
    ratios: dict[str, float] = {}
    for s in stacks:
        for op in ("LIST rv=0", "LIST", "GET rv=0", "GET"):
            floor = cells[(s, "static " + op.split()[0])].median
            ratio = cells[(s, op)].median / floor
            ratios[f"{s} {op}"] = ratio
            lines.append(
                f"| {STACK_NAMES[s]} | {op} | {cells[(s, op)].median:,.0f} | {floor:,.0f} | "
                f"{ratio:.0%} |"
            )
    doc.update(
        sizes=sizes,
        cells=[asdict(c) | {"median": c.median} for c in cells.values()],
        ratios=ratios,
        table=lines,
    )
    save(args, "list-floor.json", doc)
    print("\n".join(lines))
    return 0


# -- tenantstore bench watches -------------------------------------------------------------


async def _open_watches(url: str, projects: list[str]) -> list[asyncio.StreamWriter]:
    """One watch per project, each on its own connection, each read up to its first
    event (the seeded object's ADDED), so the stream is known to be established."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sem = asyncio.Semaphore(32)
    writers: list[asyncio.StreamWriter] = []

    async def one(project: str) -> None:
        async with sem:
            reader, writer = await asyncio.open_connection(host, int(port))
            writers.append(writer)
            writer.write(_request("GET", project_path(project, "?watch=1")))
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"watch {project}: {head[:80]!r}")
            first = await reader.readuntil(b"\n")
            while first.strip() in (b"",) or first.strip().isalnum():  # chunk sizes
                first = await reader.readuntil(b"\n")
            if b"ADDED" not in first:
                raise RuntimeError(f"watch {project}: first event {first[:80]!r}")

    await asyncio.gather(*(one(p) for p in projects))
    return writers


def bench_watches(args: argparse.Namespace) -> int:
    """Item: RSS per open watch connection, one per project, per stack."""
    stacks = stacks_of(args)
    raise_fd_limit()
    doc = header(args, "watches")
    results: dict[str, list[float]] = {s: [] for s in stacks}
    projects = [f"w-{p}" for p in range(args.watches)]
    with tempfile.TemporaryDirectory(prefix="ts-bench-watch-") as d:
        tmp = Path(d)
        run(seed(tmp / "seed.db", dict.fromkeys(projects, 1), args.size))
        for rnd in range(args.rounds):
            for s in stacks if rnd % 2 == 0 else reversed(stacks):
                db = tmp / f"{s}-{rnd}.db"
                shutil.copy(tmp / "seed.db", db)
                srv = Server(s, f"sqlite://{db}", tmp / f"{s}-{rnd}.log")
                try:
                    per_watch = run(_measure_watches(srv, projects, args.settle))
                finally:
                    srv.stop()
                results[s].append(per_watch)
                _progress(f"round {rnd + 1} {STACK_NAMES[s]:<17} {per_watch / 1024:6.1f} KiB")
    lines = [
        f"{args.watches} watches, one per project, each on its own connection; "
        "RSS after - before, per watch (median of rounds)",
        "",
        "| stack | KiB per open watch |",
        "|---|---:|",
    ]
    for s in stacks:
        lines.append(f"| {STACK_NAMES[s]} | {statistics.median(results[s]) / 1024:.1f} |")
    doc.update(per_watch_bytes=results, table=lines)
    save(args, "watch-cost.json", doc)
    print("\n".join(lines))
    return 0


async def _measure_watches(srv: Server, projects: list[str], settle: float) -> float:
    await srv.wait_ready()
    for p in projects:  # every project's state exists before the baseline
        await fetch(srv.url, project_path(p, "?resourceVersion=0"))
    await asyncio.sleep(settle)
    before = srv.rss()
    writers = await _open_watches(srv.url, projects)
    await asyncio.sleep(settle)
    after = srv.rss()
    for w in writers:
        w.close()
    return (after - before) / len(projects)


# -- tenantstore bench memory --------------------------------------------------------------


def _builds(spec: str | None) -> list[tuple[str, str | None]]:
    """`--builds before=DIR,after=DIR` as `(label, PYTHONPATH)`; none: this interpreter's."""
    if not spec:
        return [("", None)]
    builds: list[tuple[str, str | None]] = []
    for item in spec.split(","):
        label, sep, path = item.partition("=")
        if not sep or not label.strip() or not (Path(path) / "tenantstore").is_dir():
            raise SystemExit(f"--builds: {item!r} is not LABEL=DIR with DIR/tenantstore")
        if label.strip() in (b for b, _ in builds):
            raise SystemExit(f"--builds: label {label.strip()!r} given twice")
        builds.append((label.strip(), str(Path(path).resolve())))
    return builds


def bench_memory(args: argparse.Namespace) -> int:
    """Item: RSS per cached object of a running server, against an empty one."""
    stacks = stacks_of(args)[:1]
    builds = _builds(args.builds)
    doc = header(args, "memory")
    per_project = -(-args.objects // args.projects)
    counts = {f"m-{p}": per_project for p in range(args.projects)}
    total = per_project * args.projects
    rss: dict[str, dict[str, list[int]]] = {b: {"empty": [], "full": []} for b, _ in builds}
    with tempfile.TemporaryDirectory(prefix="ts-bench-mem-") as d:
        tmp = Path(d)
        t0 = time.monotonic()
        sizes = run(seed(tmp / "full.db", counts, args.size, concurrency=128))
        _progress(f"seeded {total:,} objects in {time.monotonic() - t0:.0f} s")
        run(seed(tmp / "empty.db", {}, args.size))
        for rnd in range(args.rounds):
            # Cells alternated: every build and file in turn, the order reversed each round.
            cells = [(b, path, w) for b, path in builds for w in ("empty", "full")]
            for label, path, which in cells if rnd % 2 == 0 else reversed(cells):
                db = f"sqlite://{tmp / (which + '.db')}"
                srv = Server(stacks[0], db, tmp / f"{which}.log", pythonpath=path)
                try:
                    rss[label][which].append(run(_warm_rss(srv, list(counts), args.settle)))
                finally:
                    srv.stop()
                _progress(
                    f"round {rnd + 1} {label:<8} {which:<5} "
                    f"RSS {rss[label][which][-1] / 2**20:8.1f} MiB"
                )
    json_bytes = statistics.mean(sizes)
    lines = [
        f"{total:,} ConfigMaps over {args.projects} projects, {json_bytes:.0f} bytes of JSON "
        f"each; server {STACK_NAMES[stacks[0]]}, shared mode, SQLite; median of "
        f"{args.rounds} rounds",
        "",
        "| build | empty server RSS | full server RSS | RSS per object | JSON per object | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    per_build: dict[str, dict[str, Any]] = {}
    for label, path in builds:
        empty = statistics.median(rss[label]["empty"])
        full = statistics.median(rss[label]["full"])
        per_object = (full - empty) / total
        per_build[label] = {
            "pythonpath": path,
            "rss_empty": rss[label]["empty"],
            "rss_full": rss[label]["full"],
            "rss_per_object": per_object,
            "ratio": per_object / json_bytes,
        }
        lines.append(
            f"| {label or 'this'} | {empty / 2**20:,.1f} MiB | {full / 2**20:,.1f} MiB | "
            f"{per_object:,.0f} B | {json_bytes:.0f} B | {per_object / json_bytes:.2f}x |"
        )
    last = per_build[builds[-1][0]]
    doc.update(
        objects=total,
        json_bytes=json_bytes,
        rss_empty=last["rss_empty"],
        rss_full=last["rss_full"],
        rss_per_object=last["rss_per_object"],
        ratio=last["ratio"],
        builds=per_build,
        table=lines,
    )
    save(args, "memory.json", doc)
    print("\n".join(lines))
    return 0


async def _warm_rss(srv: Server, projects: list[str], settle: float) -> int:
    """RSS once the caches are built (`/readyz`) and every project was listed once."""
    await srv.wait_ready(timeout=600)
    sem = asyncio.Semaphore(8)

    async def one(p: str) -> None:
        async with sem:
            status, body = await fetch(srv.url, project_path(p, "?resourceVersion=0"))
            if status != 200:
                raise RuntimeError(f"LIST {p}: {status} {body[:200]!r}")

    await asyncio.gather(*(one(p) for p in projects))
    await asyncio.sleep(settle)
    return srv.rss()


# -- the command line ------------------------------------------------------------------------


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def add_parsers(bench_sub: Any) -> None:
    """`tenantstore bench http|floor|watches|memory` (stdlib imports only, at parse time)."""

    def common(p: argparse.ArgumentParser, stacks: str, rounds: int = 3) -> None:
        p.add_argument(
            "--stacks",
            default=stacks,
            help=f"comma-separated, of {', '.join(STACKS)} (default {stacks})",
        )
        p.add_argument("--rounds", type=int, default=rounds, help=f"(default {rounds})")
        p.add_argument("--size", type=int, default=500, help="bytes of JSON per ConfigMap")
        p.add_argument("--out", help="directory for the JSON result")

    p = bench_sub.add_parser(
        "http",
        help="requests/s of h11+asyncio, httptools+uvloop and granian, side by side",
        description="The same application under each HTTP stack, /healthz, GET and LIST "
        "(rv=0 and consistent), cells alternated over rounds; SQLite, loopback.",
    )
    common(p, "h11,httptools,granian")
    p.add_argument("--projects", type=int, default=20)
    p.add_argument("--objects", type=int, default=20, help="per project (the LIST size)")
    p.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    p.add_argument("--seconds", type=float, default=3.0, help="per cell")
    p.set_defaults(func=bench_http)

    p = bench_sub.add_parser(
        "floor",
        help="LIST of 500 and GET against a static body of the same bytes",
        description="A LIST of --objects ConfigMaps (rv=0 and consistent) and a GET, "
        "against a precomputed body of the same bytes served by the same server process, "
        "middleware and router (a bench-only route).",
    )
    common(p, "httptools")
    p.add_argument("--objects", type=int, default=500)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--seconds", type=float, default=3.0)
    p.set_defaults(func=bench_floor)

    p = bench_sub.add_parser(
        "watches",
        help="RSS per open watch connection, per HTTP stack",
        description="One watch per project, each on its own connection; RSS after - "
        "before, per watch.",
    )
    common(p, "h11,httptools,granian", rounds=2)
    p.add_argument("--watches", type=int, default=1000)
    p.add_argument("--settle", type=float, default=3.0, help="seconds before each RSS")
    p.set_defaults(func=bench_watches)

    p = bench_sub.add_parser(
        "memory",
        help="RSS of a running server per cached object, against an empty server",
        description="Seed a SQLite file through the library, start the server on it and "
        "on an empty one, LIST every project, and report the RSS difference per object "
        "and its ratio to the objects' JSON bytes.",
    )
    common(p, "httptools", rounds=2)
    p.add_argument("--objects", type=int, default=40_000)
    p.add_argument("--projects", type=int, default=400)
    p.add_argument("--settle", type=float, default=3.0)
    p.add_argument(
        "--builds",
        help="LABEL=DIR,... : compare builds in one run, each served with PYTHONPATH=DIR "
        "(DIR holds a `tenantstore` package; default: the one this command runs)",
    )
    p.set_defaults(func=bench_memory)


BENCHES = ("http", "floor", "watches", "memory")


def main(args: argparse.Namespace) -> int:
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


def main_argv(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_http_stack")
    add_parsers(parser.add_subparsers(dest="bench", required=True))
    return main(parser.parse_args(argv))
