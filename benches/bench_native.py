"""Rust core vs the best pure-Python equivalents, side by side (pytest-benchmark).

Run (release build of the extension first; benches/ is not in testpaths)::

    maturin develop --release   # or: pip install -e '.[test]'
    pytest benches/bench_native.py --benchmark-only --benchmark-group-by=group \
        --benchmark-columns=min,median,mean,stddev,rounds

Each pair shares a ``benchmark.group`` so the report shows them next to each other. The Python
sides are written to be fast, not strawmen: compiled regex for the project id, one validation per
batch, a list comprehension, ``struct`` + ``bytes.join`` for frames, bisect + slice on a
``sortedcontainers.SortedDict`` for ranges.
"""

from __future__ import annotations

import random
import re
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from sortedcontainers import SortedDict

from tenantstore import _native

PREFIX = "/registry/configmaps"
PROJECT = "project-0042"

# --------------------------------------------------------------------------------------------
# Pure-Python reference implementations
# --------------------------------------------------------------------------------------------

_PROJECT_RE = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")


def _py_scope(resource_prefix: str, project: str | None) -> tuple[str, str]:
    prefix = resource_prefix.rstrip("/")
    if project is None:
        return prefix, prefix + "/root/"
    if _PROJECT_RE.fullmatch(project) is None:
        raise ValueError(f"invalid project id {project!r}")
    return prefix, f"{prefix}/clusters/{project}/"


def py_scoped_key(key: str, resource_prefix: str, project: str | None) -> str:
    prefix, scope = _py_scope(resource_prefix, project)
    if key.startswith(prefix + "/"):
        return scope + key[len(prefix) + 1 :]
    return scope if key == prefix else key


def py_scoped_keys(keys: list[str], resource_prefix: str, project: str | None) -> list[str]:
    prefix, scope = _py_scope(resource_prefix, project)
    pslash = prefix + "/"
    n = len(pslash)
    return [scope + k[n:] if k.startswith(pslash) else (scope if k == prefix else k) for k in keys]


_MAGIC = b"\x7ftsk"
_HEADER = struct.Struct(">4sBI")


def py_frame(key: bytes, body: bytes) -> bytes:
    return b"".join((_HEADER.pack(_MAGIC, 1, len(key)), key, body))


def py_unframe(data: bytes) -> tuple[bytes, bytes] | None:
    if data[:1] != b"\x7f":
        return None
    if len(data) < 9:
        raise ValueError("corrupt frame: truncated header")
    magic, version, key_len = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise ValueError("corrupt frame: bad magic")
    if version != 1:
        raise ValueError("corrupt frame: unknown version")
    end = 9 + key_len
    if end > len(data):
        raise ValueError("corrupt frame: key length past the end")
    return data[9:end], data[end:]


# The object the index benchmarks store (the index keeps it as bytes).
CACHED_JSON = b'{"kind":"ConfigMap","metadata":{"name":"x"}}'


def _prefix_upper(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def sd_range(sd: Any, prefix: str) -> list[tuple[str, int, Any]]:
    """Best SortedDict equivalent of Index.range: two bisects, a key slice, dict lookups.

    Values are stored as the (key, rv, obj) tuple the caller wants back, as the Index does.
    """
    lo = sd.bisect_left(prefix)
    hi = sd.bisect_left(_prefix_upper(prefix))
    return [sd[k] for k in sd.keys()[lo:hi]]


# --------------------------------------------------------------------------------------------
# Fixtures (the 1M-key structures are built once per module)
# --------------------------------------------------------------------------------------------


def _keys(n_projects: int, per_project: int) -> list[str]:
    return [
        f"{PREFIX}/clusters/p{p:05}/ns-{i % 7}/obj-{i:04}"
        for p in range(n_projects)
        for i in range(per_project)
    ]


@pytest.fixture(scope="module")
def keys_1m() -> list[str]:
    return _keys(2000, 500)  # 1,000,000 keys, 500 per project


@pytest.fixture(scope="module")
def index_1m(keys_1m: list[str]) -> Iterator[_native.Index]:
    idx = _native.Index()
    for rv, k in enumerate(keys_1m):
        idx.put(k, _native.CachedObject(CACHED_JSON, rv))
    yield idx
    idx.clear()


@pytest.fixture(scope="module")
def sorted_1m(keys_1m: list[str]) -> Iterator[Any]:
    obj = {"kind": "ConfigMap"}
    sd = SortedDict((k, (k, rv, obj)) for rv, k in enumerate(keys_1m))
    yield sd
    sd.clear()


@pytest.fixture(scope="module")
def put_keys() -> list[str]:
    keys = _keys(200, 500)  # 100,000 keys
    random.Random(42).shuffle(keys)
    return keys


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------

SINGLE_KEY = f"{PREFIX}/default/my-config"


def test_key_single_native(benchmark: Any) -> None:
    benchmark.group = "keys: scoped_key x1"
    assert benchmark(_native.scoped_key, SINGLE_KEY, PREFIX, PROJECT) == py_scoped_key(
        SINGLE_KEY, PREFIX, PROJECT
    )


def test_key_single_python(benchmark: Any) -> None:
    benchmark.group = "keys: scoped_key x1"
    benchmark(py_scoped_key, SINGLE_KEY, PREFIX, PROJECT)


BATCH = [f"{PREFIX}/ns-{i % 13}/object-{i:05}" for i in range(10_000)]


def test_key_batch_native(benchmark: Any) -> None:
    benchmark.group = "keys: scoped_keys x10,000"
    out = benchmark(_native.scoped_keys, BATCH, PREFIX, PROJECT)
    assert out == py_scoped_keys(BATCH, PREFIX, PROJECT)


def test_key_batch_python(benchmark: Any) -> None:
    benchmark.group = "keys: scoped_keys x10,000"
    benchmark(py_scoped_keys, BATCH, PREFIX, PROJECT)


SCOPED_BATCH = py_scoped_keys(BATCH, PREFIX, PROJECT)


def py_projects_of_keys(keys: list[str], resource_prefix: str) -> list[str | None]:
    prefix = resource_prefix.rstrip("/")
    clusters, root = prefix + "/clusters/", prefix + "/root"
    n = len(clusters)
    out: list[str | None] = []
    for k in keys:
        if k.startswith(clusters):
            p = k[n:].split("/", 1)[0]
            if _PROJECT_RE.fullmatch(p) is None:
                raise ValueError(p)
            out.append(p)
        elif k == root or k.startswith(root + "/"):
            out.append(None)
        else:
            raise ValueError(k)
    return out


def test_projects_batch_native(benchmark: Any) -> None:
    benchmark.group = "keys: projects_of_keys x10,000"
    out = benchmark(_native.projects_of_keys, SCOPED_BATCH, PREFIX)
    assert out == py_projects_of_keys(SCOPED_BATCH, PREFIX)


def test_projects_batch_python(benchmark: Any) -> None:
    benchmark.group = "keys: projects_of_keys x10,000"
    benchmark(py_projects_of_keys, SCOPED_BATCH, PREFIX)


# --------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------

FRAME_KEY = f"{PREFIX}/clusters/{PROJECT}/default/my-config".encode()
FRAME_BODY = bytes(random.Random(1).randrange(256) for _ in range(1024))
FRAMED = py_frame(FRAME_KEY, FRAME_BODY)


def test_frame_native(benchmark: Any) -> None:
    benchmark.group = "frames: frame (1 KiB body)"
    assert benchmark(_native.frame, FRAME_KEY, FRAME_BODY) == FRAMED


def test_frame_python(benchmark: Any) -> None:
    benchmark.group = "frames: frame (1 KiB body)"
    benchmark(py_frame, FRAME_KEY, FRAME_BODY)


def test_unframe_native(benchmark: Any) -> None:
    benchmark.group = "frames: unframe (1 KiB body)"
    assert benchmark(_native.unframe, FRAMED) == (FRAME_KEY, FRAME_BODY)


def test_unframe_python(benchmark: Any) -> None:
    benchmark.group = "frames: unframe (1 KiB body)"
    assert benchmark(py_unframe, FRAMED) == (FRAME_KEY, FRAME_BODY)


# --------------------------------------------------------------------------------------------
# Index
# --------------------------------------------------------------------------------------------


def test_put_100k_native(benchmark: Any, put_keys: list[str]) -> None:
    benchmark.group = "index: 100,000 puts (random order, empty start)"
    obj = _native.CachedObject(CACHED_JSON, 1)

    def run(idx: _native.Index) -> None:
        put = idx.put
        for k in put_keys:
            put(k, obj)

    # As a cacher builds it: keys held without the resource prefix.
    benchmark.pedantic(run, setup=lambda: ((_native.Index(PREFIX + "/"),), {}), rounds=10)


def test_put_100k_sorteddict(benchmark: Any, put_keys: list[str]) -> None:
    benchmark.group = "index: 100,000 puts (random order, empty start)"
    obj = {"kind": "ConfigMap"}

    def run(sd: Any) -> None:
        for rv, k in enumerate(put_keys):
            sd[k] = (k, rv, obj)

    benchmark.pedantic(run, setup=lambda: ((SortedDict(),), {}), rounds=10)


def test_put_100k_sorted_native(benchmark: Any, put_keys: list[str]) -> None:
    benchmark.group = "index: 100,000 puts (key order, empty start)"
    obj = _native.CachedObject(CACHED_JSON, 1)
    ordered = sorted(put_keys)

    def run(idx: _native.Index) -> None:
        put = idx.put
        for k in ordered:
            put(k, obj)

    benchmark.pedantic(run, setup=lambda: ((_native.Index(),), {}), rounds=10)


def test_put_100k_sorted_sorteddict(benchmark: Any, put_keys: list[str]) -> None:
    benchmark.group = "index: 100,000 puts (key order, empty start)"
    obj = {"kind": "ConfigMap"}
    ordered = sorted(put_keys)

    def run(sd: Any) -> None:
        for rv, k in enumerate(ordered):
            sd[k] = (k, rv, obj)

    benchmark.pedantic(run, setup=lambda: ((SortedDict(),), {}), rounds=10)


def test_put_many_100k_sorted_native(benchmark: Any, put_keys: list[str]) -> None:
    """A first list's pages, 500 objects each, put in key order at once (`put_many`)."""
    benchmark.group = "index: 100,000 puts (key order, empty start)"
    obj = _native.CachedObject(CACHED_JSON, 1)
    ordered = sorted(put_keys)
    pages = [[(k, obj) for k in ordered[i : i + 500]] for i in range(0, len(ordered), 500)]

    def run(idx: _native.Index) -> None:
        for page in pages:
            idx.put_many(page)

    benchmark.pedantic(run, setup=lambda: ((_native.Index(),), {}), rounds=10)


@pytest.fixture(scope="module")
def get_keys(keys_1m: list[str]) -> list[str]:
    return random.Random(7).sample(keys_1m, 10_000)


def test_get_10k_of_1m_native(benchmark: Any, index_1m: _native.Index, get_keys: list[str]) -> None:
    benchmark.group = "index: 10,000 gets of 1,000,000 (random keys)"

    def run() -> int:
        get = index_1m.get
        return sum(get(k) is not None for k in get_keys)

    assert benchmark(run) == len(get_keys)


def test_get_10k_of_1m_sorteddict(benchmark: Any, sorted_1m: Any, get_keys: list[str]) -> None:
    benchmark.group = "index: 10,000 gets of 1,000,000 (random keys)"

    def run() -> int:
        get = sorted_1m.get
        return sum(get(k) is not None for k in get_keys)

    assert benchmark(run) == len(get_keys)


RANGE_PREFIX = f"{PREFIX}/clusters/p01234/"


def test_select_encoded_500_of_1m_native(benchmark: Any, index_1m: _native.Index) -> None:
    """A LIST page assembled from the cached bytes (every header decoded, rv spliced)."""
    benchmark.group = "index: LIST page of 500 of 1,000,000, encoded"
    body, count, _last, _more = benchmark(
        index_1m.select_encoded, RANGE_PREFIX, None, False, None, None, "ConfigMap", "v1"
    )
    assert count == 500 and body.count(b'"resourceVersion"') == 500


def test_range_500_of_1m_native(benchmark: Any, index_1m: _native.Index) -> None:
    benchmark.group = "index: range 500 of 1,000,000"
    out = benchmark(index_1m.range, RANGE_PREFIX)
    assert len(out) == 500


def test_range_500_of_1m_sorteddict(
    benchmark: Any, sorted_1m: Any, index_1m: _native.Index
) -> None:
    benchmark.group = "index: range 500 of 1,000,000"
    out = benchmark(sd_range, sorted_1m, RANGE_PREFIX)
    assert [k for k, _rv, _obj in out] == index_1m.keys(RANGE_PREFIX)


@pytest.fixture(scope="module")
def index_10k(keys_1m: list[str]) -> _native.Index:
    idx = _native.Index()
    for rv, k in enumerate(keys_1m[:10_000]):
        idx.put(k, _native.CachedObject(CACHED_JSON, rv))
    return idx


@pytest.fixture(scope="module")
def sorted_10k(keys_1m: list[str]) -> Any:
    return SortedDict((k, (k, rv, None)) for rv, k in enumerate(keys_1m[:10_000]))


def test_snapshot_10k_native(benchmark: Any, index_10k: _native.Index) -> None:
    benchmark.group = "index: snapshot at 10,000 keys"
    assert len(benchmark(index_10k.snapshot)) == 10_000


def test_snapshot_10k_sorteddict(benchmark: Any, sorted_10k: Any) -> None:
    benchmark.group = "index: snapshot at 10,000 keys"
    assert len(benchmark(sorted_10k.copy)) == 10_000


def test_snapshot_1m_native(benchmark: Any, index_1m: _native.Index) -> None:
    benchmark.group = "index: snapshot at 1,000,000 keys"
    assert len(benchmark(index_1m.snapshot)) == 1_000_000


def test_snapshot_1m_sorteddict(benchmark: Any, sorted_1m: Any) -> None:
    benchmark.group = "index: snapshot at 1,000,000 keys"
    assert len(benchmark.pedantic(sorted_1m.copy, rounds=5)) == 1_000_000
