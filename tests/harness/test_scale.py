"""The scale harness itself, in small (N = 20 projects, R = 5 custom resources).

It starts the real server in a child process (and, on the etcd backend, its own etcd),
so this checks the whole measurement path; the figures themselves live in
BENCHMARKS.md. What must hold even at this size: the shared mode opens no backend watch
and no thread per project, and at most one asyncio task per open watch; the per-project
mode, for contrast, opens backend watches per project.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tenantstore.bench.scale import Harness, check_targets, plot, render, run_series


@pytest.mark.parametrize("backend", ["etcd", "sqlite"])
async def test_scale_harness_small(backend: str, tmp_path: Path) -> None:
    harness = Harness(
        resources=5, backend=backend, settle_interval=0.3, settle_timeout=30, progress=False
    )
    results = await run_series(harness, ["shared", "per-project"], [20])
    shared, per_project = results
    assert (shared.mode, per_project.mode) == ("shared", "per-project")
    assert shared.projects == 20 and shared.resources == 10

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
    assert shared.watch_delivery_ms["n"] == 20
    assert shared.list_after_ms["n"] == 40

    targets = {what: met for what, met, _ in check_targets(shared, per_project)}
    assert targets["0 backend watches per project"]
    assert targets["0 threads per project"]
    text = render(results)
    assert "per-project / shared" in text
    pngs = plot(results, tmp_path)
    assert all(p.stat().st_size > 0 for p in pngs)
    json.dumps([r.per_project for r in results])
