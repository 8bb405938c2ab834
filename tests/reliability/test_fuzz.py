"""Property-based fuzzing (hypothesis) of the parsers that take client or storage input.

Each target may only answer with a result of its contract or its documented error; it may not
crash with anything else, hang (every example has a deadline), or hand out a key of another
scope:

* `frames.unframe`: None (first byte not 0x7f), a (key, body) pair that re-frames to the
  input, or `CorruptFrameError`;
* `continue_token.decode`: a (key, rv) with the key inside the list prefix (clean, no climbing
  out) and rv > 0, or `BadRequestError`; tokens it issues round-trip;
* `LabelSelector.parse` / `FieldSelector.parse` / `Predicate.parse`: a selector or
  `BadRequestError`; a parsed selector's `matches()` never raises;
* the key rewriter: `InvalidProjectError` / `BadRequestError` / `InvalidError` only, a rewritten
  key is inside the caller's scope prefix or outside the resource prefix, and against a real
  stack (rewriter -> shared cacher -> KVStorage -> in-memory SQLite) no call with arbitrary keys,
  continue tokens or project ids reaches the layer below outside the caller's scope or returns
  another project's object.
"""

from __future__ import annotations

import asyncio
import base64
import json
import posixpath
import struct
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tenantstore.backends.sqlite import SqliteKV
from tenantstore.frames import FRAME_MAGIC, FRAME_VERSION, CorruptFrameError, frame, unframe
from tenantstore.keys import (
    InvalidProjectError,
    is_valid_project_id,
    project_of_key,
    scope_prefix,
)
from tenantstore.storage import (
    BadRequestError,
    FieldSelector,
    InvalidError,
    LabelSelector,
    ListOptions,
    Predicate,
    StorageError,
    decode_continue,
    encode_continue,
)
from tenantstore.storage.continue_token import list_prefix
from tenantstore.tenancy import KeyRewriter, SharedStorageFactory, project_scope
from tests.reliability.helpers import SOAK

EXAMPLES = 5000 if SOAK else 300
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(milliseconds=2000),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

PREFIX = "/registry/configmaps"

# Path-ish text: the characters that matter to keys, prefixes and path cleaning.
_PATHY = st.text(alphabet=st.sampled_from("/.\x00ab-_rootclusters%\\ é"), max_size=40)
_SEGMENT = st.one_of(
    st.sampled_from(["..", ".", "", "clusters", "root", "p1", "p2", "ns", "a", "\x00", "%2e%2e"]),
    st.text(min_size=1, max_size=8),
)
_KEY = st.one_of(
    st.text(max_size=60),
    _PATHY,
    st.lists(_SEGMENT, max_size=6).map(lambda s: PREFIX + "/" + "/".join(s)),
    st.lists(_SEGMENT, max_size=4).map(lambda s: "/" + "/".join(s)),
    st.sampled_from(
        [PREFIX, PREFIX + "/", "/registry", "/registry/", "/", PREFIX + "X/a", PREFIX[:-1]]
    ),
)
_PROJECT = st.one_of(
    st.none(),
    st.sampled_from(["p1", "p2", "victim", "a", "a-b", "0"]),
    st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?\Z"),
    st.text(max_size=70),
)


# -- frames --------------------------------------------------------------------------------


def _check_unframe(data: bytes) -> None:
    try:
        got = unframe(data)
    except CorruptFrameError:
        assert data[:1] == b"\x7f", "CorruptFrameError for data that is not a frame"
        return
    if got is None:
        assert data[:1] != b"\x7f", "None for data starting with 0x7f"
        return
    key, body = got
    assert isinstance(key, bytes) and isinstance(body, bytes)
    assert frame(key, body) == data


@FUZZ
@given(st.binary(max_size=300))
def test_unframe_arbitrary_bytes(data: bytes) -> None:
    _check_unframe(data)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=200).map(lambda b: FRAME_MAGIC + b),
        st.binary(max_size=200).map(lambda b: FRAME_MAGIC + bytes([FRAME_VERSION]) + b),
        st.tuples(st.integers(0, 2**32 - 1), st.binary(max_size=100)).map(
            lambda t: FRAME_MAGIC + bytes([FRAME_VERSION]) + struct.pack(">I", t[0]) + t[1]
        ),
        st.tuples(st.integers(0, 4), st.binary(max_size=100)).map(
            lambda t: FRAME_MAGIC[: t[0]] + t[1]
        ),
    )
)
def test_unframe_magic_prefixed(data: bytes) -> None:
    _check_unframe(data)


@FUZZ
@given(st.binary(max_size=200), st.binary(max_size=200), st.integers(0, 400))
def test_frame_round_trip_and_truncation(key: bytes, body: bytes, cut: int) -> None:
    framed = frame(key, body)
    assert unframe(framed) == (key, body)
    truncated = framed[: min(cut, len(framed))]
    _check_unframe(truncated)
    if not truncated:
        assert unframe(truncated) is None
    elif len(truncated) < 9 + len(key):
        with pytest.raises(CorruptFrameError):
            unframe(truncated)


# -- continue tokens -------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


_JSON_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
_BODY = st.fixed_dictionaries(
    {},
    optional={
        "v": st.one_of(st.just("meta.k8s.io/v1"), _JSON_SCALAR),
        "rv": st.one_of(st.integers(-5, 2**64), _JSON_SCALAR),
        "start": st.one_of(_PATHY, _KEY, _JSON_SCALAR, st.lists(st.text(max_size=3))),
    },
)
_TOKEN = st.one_of(
    st.text(max_size=100),
    st.binary(max_size=120).map(_b64),
    _BODY.map(lambda b: _b64(json.dumps(b).encode())),
    _BODY.map(lambda b: base64.b64encode(json.dumps(b).encode()).decode()),  # padded, std alphabet
    st.recursive(_JSON_SCALAR, lambda c: st.lists(c) | st.dictionaries(st.text(), c)).map(
        lambda v: _b64(json.dumps(v).encode())
    ),
)
_LIST_PREFIX = st.sampled_from(
    [PREFIX, PREFIX + "/", scope_prefix(PREFIX, "p1"), scope_prefix(PREFIX, None), "/a"]
)


def _check_decoded(token: str, prefix: str) -> None:
    try:
        key, rv = decode_continue(token, prefix)
    except BadRequestError:
        return
    lp = list_prefix(prefix)
    assert isinstance(rv, int) and not isinstance(rv, bool) and rv > 0
    assert key.startswith(lp), f"{key!r} outside {lp!r}"
    clean = key.rstrip("\x00")
    assert "\x00" not in clean
    norm = posixpath.normpath(clean)
    assert norm == lp.rstrip("/") or norm.startswith(lp), f"{key!r} climbs out of {lp!r}"


@FUZZ
@given(_TOKEN, _LIST_PREFIX)
def test_continue_token_decode(token: str, prefix: str) -> None:
    _check_decoded(token, prefix)


@FUZZ
@given(
    st.lists(
        # Valid text: keys reach tokens as str decoded from UTF-8.
        st.text(
            alphabet=st.characters(blacklist_characters="/.\x00", blacklist_categories=("Cs",)),
            min_size=1,
        ),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
    st.integers(1, 2**62),
    _LIST_PREFIX,
)
def test_continue_token_round_trip(parts: list[str], after: bool, rv: int, prefix: str) -> None:
    key = list_prefix(prefix) + "/".join(parts) + ("\x00" if after else "")
    token = encode_continue(key, prefix, rv)
    assert decode_continue(token, prefix) == (key, rv)
    # The same token decoded for another scope's prefix stays inside that prefix.
    other = scope_prefix(PREFIX, "p2")
    got, _ = decode_continue(token, other)
    assert got.startswith(other)


# -- selectors --------------------------------------------------------------------------------

_SELECTOR_TEXT = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.sampled_from("ab/.=!,() <>-_0123456789xyz\\²٣"), max_size=40),
    st.lists(
        st.sampled_from(
            [
                "a",
                "b",
                "x.y/z",
                "=",
                "==",
                "!=",
                "!",
                "in",
                "notin",
                "(",
                ")",
                ",",
                ">",
                "<",
                "1",
                "-2",
                "",
                " ",
                "metadata.name",
                "metadata.namespace",
                "\\,",
                "\\=",
            ]
        ),
        max_size=12,
    ).map("".join),
)
_LABEL_DICT = st.dictionaries(
    st.one_of(st.sampled_from(["a", "b", "x.y/z", "metadata.name"]), st.text(max_size=10)),
    st.one_of(st.sampled_from(["1", "-2", "x", "", "10", "²"]), st.text(max_size=10)),
    max_size=6,
)


def _known_integer_bug(sel: LabelSelector) -> bool:
    """A `>`/`<` value that is not an ASCII integer: the bug pinned by
    `test_label_selector_integer_values_are_ascii` (kept out of the general fuzz)."""
    return any(
        r.op in (">", "<") and not r.values[0].lstrip("-").isascii() for r in sel.requirements
    )


@FUZZ
@given(_SELECTOR_TEXT, _LABEL_DICT)
def test_label_selector_parse_and_match(text: str, labels: dict[str, str]) -> None:
    try:
        sel = LabelSelector.parse(text)
    except BadRequestError:
        return
    assume(not _known_integer_bug(sel))
    assert isinstance(sel.matches(labels), bool)
    assert isinstance(sel.matches(None), bool)


@FUZZ
@given(_SELECTOR_TEXT, st.text(max_size=20), st.text(max_size=20))
def test_field_selector_parse_and_match(text: str, name: str, ns: str) -> None:
    try:
        sel = FieldSelector.parse(text)
    except BadRequestError:
        return
    assert isinstance(sel.matches({"metadata": {"name": name, "namespace": ns}}), bool)
    assert isinstance(sel.matches({}), bool)


@FUZZ
@given(_SELECTOR_TEXT, _SELECTOR_TEXT, _LABEL_DICT, st.text(max_size=10))
def test_predicate_parse_and_match(label: str, field: str, labels: dict[str, str], n: str) -> None:
    try:
        pred = Predicate.parse(label, field)
    except BadRequestError:
        return
    assume(not _known_integer_bug(pred.label))
    assert isinstance(pred.matches({"metadata": {"name": n, "labels": labels}}), bool)


@FUZZ
@example("a>\u00b2", {"a": "1"})
@example("a<\u0663", {"a": "1"})
@given(
    st.tuples(st.sampled_from(["a>", "a<", "a>-", "a<-"]), st.text(min_size=1, max_size=3)).map(
        "".join
    ),
    _LABEL_DICT,
)
def test_label_selector_integer_values_are_ascii(text: str, labels: dict[str, str]) -> None:
    """Kubernetes only accepts ASCII integers; whatever parses must match without raising."""
    try:
        sel = LabelSelector.parse(text)
    except BadRequestError:
        return
    assert all(r.values[0].lstrip("-").isascii() for r in sel.requirements), sel
    assert isinstance(sel.matches({**labels, "a": "1"}), bool)


_JSON = st.recursive(
    _JSON_SCALAR,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(
    st.sampled_from(["a", "a=x", "a in (x)", "a>3", "a<3", "!a", "a notin (x)"]),
    st.one_of(_JSON, st.dictionaries(st.sampled_from(["a", "b"]), _JSON, max_size=3)),
)
def test_predicate_never_raises_on_stored_objects(label: str, labels: Any) -> None:
    """What the cacher evaluates on every event: objects are whatever was stored."""
    pred = Predicate.parse(label, "metadata.name=n")
    assert isinstance(pred.matches({"metadata": {"name": "n", "labels": labels}}), bool)


# -- the key rewriter ---------------------------------------------------------------------------


def _under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + "/")


_KEYED = frozenset(["create", "get", "get_list", "guaranteed_update", "delete", "watch", "count"])


class _Spy:
    """Pass-through over the real cacher that records every key the rewriter sends down."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.keys: list[str] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if name not in _KEYED:
            return target

        async def call(key: str, *args: Any, **kwargs: Any) -> Any:
            self.keys.append(key)
            return await target(key, *args, **kwargs)

        return call


class _Stack:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.kv: SqliteKV = self.loop.run_until_complete(SqliteKV.open(":memory:"))
        self.factory = SharedStorageFactory(self.kv, [PREFIX], bookmark_interval=0)
        self.loop.run_until_complete(self.factory.start())
        self.spy = _Spy(self.factory.cacher(PREFIX))
        self.rewriter = KeyRewriter(self.spy, PREFIX)  # type: ignore[arg-type]
        self.victim_uids: set[str] = set()
        for project, name in (("victim", "secret"), ("victim", "other"), (None, "rootobj")):
            uid = str(uuid.uuid4())
            self.victim_uids.add(uid)
            obj = {"metadata": {"name": name, "namespace": "ns", "uid": uid}, "data": {}}
            with project_scope(project):
                self.loop.run_until_complete(
                    self.factory.storage(PREFIX).create(f"{PREFIX}/ns/{name}", obj)
                )

    def close(self) -> None:
        self.loop.run_until_complete(self.factory.stop())
        self.loop.run_until_complete(self.kv.close())
        self.loop.close()


@pytest.fixture(scope="module")
def stack() -> Iterator[_Stack]:
    s = _Stack()
    try:
        yield s
    finally:
        s.close()


ALLOWED = (InvalidProjectError, BadRequestError, InvalidError)


@FUZZ
@given(_KEY, _PROJECT, st.booleans(), st.booleans())
def test_rewrite_stays_in_scope(
    stack: _Stack, key: str, project: str | None, reading_all: bool, recursive: bool
) -> None:
    try:
        with project_scope(project):
            out = stack.rewriter._rewrite(key, reading_all=reading_all, recursive=recursive)
    except ALLOWED:
        return
    sp = scope_prefix(PREFIX, project)
    if _under(key, PREFIX):
        assert out.startswith(sp), f"{key!r} in {project!r} -> {out!r}"
        assert posixpath.normpath(out).startswith(sp.rstrip("/"))
        assert project_of_key(out, PREFIX) == project
    else:
        assert out == key and not _under(out, PREFIX)


_OTHER_TOKEN = st.one_of(
    _TOKEN,
    st.tuples(st.sampled_from(["victim", "p1", None]), _KEY, st.integers(1, 50)).map(
        lambda t: encode_continue(
            scope_prefix(PREFIX, t[0]) + "ns/x", scope_prefix(PREFIX, t[0]), t[2]
        )
    ),
    st.tuples(_KEY, st.integers(1, 50)).map(
        lambda t: _b64(json.dumps({"v": "meta.k8s.io/v1", "rv": t[1], "start": t[0]}).encode())
    ),
)
_ATTACKER = st.one_of(
    st.sampled_from(["p1", "attacker"]),
    st.from_regex(r"\A[a-uw-z0-9]([-a-z0-9]{0,6}[a-z0-9])?\Z"),  # never "victim"
    st.text(max_size=20),
)


@settings(
    max_examples=EXAMPLES // 2,
    deadline=timedelta(milliseconds=5000),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
@given(_KEY, _ATTACKER, _OTHER_TOKEN, st.integers(0, 3), st.sampled_from(range(6)))
def test_real_stack_never_leaves_scope(
    stack: _Stack, key: str, project: str, token: str, limit: int, op: int
) -> None:
    spy = stack.spy
    spy.keys.clear()
    if not is_valid_project_id(project):
        with pytest.raises(InvalidProjectError):
            project_scope(project)
        return

    async def call() -> list[dict[str, Any]]:
        rw = stack.rewriter
        with project_scope(project):
            if op == 0:
                got = await rw.get(key, ignore_not_found=True)
                return [got] if got else []
            if op == 1:
                opts = ListOptions(recursive=True, limit=limit or 1, continue_=token)
                return (await rw.get_list(key, opts)).items
            if op == 2:
                return (await rw.get_list(key, ListOptions(recursive=True, limit=limit))).items
            if op == 3:
                await rw.count(key)
                return []
            if op == 4:
                w = await rw.watch(key, ListOptions(recursive=True, resource_version="0"))
                out = []
                try:
                    while True:
                        ev = await asyncio.wait_for(w.__anext__(), 0.01)
                        out.append(ev.object)
                except (TimeoutError, StopAsyncIteration):
                    pass
                finally:
                    w.stop()
                return out
            name = key.rsplit("/", 1)[-1] or "x"
            obj = {"metadata": {"name": name, "namespace": "ns", "uid": str(uuid.uuid4())}}
            try:
                await rw.create(key, obj)
            finally:
                await rw.delete(key)
            return []

    try:
        objects = stack.loop.run_until_complete(asyncio.wait_for(call(), 5))
    except ALLOWED:
        objects = []
    except StorageError as exc:
        assert exc.code in (404, 409, 410, 504), f"{type(exc).__name__} {exc.code}: {exc}"
        objects = []
    sp = scope_prefix(PREFIX, project)
    for down in spy.keys:
        assert down.startswith(sp) or not _under(down, PREFIX), (
            f"{key!r} in {project!r} reached the cache as {down!r}"
        )
    for obj in objects:
        uid = (obj.get("metadata") or {}).get("uid")
        assert uid not in stack.victim_uids, f"{project!r} saw another scope's object {obj}"


async def test_one_projects_selector_cannot_stall_the_shared_cache() -> None:
    kv = await SqliteKV.open(":memory:")
    factory = SharedStorageFactory(kv, [PREFIX], wait_timeout=1.0, bookmark_interval=0)
    await factory.start()
    storage = factory.storage(PREFIX)
    try:
        with project_scope("attacker"):
            w = await storage.watch(
                PREFIX, ListOptions(recursive=True, predicate=Predicate.parse("a>3"))
            )
            bad = {"name": "evil", "namespace": "ns", "uid": "u-evil", "labels": {"a": None}}
            await storage.create(f"{PREFIX}/ns/evil", {"metadata": bad})
        with project_scope("victim"):
            mine = {"name": "ok", "namespace": "ns", "uid": "u-ok"}
            made = await storage.create(f"{PREFIX}/ns/ok", {"metadata": mine})
            got = await storage.get(f"{PREFIX}/ns/ok")  # consistent: waits for the cache
            assert got is not None and got["metadata"] == made["metadata"]
        w.stop()
    finally:
        await factory.stop()
        await kv.close()
