"""The HTTP benches (`tenantstore bench http|floor|watches|memory`) at toy sizes: each
starts real servers, drives them, and writes a result whose figures are real numbers.
What the figures are is BENCHMARKS.md's business; these check that the commands run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import tenantstore
from tenantstore.bench.httpstack import main_argv

FAST = ["--rounds", "1", "--stacks", "h11,httptools"]


@pytest.mark.timeout(300)
def test_bench_http_compares_the_stacks(tmp_path: Path) -> None:
    argv = ["http", *FAST, "--seconds", "0.3", "--projects", "2", "--objects", "2"]
    assert main_argv([*argv, "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "http-stack.json").read_text())
    assert {c["stack"] for c in doc["cells"]} == {"h11", "httptools"}
    assert all(c["median"] > 0 for c in doc["cells"])
    assert all(math.isfinite(r) and r > 0 for r in doc["ratios"].values())


@pytest.mark.timeout(300)
def test_bench_floor_serves_the_list_body_statically(tmp_path: Path) -> None:
    argv = ["floor", *FAST, "--seconds", "0.3", "--objects", "30"]
    assert main_argv([*argv, "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "list-floor.json").read_text())
    assert doc["sizes"]["LIST"] > 30 * 500  # every item, at about 500 bytes each
    assert set(doc["ratios"]) == {
        f"{s} {op}" for s in ("h11", "httptools") for op in ("LIST rv=0", "LIST", "GET rv=0", "GET")
    }


@pytest.mark.timeout(300)
def test_bench_watches_and_memory_measure_rss(tmp_path: Path) -> None:
    argv = ["watches", *FAST, "--watches", "20", "--settle", "0.1", "--out", str(tmp_path)]
    assert main_argv(argv) == 0
    watches = json.loads((tmp_path / "watch-cost.json").read_text())
    assert set(watches["per_watch_bytes"]) == {"h11", "httptools"}
    argv = ["memory", "--rounds", "1", "--objects", "200", "--projects", "4", "--settle", "0.1"]
    # Two builds compared in one run (here the same one twice, under two labels).
    here = Path(tenantstore.__file__).parent.parent
    builds = f"one={here},two={here}"
    assert main_argv([*argv, "--builds", builds, "--out", str(tmp_path)]) == 0
    memory = json.loads((tmp_path / "memory.json").read_text())
    assert memory["objects"] == 200 and 450 <= memory["json_bytes"] <= 550
    assert memory["rss_full"][0] > 0 and memory["rss_empty"][0] > 0
    assert set(memory["builds"]) == {"one", "two"}
    assert all(b["rss_full"][0] > 0 for b in memory["builds"].values())
    with pytest.raises(SystemExit):
        main_argv([*argv, "--builds", f"one={tmp_path}"])  # no tenantstore package there
