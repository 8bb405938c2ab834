"""The bounded load generator (`tenantstore.bench.load`) against a real server process:
client processes send a fixed number of mixed requests (get, list with limit, create,
update, delete) across many projects while watch streams run, and stop by themselves.

CI: 2 processes x 1,000 requests over 50 projects on SQLite: no request errors, and every
watch stream received every write of its project in order. No timing assertions (the
figures are printed). TENANTSTORE_SOAK=1 adds the full run (1,000 projects, 4 x 10,000
requests) on SQLite and, unless TENANTSTORE_NO_ETCD is set, on etcd.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tenantstore.bench.load import OPS, LoadConfig, LoadResult, run_load

from .http_support import soak_only


def check(result: LoadResult) -> None:
    print(result.render())
    assert result.errors == 0, result.error_samples
    assert result.watch_errors == 0, result.error_samples
    assert result.requests == result.config["processes"] * result.config["requests"]
    for op in OPS:
        assert result.ops[op].count > 0, op
    assert result.watch_streams > 0
    assert result.watch_events > 0


@pytest.mark.timeout(240)
async def test_small_load_has_no_errors(tmp_path: Path) -> None:
    cfg = LoadConfig(backend="sqlite", processes=2, requests=1000, projects=50, watches=4)
    check(await run_load(cfg, tmp_path))


@soak_only
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("backend", ["sqlite", "etcd"])
async def test_full_load_has_no_errors(tmp_path: Path, backend: str) -> None:
    if backend == "etcd" and os.environ.get("TENANTSTORE_NO_ETCD"):
        pytest.skip("TENANTSTORE_NO_ETCD is set")
    cfg = LoadConfig(backend=backend, processes=4, requests=10_000, projects=1000, watches=8)
    check(await run_load(cfg, tmp_path))
