"""Tenant map cost per entry: this layout against the reference's tuple-per-entry layout.

Run::

    python benches/bench_tenancy.py            # prints bytes/entry for 100k entries
    pytest benches/bench_tenancy.py -q         # the same, as a test with a bound, plus timing

Measured with tracemalloc: the bytes still allocated after recording N objects (100 projects,
N/100 objects each), divided by N. The objects themselves (and so their UID strings) exist
before the measurement starts, as they do in the watch cache: what is counted is what the map
*adds*. Layouts:

* ``TenantMap`` (this project): ``uid -> interned project`` in a Rust table (canonical UUIDs as
  16 bytes), measured on the C heap; storage key checked at record time and not kept; no
  timestamp (grace via a transient "young" set).
* reference: ``uid -> (tenant, storage key, recorded_at)``; the tenant parsed from each key (a
  new string per entry, as a naive parse produces), the storage key decoded from the frame.
* reference, interned: the same with the tenant string interned (a fairer variant).
"""

from __future__ import annotations

import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any

from tenantstore.tenancy import TenantMap

PREFIX = "/registry/configmaps"


def _objects(n: int, projects: int = 100) -> list[tuple[bytes, dict[str, Any]]]:
    out = []
    for i in range(n):
        project = f"project-{i % projects:04d}"
        name = f"cm-{i:07d}"
        obj = {"metadata": {"name": name, "namespace": "default", "uid": str(uuid.uuid4())}}
        key = f"{PREFIX}/clusters/{project}/default/{name}".encode()
        out.append((key, obj))
    return out


def _measure(n: int, fill: Callable[[list[tuple[bytes, dict[str, Any]]]], object]) -> float:
    objects = _objects(n)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        holder = fill(objects)
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert holder is not None
    return (used - base) / n


def _measure_heap(n: int, fill: Callable[[list[tuple[bytes, dict[str, Any]]]], object]) -> float:
    """Bytes per entry of a holder that keeps its entries in Rust, where tracemalloc
    does not look: the C heap's bytes in use (glibc's `mallinfo2`), before and after."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (f, ctypes.c_size_t)
            for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                      "uordblks", "fordblks", "keepcost")
        ]  # fmt: skip

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2

    def in_use() -> int:
        info = libc.mallinfo2()
        return int(info.uordblks + info.hblkhd)

    objects = _objects(n)
    base = in_use()
    holder = fill(objects)
    used = in_use()
    assert holder is not None
    return (used - base) / n


def fill_tenant_map(objects: list[tuple[bytes, dict[str, Any]]]) -> object:
    m = TenantMap(PREFIX, resource_label="bench")
    for key, obj in objects:
        m.record(key, obj)
    assert len(m) == len(objects)
    return m


def _fill_reference(intern: bool) -> Callable[[list[tuple[bytes, dict[str, Any]]]], object]:
    def fill(objects: list[tuple[bytes, dict[str, Any]]]) -> object:
        m: dict[str, tuple[str, str, float]] = {}
        skip = len(PREFIX) + len("/clusters/")
        for key, obj in objects:
            skey = key.decode()
            tenant = skey[skip : skey.index("/", skip)]
            if intern:
                tenant = sys.intern(tenant)
            m[obj["metadata"]["uid"]] = (tenant, skey, time.monotonic())
        return m

    return fill


def measure_all(n: int = 100_000) -> dict[str, float]:
    return {
        # The table is in Rust (`keys.OwnerMap`): its bytes are on the C heap.
        "TenantMap (uid -> interned project)": _measure_heap(n, fill_tenant_map),
        "reference tuple (tenant, key, recorded_at)": _measure(n, _fill_reference(False)),
        "reference tuple, tenant interned": _measure(n, _fill_reference(True)),
    }


def test_tenant_map_bytes_per_entry() -> None:
    got = measure_all(100_000)
    ours = got["TenantMap (uid -> interned project)"]
    for name, value in got.items():
        print(f"{name:45s} {value:7.1f} B/entry")
    assert ours < 80
    assert ours * 3 < got["reference tuple, tenant interned"]


def test_record_throughput(benchmark: Any) -> None:
    objects = _objects(10_000)
    benchmark(fill_tenant_map, objects)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(f"python {sys.version.split()[0]}, {n} entries, 100 projects")
    for name, value in measure_all(n).items():
        print(f"{name:45s} {value:7.1f} B/entry")
