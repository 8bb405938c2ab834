"""The scale harness itself, in small (N = 20 projects, R = 5 custom resources).

It starts the real server in a child process (and, on the etcd backend, its own etcd),
so this checks the whole measurement path; the figures themselves live in
BENCHMARKS.md. What must hold even at this size: the shared mode opens no backend watch
and no thread per project, and at most one asyncio task per open watch; the per-project
mode, for contrast, opens backend watches per project. And the harness must clean up
after itself: a SIGTERM or Ctrl-C leaves no etcd or server behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from tenantstore.bench.processes import ServerProcess
from tenantstore.bench.rawhttp import Connection, HTTPStatusError, WatchStream
from tenantstore.bench.scale import (
    Harness,
    RunResult,
    Sample,
    Skipped,
    check_scaling,
    check_targets,
    load_results,
    plot,
    render,
    run_series,
    write_registry,
)


@pytest.mark.parametrize("backend", ["etcd", "sqlite"])
async def test_scale_harness_small(backend: str, tmp_path: Path) -> None:
    harness = Harness(
        resources=5,
        backend=backend,
        settle_interval=0.3,
        settle_timeout=30,
        project_list_samples=4,
        progress=False,
    )
    skipped: list[Skipped] = []
    results = await run_series(
        harness, ["shared", "per-project"], [10, 20], per_project_max=10, skipped=skipped
    )
    shared, per_project, shared20 = results
    assert (shared.mode, per_project.mode, shared20.mode) == ("shared", "per-project", "shared")
    assert shared.projects == 10 and shared20.projects == 20 and shared.resources == 10
    assert skipped == [Skipped("per-project", 20, "above --per-project-max 10")]

    # The shared mode: nothing per project but the open watch's own request task.
    assert shared.per_project["backend_watches"] == 0
    assert shared.per_project["threads"] == 0
    assert shared.per_project["tasks"] <= 1.0
    # The per-project mode builds a cache (and a backend watch) per project and resource.
    assert per_project.per_project["backend_watches"] >= 5
    assert per_project.per_project["tasks"] > shared.per_project["tasks"]
    # The harness measured what it claims to.
    assert shared.after.heap_bytes > shared.before.heap_bytes > 0
    assert shared.object_bytes_per_project > 0
    assert shared.watch_delivery_ms["n"] == 10
    assert shared.list_after_ms["n"] == 40
    assert shared.project_list_ms["n"] == 4 * 4 * 10  # rounds x projects x types
    # CPU of every process of the run, its own included.
    expected = {"harness", "server"} | ({"etcd"} if backend == "etcd" else set())
    assert set(shared.cpu_bootstrap_s) == expected
    assert all(v > 0 for v in shared.cpu_total_s.values())
    assert shared.cpu_total_s["server"] >= shared.cpu_bootstrap_s["server"]
    assert shared.date and shared.fd_limit is not None and shared.fd_limit > 20

    targets = {what: met for what, met, _ in check_targets(shared, per_project)}
    assert targets["0 backend watches per project"]
    assert targets["0 threads per project"]
    assert "harness CPU <= server CPU over the bootstrap" in targets
    text = render(results, skipped)
    assert "N=20" in text and "skipped: per-project N=20" in text
    pngs = plot(results, tmp_path, skipped)
    assert all(p.stat().st_size > 0 for p in pngs)
    json.dumps([asdict(r) for r in results])


def _run(mode: str, n: int, heap: float, rss: float, p50: float, p99: float) -> RunResult:
    before = Sample(heap_bytes=1e6, rss_bytes=1e7, threads=3, tasks=5, backend_watches=10)
    after = replace(before, heap_bytes=1e6 + heap * n, rss_bytes=1e7 + rss * n, tasks=5 + n)
    r = RunResult(
        mode=mode,
        projects=n,
        resources=10,
        backend="sqlite",
        before=before,
        after=after,
        object_bytes_per_project=700,
        list_before_ms={},
        list_after_ms={"p50": 1.0, "p99": 2.0},
        watch_delivery_ms={"p50": 3.0},
        bootstrap_seconds=10,
        project_list_ms={"p50": p50, "p99": p99},
        cpu_bootstrap_s={"harness": 1.0, "server": 4.0},
        date="2026-11-30",
    )
    r.finish()
    return r


def test_scaling_targets_compare_per_project_costs_and_project_lists() -> None:
    base = _run("shared", 1000, heap=9000, rss=20000, p50=2.0, p99=4.0)
    flat = _run("shared", 10000, heap=9500, rss=21000, p50=2.5, p99=5.9)
    grown = _run("shared", 10000, heap=10000, rss=20000, p50=3.1, p99=4.0)
    assert all(met for _, met, _ in check_scaling(base, flat))
    missed = {what for what, met, _ in check_scaling(base, grown) if not met}
    assert missed == {
        "heap/project N=10,000 / N=1,000 <= 1.10",
        "project LIST p50 N=10,000 / N=1,000 <= 1.5x",
    }


def test_table_and_plots_at_four_n_values(tmp_path: Path) -> None:
    """Four N values, both modes up to N = 300: every ratio column says which runs it
    divides, and the skipped runs are listed and drawn."""
    results = [
        _run(mode, n, heap=9000 if mode == "shared" else 390_000, rss=20000, p50=2, p99=4)
        for n in (100, 300, 1000, 10000)
        for mode in ("shared", "per-project")
        if mode == "shared" or n <= 300
    ]
    skipped = [Skipped("per-project", n, "above --per-project-max 300") for n in (1000, 10000)]
    text = render(results, skipped)
    assert "sqlite, 10 resource types, 2026-11-30" in text
    for label in ("N=100", "N=300", "N=1,000", "N=10,000", "/ N=1,000"):
        assert label in text
    assert "met  N=1,000: heap/project <= 2 x object bytes + 8 KiB (9.4 KiB)" in text
    assert "skipped: per-project N=10,000" in text
    assert max(len(line) for line in text.splitlines()) <= 200

    (tmp_path / "scale.json").write_text(
        json.dumps(
            {"results": [asdict(r) for r in results], "skipped": [asdict(s) for s in skipped]}
        )
    )
    loaded, loaded_skipped = load_results(tmp_path / "scale.json")
    assert loaded == results and loaded_skipped == skipped
    pngs = plot(loaded, tmp_path, loaded_skipped)
    assert [p.name for p in pngs] == [
        "scale-heap_bytes.png",
        "scale-rss_bytes.png",
        "scale-backend_watches.png",
        "scale-tasks.png",
    ]


def test_older_result_files_still_load(tmp_path: Path) -> None:
    """Results of earlier runs are a bare list without the newer fields."""
    old = asdict(_run("shared", 100, heap=9000, rss=20000, p50=2, p99=4))
    for newer in ("project_list_ms", "cpu_bootstrap_s", "cpu_total_s", "fd_limit", "date"):
        del old[newer]
    (tmp_path / "scale.json").write_text(json.dumps([old]))
    results, skipped = load_results(tmp_path / "scale.json")
    assert skipped == [] and len(results) == 1
    assert results[0].project_list_ms == {} and results[0].per_project["heap_bytes"] == 9000
    assert "N=100" in render(results)


async def test_raw_client_requests_and_watches(tmp_path: Path) -> None:
    """The harness's minimal client: a keep-alive connection carries several requests,
    watch events arrive decoded, and a refused request or watch is an `HTTPStatusError`
    carrying the server's status, not a hang or a parse error."""
    registry = tmp_path / "resources.json"
    write_registry(registry, [])
    server = ServerProcess(
        f"sqlite:///{tmp_path / 'w.db'}", "shared", registry, tmp_path / "server.log"
    )
    await server.start()
    conn = Connection(server.url)
    try:
        path = "/projects/p1/control-plane/api/v1/namespaces/default/configmaps"
        with pytest.raises(HTTPStatusError) as refused:
            await WatchStream.open(server.url, path, {"watch": "1", "resourceVersion": "x"})
        assert refused.value.status == 400
        with pytest.raises(HTTPStatusError) as missing:
            await conn.request("GET", path + "/nothing")
        assert missing.value.status == 404
        assert (await conn.get_json(path))["items"] == []
        watch = await WatchStream.open(server.url, path, {"watch": "1"})
        try:
            for name in ("a", "b"):
                body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
                created = json.loads(await conn.request("POST", path, json_body=body))
                assert created["metadata"]["name"] == name
            # Stop after the first event, then go on: the second is not lost.
            names = []
            for _ in range(2):
                async for event in watch.events():
                    assert event["type"] == "ADDED"
                    names.append(event["object"]["metadata"]["name"])
                    break
            assert names == ["a", "b"]
        finally:
            await watch.close()
    finally:
        await conn.close()
        server.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timeout(180)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_children(signum: signal.Signals, tmp_path: Path) -> None:
    """`tenantstore bench scale` told to stop (SIGTERM, or Ctrl-C's SIGINT, sent to the
    harness alone) stops its etcd and its server before it exits."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tenantstore.cli", "bench", "scale", "--projects", "500",
         "--resources", "1", "--mode", "shared", "--backend", "etcd", "--quiet",
         "--settle-interval", "0.2", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )  # fmt: skip
    pids: dict[str, int] = {}
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            if line.startswith("started "):
                what = line.split()[1]
                pids[what] = int(line.rsplit("pid ", 1)[1].rstrip(")\n"))
            if "tenantstore" in pids:
                break
        assert set(pids) == {"etcd", "tenantstore"}, pids
        assert all(_alive(pid) for pid in pids.values())
        proc.send_signal(signum)
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signum, rest.decode(errors="replace")
    assert b"stopping on" in rest
    assert [what for what, pid in pids.items() if _alive(pid)] == []
