"""Options of storage calls (`tenantstore.storage.options`).

`ListOptions` refuses contradictory requests when it is built, so no layer below has to
re-check them; the resource version text is client input, parsed into a 400 when bad.
"""

from __future__ import annotations

from typing import Any

import pytest

from tenantstore.storage import (
    BadRequestError,
    ConflictError,
    InvalidError,
    ListOptions,
    ObjectList,
    Preconditions,
    Predicate,
    ResourceVersionMatch,
)
from tenantstore.storage.options import parse_resource_version, validate_watch_request
from tenantstore.storage.selectors import EVERYTHING

# -- parse_resource_version ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [("", 0), ("0", 0), ("1", 1), ("0042", 42), (str(2**63 - 1), 2**63 - 1)],
)
def test_parse_resource_version(text: str, want: int) -> None:
    assert parse_resource_version(text) == want


@pytest.mark.parametrize("text", ["-1", "+1", "x", "1x", " 1", "1 ", "1.0", "1e3", "9" * 20])
def test_invalid_resource_version_is_bad_request(text: str) -> None:
    with pytest.raises(BadRequestError) as err:
        parse_resource_version(text)
    assert err.value.code == 400


@pytest.mark.parametrize("text", ["\u00b2", "\uff11", "\u0663", str(2**63)])
def test_non_ascii_digits_and_revisions_past_int64_are_bad_request(text: str) -> None:
    """`str.isdigit` accepts digits `int` cannot parse (a 500 once), and `isdecimal`
    digits Go's strconv refuses (an alias of an ASCII revision)."""
    with pytest.raises(BadRequestError):
        parse_resource_version(text)


# -- ListOptions -----------------------------------------------------------------------


def test_list_options_defaults() -> None:
    opts = ListOptions()
    assert opts.resource_version == ""
    assert opts.resource_version_match is ResourceVersionMatch.UNSET
    assert opts.limit == 0
    assert opts.continue_ == ""
    assert opts.recursive is False
    assert opts.predicate is EVERYTHING
    assert opts.allow_watch_bookmarks is False
    assert opts.progress_notify is False


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": -1},
        {"continue_": "t", "resource_version": "5", "limit": 1},
        {"resource_version_match": ResourceVersionMatch.EXACT},
        {"resource_version_match": ResourceVersionMatch.EXACT, "resource_version": "0"},
    ],
)
def test_contradictory_list_options_are_bad_request(kwargs: dict[str, Any]) -> None:
    with pytest.raises(BadRequestError) as err:
        ListOptions(**kwargs)
    assert err.value.code == 400


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"continue_": "t", "limit": 1},
        {"continue_": "t", "resource_version": "0", "limit": 1},
        # Without a limit the continue token is not used, so an RV does not contradict it.
        {"continue_": "t", "resource_version": "5"},
        {"resource_version_match": ResourceVersionMatch.EXACT, "resource_version": "3"},
        {"resource_version_match": ResourceVersionMatch.NOT_OLDER_THAN, "resource_version": "0"},
        {"predicate": Predicate.parse("a=b"), "recursive": True},
    ],
)
def test_consistent_list_options_are_accepted(kwargs: dict[str, Any]) -> None:
    opts = ListOptions(**kwargs)
    for name, value in kwargs.items():
        assert getattr(opts, name) == value


def test_list_options_are_frozen() -> None:
    opts = ListOptions()
    with pytest.raises(AttributeError):
        opts.limit = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("", ResourceVersionMatch.UNSET),
        ("NotOlderThan", ResourceVersionMatch.NOT_OLDER_THAN),
        ("Exact", ResourceVersionMatch.EXACT),
    ],
)
def test_resource_version_match_values_are_the_kubernetes_names(
    text: str, want: ResourceVersionMatch
) -> None:
    assert ResourceVersionMatch(text) is want


def test_unknown_resource_version_match_is_refused() -> None:
    with pytest.raises(ValueError):
        ResourceVersionMatch("exact")


# -- Preconditions ---------------------------------------------------------------------


def meta(**fields: Any) -> dict[str, Any]:
    return {"metadata": fields}


@pytest.mark.parametrize(
    ("pre", "target"),
    [
        (Preconditions(), {}),
        (Preconditions(), meta(uid="u", resourceVersion="3")),
        (Preconditions(uid="u"), meta(uid="u", resourceVersion="9")),
        (Preconditions(resource_version="3"), meta(uid="x", resourceVersion="3")),
        (Preconditions(uid="u", resource_version="3"), meta(uid="u", resourceVersion="3")),
    ],
)
def test_preconditions_that_hold(pre: Preconditions, target: dict[str, Any]) -> None:
    pre.check("/k", target)


@pytest.mark.parametrize(
    ("pre", "target", "in_message"),
    [
        (Preconditions(uid="u"), meta(uid="v"), "UID in precondition: u, UID in object meta: v"),
        (Preconditions(uid="u"), {}, "UID in object meta: "),
        (Preconditions(uid="u"), {"metadata": None}, "UID in object meta: "),
        (
            Preconditions(resource_version="3"),
            meta(resourceVersion="4"),
            "ResourceVersion in precondition: 3, ResourceVersion in object meta: 4",
        ),
        (Preconditions(resource_version="3"), meta(), "ResourceVersion in object meta: "),
        (
            Preconditions(uid="u", resource_version="3"),
            meta(uid="u", resourceVersion="4"),
            "ResourceVersion in precondition: 3",
        ),
    ],
)
def test_preconditions_that_fail_are_conflicts(
    pre: Preconditions, target: dict[str, Any], in_message: str
) -> None:
    with pytest.raises(ConflictError) as err:
        pre.check("/k", target)
    assert err.value.code == 409
    assert err.value.key == "/k"
    assert err.value.message.startswith("Precondition failed: ")
    assert in_message in err.value.message


def test_object_list_defaults_are_not_shared() -> None:
    a, b = ObjectList(), ObjectList()
    a.items.append({})
    assert b.items == []
    assert (b.resource_version, b.continue_, b.remaining_item_count) == (0, "", None)


# -- watch-list options (upstream's `ValidateListOptions`) --------------------------------

NOT_OLDER = ResourceVersionMatch.NOT_OLDER_THAN


@pytest.mark.parametrize(
    ("watch", "send", "match", "continue_"),
    [
        (True, True, NOT_OLDER, ""),  # client-go's reflector
        (True, False, NOT_OLDER, ""),
        (True, None, ResourceVersionMatch.UNSET, ""),  # the legacy watch
        (False, None, NOT_OLDER, ""),  # lists keep their own rules
    ],
)
def test_valid_watch_requests_pass(
    watch: bool, send: bool | None, match: ResourceVersionMatch, continue_: str
) -> None:
    validate_watch_request(
        watch=watch, send_initial_events=send, resource_version_match=match, continue_=continue_
    )


@pytest.mark.parametrize(
    ("watch", "send", "match", "continue_", "causes"),
    [
        (True, True, ResourceVersionMatch.UNSET, "", 1),
        (True, None, NOT_OLDER, "", 1),
        (True, True, ResourceVersionMatch.EXACT, "", 2),
        (True, True, NOT_OLDER, "tok", 1),
        (False, True, ResourceVersionMatch.UNSET, "", 1),
    ],
)
def test_invalid_watch_requests_are_422_on_list_options(
    watch: bool, send: bool | None, match: ResourceVersionMatch, continue_: str, causes: int
) -> None:
    with pytest.raises(InvalidError) as err:
        validate_watch_request(
            watch=watch, send_initial_events=send, resource_version_match=match, continue_=continue_
        )
    status = err.value.to_status()
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["details"]["kind"] == "ListOptions"
    assert len(status["details"]["causes"]) == causes
    assert status["message"].startswith('ListOptions.meta.k8s.io "" is invalid: ')


def test_storage_refuses_an_exact_watch_list() -> None:
    with pytest.raises(InvalidError):
        ListOptions(
            resource_version="5",
            resource_version_match=ResourceVersionMatch.EXACT,
            send_initial_events=True,
        )
