"""Field selectors on fields past `metadata` (an event's `involvedObject.name`, a secret's
`type`): the Rust evaluation on the cache's bytes agrees with the Python one on the
decoded object, for arbitrary objects, including absent fields, fields of another type
(both compare as ""), escapes and alternatives (`source`: `source.component`, else
`reportingComponent`). A disagreement would make a list served from the cache differ
from one served from the store.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenantstore.index import CachedObject, compile_predicate, encode_object
from tenantstore.server.fields import selectable_fields
from tenantstore.server.registry import BUILTIN_RESOURCES
from tenantstore.storage.selectors import (
    FieldRequirement,
    FieldSelector,
    Predicate,
    field_value,
)

# Few names, so generated objects and paths meet often; some need escaping in JSON.
KEYS = st.sampled_from(["involvedObject", "kind", "name", "source", "component", "t", 'q"k', "é"])
TEXT = st.sampled_from(["", "a", "b", "ConfigMap", 'q"uote', "é", "\U0001f600", "x\ny"])
SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
OBJECTS = st.builds(
    lambda meta, rest: {**rest, "metadata": meta},
    st.dictionaries(st.sampled_from(["name", "namespace", "uid"]), TEXT | SCALARS, max_size=3),
    st.dictionaries(KEYS, VALUES, max_size=5),
)
# Paths may also lead into `metadata`, which `metadata.name`/`metadata.namespace` read
# from the projection rather than from the bytes.
STEPS = KEYS | st.sampled_from(["metadata", "namespace", "uid"])
PATHS = st.lists(st.lists(STEPS, min_size=1, max_size=3).map(tuple), min_size=1, max_size=2).map(
    tuple
) | st.sampled_from([(("metadata", "name"),), (("metadata", "namespace"),)])


def _rust_matches(pred: Predicate, obj: dict[str, Any]) -> bool:
    selector = compile_predicate(pred)
    assert selector is not None
    cached: CachedObject = encode_object(obj)
    return selector.matches(cached)


@settings(max_examples=400, deadline=None)
@given(OBJECTS, PATHS, st.sampled_from(["=", "!="]), TEXT)
def test_rust_and_python_agree_on_paths(
    obj: dict[str, Any], paths: tuple[tuple[str, ...], ...], op: str, value: str
) -> None:
    pred = Predicate(field=FieldSelector((FieldRequirement("f", op, value, paths),)))
    assert _rust_matches(pred, obj) == pred.matches(obj)


@settings(max_examples=200, deadline=None)
@given(OBJECTS, TEXT)
def test_absent_and_non_string_fields_select_as_empty(obj: dict[str, Any], value: str) -> None:
    paths = (("nowhere", "at", "all"),)
    pred = Predicate(field=FieldSelector((FieldRequirement("f", "=", value, paths),)))
    assert _rust_matches(pred, obj) == (value == "") == pred.matches(obj)


EVENT_FIELDS = selectable_fields(next(r for r in BUILTIN_RESOURCES if r.plural == "events"))
EVENT = {
    "metadata": {"name": "e1", "namespace": "ns"},
    "involvedObject": {"kind": "ConfigMap", "name": "c\u00e9", "uid": "u-1", "namespace": "ns"},
    "reason": "Started",
    "type": "Normal",
    "source": {"component": ""},
    "reportingComponent": "ctl",
}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("involvedObject.name=c\u00e9", True),
        ("regarding.name=c\u00e9", True),
        ("involvedObject.kind=ConfigMap,involvedObject.uid=u-1", True),
        ("involvedObject.uid=u-2", False),
        ("involvedObject.fieldPath=", True),
        ("source=ctl", True),  # `source.component` is empty: the reporting component
        ("reportingController=ctl", True),
        ("reason!=Started", False),
        ("type=Normal,metadata.namespace=ns", True),
    ],
)
def test_event_fields_on_both_paths(selector: str, expected: bool) -> None:
    pred = Predicate.parse("", selector, EVENT_FIELDS)
    assert pred.matches(EVENT) is expected
    assert _rust_matches(pred, EVENT) is expected


def test_field_value_takes_the_first_non_empty_string() -> None:
    paths = (("source", "component"), ("reportingComponent",))
    assert field_value(EVENT, paths) == "ctl"
    assert field_value({"source": {"component": "kubelet"}}, paths) == "kubelet"
    assert field_value({"source": {"component": 3}}, paths) == ""
