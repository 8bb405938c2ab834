"""Fixtures of the reliability tests: real etcd processes (a 3-member cluster for the fault
tests, a dedicated single member for compaction, so aggressive compaction never touches the
session's shared etcd)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.etcd_server import EtcdCluster, EtcdServer

NO_ETCD = bool(os.environ.get("TENANTSTORE_NO_ETCD"))
needs_etcd = pytest.mark.skipif(NO_ETCD, reason="TENANTSTORE_NO_ETCD is set")


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A fresh 3-member cluster on loopback ports; killed at the end whatever its state."""
    cluster = EtcdCluster(tmp_path / "etcd-cluster", size=3)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.kill_all()


@pytest.fixture(scope="module")
def compaction_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path_factory.mktemp("etcd-compaction"))
    server.start()
    try:
        yield server
    finally:
        server.kill()
