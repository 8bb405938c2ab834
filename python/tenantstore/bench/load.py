"""A bounded HTTP load run against `tenantstore serve`: several client processes, mixed
reads, writes and watches across many projects, then throughput, latency percentiles
and errors.

The run stops by itself: each client process sends exactly `requests` requests and
exits. Projects are partitioned among the processes (project `i` belongs to process
`i % processes`), so each process knows every write of its projects and can check its
watch streams: each process opens `watches` streams on its own projects before the
load starts and, at the end, every stream must have delivered every write of its project
(ADDED/MODIFIED at the acknowledged resourceVersion, DELETED for deletes), in increasing
resourceVersion order. A missing or out-of-order event counts as a watch error.

Operation mix (weights, per request): `get` an existing object, `list` a project
(`limit=50`), `create`, `update` (PUT with the resourceVersion precondition),
`delete`. Objects are ConfigMaps in namespace `default`; an object is used by one
request at a time, so every non-2xx answer is an error.

Parameters (`LoadConfig`; the CLI flags of `main` have the same names):

* `backend`: `sqlite` (a temporary file), `etcd` (a throwaway etcd is started),
  or a backend URL (`sqlite:///path`, `etcd://host:port`); ignored with `url`.
* `url`: an already running server to load instead of starting one.
* `mode`: `shared` or `per-project` (for a started server).
* `processes`: client processes (default 4); `requests`: requests per process
  (default 2,500); `concurrency`: in-flight requests per process (default 16).
* `projects`: projects in the run (default 1,000); `watches`: watch streams per
  process (default 8); `seed`: random seed.
* `mix`: `get,list,create,update,delete` weights (default `30,20,20,20,10`).

`run_load` returns a `LoadResult` (also `LoadResult.render()` as a table and
`to_json()`); `main(args)` prints the table, writes JSON with `--out` and returns
1 when there were errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .options import OPS, LoadConfig, add_arguments, config_from_args
from .processes import EtcdProcess, ServerProcess, raise_fd_limit

__all__ = ["OPS", "LoadConfig", "LoadResult", "OpStats", "add_arguments", "main", "run_load"]

_EXPECTED = {"get": 200, "list": 200, "create": 201, "update": 200, "delete": 200}
_NS = "default"
_MAX_ERROR_SAMPLES = 10


@dataclass
class OpStats:
    count: int = 0
    errors: int = 0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0


@dataclass
class LoadResult:
    config: dict[str, Any]
    backend: str
    requests: int
    errors: int
    seconds: float
    throughput: float
    ops: dict[str, OpStats]
    watch_streams: int
    watch_events: int
    watch_errors: int
    error_samples: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def render(self) -> str:
        lines = [
            f"backend {self.backend}, {self.config['processes']} processes x "
            f"{self.config['requests']} requests, {self.config['projects']} projects, "
            f"concurrency {self.config['concurrency']}/process",
            f"{self.requests} requests in {self.seconds:.1f} s: {self.throughput:.0f} req/s, "
            f"{self.errors} errors; {self.watch_streams} watch streams received "
            f"{self.watch_events} events, {self.watch_errors} watch errors",
            "",
            f"{'op':<8}{'count':>8}{'errors':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
            f"{'max ms':>9}",
        ]
        for op, s in self.ops.items():
            lines.append(
                f"{op:<8}{s.count:>8}{s.errors:>8}{s.p50_ms:>9.1f}{s.p90_ms:>9.1f}"
                f"{s.p99_ms:>9.1f}{s.max_ms:>9.1f}"
            )
        for sample in self.error_samples:
            lines.append(f"error: {sample}")
        return "\n".join(lines)


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


# -- one client process ---------------------------------------------------------------


@dataclass
class _Written:
    """Acknowledged writes of one project: ("ADDED"|"MODIFIED"|"DELETED", name, rv)."""

    events: list[tuple[str, str, int]] = field(default_factory=list)


class _Watcher:
    def __init__(self, project: str) -> None:
        self.project = project
        self.events: list[tuple[str, str, int]] = []
        self.errors: list[str] = []
        self.changed = asyncio.Event()  # set on every event and at the end of the stream

    async def run(self, client: httpx.AsyncClient, rv: str) -> None:
        path = _collection(self.project)
        params = {"watch": "1", "resourceVersion": rv}
        try:
            async with client.stream("GET", path, params=params) as resp:
                if resp.status_code != 200:
                    self.errors.append(f"watch {self.project}: HTTP {resp.status_code}")
                    return
                async for line in resp.aiter_lines():
                    if not line:
                        continue
                    ev = json.loads(line)
                    obj = ev["object"]
                    if ev["type"] == "ERROR":
                        self.errors.append(f"watch {self.project}: {obj.get('message')}")
                        return
                    if ev["type"] == "BOOKMARK":
                        continue
                    meta = obj["metadata"]
                    self.events.append((ev["type"], meta["name"], int(meta["resourceVersion"])))
                    self.changed.set()
        except httpx.HTTPError as exc:
            self.errors.append(f"watch {self.project}: {type(exc).__name__}: {exc}")
        finally:
            self.changed.set()

    async def wait_for(self, count: int, deadline: float) -> None:
        """Until `count` events arrived, the stream ended, or `deadline` (monotonic)."""
        while len(self.events) < count and not self.errors:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)


def _collection(project: str) -> str:
    return f"/projects/{project}/control-plane/api/v1/namespaces/{_NS}/configmaps"


def _check_watch(w: _Watcher, written: _Written) -> list[str]:
    """The stream holds every acknowledged write of its project, in RV order."""
    problems = list(w.errors)
    rvs = [rv for kind, _, rv in w.events if kind != "DELETED"]
    if any(a >= b for a, b in itertools.pairwise(rvs)):
        problems.append(f"watch {w.project}: resourceVersions not increasing")
    got = sorted((k, n, rv) for k, n, rv in w.events if k != "DELETED")
    want = sorted((k, n, rv) for k, n, rv in written.events if k != "DELETED")
    if got != want:
        missing = len(set(want) - set(got))
        extra = len(set(got) - set(want))
        problems.append(f"watch {w.project}: {missing} writes missing, {extra} unexpected")
    got_del = sorted(n for k, n, _ in w.events if k == "DELETED")
    want_del = sorted(n for k, n, _ in written.events if k == "DELETED")
    if got_del != want_del:
        problems.append(f"watch {w.project}: deletes {len(got_del)} seen, {len(want_del)} made")
    return problems


async def _worker(
    url: str, index: int, cfg: LoadConfig, start_at: float
) -> dict[str, Any]:  # pragma: no cover - runs in a child process
    rng = random.Random(cfg.seed * 1000 + index)
    mine = [f"load-{i}" for i in range(cfg.projects) if i % cfg.processes == index]
    latencies: dict[str, list[float]] = {op: [] for op in OPS}
    errors: dict[str, int] = dict.fromkeys(OPS, 0)
    samples: list[str] = []
    free: dict[str, list[tuple[str, str]]] = {p: [] for p in mine}  # project -> (name, rv)
    written: dict[str, _Written] = {p: _Written() for p in mine}
    counter = 0
    limits = httpx.Limits(
        max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency
    )
    async with (
        httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http,
        httpx.AsyncClient(
            base_url=url,
            timeout=httpx.Timeout(60, read=None),
            limits=httpx.Limits(max_connections=max(1, cfg.watches)),
        ) as watch_http,
    ):
        # Watches first, from the current RV of their (still empty) project.
        watchers: list[_Watcher] = []
        tasks: list[asyncio.Task[None]] = []
        for p in rng.sample(mine, min(cfg.watches, len(mine))):
            r = await http.get(_collection(p), params={"limit": "1"})
            r.raise_for_status()
            w = _Watcher(p)
            watchers.append(w)
            tasks.append(
                asyncio.create_task(w.run(watch_http, r.json()["metadata"]["resourceVersion"]))
            )
        await asyncio.sleep(max(0.0, start_at - time.time()))
        begin = time.perf_counter()

        def error(op: str, text: str) -> None:
            errors[op] += 1
            if len(samples) < _MAX_ERROR_SAMPLES:
                samples.append(f"{op}: {text[:300]}")

        async def one(op: str) -> None:
            nonlocal counter
            project = rng.choice(mine)
            if op in ("get", "update", "delete") and not free[project]:
                op = "create"
            body: dict[str, Any]
            taken: tuple[str, str] | None = None
            if op in ("get", "update", "delete"):
                pool = free[project]
                taken = pool.pop(rng.randrange(len(pool)))
            started = time.perf_counter()
            try:
                if op == "create":
                    counter += 1
                    name = f"o{index}-{counter}"
                    body = {"metadata": {"name": name}, "data": {"v": "0"}}
                    r = await http.post(_collection(project), json=body)
                elif op == "list":
                    r = await http.get(_collection(project), params={"limit": "50"})
                elif op == "get":
                    assert taken is not None
                    r = await http.get(f"{_collection(project)}/{taken[0]}")
                elif op == "update":
                    assert taken is not None
                    body = {
                        "metadata": {"name": taken[0], "resourceVersion": taken[1]},
                        "data": {"v": str(rng.random())},
                    }
                    r = await http.put(f"{_collection(project)}/{taken[0]}", json=body)
                else:
                    assert taken is not None
                    r = await http.delete(f"{_collection(project)}/{taken[0]}")
            except httpx.HTTPError as exc:
                latencies[op].append(time.perf_counter() - started)
                error(op, f"{type(exc).__name__}: {exc}")
                if taken is not None and op != "delete":
                    free[project].append(taken)
                return
            latencies[op].append(time.perf_counter() - started)
            if r.status_code != _EXPECTED[op]:
                error(op, f"HTTP {r.status_code}: {r.text}")
                if taken is not None and op != "delete":
                    free[project].append(taken)
                return
            if op in ("create", "update"):
                meta = r.json()["metadata"]
                rv = meta["resourceVersion"]
                kind = "ADDED" if op == "create" else "MODIFIED"
                written[project].events.append((kind, meta["name"], int(rv)))
                free[project].append((meta["name"], rv))
            elif op == "delete":
                assert taken is not None
                written[project].events.append(("DELETED", taken[0], int(taken[1])))
            elif taken is not None:
                free[project].append(taken)

        ops = rng.choices(OPS, weights=cfg.mix, k=cfg.requests)
        queue = iter(ops)

        async def runner() -> None:
            for op in queue:
                await one(op)

        await asyncio.gather(*(runner() for _ in range(cfg.concurrency)))
        seconds = time.perf_counter() - begin

        # Watch streams catch up (bounded), then are checked.
        deadline = time.monotonic() + cfg.watch_settle_seconds
        for w in watchers:
            await w.wait_for(len(written[w.project].events), deadline)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        watch_problems: list[str] = []
        for w in watchers:
            watch_problems += _check_watch(w, written[w.project])
    return {
        "latencies": latencies,
        "errors": errors,
        "samples": samples + watch_problems[:_MAX_ERROR_SAMPLES],
        "seconds": seconds,
        "watch_streams": len(watchers),
        "watch_events": sum(len(w.events) for w in watchers),
        "watch_errors": len(watch_problems),
    }


def _worker_main(
    url: str, index: int, cfg: LoadConfig, start_at: float, out: Any
) -> None:  # pragma: no cover - runs in a child process
    raise_fd_limit()
    try:
        out.send(asyncio.run(_worker(url, index, cfg, start_at)))
    except BaseException as exc:
        out.send({"fatal": f"{type(exc).__name__}: {exc}"})
    finally:
        out.close()


# -- the coordinator ----------------------------------------------------------------------


async def _run_clients(url: str, cfg: LoadConfig) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    # Every process starts its requests at the same moment, after opening its watches.
    start_at = time.time() + 3.0 + 0.5 * cfg.processes
    pipes = []
    procs = []
    for i in range(cfg.processes):
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_worker_main, args=(url, i, cfg, start_at, send), daemon=True)
        p.start()
        send.close()
        pipes.append(recv)
        procs.append(p)
    loop = asyncio.get_running_loop()
    results: list[dict[str, Any]] = []
    for recv, p in zip(pipes, procs, strict=True):
        try:
            got: dict[str, Any] = await loop.run_in_executor(None, recv.recv)
        except EOFError:
            got = {"fatal": f"client process exited with {p.exitcode} without a result"}
        results.append(got)
        await loop.run_in_executor(None, p.join, 30)
    return results


def _aggregate(cfg: LoadConfig, backend: str, parts: list[dict[str, Any]]) -> LoadResult:
    fatal = [p["fatal"] for p in parts if "fatal" in p]
    ok = [p for p in parts if "fatal" not in p]
    ops: dict[str, OpStats] = {}
    total = errors = 0
    for op in OPS:
        lat = sorted(x * 1000 for p in ok for x in p["latencies"][op])
        errs = sum(p["errors"][op] for p in ok)
        ops[op] = OpStats(
            count=len(lat),
            errors=errs,
            p50_ms=_percentile(lat, 0.50),
            p90_ms=_percentile(lat, 0.90),
            p99_ms=_percentile(lat, 0.99),
            max_ms=lat[-1] if lat else 0.0,
        )
        total += len(lat)
        errors += errs
    seconds = max((p["seconds"] for p in ok), default=0.0)
    samples = [s for p in ok for s in p["samples"]][:_MAX_ERROR_SAMPLES] + fatal
    config = asdict(cfg)
    config["mix"] = list(cfg.mix)
    return LoadResult(
        config=config,
        backend=backend,
        requests=total,
        errors=errors + len(fatal),
        seconds=seconds,
        throughput=total / seconds if seconds else 0.0,
        ops=ops,
        watch_streams=sum(p["watch_streams"] for p in ok),
        watch_events=sum(p["watch_events"] for p in ok),
        watch_errors=sum(p["watch_errors"] for p in ok) + len(fatal),
        error_samples=samples,
    )


def _prepare(base: Path) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    (base / "resources.yaml").write_text("resources: []\n")  # the built-in resources only
    return base


async def run_load(cfg: LoadConfig, workdir: Path | None = None) -> LoadResult:
    """Run `cfg` (starting a server, and an etcd for `backend="etcd"`, unless `cfg.url`
    names a running server) and return the aggregated result."""
    raise_fd_limit()
    if cfg.url is not None:
        return _aggregate(cfg, cfg.url, await _run_clients(cfg.url, cfg))
    with tempfile.TemporaryDirectory(prefix="tenantstore-load-") as tmp:
        base = _prepare(Path(workdir or tmp))
        etcd: EtcdProcess | None = None
        backend_url = cfg.backend
        if cfg.backend == "sqlite":
            backend_url = f"sqlite://{base / 'load.db'}"
        elif cfg.backend == "etcd":
            etcd = EtcdProcess(base)
            await etcd.start()
            backend_url = f"etcd://{etcd.endpoint}"
        resources = base / "resources.yaml"
        server = ServerProcess(
            backend_url,
            cfg.mode,
            resources,
            base / "server.log",
            trace_memory=False,
            extra_args=("--log-level", "warning"),
        )
        try:
            await server.start()
            parts = await _run_clients(server.url, cfg)
        finally:
            server.stop()
            if etcd is not None:
                etcd.stop()
        label = "sqlite" if cfg.backend == "sqlite" else "etcd" if etcd else backend_url
        return _aggregate(cfg, label, parts)


def main(args: argparse.Namespace) -> int:
    """Run the load described by `args` (see `add_arguments`); 1 if anything failed."""
    result = asyncio.run(run_load(config_from_args(args)))
    print(result.render())
    if getattr(args, "out", None):
        Path(args.out).write_text(result.to_json())
    return 1 if result.errors or result.watch_errors else 0


if __name__ == "__main__":  # pragma: no cover
    _parser = argparse.ArgumentParser(prog="python -m tenantstore.bench.load", description=__doc__)
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
