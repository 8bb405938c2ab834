"""Shared bench fixtures: a real etcd for the storage benches.

benches/ is outside testpaths, so tests/conftest.py is not loaded here; the etcd helper
is imported from tests/etcd_server.py (the repository root is put on sys.path for that,
since plain ``pytest benches/...`` does not add the current directory).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.etcd_server import EtcdServer, etcd_version  # noqa: E402


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """One etcd member on a free loopback port, data dir under pytest's tmp dir."""
    server = EtcdServer(tmp_path_factory.mktemp("bench-etcd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pytest_report_header() -> str:
    try:
        return f"etcd: {etcd_version()}"
    except Exception as exc:  # a missing binary fails the fixture, not the header
        return f"etcd: unknown ({exc})"
