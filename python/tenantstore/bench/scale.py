"""The scale harness: what one more project costs the server, shared vs per-project.

Modelled on milo's harness (PR #615): start the server alone in its process, measure,
bootstrap N projects (a few objects each, a LIST of every resource type in each
project's control plane, one WATCH held open per project), wait until the server's
thread and task counts settle, measure again, and report (after - before) / N. Unlike
the reference it also reports asyncio tasks and open backend watches per project, LIST
latency before and after, and how long a write takes to reach its watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .metrics_scrape import parse, scrape
from .processes import EtcdProcess, ServerProcess, raise_fd_limit

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


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)

    def pick(q: float) -> float:
        return values[min(len(values) - 1, round(q * (len(values) - 1)))]

    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": values[-1],
            "n": float(len(values))}  # fmt: skip


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
        self.workdir = workdir
        self.progress = progress

    # -- one run --------------------------------------------------------------------
    async def run(self, mode: str, projects: int) -> RunResult:
        raise_fd_limit()
        with tempfile.TemporaryDirectory(prefix="tenantstore-scale-", dir=self.workdir) as tmp:
            tmpdir = Path(tmp)
            registry = tmpdir / "resources.json"
            write_registry(registry, self.types[len(BUILTINS) :])
            etcd: EtcdProcess | None = None
            if self.backend == "etcd":
                etcd = EtcdProcess(tmpdir)
                await etcd.start()
                backend_url = f"etcd://{etcd.endpoint}"
            elif self.backend.startswith("etcd://"):
                backend_url = self.backend
            elif self.backend == "sqlite":
                backend_url = f"sqlite:///{tmpdir / 'scale.db'}"
            else:
                backend_url = self.backend
            server = ServerProcess(backend_url, mode, registry, tmpdir / "server.log")
            try:
                await server.start()
                return await self._measure(server, etcd, mode, projects)
            except BaseException:
                log = (tmpdir / "server.log").read_text(errors="replace")[-3000:]
                print(f"--- server log tail ---\n{log}")
                raise
            finally:
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

    async def _list_pass(self, client: httpx.AsyncClient, rounds: int = 4) -> dict[str, float]:
        """Sequential LISTs of every resource type in the root scope, in ms."""
        times: list[float] = []
        for _ in range(rounds):
            for t in self.types:
                start = time.perf_counter()
                resp = await client.get(t.path())
                times.append((time.perf_counter() - start) * 1000)
                resp.raise_for_status()
        return percentiles(times)

    async def _measure(
        self, server: ServerProcess, etcd: EtcdProcess | None, mode: str, projects: int
    ) -> RunResult:
        limits = httpx.Limits(max_connections=projects + self.concurrency + 16)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=120) as client:
            before = await self._settled(client, etcd)
            list_before = await self._list_pass(client)
            async with contextlib.AsyncExitStack() as stack:
                started = time.monotonic()
                sizes, watches = await self._bootstrap(client, stack, projects)
                bootstrap_seconds = time.monotonic() - started
                after = await self._settled(client, etcd)
                list_after = await self._list_pass(client)
                delivery = await self._delivery(client, watches)
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
        )
        result.finish()
        return result

    async def _bootstrap(
        self, client: httpx.AsyncClient, stack: contextlib.AsyncExitStack, projects: int
    ) -> tuple[list[int], dict[str, AsyncIterator[str]]]:
        sem = asyncio.Semaphore(self.concurrency)
        sizes: list[int] = []
        watches: dict[str, AsyncIterator[str]] = {}
        progress = _Progress(projects, self.progress)

        async def one(i: int) -> None:
            project = f"p{i:05d}"
            base = f"/projects/{project}/control-plane"
            async with sem:
                size = 0
                for path, body in (
                    ("/api/v1/namespaces", _obj("Namespace", "default")),
                    ("/api/v1/namespaces/default/configmaps", _obj("ConfigMap", "settings",
                     data={"mode": "bench", "project": project})),
                    ("/api/v1/namespaces/default/serviceaccounts", _obj("ServiceAccount", "app")),
                ):  # fmt: skip
                    resp = await client.post(base + path, json=body)
                    resp.raise_for_status()
                    size += len(resp.content)
                sizes.append(size)
                rv = ""
                for t in self.types:
                    resp = await client.get(base + t.path("default"))
                    resp.raise_for_status()
                    if t.plural == "configmaps":
                        rv = resp.json()["metadata"]["resourceVersion"]
                url = f"{base}/api/v1/namespaces/default/configmaps"
                resp = await stack.enter_async_context(
                    client.stream("GET", url, params={"watch": "1", "resourceVersion": rv})
                )
                resp.raise_for_status()
                watches[project] = resp.aiter_lines()
            progress.advance()

        try:
            await asyncio.gather(*(one(i) for i in range(projects)))
        finally:
            progress.close()
        return sizes, watches

    async def _delivery(
        self, client: httpx.AsyncClient, watches: dict[str, AsyncIterator[str]], samples: int = 20
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
            lines = watches[project]
            async with asyncio.timeout(30):
                async for line in lines:
                    event = json.loads(line)
                    if event["object"].get("metadata", {}).get("name") == name:
                        break
            times.append((time.perf_counter() - start) * 1000)
        return percentiles(times)


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


def check_targets(shared: RunResult, per_project: RunResult | None) -> list[tuple[str, bool, str]]:
    """The issue's targets for the shared mode, each (what, met, measured)."""
    pp = shared.per_project
    heap_budget = TARGET_OBJECT_FACTOR * shared.object_bytes_per_project + TARGET_SLACK_BYTES
    out = [
        ("0 backend watches per project", pp["backend_watches"] <= 0,
         f"{pp['backend_watches']:.3f}"),
        ("0 threads per project", pp["threads"] <= 0, f"{pp['threads']:.3f}"),
        ("<= 1 asyncio task per open watch", pp["tasks"] <= 1.0, f"{pp['tasks']:.3f}"),
        (f"heap/project <= 2 x object bytes + 8 KiB ({heap_budget / 1024:.1f} KiB)",
         pp["heap_bytes"] <= heap_budget, f"{pp['heap_bytes'] / 1024:.1f} KiB"),
    ]  # fmt: skip
    if per_project is not None:
        ratio = _ratio(per_project.per_project["heap_bytes"], pp["heap_bytes"])
        out.append(
            ("per-project mode uses >= 20x more heap per project", ratio >= TARGET_MEMORY_RATIO,
             f"{ratio:.1f}x")
        )  # fmt: skip
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf") if a > 0 else 1.0


def render(results: list[RunResult]) -> str:
    """One table: per-project costs for each run, with the ratio when both modes ran."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="tenantstore scale harness: cost per project, (after - before) / N")
    table.add_column("metric")
    for r in results:
        table.add_column(f"{r.mode}\nN={r.projects}, {r.backend}", justify="right")
    by_n: dict[int, dict[str, RunResult]] = {}
    for r in results:
        by_n.setdefault(r.projects, {})[r.mode] = r
    pairs = [(d["per-project"], d["shared"]) for d in by_n.values() if len(d) == 2]
    for _ in pairs:
        table.add_column("per-project / shared", justify="right")
    rows: list[tuple[str, Callable[[RunResult], float], Callable[[float], str]]] = [
        ("Python heap", lambda r: r.per_project["heap_bytes"], lambda v: f"{v / 1024:.1f} KiB"),
        ("RSS", lambda r: r.per_project["rss_bytes"], lambda v: f"{v / 1024:.1f} KiB"),
        ("threads", lambda r: r.per_project["threads"], lambda v: f"{v:.2f}"),
        ("asyncio tasks", lambda r: r.per_project["tasks"], lambda v: f"{v:.2f}"),
        ("backend watches", lambda r: r.per_project["backend_watches"], lambda v: f"{v:.2f}"),
        ("object bytes held", lambda r: r.object_bytes_per_project, lambda v: f"{v:.0f} B"),
        ("LIST p50 before", lambda r: r.list_before_ms.get("p50", 0), lambda v: f"{v:.2f} ms"),
        ("LIST p50 after", lambda r: r.list_after_ms.get("p50", 0), lambda v: f"{v:.2f} ms"),
        ("LIST p99 after", lambda r: r.list_after_ms.get("p99", 0), lambda v: f"{v:.2f} ms"),
        ("write -> watch p50", lambda r: r.watch_delivery_ms.get("p50", 0),
         lambda v: f"{v:.2f} ms"),
        ("bootstrap time", lambda r: r.bootstrap_seconds, lambda v: f"{v:.1f} s"),
    ]  # fmt: skip
    for name, get, fmt in rows:
        cells = [fmt(get(r)) for r in results]
        cells += [f"{_ratio(get(a), get(b)):.1f}x" for a, b in pairs]
        table.add_row(name, *cells)
    console = Console(record=True, width=160)
    console.print(table)
    for n, d in sorted(by_n.items()):
        if "shared" in d:
            for what, met, measured in check_targets(d["shared"], d.get("per-project")):
                console.print(f"N={n}: [{'green' if met else 'red'}]{'met ' if met else 'MISS'}"
                              f"[/] {what}: {measured}")  # fmt: skip
    return console.export_text()


def plot(results: list[RunResult], out: Path) -> list[Path]:
    """Per-project heap and backend watches against N, one line per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for key, label, scale in (
        ("heap_bytes", "Python heap per project (KiB)", 1 / 1024),
        ("rss_bytes", "RSS per project (KiB)", 1 / 1024),
        ("backend_watches", "backend watches per project", 1.0),
        ("tasks", "asyncio tasks per project", 1.0),
    ):
        fig, ax = plt.subplots(figsize=(6, 4))
        for mode in ("shared", "per-project"):
            runs = sorted((r for r in results if r.mode == mode), key=lambda r: r.projects)
            if runs:
                ax.plot([r.projects for r in runs], [r.per_project[key] * scale for r in runs],
                        marker="o", label=mode)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("projects (N)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
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
) -> list[RunResult]:
    """Every (N, mode) run in turn. `per_project_max` skips per-project runs above that N
    (the per-project architecture needs a backend watch per project and resource);
    with `keep_going`, a run that fails is reported and the series goes on."""
    results = []
    for n in series:
        for mode in modes:
            if mode == "per-project" and per_project_max is not None and n > per_project_max:
                continue
            try:
                result = await harness.run(mode, n)
            except Exception as exc:
                if not keep_going:
                    raise
                print(f"run {mode} N={n} failed: {type(exc).__name__}: {exc}", flush=True)
                continue
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


def main(args: Any) -> int:
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

    def save(result: RunResult) -> None:
        done.append(result)
        heap = result.per_project["heap_bytes"] / 1024
        print(f"done: {result.mode} N={result.projects}, heap/project {heap:.1f} KiB", flush=True)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "scale.json").write_text(json.dumps([asdict(r) for r in done], indent=2))

    results = asyncio.run(
        run_series(
            harness,
            modes,
            series,
            per_project_max=args.per_project_max,
            on_result=save,
            keep_going=True,
        )
    )
    if not results:
        return 1
    text = render(results)
    if out is not None:
        (out / "scale.txt").write_text(text)
        for p in plot(results, out):
            print(f"wrote {p}")
    return 0
