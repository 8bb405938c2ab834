"""Label and field selectors and the selection predicate (`tenantstore.storage.selectors`).

Selector text is client input (query parameters), so every malformed selector must be a
typed 400 (`BadRequestError`), never another exception. Matching runs on stored objects,
which are client input too: one tenant's odd object must not make matching raise in the
cache every tenant shares. The hypothesis fuzzing lives in `tests/reliability/test_fuzz.py`;
these are the exact, example-based semantics.
"""

from __future__ import annotations

from typing import Any

import pytest

from tenantstore.storage import BadRequestError, FieldSelector, LabelSelector, Predicate
from tenantstore.storage.selectors import (
    EVERYTHING,
    FieldRequirement,
    Requirement,
)


def parse(text: str) -> tuple[Requirement, ...]:
    return LabelSelector.parse(text).requirements


def obj(name: Any = "n", namespace: str = "ns", labels: Any = None, **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, **meta}
    if labels is not None:
        metadata["labels"] = labels
    return {"metadata": metadata}


# -- label selectors: parsing ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("a=b", Requirement("a", "=", ("b",))),
        ("a==b", Requirement("a", "==", ("b",))),
        ("a!=b", Requirement("a", "!=", ("b",))),
        ("a in (x,y)", Requirement("a", "in", ("x", "y"))),
        ("a notin (x, y)", Requirement("a", "notin", ("x", "y"))),
        ("a", Requirement("a", "exists")),
        ("!a", Requirement("a", "!")),
        ("a>3", Requirement("a", ">", ("3",))),
        ("a<-3", Requirement("a", "<", ("-3",))),
        ("a=", Requirement("a", "=", ("",))),
        ("x.y/z=1", Requirement("x.y/z", "=", ("1",))),
        ("a_b.c=d-e", Requirement("a_b.c", "=", ("d-e",))),
    ],
)
def test_label_selector_parses_each_operator(text: str, want: Requirement) -> None:
    assert parse(text) == (want,)


def test_label_selector_terms_are_a_conjunction_in_order() -> None:
    assert parse("  a = b ,  !c , d in (x) , e ") == (
        Requirement("a", "=", ("b",)),
        Requirement("c", "!"),
        Requirement("d", "in", ("x",)),
        Requirement("e", "exists"),
    )


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("a in (x,)", ("x", "")),
        ("a in (,x)", ("", "x")),
        ("a in (x,,y)", ("x", "", "y")),
    ],
)
def test_label_selector_set_with_empty_members(text: str, values: tuple[str, ...]) -> None:
    """An empty member of a set means "the empty value", as in Kubernetes."""
    assert parse(text) == (Requirement("a", "in", values),)


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_label_selector(text: str) -> None:
    sel = LabelSelector.parse(text)
    assert sel.requirements == ()
    assert sel.empty


def test_non_empty_label_selector_is_not_empty() -> None:
    assert not LabelSelector.parse("a").empty


@pytest.mark.parametrize(
    "text",
    [
        "a in ()",  # a set needs a value
        "a in (x",  # unclosed set
        "a in x",  # no set at all
        "a,",  # trailing comma
        ",a",
        "a b",  # two keys without a comma
        "=b",  # no key
        "a=b=c",
        "a!b",
        "(a)",
        "!",  # `!` without a key
        "a<",  # no integer
        "a>x",  # not an integer
        "a>\u00b2",  # a Unicode digit is not an ASCII integer
        "a>99999999999999999999",  # more than 18 digits
        "a=(",
        "X.Y/z=1",  # the prefix must be a lowercase DNS-1123 subdomain
        "/a",  # empty prefix
        "a/",  # empty name
        "-a",  # the name must start with an alphanumeric
        "a" * 64,  # the name is at most 63 characters
        "a=-x",  # a value must start with an alphanumeric
        "a=" + "x" * 64,  # a value is at most 63 characters
        "a in (x, -y)",
        "a=b" + ",c" * 8192,  # longer than 16384 characters
    ],
)
def test_invalid_label_selector_is_bad_request(text: str) -> None:
    with pytest.raises(BadRequestError) as err:
        LabelSelector.parse(text)
    assert err.value.code == 400


def test_longest_label_key_and_value_parse() -> None:
    key = "p.example/" + "k" * 63
    assert parse(f"{key}={'v' * 63}") == (Requirement(key, "=", ("v" * 63,)),)


# -- label selectors: matching ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "want"),
    [
        ("a=b", {"a": "b"}, True),
        ("a=b", {"a": "c"}, False),
        ("a=b", {}, False),
        ("a==b", {"a": "b"}, True),
        ("a==b", {"a": "c"}, False),
        # `!=` and `notin` select objects without the label too.
        ("a!=b", {"a": "c"}, True),
        ("a!=b", {"a": "b"}, False),
        ("a!=b", {}, True),
        ("a in (x,y)", {"a": "y"}, True),
        ("a in (x,y)", {"a": "z"}, False),
        ("a in (x,y)", {}, False),
        ("a notin (x,y)", {"a": "z"}, True),
        ("a notin (x,y)", {"a": "x"}, False),
        ("a notin (x,y)", {}, True),
        ("a", {"a": ""}, True),
        ("a", {"b": "a"}, False),
        ("!a", {"b": "a"}, True),
        ("!a", {"a": ""}, False),
        ("a=", {"a": ""}, True),
        ("a=", {}, False),
        ("a in (x,)", {"a": ""}, True),
        ("a>3", {"a": "4"}, True),
        ("a>3", {"a": "3"}, False),
        ("a<3", {"a": "-10"}, True),
        ("a<3", {"a": "3"}, False),
        ("a>-1", {"a": "0"}, True),
        ("a>3", {}, False),
        ("a=b,c!=d", {"a": "b", "c": "x"}, True),
        ("a=b,c!=d", {"a": "b", "c": "d"}, False),
        ("", {"a": "b"}, True),
        ("", {}, True),
    ],
)
def test_label_selector_matches(text: str, labels: dict[str, str], want: bool) -> None:
    assert LabelSelector.parse(text).matches(labels) is want


@pytest.mark.parametrize("value", ["x", "", "-", "1.5", "\u0663", "1" * 19, " 4"])
def test_integer_comparison_is_false_for_values_that_are_not_integers(value: str) -> None:
    """A `>`/`<` term on a label that is not an (at most 18-digit, ASCII) integer selects
    nothing, for either operator, instead of raising."""
    labels = {"a": value}
    assert LabelSelector.parse("a>-5").matches(labels) is False
    assert LabelSelector.parse("a<5").matches(labels) is False


@pytest.mark.parametrize("labels", [None, [], ["a"], "a=b", 7, {"a", "b"}])
def test_labels_that_are_not_a_mapping_count_as_no_labels(labels: Any) -> None:
    assert LabelSelector.parse("a").matches(labels) is False
    assert LabelSelector.parse("!a").matches(labels) is True
    assert LabelSelector.parse("a!=x").matches(labels) is True
    assert LabelSelector.parse("a notin (x)").matches(labels) is True


@pytest.mark.parametrize("value", [None, 1, 4, True, ["b"], {"b": "b"}, 1.5])
def test_label_value_that_is_not_a_string_matches_no_value(value: Any) -> None:
    """Stored objects are client input: a non-string label value is present but equal to
    no selector value, and never raises."""
    labels = {"a": value}
    assert LabelSelector.parse("a").matches(labels) is True
    assert LabelSelector.parse("!a").matches(labels) is False
    for text in ("a=b", "a==b", "a in (b, 4, 1)", "a>0", "a<9"):
        assert LabelSelector.parse(text).matches(labels) is False, text
    for text in ("a!=b", "a notin (b, 4, 1)"):
        assert LabelSelector.parse(text).matches(labels) is True, text


# -- field selectors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("metadata.name=a", (FieldRequirement("metadata.name", "=", "a"),)),
        ("metadata.name==a", (FieldRequirement("metadata.name", "=", "a"),)),
        ("metadata.name!=a", (FieldRequirement("metadata.name", "!=", "a"),)),
        ("metadata.name=", (FieldRequirement("metadata.name", "=", ""),)),
        (
            "metadata.namespace=ns,metadata.name!=b",
            (
                FieldRequirement("metadata.namespace", "=", "ns"),
                FieldRequirement("metadata.name", "!=", "b"),
            ),
        ),
        # Only the first operator splits a term: the rest is the value.
        ("metadata.name=a=b", (FieldRequirement("metadata.name", "=", "a=b"),)),
        # Escapes: `\,`, `\=`, `\!` and `\\` stand for the character itself.
        ("metadata.name=a\\,b", (FieldRequirement("metadata.name", "=", "a,b"),)),
        ("metadata.name=a\\=b", (FieldRequirement("metadata.name", "=", "a=b"),)),
        ("metadata.name=a\\!", (FieldRequirement("metadata.name", "=", "a!"),)),
        ("metadata.name=a\\\\", (FieldRequirement("metadata.name", "=", "a\\"),)),
        (" metadata.name =a", (FieldRequirement("metadata.name", "=", "a"),)),
    ],
)
def test_field_selector_parses(text: str, want: tuple[FieldRequirement, ...]) -> None:
    sel = FieldSelector.parse(text)
    assert sel.requirements == want
    assert not sel.empty


@pytest.mark.parametrize("text", ["", "  "])
def test_empty_field_selector(text: str) -> None:
    sel = FieldSelector.parse(text)
    assert sel.requirements == ()
    assert sel.empty


@pytest.mark.parametrize(
    "text",
    [
        "metadata.name",  # no operator
        "metadata.name=a,",  # an empty term has no operator
        "spec.nodeName=x",  # not a supported field
        "metadata.labels=x",
        "metadata.name\\==a",  # an escaped `=` is part of the field name
        "metadata.name=a\\x",  # not an escapable character
        "metadata.name=a\\",  # a trailing backslash escapes nothing
        "metadata.name=" + "x" * 16384,  # longer than 16384 characters
    ],
)
def test_invalid_field_selector_is_bad_request(text: str) -> None:
    with pytest.raises(BadRequestError) as err:
        FieldSelector.parse(text)
    assert err.value.code == 400


@pytest.mark.parametrize(
    ("text", "target", "want"),
    [
        ("metadata.name=a", obj("a"), True),
        ("metadata.name=a", obj("b"), False),
        ("metadata.name!=a", obj("b"), True),
        ("metadata.name!=a", obj("a"), False),
        ("metadata.namespace=ns", obj("a", "ns"), True),
        ("metadata.namespace=ns", obj("a", "other"), False),
        ("metadata.namespace=ns,metadata.name=a", obj("a", "ns"), True),
        ("metadata.namespace=ns,metadata.name=a", obj("b", "ns"), False),
        ("metadata.name=a\\,b", obj("a,b"), True),
        ("", obj("a"), True),
    ],
)
def test_field_selector_matches(text: str, target: dict[str, Any], want: bool) -> None:
    assert FieldSelector.parse(text).matches(target) is want


@pytest.mark.parametrize(
    "target",
    [{}, {"metadata": None}, {"metadata": []}, {"metadata": "x"}, obj(5), obj(None), obj(["a"])],
)
def test_missing_or_odd_fields_read_as_the_empty_string(target: dict[str, Any]) -> None:
    assert FieldSelector.parse("metadata.name=").matches(target) is True
    assert FieldSelector.parse("metadata.name=a").matches(target) is False
    assert FieldSelector.parse("metadata.name!=a").matches(target) is True


# -- the predicate ---------------------------------------------------------------------


def test_predicate_empty() -> None:
    assert Predicate().empty
    assert Predicate.parse().empty
    assert Predicate.parse("", "").empty
    assert EVERYTHING.empty
    assert Predicate() == EVERYTHING
    assert not Predicate.parse("a").empty
    assert not Predicate.parse("", "metadata.name=a").empty


@pytest.mark.parametrize("target", [{}, {"metadata": None}, obj(labels="a=b"), obj()])
def test_empty_predicate_matches_anything(target: dict[str, Any]) -> None:
    assert EVERYTHING.matches(target) is True


def test_predicate_parse_builds_both_selectors() -> None:
    pred = Predicate.parse("a=b", "metadata.name=n")
    assert pred.label == LabelSelector((Requirement("a", "=", ("b",)),))
    assert pred.field == FieldSelector((FieldRequirement("metadata.name", "=", "n"),))


def test_predicate_needs_both_label_and_field_to_match() -> None:
    pred = Predicate.parse("a=b", "metadata.name=n")
    assert pred.matches(obj("n", labels={"a": "b"})) is True
    assert pred.matches(obj("m", labels={"a": "b"})) is False
    assert pred.matches(obj("n", labels={"a": "c"})) is False
    assert pred.matches(obj("n")) is False


@pytest.mark.parametrize(
    "target",
    [
        {},
        {"metadata": None},
        {"metadata": ["labels"]},
        obj(labels="a=b"),
        obj(labels=["a"]),
        obj(labels={"a": 1}),
        obj(labels={"a": None}),
        obj(name=None, labels={"a": {"b": "c"}}),
    ],
)
def test_predicate_is_total_over_odd_objects(target: dict[str, Any]) -> None:
    for label in ("a", "!a", "a=b", "a!=b", "a in (b)", "a notin (b)", "a>1", "a<1"):
        for field in ("", "metadata.name=n", "metadata.name!=n"):
            assert isinstance(Predicate.parse(label, field).matches(target), bool)
    assert Predicate.parse("!a").matches({}) is True
    assert Predicate.parse("a").matches({"metadata": ["labels"]}) is False


@pytest.mark.parametrize(
    ("label", "field"), [("a in (", ""), ("", "spec.x=1"), ("a in (", "spec.x=1")]
)
def test_predicate_parse_errors_are_bad_request(label: str, field: str) -> None:
    with pytest.raises(BadRequestError):
        Predicate.parse(label, field)
