"""Cached objects (Rust core): what is assembled from the bytes equals the dict path's output.

The dict path is what the cache did before it kept bytes: the store decodes the stored
JSON and sets `resourceVersion` (`JSONCodec.decode`), the server sets `kind`/`apiVersion`
(`typed`) and `orjson` encodes the result. Every property below compares the bytes path
against exactly that, byte for byte, for arbitrary objects (Unicode, escapes, odd types,
empty metadata, deep nesting) and arbitrary selectors.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenantstore.codec import JSONCodec
from tenantstore.index import CachedObject, compile_predicate, decode, encode_object
from tenantstore.storage.errors import BadRequestError
from tenantstore.storage.selectors import Predicate

CODEC = JSONCodec()
KIND, API_VERSION = "ConfigMap", "v1"

# Text that needs escaping in JSON, non-ASCII and astral characters.
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=8) | st.sampled_from(
    ["", 'q"uote', "back\\slash", "new\nline", "\x00\x01\x1f", "é", "\U0001f600", "\u2028"]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
LABEL_KEYS = st.sampled_from(["a", "b", "x.io/c", "e\\s"])
LABEL_VALUES = st.sampled_from(["", "1", "v", "-3", "10", "99999999999999999999"]) | SCALARS


@st.composite
def metadata(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, values in [
        ("name", TEXT | SCALARS),
        ("namespace", TEXT | SCALARS),
        ("uid", TEXT | SCALARS),
        ("labels", st.dictionaries(LABEL_KEYS, LABEL_VALUES, max_size=4) | SCALARS),
        ("annotations", st.dictionaries(TEXT, TEXT, max_size=3)),
        ("resourceVersion", TEXT),
    ]:
        if draw(st.booleans()):
            fields[name] = draw(values)
    fields.update(draw(st.dictionaries(TEXT, JSON_VALUES, max_size=2)))
    order = draw(st.permutations(list(fields)))
    return {k: fields[k] for k in order}


@st.composite
def objects(draw: st.DrawFn) -> dict[str, Any]:
    """Any object the store can hold: a metadata object among arbitrary members, possibly
    `kind`/`apiVersion` of any type, in any order."""
    members: dict[str, Any] = draw(st.dictionaries(TEXT, JSON_VALUES, max_size=4))
    if draw(st.booleans()):
        members["kind"] = draw(st.sampled_from([KIND, "Other"]) | SCALARS)
    if draw(st.booleans()):
        members["apiVersion"] = draw(st.sampled_from([API_VERSION, "v2"]) | SCALARS)
    members["metadata"] = draw(metadata())
    order = draw(st.permutations(list(members)))
    return {k: members[k] for k in order}


def stored(obj: dict[str, Any], rv: int) -> dict[str, Any]:
    """`obj` through the store: encoded, then decoded at revision `rv` (the dict path)."""
    return CODEC.decode(CODEC.encode(obj), rv)


def typed(obj: dict[str, Any]) -> dict[str, Any]:
    """As the server's `typed` sets them."""
    if obj.get("kind") == KIND and obj.get("apiVersion") == API_VERSION:
        return obj
    return {**obj, "kind": KIND, "apiVersion": API_VERSION}


@settings(max_examples=400, deadline=None)
@given(obj=objects(), rv=st.integers(1, 2**63))
def test_encoded_object_equals_dict_path(obj: dict[str, Any], rv: int) -> None:
    dict_path = stored(obj, rv)
    cached = encode_object(dict_path)
    assert cached.resource_version == rv
    assert cached.encode() == orjson.dumps(dict_path)
    assert cached.encode(KIND, API_VERSION) == orjson.dumps(typed(dict_path))
    assert decode(cached) == dict_path
    # The stored bytes are the codec's: no resourceVersion, so a byte quota counts the same.
    assert cached.data == CODEC.encode(dict_path)
    assert cached.size == len(CODEC.encode(dict_path))
    for event_type in ("ADDED", "MODIFIED", "DELETED"):
        line = orjson.dumps({"type": event_type, "object": typed(dict_path)}) + b"\n"
        assert cached.encode_event(event_type, KIND, API_VERSION) == line
    later = cached.with_resource_version(rv + 1)
    assert later.encode() == orjson.dumps(stored(obj, rv + 1))
    meta = dict_path["metadata"]
    for field in ("name", "namespace", "uid"):
        want = meta.get(field)
        assert getattr(cached, field) == (want if isinstance(want, str) else None)


def test_empty_metadata_and_metadata_of_only_a_resource_version() -> None:
    for obj in ({"metadata": {}}, {"metadata": {"resourceVersion": "5"}}, {"a": 1, "metadata": {}}):
        dict_path = stored(obj, 9)
        assert encode_object(dict_path).encode() == orjson.dumps(dict_path)
        assert encode_object(dict_path).encode(KIND, API_VERSION) == orjson.dumps(typed(dict_path))


@pytest.mark.parametrize("size", [250, 16_383, 16_384, 65_535, 65_536, 65_537, 2**21 + 1])
@pytest.mark.parametrize("metadata_last", [False, True])
def test_sizes_past_each_header_step(size: int, metadata_last: bool) -> None:
    """Offsets in the header take one more byte past 128 bytes, 16 KiB and 2 MiB: objects across
    those and on each side of 16 and 64 KiB, their metadata first or last (offsets as large as the
    object), are served as the dict path serves them and selected the same."""
    meta = {
        "name": "n\u00e9",
        "namespace": "ns",
        "uid": "u",
        "labels": {"k": "v", "x.io/c": "x"},
        "annotations": {"\u00fc\U0001f600": "\U0001f600"},
    }
    obj: dict[str, Any] = {"kind": KIND, "apiVersion": API_VERSION, "pad": ""}
    obj = {"metadata": meta, **obj} if not metadata_last else {**obj, "metadata": meta}
    obj["pad"] = "p" * (size - len(CODEC.encode(obj)))
    assert len(CODEC.encode(obj)) == size
    dict_path = stored(obj, 2**40 + 3)
    cached = encode_object(dict_path)
    assert cached.size == size
    assert cached.encode(KIND, API_VERSION) == orjson.dumps(typed(dict_path))
    assert (cached.name, cached.namespace, cached.uid) == ("n\u00e9", "ns", "u")
    for labels, fields, want in (
        ("x.io/c=x,k=v", "metadata.name=n\u00e9", True),
        ("k=x", "", False),
        ("", "metadata.namespace!=ns", False),
    ):
        pred = Predicate.parse(labels, fields)
        assert pred.matches(dict_path) is want
        selector = compile_predicate(pred)
        assert selector is not None and cached.matches(selector) is want


def test_deep_nesting() -> None:
    """As deep as the codec accepts (`MAX_DEPTH`): the scan of the bytes is iterative."""
    deep: Any = "leaf"
    for i in range(190):
        deep = {"k": deep} if i % 2 else [deep, 1]
    dict_path = stored({"metadata": {"name": "deep"}, "spec": deep}, 3)
    cached = encode_object(dict_path)
    assert cached.encode(KIND, API_VERSION) == orjson.dumps(typed(dict_path))
    assert cached.name == "deep"


def test_what_cannot_be_cached_is_refused() -> None:
    for data in (b"[]", b'{"a":1}', b'{"metadata":"x"}', b'{"metadata":{}', b'{"metadata":{}}x'):
        with pytest.raises(ValueError):
            CachedObject(data, 1)


# -- selectors ---------------------------------------------------------------------------

LABEL_TERMS = st.sampled_from(
    [
        "a=v",
        "a==1",
        "a!=v",
        "b in (v,1)",
        "b notin (v)",
        "a",
        "!b",
        "x.io/c",
        "a>0",
        "a<11",
        "b=",
        "b in (,v)",
        "x.io/c notin (v3,10)",
        "a>-4",
    ]
)
FIELD_TERMS = st.sampled_from(
    [
        "metadata.name=n",
        "metadata.name!=n",
        "metadata.namespace=ns",
        "metadata.namespace==",
        "metadata.name=é",
        "metadata.namespace!=q\\=x",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    labels=st.dictionaries(LABEL_KEYS, LABEL_VALUES, max_size=4) | SCALARS,
    name=st.sampled_from(["n", "é", "m", ""]) | SCALARS,
    namespace=st.sampled_from(["ns", "", "q=x"]) | st.none(),
    label_terms=st.lists(LABEL_TERMS, max_size=3),
    field_terms=st.lists(FIELD_TERMS, max_size=2),
)
def test_selectors_in_rust_match_as_the_python_predicate(
    labels: Any, name: Any, namespace: Any, label_terms: list[str], field_terms: list[str]
) -> None:
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if namespace is not None:
        meta["namespace"] = namespace
    dict_path = stored({"metadata": meta}, 2)
    pred = Predicate.parse(",".join(label_terms), ",".join(field_terms))
    selector = compile_predicate(pred)
    if pred.empty:
        assert selector is None
        return
    assert selector is not None
    assert encode_object(dict_path).matches(selector) == pred.matches(dict_path)


def test_selector_errors_stay_those_of_the_parser() -> None:
    """Parsing stays in Python, so bad selectors are the same 400s as before."""
    for label, field in [("a in (", ""), ("", "spec.x=1"), ("", "metadata.name"), ("-a", "")]:
        with pytest.raises(BadRequestError):
            Predicate.parse(label, field)
