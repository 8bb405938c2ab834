"""Continue tokens (`tenantstore.storage.continue_token`).

Tokens come back from clients, so decoding must refuse anything that could address a key
outside the listed prefix, and refuse it as a 400. The hypothesis fuzzing lives in
`tests/reliability/test_fuzz.py`; these are the exact, example-based semantics.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from tenantstore.storage import BadRequestError, InternalError
from tenantstore.storage.continue_token import (
    API_VERSION,
    MAX_TOKEN_LENGTH,
    decode,
    encode,
    list_prefix,
)

PREFIX = "/registry/pods/"


def token(body: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(body)).rstrip(b"=").decode("ascii")


def body_of(tok: str) -> Any:
    return orjson.loads(base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)))


@pytest.mark.parametrize(("key", "want"), [("/a", "/a/"), ("/a/", "/a/"), ("", "/")])
def test_list_prefix_ends_with_a_slash(key: str, want: str) -> None:
    assert list_prefix(key) == want


def test_token_is_the_kubernetes_format() -> None:
    tok = encode("/registry/pods/ns/b", PREFIX, 7)
    assert "=" not in tok
    # Upstream's `EncodeContinue` form: the start key relative to the prefix, no "/".
    assert body_of(tok) == {"v": "meta.k8s.io/v1", "rv": 7, "start": "ns/b"}
    assert API_VERSION == "meta.k8s.io/v1"


@pytest.mark.parametrize("prefix", ["/registry/pods", "/registry/pods/"])
@pytest.mark.parametrize(
    "key", ["/registry/pods/ns/b", "/registry/pods/ns/b\x00", "/registry/pods/x"]
)
def test_round_trip(prefix: str, key: str) -> None:
    assert decode(encode(key, prefix, 42), prefix) == (key, 42)


def test_decoded_key_is_relative_to_the_prefix_it_is_decoded_for() -> None:
    """The start key is stored relative to the list prefix, so a token replayed against
    another prefix can only address keys under that prefix."""
    tok = encode("/registry/pods/ns/b", PREFIX, 3)
    assert decode(tok, "/other/") == ("/other/ns/b", 3)


def test_encode_refuses_a_key_outside_the_prefix() -> None:
    with pytest.raises(ValueError):
        encode("/registry/podsx/a", PREFIX, 1)
    with pytest.raises(ValueError):
        encode("/other/a", PREFIX, 1)


def test_encode_of_a_key_that_is_not_utf8_is_internal_error() -> None:
    with pytest.raises(InternalError) as err:
        encode("/registry/pods/\udc80", PREFIX, 1)
    assert err.value.code == 500


@pytest.mark.parametrize(
    "tok",
    [
        "",  # empty
        "!!!",  # not base64
        "eyJ2Ijo",  # base64 of truncated JSON
        token([1]),  # not an object
        token("x"),
        token({"v": "meta.k8s.io/v2", "rv": 1, "start": "/a"}),  # unknown version
        token({"rv": 1, "start": "/a"}),
        token({"v": API_VERSION, "start": "/a"}),  # no RV
        token({"v": API_VERSION, "rv": 0, "start": "/a"}),
        token({"v": API_VERSION, "rv": -2, "start": "/a"}),
        token({"v": API_VERSION, "rv": "1", "start": "/a"}),
        token({"v": API_VERSION, "rv": True, "start": "/a"}),
        token({"v": API_VERSION, "rv": 1.5, "start": "/a"}),
        token({"v": API_VERSION, "rv": 1}),  # no start key
        token({"v": API_VERSION, "rv": 1, "start": ""}),
        token({"v": API_VERSION, "rv": 1, "start": 5}),
        token({"v": API_VERSION, "rv": 1, "start": "//a"}),  # not a clean relative key
        token({"v": API_VERSION, "rv": 1, "start": "../x"}),  # climbs out, upstream form
        token({"v": API_VERSION, "rv": 1, "start": "/../x"}),  # climbs out of the prefix
        token({"v": API_VERSION, "rv": 1, "start": "/a/../../x"}),
        token({"v": API_VERSION, "rv": 1, "start": "/a/./b"}),
        token({"v": API_VERSION, "rv": 1, "start": "/a/"}),
        token({"v": API_VERSION, "rv": 1, "start": "/a\x00b"}),  # NUL inside the key
        "A" * (MAX_TOKEN_LENGTH + 1),  # too long
    ],
)
def test_invalid_token_is_bad_request(tok: str) -> None:
    with pytest.raises(BadRequestError) as err:
        decode(tok, PREFIX)
    assert err.value.code == 400


def test_trailing_nuls_are_allowed() -> None:
    """A "key after this one" is the key plus NUL, which is how pages resume."""
    tok = token({"v": API_VERSION, "rv": 9, "start": "/ns/a\x00"})
    assert decode(tok, PREFIX) == ("/registry/pods/ns/a\x00", 9)


def test_padded_token_is_accepted() -> None:
    tok = encode("/registry/pods/ns/b", PREFIX, 7)  # a length that needs padding
    padded = tok + "=" * (-len(tok) % 4)
    assert padded != tok
    assert decode(padded, PREFIX) == ("/registry/pods/ns/b", 7)


def test_upstream_and_leading_slash_forms_name_the_same_key() -> None:
    """Upstream writes `"bar\x00"`, tenantstore wrote `"/bar\x00"`: both decode to the
    same key; `rv: -1` (upstream's inconsistent continuation) is accepted as such."""
    a = decode(token({"v": API_VERSION, "rv": 3, "start": "ns/a\x00"}), PREFIX)
    b = decode(token({"v": API_VERSION, "rv": 3, "start": "/ns/a\x00"}), PREFIX)
    assert a == b == (PREFIX.rstrip("/") + "/ns/a\x00", 3)
    assert decode(token({"v": API_VERSION, "rv": -1, "start": "ns/a"}), PREFIX)[1] == -1
