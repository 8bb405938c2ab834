"""Key rewriting and project-id validation (Rust core via tenantstore.keys)."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tenantstore import keys
from tenantstore.keys import InvalidProjectError

PREFIX = "/registry/configmaps"
DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")

valid_projects = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
projects = st.none() | valid_projects


def _break_rule(s: str, how: int) -> str:
    """Turn any string into one that violates DNS-1123 in a chosen way."""
    body = s or "a"
    return [
        "",  # empty
        body.upper() + "A",  # uppercase
        "-" + body,  # leading dash
        body + "-",  # trailing dash
        "a" * (64 + len(s)),  # too long
        body + "_x",  # underscore
        body + "/x",  # a slash would address another scope
        body + ".x",  # dots are DNS-1123 subdomains, not labels
        body + " ",  # whitespace
        body + "é",  # non-ASCII
    ][how]


invalid_projects = st.builds(
    _break_rule, st.text(max_size=20), st.integers(0, 9)
) | st.text().filter(lambda s: DNS1123.fullmatch(s) is None)
segments = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
prefixes = st.builds(lambda a, b: f"/{a}/{b}", segments, segments)
tails = st.text(max_size=40)


def py_scoped_key(key: str, prefix: str, project: str | None) -> str:
    prefix = prefix.rstrip("/")
    scope = f"{prefix}/clusters/{project}/" if project is not None else f"{prefix}/root/"
    if key in (prefix, prefix + "/"):
        return scope
    if key.startswith(prefix + "/"):
        return scope + key[len(prefix) + 1 :]
    return key


def test_examples() -> None:
    assert keys.scope_prefix(PREFIX, "p1") == "/registry/configmaps/clusters/p1/"
    assert keys.scope_prefix(PREFIX, None) == "/registry/configmaps/root/"
    assert keys.scope_prefix(PREFIX + "/", "p1") == "/registry/configmaps/clusters/p1/"
    assert keys.scoped_key(PREFIX + "/ns/a", PREFIX, "p1") == PREFIX + "/clusters/p1/ns/a"
    assert keys.scoped_key(PREFIX + "/ns/a", PREFIX, None) == PREFIX + "/root/ns/a"
    assert keys.scoped_key(PREFIX, PREFIX, "p1") == PREFIX + "/clusters/p1/"
    assert keys.scoped_key(PREFIX + "/", PREFIX, "p1") == PREFIX + "/clusters/p1/"
    assert keys.scoped_key(PREFIX + "/ns/a", PREFIX + "/", "p1") == PREFIX + "/clusters/p1/ns/a"
    other = "/registry/configmapsX/a"
    assert keys.scoped_key(other, PREFIX, "p1") is other
    assert keys.project_of_key(PREFIX + "/clusters/p1/ns/a", PREFIX) == "p1"
    assert keys.project_of_key(PREFIX + "/clusters/p1/", PREFIX) == "p1"
    assert keys.project_of_key(PREFIX + "/root/ns/a", PREFIX) is None
    assert keys.project_of_key(PREFIX + "/root/", PREFIX) is None


@pytest.mark.parametrize(
    "key",
    [
        PREFIX + "/ns/a",
        PREFIX,
        PREFIX + "/",
        PREFIX + "X/root/a",
        "/registry/secrets/root/a",
        PREFIX + "/rootx/a",
        PREFIX + "/clustersx/p1/a",
    ],
)
def test_project_of_unscoped_key_raises(key: str) -> None:
    with pytest.raises(ValueError, match="not a scoped key"):
        keys.project_of_key(key, PREFIX)


@pytest.mark.parametrize(
    "key",
    [
        PREFIX + "/clusters/",
        PREFIX + "/clusters",
        PREFIX + "/clusters//a",
        PREFIX + "/clusters/P/a",
    ],
)
def test_project_of_key_bad_project_segment(key: str) -> None:
    with pytest.raises(InvalidProjectError):
        keys.project_of_key(key, PREFIX)


def test_invalid_project_message() -> None:
    with pytest.raises(InvalidProjectError) as info:
        keys.validate_project_id("A")
    assert str(info.value) == (
        'invalid project id "A": must be a DNS-1123 label (lowercase alphanumerics or "-", '
        "1-63 characters, starting and ending with an alphanumeric)"
    )
    assert isinstance(info.value, ValueError)
    assert InvalidProjectError.__module__ == "tenantstore._native"


def test_every_function_validates_project() -> None:
    for call in (
        lambda: keys.scope_prefix(PREFIX, "Bad"),
        lambda: keys.scoped_key("/elsewhere", PREFIX, "Bad"),
        lambda: keys.scoped_keys([], PREFIX, "Bad"),
    ):
        with pytest.raises(InvalidProjectError):
            call()


def test_batch_type_errors() -> None:
    with pytest.raises(TypeError):
        keys.scoped_keys("/registry/configmaps/a", PREFIX, "p1")
    with pytest.raises(TypeError):
        keys.scoped_keys([b"/registry/configmaps/a"], PREFIX, "p1")  # type: ignore[list-item]
    with pytest.raises(TypeError):
        keys.projects_of_keys("/registry/configmaps/root/a", PREFIX)


def test_batch_accepts_any_iterable() -> None:
    ks = [PREFIX + "/a", "/x"]
    assert keys.scoped_keys(tuple(ks), PREFIX, "p1") == keys.scoped_keys(ks, PREFIX, "p1")
    assert keys.scoped_keys(iter(ks), PREFIX, "p1") == keys.scoped_keys(ks, PREFIX, "p1")


@given(valid_projects)
def test_valid_projects_accepted(project: str) -> None:
    keys.validate_project_id(project)
    assert keys.is_valid_project_id(project)


@given(invalid_projects)
def test_invalid_projects_rejected(project: str) -> None:
    assert not keys.is_valid_project_id(project)
    with pytest.raises(InvalidProjectError, match="DNS-1123"):
        keys.validate_project_id(project)
    with pytest.raises(InvalidProjectError):
        keys.scope_prefix(PREFIX, project)
    with pytest.raises(InvalidProjectError):
        keys.scoped_key(PREFIX + "/a", PREFIX, project)
    with pytest.raises(InvalidProjectError):
        keys.scoped_keys([PREFIX + "/a"], PREFIX, project)


@given(prefixes, tails, projects, st.booleans())
def test_scoped_key_matches_reference_and_inverts(
    prefix: str, tail: str, project: str | None, trailing: bool
) -> None:
    key = f"{prefix}/{tail}"
    arg_prefix = prefix + "/" if trailing else prefix
    scoped = keys.scoped_key(key, arg_prefix, project)
    assert scoped == py_scoped_key(key, prefix, project)
    assert scoped.startswith(keys.scope_prefix(prefix, project))
    assert keys.project_of_key(scoped, arg_prefix) == project


@given(prefixes, projects)
def test_bare_prefix_maps_to_scope_prefix(prefix: str, project: str | None) -> None:
    for key in (prefix, prefix + "/"):
        assert keys.scoped_key(key, prefix, project) == keys.scope_prefix(prefix, project)
    assert keys.project_of_key(keys.scope_prefix(prefix, project), prefix) == project


@given(prefixes, st.text(max_size=30), projects)
def test_keys_outside_prefix_unchanged(prefix: str, key: str, project: str | None) -> None:
    assume(key not in (prefix, prefix + "/") and not key.startswith(prefix + "/"))
    assert keys.scoped_key(key, prefix, project) == key
    with pytest.raises(ValueError):
        keys.project_of_key(key, prefix)


@given(prefixes, st.lists(st.one_of(tails, st.text(max_size=20)), max_size=30), projects)
def test_batch_forms_equal_single_forms(prefix: str, raw: list[str], project: str | None) -> None:
    # Mix keys under the prefix with arbitrary ones.
    ks = [f"{prefix}/{t}" if i % 2 == 0 else t for i, t in enumerate(raw)]
    scoped = keys.scoped_keys(ks, prefix, project)
    assert scoped == [keys.scoped_key(k, prefix, project) for k in ks]
    under = [s for s, k in zip(scoped, ks, strict=True) if s != k]
    assert keys.projects_of_keys(under, prefix) == [keys.project_of_key(s, prefix) for s in under]
    assert keys.projects_of_keys(under, prefix) == [project] * len(under)


@given(prefixes, st.lists(st.tuples(projects, tails), max_size=30))
def test_projects_of_keys_mixed_projects(prefix: str, items: list[tuple[str | None, str]]) -> None:
    ks = [keys.scoped_key(f"{prefix}/{t}", prefix, p) for p, t in items]
    assert keys.projects_of_keys(ks, prefix) == [p for p, _ in items]


def test_projects_of_keys_raises_on_unscoped() -> None:
    with pytest.raises(ValueError):
        keys.projects_of_keys([PREFIX + "/root/a", PREFIX + "/ns/a"], PREFIX)
