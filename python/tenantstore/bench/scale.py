"""The scale harness: what one more project costs the server, shared vs per-project.

Modelled on milo's harness (PR #615): start the server alone in its process, measure,
bootstrap N projects (a few objects each, a LIST of every resource type in each
project's control plane, one WATCH held open per project), wait until the server's
thread and task counts settle, measure again, and report (after - before) / N. Unlike
the reference it also reports asyncio tasks and open backend watches per project, LIST
latency (in the root scope and inside projects), how long a write takes to reach its
watcher, and the CPU of the harness next to the server's and etcd's.

The harness must measure the server, not itself: its bootstrap workers and its watches
each have their own connection (`rawhttp`), and its children are stopped when it is told
to stop (SIGTERM, Ctrl-C), so that an interrupted run leaves no etcd or server behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .metrics_scrape import parse, scrape
from .processes import EtcdProcess, ServerProcess, cpu_seconds, raise_fd_limit, stop_all
from .rawhttp import Connection, WatchStream

GROUP = "bench.tenantstore.dev"
BUILTINS = [("namespaces", False), ("configmaps", True), ("secrets", True),
            ("serviceaccounts", True), ("events", True)]  # fmt: skip


@dataclass(frozen=True)
class ResourceType:
    plural: str
    namespaced: bool
    group: str = ""
    version: str = "v1"

    def path(self, namespace: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else "/api/v1"
        if self.namespaced and namespace is not None:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"


def custom_resources(count: int) -> list[ResourceType]:
    """`count` custom resource types, alternating namespaced and cluster-scoped."""
    return [ResourceType(f"widget{i}s", i % 2 == 0, GROUP) for i in range(count)]


def write_registry(path: Path, resources: list[ResourceType]) -> None:
    spec = {
        "resources": [
            {
                "group": r.group,
                "version": r.version,
                "kind": r.plural[:-1].capitalize(),
                "plural": r.plural,
                "namespaced": r.namespaced,
            }
            for r in resources
        ]
    }
    path.write_text(json.dumps(spec, indent=2))


@dataclass
class Sample:
    heap_bytes: float
    rss_bytes: float
    threads: float
    tasks: float
    backend_watches: float


@dataclass
class Skipped:
    """A run of the series that was not measured, and why (drawn as a mark on the plots)."""

    mode: str
    projects: int
    reason: str


@dataclass
class RunResult:
    mode: str
    projects: int
    resources: int
    backend: str
    before: Sample
    after: Sample
    object_bytes_per_project: float
    list_before_ms: dict[str, float]
    list_after_ms: dict[str, float]
    watch_delivery_ms: dict[str, float]
    bootstrap_seconds: float
    # LISTs inside a sample of projects' control planes, after the bootstrap: what one
    # project's client sees. Root-scope LISTs return every project's objects, so they
    # grow with N by design; these should not.
    project_list_ms: dict[str, float] = field(default_factory=dict)
    # CPU seconds per process ("harness", "server", "etcd"), over the bootstrap and over
    # the whole measurement: the harness must not be the side a run is bound by.
    cpu_bootstrap_s: dict[str, float] = field(default_factory=dict)
    cpu_total_s: dict[str, float] = field(default_factory=dict)
    fd_limit: int | None = None
    date: str = ""
    per_project: dict[str, float] = field(default_factory=dict)

    def finish(self) -> None:
        n = self.projects
        b, a = self.before, self.after
        self.per_project = {
            "heap_bytes": (a.heap_bytes - b.heap_bytes) / n,
            "rss_bytes": (a.rss_bytes - b.rss_bytes) / n,
            "threads": (a.threads - b.threads) / n,
            "tasks": (a.tasks - b.tasks) / n,
            "backend_watches": (a.backend_watches - b.backend_watches) / n,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RunResult:
        """A result read back from `scale.json` (older files lack the newer fields)."""
        doc = dict(doc)
        doc["before"] = Sample(**doc["before"])
        doc["after"] = Sample(**doc["after"])
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in doc.items() if k in known})


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)

    def pick(q: float) -> float:
        return values[min(len(values) - 1, round(q * (len(values) - 1)))]

    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": values[-1],
            "n": float(len(values))}  # fmt: skip


class _CpuClock:
    """CPU seconds of the harness and its children, read at marks."""

    def __init__(self, server: ServerProcess, etcd: EtcdProcess | None) -> None:
        self._pids: dict[str, int | None] = {"harness": None}
        if server.proc is not None:
            self._pids["server"] = server.proc.pid
        if etcd is not None and etcd.proc is not None:
            self._pids["etcd"] = etcd.proc.pid

    def read(self) -> dict[str, float]:
        out = {}
        for name, pid in self._pids.items():
            value = cpu_seconds(pid)
            if value is not None:
                out[name] = value
        return out

    @staticmethod
    def since(start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
        return {k: end[k] - start[k] for k in start if k in end}


class Harness:
    def __init__(
        self,
        *,
        resources: int = 20,
        backend: str = "sqlite",
        concurrency: int = 24,
        settle_interval: float = 2.0,
        settle_samples: int = 3,
        settle_timeout: float = 120.0,
        project_list_samples: int = 20,
        workdir: Path | None = None,
        progress: bool = True,
    ) -> None:
        self.types = [ResourceType(p, ns) for p, ns in BUILTINS] + custom_resources(resources)
        self.custom = resources
        self.backend = backend
        self.concurrency = concurrency
        self.settle_interval = settle_interval
        self.settle_samples = settle_samples
        self.settle_timeout = settle_timeout
        self.project_list_samples = project_list_samples
        self.workdir = workdir
        self.progress = progress

    # -- one run --------------------------------------------------------------------
    async def run(self, mode: str, projects: int) -> RunResult:
        fd_limit = raise_fd_limit()
        # Each watch holds a socket here and one in the server; the bootstrap pool, the
        # server's backend connections and files need some more.
        if fd_limit is not None and fd_limit < projects + self.concurrency + 256:
            raise RuntimeError(
                f"N={projects} needs about {projects + self.concurrency + 256} open files, "
                f"and the hard limit (RLIMIT_NOFILE) is {fd_limit}: raise it (ulimit -Hn)"
            )
        with tempfile.TemporaryDirectory(prefix="tenantstore-scale-", dir=self.workdir) as tmp:
            tmpdir = Path(tmp)
            registry = tmpdir / "resources.json"
            write_registry(registry, self.types[len(BUILTINS) :])
            etcd: EtcdProcess | None = None
            server: ServerProcess | None = None
            try:
                if self.backend == "etcd":
                    etcd = EtcdProcess(tmpdir)
                    await etcd.start()
                    assert etcd.proc is not None
                    print(f"started etcd (pid {etcd.proc.pid})", flush=True)
                    backend_url = f"etcd://{etcd.endpoint}"
                elif self.backend.startswith("etcd://"):
                    backend_url = self.backend
                elif self.backend == "sqlite":
                    backend_url = f"sqlite:///{tmpdir / 'scale.db'}"
                else:
                    backend_url = self.backend
                server = ServerProcess(backend_url, mode, registry, tmpdir / "server.log")
                await server.start()
                assert server.proc is not None
                print(f"started tenantstore serve (pid {server.proc.pid})", flush=True)
                result = await self._measure(server, etcd, mode, projects)
                result.fd_limit = fd_limit
                return result
            except Exception:
                if server is not None:
                    log = (tmpdir / "server.log").read_text(errors="replace")[-3000:]
                    print(f"--- server log tail ---\n{log}")
                raise
            finally:
                if server is not None:
                    server.stop()
                if etcd is not None:
                    etcd.stop()

    async def _sample(self, client: httpx.AsyncClient, etcd: EtcdProcess | None) -> Sample:
        m = await scrape(client, "/metrics")
        watches = m.get("tenantstore_backend_watches", 0.0)
        if etcd is not None:
            em = parse((await client.get(etcd.metrics_url)).text)
            watches = em.get("etcd_debugging_mvcc_watcher_total", watches)
        heap = m.get("tenantstore_python_heap_bytes", 0.0)
        return Sample(
            heap_bytes=heap,
            rss_bytes=m.get("process_resident_memory_bytes", 0.0),
            threads=m.get("tenantstore_threads", 0.0),
            tasks=m.get("tenantstore_asyncio_tasks", 0.0),
            backend_watches=watches,
        )

    async def _settled(self, client: httpx.AsyncClient, etcd: EtcdProcess | None) -> Sample:
        """Sample until threads and tasks are equal over `settle_samples` samples."""
        deadline = time.monotonic() + self.settle_timeout
        window: list[Sample] = []
        while True:
            window.append(await self._sample(client, etcd))
            window = window[-self.settle_samples :]
            if len(window) == self.settle_samples and all(
                s.threads == window[0].threads and s.tasks == window[0].tasks for s in window
            ):
                return window[-1]
            if time.monotonic() > deadline:
                return window[-1]
            await asyncio.sleep(self.settle_interval)

    async def _list_pass(
        self, client: httpx.AsyncClient, bases: list[str], rounds: int = 4
    ) -> dict[str, float]:
        """Sequential LISTs of every resource type under each base path, in ms."""
        times: list[float] = []
        for _ in range(rounds):
            for base in bases:
                for t in self.types:
                    start = time.perf_counter()
                    resp = await client.get(base + t.path("default" if base else None))
                    times.append((time.perf_counter() - start) * 1000)
                    resp.raise_for_status()
        return percentiles(times)

    def _sample_projects(self, projects: int, count: int) -> list[str]:
        step = max(1, projects // count)
        return [_project(i) for i in range(0, projects, step)][:count]

    async def _measure(
        self, server: ServerProcess, etcd: EtcdProcess | None, mode: str, projects: int
    ) -> RunResult:
        # httpx serves the sampling, the LIST passes and the delivery probes only: the
        # bootstrap workers and the watches have their own connections (`rawhttp`).
        pool = 8
        limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
        clock = _CpuClock(server, etcd)
        date = time.strftime("%Y-%m-%d", time.gmtime())
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=120) as client:
            cpu_start = clock.read()
            before = await self._settled(client, etcd)
            list_before = await self._list_pass(client, [""])
            async with contextlib.AsyncExitStack() as stack:
                started = time.monotonic()
                cpu_boot = clock.read()
                sizes, watches = await self._bootstrap(server.url, stack, projects)
                bootstrap_seconds = time.monotonic() - started
                cpu_bootstrap = _CpuClock.since(cpu_boot, clock.read())
                after = await self._settled(client, etcd)
                list_after = await self._list_pass(client, [""])
                sampled = self._sample_projects(projects, self.project_list_samples)
                project_list = await self._list_pass(
                    client, [f"/projects/{p}/control-plane" for p in sampled]
                )
                delivery = await self._delivery(client, watches)
            cpu_total = _CpuClock.since(cpu_start, clock.read())
        result = RunResult(
            mode=mode,
            projects=projects,
            resources=len(self.types),
            backend="etcd" if etcd is not None or self.backend.startswith("etcd") else "sqlite",
            before=before,
            after=after,
            object_bytes_per_project=statistics.fmean(sizes) if sizes else 0.0,
            list_before_ms=list_before,
            list_after_ms=list_after,
            watch_delivery_ms=delivery,
            bootstrap_seconds=bootstrap_seconds,
            project_list_ms=project_list,
            cpu_bootstrap_s=cpu_bootstrap,
            cpu_total_s=cpu_total,
            date=date,
        )
        result.finish()
        return result

    async def _bootstrap(
        self,
        base_url: str,
        stack: contextlib.AsyncExitStack,
        projects: int,
    ) -> tuple[list[int], dict[str, WatchStream]]:
        """Bootstrap every project with `concurrency` workers, each on its own keep-alive
        connection and taking the next project in turn: at most `concurrency` projects
        are in flight, and no coroutine waits per project (N = 10,000 would otherwise
        mean 10,000 of them queued)."""
        sizes: list[int] = []
        watches: dict[str, WatchStream] = {}
        progress = _Progress(projects, self.progress)
        todo = iter(range(projects))

        async def one(conn: Connection, i: int) -> None:
            project = _project(i)
            base = f"/projects/{project}/control-plane"
            size = 0
            for path, body in (
                ("/api/v1/namespaces", _obj("Namespace", "default")),
                ("/api/v1/namespaces/default/configmaps", _obj("ConfigMap", "settings",
                 data={"mode": "bench", "project": project})),
                ("/api/v1/namespaces/default/serviceaccounts", _obj("ServiceAccount", "app")),
            ):  # fmt: skip
                size += len(await conn.request("POST", base + path, json_body=body))
            sizes.append(size)
            rv = ""
            for t in self.types:
                data = await conn.request("GET", base + t.path("default"))
                if t.plural == "configmaps":
                    rv = json.loads(data)["metadata"]["resourceVersion"]
            watch = await WatchStream.open(
                base_url,
                f"{base}/api/v1/namespaces/default/configmaps",
                # Past the server's default of 30 minutes: a long bootstrap must not see
                # its first watches end before the "after" sample.
                {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "86400"},
            )
            stack.push_async_callback(watch.close)
            watches[project] = watch
            progress.advance()

        async def worker() -> None:
            conn = Connection(base_url)
            try:
                for i in todo:
                    await one(conn, i)
            finally:
                await conn.close()

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.concurrency, projects)):
                    group.create_task(worker())
        finally:
            progress.close()
        return sizes, watches

    async def _delivery(
        self, client: httpx.AsyncClient, watches: dict[str, WatchStream], samples: int = 20
    ) -> dict[str, float]:
        """Write a ConfigMap in a project and time its arrival on that project's watch."""
        times: list[float] = []
        projects = sorted(watches)
        step = max(1, len(projects) // samples)
        for project in projects[::step][:samples]:
            name = f"probe-{uuid.uuid4().hex[:8]}"
            url = f"/projects/{project}/control-plane/api/v1/namespaces/default/configmaps"
            start = time.perf_counter()
            resp = await client.post(url, json=_obj("ConfigMap", name))
            resp.raise_for_status()
            async with asyncio.timeout(30):
                async for event in watches[project].events():
                    if event["object"].get("metadata", {}).get("name") == name:
                        break
            times.append((time.perf_counter() - start) * 1000)
        return percentiles(times)


def _project(i: int) -> str:
    return f"p{i:05d}"


def _obj(kind: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, **extra}


class _Progress:
    """A rich progress bar for the bootstrap (quiet when not wanted)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar: Any = None
        if enabled:
            from rich.progress import Progress

            self._bar = Progress(transient=True)
            self._bar.start()
            self._task = self._bar.add_task("bootstrapping projects", total=total)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


# -- reporting -----------------------------------------------------------------------------
TARGET_OBJECT_FACTOR = 2.0
TARGET_SLACK_BYTES = 8 * 1024
TARGET_MEMORY_RATIO = 20.0
# Growing N from `SCALE_BASE_N` to a larger N in the shared mode (issue 16):
TARGET_SCALE_MEMORY = 1.10  # heap and RSS per project within 10%
TARGET_SCALE_LIST = 1.5  # a project's LIST p50 and p99 within 1.5x
SCALE_BASE_N = 1000


def heap_budget(shared: RunResult) -> float:
    """The heap a shared-mode project may cost: twice its objects' JSON plus 8 KiB for
    its open watch (9.4 KiB for the harness's three objects of about 700 bytes)."""
    return TARGET_OBJECT_FACTOR * shared.object_bytes_per_project + TARGET_SLACK_BYTES


def check_targets(shared: RunResult, per_project: RunResult | None) -> list[tuple[str, bool, str]]:
    """The issue's targets for the shared mode, each (what, met, measured)."""
    pp = shared.per_project
    budget = heap_budget(shared)
    out = [
        ("0 backend watches per project", pp["backend_watches"] <= 0,
         f"{pp['backend_watches']:.3f}"),
        ("0 threads per project", pp["threads"] <= 0, f"{pp['threads']:.3f}"),
        ("<= 1 asyncio task per open watch", pp["tasks"] <= 1.0, f"{pp['tasks']:.3f}"),
        (f"heap/project <= 2 x object bytes + 8 KiB ({budget / 1024:.1f} KiB)",
         pp["heap_bytes"] <= budget, f"{pp['heap_bytes'] / 1024:.1f} KiB"),
    ]  # fmt: skip
    harness, server = shared.cpu_bootstrap_s.get("harness"), shared.cpu_bootstrap_s.get("server")
    if harness is not None and server is not None:
        out.append(
            ("harness CPU <= server CPU over the bootstrap", harness <= server,
             f"harness {harness:.1f} s, server {server:.1f} s")
        )  # fmt: skip
    if per_project is not None:
        ratio = _ratio(per_project.per_project["heap_bytes"], pp["heap_bytes"])
        out.append(
            ("per-project mode uses >= 20x more heap per project", ratio >= TARGET_MEMORY_RATIO,
             f"{ratio:.1f}x")
        )  # fmt: skip
    return out


def check_scaling(base: RunResult, large: RunResult) -> list[tuple[str, bool, str]]:
    """Shared mode from N = `base.projects` to `large.projects`: per-project memory and a
    project's LIST latency must stay flat, each (what, met, measured)."""
    tag = f"N={large.projects:,} / N={base.projects:,}"
    out = []
    for key, what in (("heap_bytes", "heap/project"), ("rss_bytes", "RSS/project")):
        ratio = _ratio(large.per_project[key], base.per_project[key])
        out.append((f"{what} {tag} <= {TARGET_SCALE_MEMORY:.2f}", ratio <= TARGET_SCALE_MEMORY,
                    f"{ratio:.2f}x"))  # fmt: skip
    for q in ("p50", "p99"):
        a, b = large.project_list_ms.get(q), base.project_list_ms.get(q)
        if a is None or b is None:
            continue
        ratio = _ratio(a, b)
        out.append(
            (
                f"project LIST {q} {tag} <= {TARGET_SCALE_LIST}x",
                ratio <= TARGET_SCALE_LIST,
                f"{ratio:.2f}x ({b:.1f} -> {a:.1f} ms)",
            )
        )
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf") if a > 0 else 1.0


def _kib(v: float) -> str:
    return f"{v / 1024:.1f} KiB"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _cpu(r: RunResult, key: str) -> str:
    cpu = r.cpu_bootstrap_s
    if key not in cpu:
        return "-"
    return f"{cpu[key]:.0f} s"


_ROWS: list[tuple[str, Callable[[RunResult], str]]] = [
    ("Python heap", lambda r: _kib(r.per_project["heap_bytes"])),
    ("RSS", lambda r: _kib(r.per_project["rss_bytes"])),
    ("asyncio tasks", lambda r: f"{r.per_project['tasks']:.2f}"),
    ("threads", lambda r: f"{r.per_project['threads']:.2f}"),
    ("backend watches", lambda r: f"{r.per_project['backend_watches']:.2f}"),
    ("object bytes held", lambda r: f"{r.object_bytes_per_project:.0f} B"),
    ("project LIST p50/p99 ms", lambda r: f"{_ms(r.project_list_ms.get('p50'))}/"
     f"{_ms(r.project_list_ms.get('p99'))}"),
    ("root LIST p50/p99 ms", lambda r: f"{_ms(r.list_after_ms.get('p50'))}/"
     f"{_ms(r.list_after_ms.get('p99'))}"),
    ("write -> watch p50 ms", lambda r: _ms(r.watch_delivery_ms.get("p50"))),
    ("bootstrap time", lambda r: f"{r.bootstrap_seconds:.0f} s"),
    ("bootstrap CPU: harness", lambda r: _cpu(r, "harness")),
    ("bootstrap CPU: server", lambda r: _cpu(r, "server")),
    ("bootstrap CPU: etcd", lambda r: _cpu(r, "etcd")),
]  # fmt: skip


def _comparisons(results: list[RunResult]) -> list[tuple[str, RunResult, RunResult]]:
    """The ratios worth a column, each named by the two runs it divides.

    Per-project over shared at each N both modes ran; and the shared mode at every larger
    N over N = `SCALE_BASE_N` (or the smallest shared N), for the scaling targets.
    """
    by_n: dict[int, dict[str, RunResult]] = {}
    for r in results:
        by_n.setdefault(r.projects, {})[r.mode] = r
    out = []
    for n, d in sorted(by_n.items()):
        if len(d) == 2:
            out.append((f"per-project / shared\nN={n:,}", d["per-project"], d["shared"]))
    shared = sorted((r for r in results if r.mode == "shared"), key=lambda r: r.projects)
    base = next((r for r in shared if r.projects == SCALE_BASE_N), shared[0] if shared else None)
    if base is not None:
        for r in shared:
            if r.projects > base.projects:
                out.append((f"shared N={r.projects:,}\n/ N={base.projects:,}", r, base))
    return out


_RATIO_ROWS: list[tuple[str, Callable[[RunResult], float | None]]] = [
    ("Python heap", lambda r: r.per_project["heap_bytes"]),
    ("RSS", lambda r: r.per_project["rss_bytes"]),
    ("asyncio tasks", lambda r: r.per_project["tasks"]),
    ("project LIST p50", lambda r: r.project_list_ms.get("p50")),
    ("project LIST p99", lambda r: r.project_list_ms.get("p99")),
]


def render(results: list[RunResult], skipped: list[Skipped] | None = None) -> str:
    """Two narrow tables, readable at four N values and both modes: the per-project
    costs (one column per run), then the ratios, each column naming the runs it divides.
    Then the targets, met or missed. Printed as it goes; returns the text for a file."""
    from rich.console import Console
    from rich.table import Table

    results = sorted(results, key=lambda r: (r.projects, r.mode != "shared"))
    console = Console(record=True, width=200)
    if results:
        first = results[0]
        console.print(f"tenantstore scale harness: {first.backend}, {first.resources} resource "
                      f"types, {first.date or 'undated'}")  # fmt: skip
        table = Table(title="cost per project, (after - before) / N")
        table.add_column("per project")
        for r in results:
            table.add_column(f"{r.mode}\nN={r.projects:,}", justify="right")
        for name, cell in _ROWS:
            table.add_row(name, *(cell(r) for r in results))
        console.print(table)
    comparisons = _comparisons(results)
    if comparisons:
        ratios = Table(title="ratios (each column names the two runs it divides)")
        ratios.add_column("ratio of")
        for label, _, _ in comparisons:
            ratios.add_column(label, justify="right")
        for name, get in _RATIO_ROWS:
            cells = []
            for _, a, b in comparisons:
                va, vb = get(a), get(b)
                cells.append("-" if va is None or vb is None else f"{_ratio(va, vb):.2f}x")
            ratios.add_row(name, *cells)
        console.print(ratios)
    for s in skipped or []:
        console.print(f"skipped: {s.mode} N={s.projects:,}: {s.reason}")
    by_n: dict[int, dict[str, RunResult]] = {}
    for r in results:
        by_n.setdefault(r.projects, {})[r.mode] = r
    lines: list[tuple[str, bool, str]] = []
    for n, d in sorted(by_n.items()):
        if "shared" in d:
            lines += [
                (f"N={n:,}: {what}", met, measured)
                for what, met, measured in check_targets(d["shared"], d.get("per-project"))
            ]
    for _, large, base in comparisons:
        if large.mode == base.mode == "shared":
            lines += check_scaling(base, large)
    for what, met, measured in lines:
        mark = "[green]met [/]" if met else "[red]MISS[/]"
        console.print(f"{mark} {what}: {measured}")
    return console.export_text()


def plot(results: list[RunResult], out: Path, skipped: list[Skipped] | None = None) -> list[Path]:
    """Per-project costs against N, one line per mode, with the targets as lines and the
    skipped runs marked on the axis (a missing point must not read as a flat line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    skipped = skipped or []
    shared = sorted((r for r in results if r.mode == "shared"), key=lambda r: r.projects)
    base = next((r for r in shared if r.projects == SCALE_BASE_N), None)
    backends = sorted({r.backend for r in results})
    resources = sorted({r.resources for r in results})
    dates = sorted({r.date for r in results if r.date})
    title_tail = (
        f"{', '.join(backends)}, {'/'.join(map(str, resources))} resource types, "
        f"{' to '.join(dict.fromkeys([dates[0], dates[-1]])) if dates else 'undated'}"
    )
    colors = {"shared": "tab:blue", "per-project": "tab:orange"}

    largest = max((r.projects for r in results), default=0)

    def targets(key: str) -> list[tuple[float, str, bool]]:
        """(value, label, from N = 1,000 on only) for each target line of a plot."""
        lines: list[tuple[float, str, bool]] = []
        if key == "heap_bytes" and base is not None:
            budget = heap_budget(base) / 1024
            lines.append((budget, f"target at N={SCALE_BASE_N:,}: <= {budget:.1f} KiB", False))
        if key in ("heap_bytes", "rss_bytes") and base is not None and largest > base.projects:
            v = base.per_project[key] * TARGET_SCALE_MEMORY / 1024
            lines.append((v, f"target above N={SCALE_BASE_N:,}: <= 1.10 x N={SCALE_BASE_N:,}",
                          True))  # fmt: skip
        if key == "backend_watches":
            lines.append((0.0, "target (shared): 0", False))
        if key == "tasks":
            lines.append((1.0, "target (shared): <= 1", False))
        return lines

    paths = []
    for key, label, scale in (
        ("heap_bytes", "Python heap per project (KiB)", 1 / 1024),
        ("rss_bytes", "RSS per project (KiB)", 1 / 1024),
        ("backend_watches", "backend watches per project", 1.0),
        ("tasks", "asyncio tasks per project", 1.0),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for mode in ("shared", "per-project"):
            runs = sorted((r for r in results if r.mode == mode), key=lambda r: r.projects)
            if runs:
                ax.plot([r.projects for r in runs], [r.per_project[key] * scale for r in runs],
                        marker="o", label=mode, color=colors[mode])  # fmt: skip
        for i, (value, text, above_base) in enumerate(targets(key)):
            color = ("tab:green", "tab:red")[i % 2]
            if above_base:
                ax.hlines(value, SCALE_BASE_N, largest, linestyles="--", colors=color,
                          linewidth=1, label=text)  # fmt: skip
            else:
                ax.axhline(value, linestyle="--", color=color, linewidth=1, label=text)
        for n, s in enumerate(skipped):
            ax.plot([s.projects], [0], marker="x", markersize=10, linestyle="none",
                    color=colors.get(s.mode, "grey"), clip_on=False,
                    label=f"skipped: {s.mode} N={s.projects:,}" if n < 4 else None)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("projects (N)")
        ax.set_ylabel(label)
        # Head room above the highest point or target line, so neither sits on the frame.
        top = max([r.per_project[key] * scale for r in results]
                  + [value for value, _, _ in targets(key)] + [0.0])  # fmt: skip
        ax.set_ylim(0, top * 1.2 if top > 0 else 1.0)
        ax.set_title(f"{label}\n{title_tail}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"scale-{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


async def run_series(
    harness: Harness,
    modes: list[str],
    series: list[int],
    *,
    per_project_max: int | None = None,
    on_result: Callable[[RunResult], None] | None = None,
    keep_going: bool = False,
    skipped: list[Skipped] | None = None,
) -> list[RunResult]:
    """Every (N, mode) run in turn. `per_project_max` skips per-project runs above that N
    (the per-project architecture needs a backend watch per project and resource);
    with `keep_going`, a run that fails is reported and the series goes on. Runs not
    measured are appended to `skipped`, with the reason."""
    results = []
    for n in series:
        for mode in modes:
            if mode == "per-project" and per_project_max is not None and n > per_project_max:
                if skipped is not None:
                    skipped.append(Skipped(mode, n, f"above --per-project-max {per_project_max}"))
                continue
            try:
                result = await harness.run(mode, n)
            except Exception as exc:
                if not keep_going:
                    raise
                print(f"run {mode} N={n} failed: {type(exc).__name__}: {exc}", flush=True)
                if skipped is not None:
                    skipped.append(Skipped(mode, n, f"failed: {type(exc).__name__}: {exc}"))
                continue
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


# What `main` returns when a signal stopped the run: 128 + the signal, as a shell does.
EXIT_SIGNAL = 128


async def _run_until_signalled(
    run: Callable[[], Coroutine[Any, Any, list[RunResult]]],
) -> tuple[list[RunResult] | None, int | None]:
    """Run the series; on SIGTERM or SIGINT cancel it, so that every `finally` on the
    way out stops its child (server, etcd) before the harness exits. Returns the results,
    or `None` and the signal that stopped the run."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(run())
    received: list[int] = []

    def stop(signum: int) -> None:
        if not received:
            print(f"\nstopping on {signal.Signals(signum).name}: ending the run's children",
                  file=sys.stderr, flush=True)  # fmt: skip
        received.append(signum)
        task.cancel()

    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop, signum)
            installed.append(signum)
    try:
        return await task, None
    except asyncio.CancelledError:
        if received:
            return None, received[0]
        raise
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def replot(sources: list[Path], out: Path | None) -> int:
    """The table and plots of saved runs, so that the committed plots can be redrawn
    from exactly the run whose figures BENCHMARKS.md quotes."""
    results: list[RunResult] = []
    skipped: list[Skipped] = []
    for source in sources:
        more, more_skipped = load_results(source)
        results += more
        skipped += more_skipped
    if not results:
        return 1
    text = render(results, skipped)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "scale.txt").write_text(text)
        for p in plot(results, out, skipped):
            print(f"wrote {p}")
    return 0


def main(args: Any) -> int:
    if getattr(args, "plot_from", None):
        sources = [Path(x) for x in str(args.plot_from).split(",")]
        return replot(sources, Path(args.out) if args.out else None)
    modes = ["shared", "per-project"] if args.mode == "both" else [args.mode]
    series = [int(x) for x in str(args.projects).split(",")]
    harness = Harness(
        resources=args.resources,
        backend=args.backend,
        concurrency=args.concurrency,
        settle_interval=args.settle_interval,
        progress=not args.quiet,
    )
    out = Path(args.out) if args.out else None
    done: list[RunResult] = []
    skipped: list[Skipped] = []

    def save(result: RunResult | None = None) -> None:
        if result is not None:
            done.append(result)
            heap = result.per_project["heap_bytes"] / 1024
            cpu = ", ".join(f"{k} {v:.0f} s" for k, v in result.cpu_bootstrap_s.items())
            print(
                f"done: {result.mode} N={result.projects}, heap/project {heap:.1f} KiB, "
                f"bootstrap {result.bootstrap_seconds:.0f} s (CPU: {cpu})",
                flush=True,
            )
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            doc = {"results": [asdict(r) for r in done], "skipped": [asdict(s) for s in skipped]}
            (out / "scale.json").write_text(json.dumps(doc, indent=2))

    def series_run() -> Coroutine[Any, Any, list[RunResult]]:
        return run_series(
            harness,
            modes,
            series,
            per_project_max=args.per_project_max,
            on_result=save,
            keep_going=True,
            skipped=skipped,
        )

    try:
        results, signum = asyncio.run(_run_until_signalled(series_run))
    finally:
        stop_all()
    if signum is not None:
        save()
        return EXIT_SIGNAL + signum
    if not results:
        return 1
    save()
    text = render(results, skipped)
    if out is not None:
        (out / "scale.txt").write_text(text)
        for p in plot(results, out, skipped):
            print(f"wrote {p}")
    return 0


def load_results(path: Path) -> tuple[list[RunResult], list[Skipped]]:
    """Results and skipped runs from a `scale.json` (a bare list in older files)."""
    doc = json.loads(path.read_text())
    if isinstance(doc, list):
        doc = {"results": doc, "skipped": []}
    results = [RunResult.from_json(r) for r in doc["results"]]
    for r in results:
        if not r.per_project:
            r.finish()
    return results, [Skipped(**s) for s in doc.get("skipped", [])]
