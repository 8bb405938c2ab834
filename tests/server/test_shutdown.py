"""`tenantstore serve` as a real process: the default embedded backend, and a graceful
SIGTERM (exit 0, open watch streams ended, backend closed)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx

from .conftest import ServeProcess

CM = "/projects/p1/control-plane/api/v1/namespaces/default/configmaps"


def test_serve_default_backend_and_sigterm(tmp_path: Path) -> None:
    proc = ServeProcess([], tmp_path).wait_started()
    try:
        assert "tenantstore serving on http://127.0.0.1:" in proc.output()
        with httpx.Client(base_url=proc.url, timeout=30) as http:
            resp = http.post(CM, json={"metadata": {"name": "a"}})
            assert resp.status_code == 201, resp.text
        # The default backend is a SQLite file under the working directory.
        assert (tmp_path / "tenantstore-data" / "tenantstore.db").exists()

        ended: list[list[str]] = []
        streams_open = threading.Barrier(3, timeout=30)

        def watch() -> None:
            with (
                httpx.Client(base_url=proc.url, timeout=60) as client,
                client.stream("GET", CM, params={"watch": "1"}) as resp,
            ):
                lines = resp.iter_lines()
                first = next(lines)
                streams_open.wait()
                ended.append([first, *lines])

        threads = [threading.Thread(target=watch, daemon=True) for _ in range(2)]
        for t in threads:
            t.start()
        streams_open.wait()
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=30) == 0, proc.output()
        for t in threads:
            t.join(timeout=30)
            assert not t.is_alive()
        # Both streams saw the object, then ended cleanly (no exception in the reader).
        assert len(ended) == 2
        assert all('"ADDED"' in lines[0] for lines in ended)
        assert "Application shutdown complete" in proc.output()
    finally:
        proc.stop()


def test_serve_rejects_bad_resources_file(tmp_path: Path) -> None:
    bad = tmp_path / "r.yaml"
    bad.write_text("resources:\n  - {group: example.com, version: one, kind: W, plural: ws}\n")
    proc = ServeProcess(["--resources", str(bad)], tmp_path)
    assert proc.proc.wait(timeout=30) == 2
    assert "version" in proc.output()
    proc.stop()
