"""The ordered index behind the watch cache (Rust core), checked against a plain-Python model."""

from __future__ import annotations

import bisect
import gc
import threading
import weakref
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from tenantstore.index import Index, IndexSnapshot

# A small alphabet so prefixes, shared prefixes and start_after collisions are common; "é" and
# "\U0001f600" check that order is by UTF-8 bytes (= code points), like etcd.
keys_st = st.text(alphabet="ab/é\U0001f600", max_size=5)
prefixes_st = st.text(alphabet="ab/é\U0001f600", max_size=3)


class Model:
    """dict + sorted key list: the obvious, slow implementation."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[int, Any]] = {}
        self.order: list[str] = []

    def put(self, key: str, rv: int, obj: Any) -> tuple[int, Any] | None:
        prev = self.data.get(key)
        if prev is None:
            bisect.insort(self.order, key)
        self.data[key] = (rv, obj)
        return prev

    def delete(self, key: str) -> tuple[int, Any] | None:
        prev = self.data.pop(key, None)
        if prev is not None:
            self.order.remove(key)
        return prev

    def range(
        self, prefix: str, start_after: str | None, limit: int | None
    ) -> list[tuple[str, int, Any]]:
        out = [
            (k, *self.data[k])
            for k in self.order
            if k.startswith(prefix) and (start_after is None or k > start_after)
        ]
        return out if limit is None else out[:limit]

    def copy(self) -> Model:
        m = Model()
        m.data = dict(self.data)
        m.order = list(self.order)
        return m


def check_view(view: Index | IndexSnapshot, model: Model) -> None:
    assert len(view) == len(model.data)
    assert view.keys() == model.order
    assert view.range() == model.range("", None, None)


class IndexMachine(RuleBasedStateMachine):
    snapshots = Bundle("snapshots")

    def __init__(self) -> None:
        super().__init__()
        self.index = Index()
        self.model = Model()
        self.rv = 0

    @rule(key=keys_st, obj=st.none() | st.integers() | st.text(max_size=3))
    def put(self, key: str, obj: object) -> None:
        self.rv += 1
        assert self.index.put(key, self.rv, obj) == self.model.put(key, self.rv, obj)

    @rule(key=keys_st)
    def delete(self, key: str) -> None:
        assert self.index.delete(key) == self.model.delete(key)

    @rule(key=keys_st)
    def get(self, key: str) -> None:
        expected = self.model.data.get(key)
        assert self.index.get(key) == expected
        assert (key in self.index) == (expected is not None)
        assert self.index.resource_version(key) == (expected[0] if expected else None)
        assert self.index.get_object(key) == (expected[1] if expected else None)

    @rule(
        prefix=prefixes_st,
        start_after=st.none() | keys_st,
        limit=st.none() | st.integers(0, 6),
    )
    def range(self, prefix: str, start_after: str | None, limit: int | None) -> None:
        got = self.index.range(prefix, start_after=start_after, limit=limit)
        assert got == self.model.range(prefix, start_after, limit)

    @rule(prefix=prefixes_st)
    def count_and_keys(self, prefix: str) -> None:
        expected = [k for k in self.model.order if k.startswith(prefix)]
        assert self.index.count(prefix) == len(expected)
        assert self.index.keys(prefix) == expected

    @precondition(lambda self: len(self.model.data) < 3)
    @rule()
    def clear(self) -> None:
        self.index.clear()
        self.model = Model()

    @rule(target=snapshots)
    def snapshot(self) -> tuple[IndexSnapshot, Model]:
        return (self.index.snapshot(), self.model.copy())

    @rule(
        snap=snapshots,
        prefix=prefixes_st,
        start_after=st.none() | keys_st,
        limit=st.none() | st.integers(0, 6),
        key=keys_st,
    )
    def check_snapshot(
        self,
        snap: tuple[IndexSnapshot, Model],
        prefix: str,
        start_after: str | None,
        limit: int | None,
        key: str,
    ) -> None:
        view, model = snap
        check_view(view, model)
        assert view.range(prefix, start_after, limit) == model.range(prefix, start_after, limit)
        assert view.count(prefix) == len(model.range(prefix, None, None))
        assert view.get(key) == model.data.get(key)
        assert (key in view) == (key in model.data)

    @invariant()
    def same_size(self) -> None:
        assert len(self.index) == len(self.model.data)

    def teardown(self) -> None:
        check_view(self.index, self.model)


IndexMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
TestIndexAgainstModel = IndexMachine.TestCase


def test_basic_api() -> None:
    idx = Index()
    assert idx.put("/a/1", 1, "x") is None
    assert idx.put("/a/1", 2, "y") == (1, "x")
    assert idx.put("/a/2", 3, None) is None
    assert idx.get("/a/1") == (2, "y")
    assert idx.get("/nope") is None
    assert "/a/2" in idx
    assert 5 not in idx  # non-str keys are simply absent
    assert idx.range("/a/") == [("/a/1", 2, "y"), ("/a/2", 3, None)]
    assert idx.range("/a/", start_after="/a/1") == [("/a/2", 3, None)]
    assert idx.range("/a/", limit=1) == [("/a/1", 2, "y")]
    assert idx.count("/a") == 2
    assert idx.keys() == ["/a/1", "/a/2"]
    assert idx.delete("/a/1") == (2, "y")
    assert idx.delete("/a/1") is None
    assert len(idx) == 1
    assert "1 keys" in repr(idx)


def test_argument_errors() -> None:
    idx = Index()
    with pytest.raises(OverflowError):
        idx.put("/a", -1, None)
    with pytest.raises(OverflowError):
        idx.put("/a", 2**64, None)
    idx.put("/a", 2**64 - 1, None)
    assert idx.get("/a") == (2**64 - 1, None)
    with pytest.raises(TypeError):
        idx.put(b"/a", 1, None)  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        idx.range("", limit=-1)


def test_range_returns_stored_key_objects() -> None:
    idx = Index()
    key = "".join(["/a/", "long-key-built-at-runtime"])
    obj = object()
    idx.put(key, 7, obj)
    ((k, rv, o),) = idx.range("/a/")
    assert k is key and rv == 7 and o is obj


def test_snapshot_isolation_and_lifetime() -> None:
    class Obj:
        pass

    idx = Index()
    obj = Obj()
    ref = weakref.ref(obj)
    idx.put("/k", 1, obj)
    snap = idx.snapshot()
    del obj
    idx.delete("/k")
    idx.put("/k2", 2, "new")
    gc.collect()
    assert ref() is not None  # still held by the snapshot
    assert snap.get("/k") == (1, ref())
    assert "/k2" not in snap and len(snap) == 1
    del snap
    gc.collect()
    assert ref() is None  # no leak once nothing refers to it


def test_clear_releases_objects() -> None:
    class Obj:
        pass

    idx = Index()
    objs = [Obj() for _ in range(100)]
    refs = [weakref.ref(o) for o in objs]
    for i, o in enumerate(objs):
        idx.put(f"/k/{i:03}", i, o)
    del objs, o
    idx.clear()
    gc.collect()
    assert len(idx) == 0
    assert all(r() is None for r in refs)


def test_finalizer_that_uses_the_index_does_not_deadlock() -> None:
    idx = Index()

    class Touchy:
        def __del__(self) -> None:
            # Runs when the index drops the value; must not find the index locked.
            idx.put("/from-finalizer", 0, None)
            idx.range("")

    idx.put("/k", 1, Touchy())
    idx.put("/k", 2, Touchy())  # drops the first
    idx.delete("/k")  # drops the second
    idx.put("/k", 3, Touchy())
    idx.clear()
    assert "/from-finalizer" in idx


def test_threads() -> None:
    idx = Index()
    n_threads, per_thread = 4, 2000
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(per_thread):
                idx.put(f"/t{t}/{i:05}", i, (t, i))
                if i % 50 == 0:
                    snap = idx.snapshot()
                    got = snap.range(f"/t{t}/")
                    assert [k for k, _, _ in got] == sorted(k for k, _, _ in got)
                    # keys 0..i were put; those j < i with j % 3 == 0 were deleted again
                    assert len(got) == i + 1 - (i + 2) // 3
                if i % 3 == 0:
                    idx.delete(f"/t{t}/{i:05}")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    expected = per_thread - len(range(0, per_thread, 3))
    for t in range(n_threads):
        assert idx.count(f"/t{t}/") == expected
    assert len(idx) == n_threads * expected
