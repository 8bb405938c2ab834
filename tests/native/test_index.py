"""The ordered index behind the watch cache (Rust core), checked against a plain-Python model."""

from __future__ import annotations

import bisect
import threading

import orjson
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from tenantstore.index import CachedObject, Index, IndexSnapshot

# A small alphabet so prefixes, shared prefixes and start_after collisions are common; "é" and
# "\U0001f600" check that order is by UTF-8 bytes (= code points), like etcd.
keys_st = st.text(alphabet="ab/é\U0001f600", max_size=5)
prefixes_st = st.text(alphabet="ab/é\U0001f600", max_size=3)

# What the index returns, as comparable values: (resource version, stored JSON).
Value = tuple[int, bytes]


def cached(rv: int, value: object = None) -> CachedObject:
    return CachedObject(orjson.dumps({"metadata": {"name": "n"}, "v": value}), rv)


def value(obj: CachedObject | None) -> Value | None:
    return None if obj is None else (obj.resource_version, obj.data)


def items(got: list[tuple[str, int, CachedObject]]) -> list[tuple[str, int, bytes]]:
    return [(k, rv, o.data) for k, rv, o in got]


class Model:
    """dict + sorted key list: the obvious, slow implementation."""

    def __init__(self) -> None:
        self.data: dict[str, Value] = {}
        self.order: list[str] = []

    def put(self, key: str, rv: int, obj: CachedObject) -> Value | None:
        prev = self.data.get(key)
        if prev is None:
            bisect.insort(self.order, key)
        self.data[key] = (rv, obj.data)
        return prev

    def delete(self, key: str) -> Value | None:
        prev = self.data.pop(key, None)
        if prev is not None:
            self.order.remove(key)
        return prev

    def range(
        self, prefix: str, start_after: str | None, limit: int | None
    ) -> list[tuple[str, int, bytes]]:
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
    assert items(view.range()) == model.range("", None, None)


class IndexMachine(RuleBasedStateMachine):
    snapshots = Bundle("snapshots")

    def __init__(self) -> None:
        super().__init__()
        self.index = Index()
        self.model = Model()
        self.rv = 0

    @rule(key=keys_st, obj=st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=3))
    def put(self, key: str, obj: object) -> None:
        self.rv += 1
        obj_ = cached(self.rv, obj)
        assert value(self.index.put(key, obj_)) == self.model.put(key, self.rv, obj_)

    @rule(keys=st.lists(keys_st, max_size=8), in_order=st.booleans())
    def put_many(self, keys: list[str], in_order: bool) -> None:
        """As many puts: in key order (a first list's page, the tree filled in two passes)
        or not (repeats included: the last one wins)."""
        if in_order:
            keys = sorted(set(keys))  # code point order is UTF-8 byte order
        batch = []
        for key in keys:
            self.rv += 1
            batch.append((key, cached(self.rv, key)))
        self.index.put_many(batch)
        for key, obj in batch:
            self.model.put(key, obj.resource_version, obj)

    @rule(key=keys_st)
    def delete(self, key: str) -> None:
        assert value(self.index.delete(key)) == self.model.delete(key)

    @rule(key=keys_st)
    def get(self, key: str) -> None:
        expected = self.model.data.get(key)
        assert value(self.index.get(key)) == expected
        assert (key in self.index) == (expected is not None)
        assert self.index.resource_version(key) == (expected[0] if expected else None)

    @rule(
        prefix=prefixes_st,
        start_after=st.none() | keys_st,
        limit=st.none() | st.integers(0, 6),
    )
    def range(self, prefix: str, start_after: str | None, limit: int | None) -> None:
        got = self.index.range(prefix, start_after=start_after, limit=limit)
        assert items(got) == self.model.range(prefix, start_after, limit)
        # A LIST page starting after `start_after` selects the same (limit 0: no limit).
        objs, last, more = self.index.select(prefix, start_after, False, limit)
        want = self.model.range(prefix, start_after, limit or None)
        assert [(o.resource_version, o.data) for o in objs] == [(rv, d) for _k, rv, d in want]
        assert last == (want[-1][0] if want else None)
        if limit:
            rest = self.model.range(prefix, start_after, None)[len(want) :]
            assert more == (len(want) == limit and bool(rest))

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
        assert items(view.range(prefix, start_after, limit)) == model.range(
            prefix, start_after, limit
        )
        assert view.count(prefix) == len(model.range(prefix, None, None))
        assert value(view.get(key)) == model.data.get(key)
        assert (key in view) == (key in model.data)

    @invariant()
    def same_size(self) -> None:
        assert len(self.index) == len(self.model.data)

    def teardown(self) -> None:
        check_view(self.index, self.model)


IndexMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
TestIndexAgainstModel = IndexMachine.TestCase


class PrefixedIndexMachine(IndexMachine):
    """The same, with keys under a prefix held without it: the order, ranges and lookups
    must not change, for keys under the prefix, before it and after it."""

    def __init__(self) -> None:
        super().__init__()
        self.index = Index("a/")


class ShortPrefixIndexMachine(IndexMachine):
    def __init__(self) -> None:
        super().__init__()
        self.index = Index("b")


PrefixedIndexMachine.TestCase.settings = IndexMachine.TestCase.settings
ShortPrefixIndexMachine.TestCase.settings = IndexMachine.TestCase.settings
TestPrefixedIndexAgainstModel = PrefixedIndexMachine.TestCase
TestShortPrefixIndexAgainstModel = ShortPrefixIndexMachine.TestCase


def test_put_many_of_a_first_list() -> None:
    """Pages of a first list (500 each, in key order, Unicode names, some keys outside the
    prefix) through `put_many` hold what the same puts hold, in the same order."""
    keys = sorted(
        [f"/r/c/p{p:03}/ns/é-{i:03}-\U0001f600" for p in range(7) for i in range(300)]
        + ["/r/a", "/r/root/ns/x", "/r/z/1"]
    )
    by_put, by_pages = Index("/r/c/"), Index("/r/c/")
    for rv, key in enumerate(keys, 1):
        by_put.put(key, cached(rv, key))
    for start in range(0, len(keys), 500):
        page = keys[start : start + 500]
        by_pages.put_many([(k, cached(rv, k)) for rv, k in enumerate(page, start + 1)])
    assert len(by_pages) == len(keys)
    assert items(by_pages.range()) == items(by_put.range())
    assert by_pages.keys("/r/c/p003/") == [k for k in keys if k.startswith("/r/c/p003/")]
    assert value(by_pages.get(keys[1234])) == (1235, cached(1235, keys[1234]).data)
    by_pages.put_many([])
    assert len(by_pages) == len(keys)


def test_basic_api() -> None:
    idx = Index()
    x, y, z = cached(1, "x"), cached(2, "y"), cached(3)
    assert idx.put("/a/1", x) is None
    assert value(idx.put("/a/1", y)) == value(x)
    assert idx.put("/a/2", z) is None
    assert value(idx.get("/a/1")) == (2, y.data)
    assert idx.get("/nope") is None
    assert "/a/2" in idx
    assert 5 not in idx  # non-str keys are simply absent
    assert items(idx.range("/a/")) == [("/a/1", 2, y.data), ("/a/2", 3, z.data)]
    assert items(idx.range("/a/", start_after="/a/1")) == [("/a/2", 3, z.data)]
    assert items(idx.range("/a/", limit=1)) == [("/a/1", 2, y.data)]
    assert idx.count("/a") == 2
    assert idx.keys() == ["/a/1", "/a/2"]
    assert value(idx.delete("/a/1")) == (2, y.data)
    assert idx.delete("/a/1") is None
    assert len(idx) == 1
    assert "1 keys" in repr(idx)


def test_select_pages_like_a_continue_token() -> None:
    """`inclusive` resumes at a key (a token without the trailing NUL), otherwise after it;
    `more` says any key follows the page, whether or not the selector would match it."""
    idx = Index()
    for i in range(5):
        idx.put(f"/p/{i}", cached(i + 1, i))
    objs, last, more = idx.select("/p/", "/p/1", True, 2)
    assert [o.resource_version for o in objs] == [2, 3] and last == "/p/2" and more
    objs, last, more = idx.select("/p/", "/p/1", False, 2)
    assert [o.resource_version for o in objs] == [3, 4] and last == "/p/3" and more
    objs, last, more = idx.select("/p/", "/p/3", False, 1)
    assert [o.resource_version for o in objs] == [5] and last == "/p/4" and not more
    # A start before the prefix does not widen the range, one past it empties it.
    assert len(idx.select("/p/", "/a", True)[0]) == 5
    assert idx.select("/p/", "/q", True) == ([], None, False)
    data, n, last, more = idx.select_encoded("/p/", limit=2, kind="K", api_version="v1")
    assert n == 2 and last == "/p/1" and more
    assert orjson.loads(b"[" + data + b"]")[1]["metadata"]["resourceVersion"] == "2"


def test_argument_errors() -> None:
    idx = Index()
    with pytest.raises(OverflowError):
        CachedObject(b'{"metadata":{}}', -1)
    with pytest.raises(OverflowError):
        CachedObject(b'{"metadata":{}}', 2**64)
    idx.put("/a", CachedObject(b'{"metadata":{}}', 2**64 - 1))
    assert idx.resource_version("/a") == 2**64 - 1
    with pytest.raises(TypeError):
        idx.put(b"/a", cached(1))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        idx.put("/a", {"metadata": {}})  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        idx.range("", limit=-1)
    with pytest.raises(ValueError, match="together"):
        idx.select_encoded("", kind="K")


def test_snapshot_isolation_and_lifetime() -> None:
    idx = Index()
    first = cached(1, "first")
    idx.put("/k", first)
    snap = idx.snapshot()
    idx.delete("/k")
    idx.put("/k2", cached(2))
    assert value(snap.get("/k")) == (1, first.data)
    assert "/k2" not in snap and len(snap) == 1
    # An object handed out lives on after the index dropped it.
    got = snap.get("/k")
    del snap
    assert got is not None and got.data == first.data


def test_threads() -> None:
    idx = Index()
    n_threads, per_thread = 4, 2000
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(per_thread):
                idx.put(f"/t{t}/{i:05}", cached(i, [t, i]))
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
