"""Inputs at the edges that used to reach a 500 or hold a connection for ever.

Each case is a real `tenantstore serve` process on a SQLite file: Unicode digits that
are not ASCII decimals in numeric query parameters, revisions past int64, a client that
never finishes its headers or its body, and 5xx bodies that must not carry the backend's
internals (addresses, gRPC status names).
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tenantstore.codec import MAX_DEPTH
from tenantstore.server.status import public_status, status_response
from tenantstore.storage import BadRequestError, InternalError, UnavailableError
from tenantstore.storage.continue_token import decode
from tenantstore.storage.options import parse_decimal, parse_resource_version
from tests.server.conftest import ServeProcess

from .http_support import host_port, start_serve

P = "/projects/edges/control-plane"
CM = f"{P}/api/v1/namespaces/default/configmaps"


# A custom resource without a schema keeps whatever it is given (a ConfigMap's data
# must be strings): where an object can nest as deep as a client makes it.
BLOBS = f"{P}/apis/example.com/v1/namespaces/default/blobs"
_RESOURCES = "resources:\n  - {group: example.com, version: v1, kind: Blob, plural: blobs}\n"


@pytest.fixture(scope="module")
def serve_edges(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("edges")
    (tmp / "resources.yaml").write_text(_RESOURCES)
    proc = start_serve(
        tmp, "--request-read-timeout", "1", "--resources", str(tmp / "resources.yaml")
    )
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def http(serve_edges: ServeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=serve_edges.url, timeout=30) as client:
        r = client.post(CM, json={"metadata": {"name": "a"}, "data": {"k": "v"}})
        assert r.status_code == 201, r.text
        yield client


# Superscript two, Arabic-Indic three, fullwidth one: str.isdigit() accepts the first
# (int() does not), str.isdecimal() the other two (Go's strconv does not).
UNICODE_DIGITS = ["%C2%B2", "%D9%A3", "%EF%BC%91", "1%C2%B2"]


@pytest.mark.parametrize("value", UNICODE_DIGITS)
@pytest.mark.parametrize(
    "query",
    ["limit={}", "resourceVersion={}", "timeoutSeconds={}&watch=1", "resourceVersion={}&watch=1"],
)
def test_unicode_digits_in_numeric_parameters_are_400(
    http: httpx.Client, query: str, value: str
) -> None:
    r = http.get(f"{CM}?{query.format(value)}")
    assert r.status_code == 400, r.text
    assert r.json()["reason"] == "BadRequest"


@pytest.mark.parametrize("value", UNICODE_DIGITS)
def test_unicode_digits_in_a_get_resource_version_are_400(http: httpx.Client, value: str) -> None:
    r = http.get(f"{CM}/a?resourceVersion={value}")
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("rv", [str(2**63), "9" * 19, str(2**64)])
def test_resource_versions_past_int64_are_400(http: httpx.Client, rv: str) -> None:
    assert http.get(f"{CM}?resourceVersion={rv}").status_code == 400
    assert http.get(f"{CM}/a?resourceVersion={rv}").status_code == 400


def _token(rv: int, start: str = "/default/a\x00") -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("rv", [2**63, 2**64 + 5])
def test_a_continue_token_past_int64_is_400(http: httpx.Client, rv: int) -> None:
    r = http.get(CM, params={"limit": "1", "continue": _token(rv)})
    assert r.status_code == 400, r.text
    with pytest.raises(BadRequestError):
        decode(_token(rv), "/registry/configmaps/")


def test_parsers_accept_only_ascii_decimals_within_int64() -> None:
    assert parse_decimal("0") == 0
    assert parse_decimal(str(2**63 - 1)) == 2**63 - 1
    for bad in ["", "-1", "+1", " 1", "1 ", "\u00b2", "\u0663", "\uff11", str(2**63), "1e3"]:
        assert parse_decimal(bad) is None, bad
    with pytest.raises(BadRequestError):
        parse_resource_version("\u0663")


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server closes the connection (EOF or reset) without answering."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def test_a_connection_that_never_finishes_its_headers_is_closed(serve_edges: ServeProcess) -> None:
    with socket.create_connection(host_port(serve_edges.url), timeout=60) as sock:
        sock.sendall(b"GET " + CM.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        assert _closed_by_server(sock)


def test_a_connection_that_sends_nothing_is_closed(serve_edges: ServeProcess) -> None:
    with socket.create_connection(host_port(serve_edges.url), timeout=60) as sock:
        assert _closed_by_server(sock)


def test_a_body_that_never_arrives_is_a_408(serve_edges: ServeProcess, http: httpx.Client) -> None:
    head = (
        f"POST {CM} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n"
    ).encode()
    with socket.create_connection(host_port(serve_edges.url), timeout=60) as sock:
        sock.sendall(head + b'{"metadata":')
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    assert buf.startswith(b"HTTP/1.1 408 "), buf[:200]
    # Nothing of the half-sent object was stored, and the server still serves.
    names = [o["metadata"]["name"] for o in http.get(CM).json()["items"]]
    assert names == ["a"]


INTERNALS = ["ipv4:127.0.0.1:23830: Failed to connect to remote host", "StatusCode.UNAVAILABLE"]


@pytest.mark.parametrize("err", [UnavailableError, InternalError])
def test_5xx_bodies_carry_no_backend_internals(err: type[UnavailableError]) -> None:
    detail = "etcd unavailable: " + " ".join(INTERNALS) + " key /registry/secrets/root/x"
    response = status_response(err(detail, retry_after_seconds=1))
    body = bytes(response.body).decode()
    assert response.status_code == err.code
    for leak in [*INTERNALS, "/registry/", "127.0.0.1"]:
        assert leak not in body
    status = orjson.loads(body)
    assert status["reason"] == err.reason and status["message"]
    assert status["details"] == {"retryAfterSeconds": 1}


def test_4xx_bodies_keep_their_message() -> None:
    status = BadRequestError('invalid resourceVersion "x"').to_status()
    assert public_status(status) is status


def test_the_server_still_serves(http: httpx.Client, tmp_path: Path) -> None:
    assert http.get("/healthz").status_code == 200
    assert http.get(f"{CM}/a").json()["data"] == {"k": "v"}


@pytest.mark.parametrize("backend", ["sqlite", "etcd"])
def test_a_body_under_the_server_limit_but_too_large_to_store_is_413(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    extra: list[str] = []
    if backend == "etcd":
        extra = ["--backend", f"etcd://{request.getfixturevalue('etcd_server').endpoint}"]
    proc = start_serve(tmp_path, *extra)
    try:
        with httpx.Client(base_url=proc.url, timeout=60) as client:
            for size in (int(1.6 * 1024 * 1024), int(2.5 * 1024 * 1024)):
                body = {"metadata": {"name": f"big-{size}"}, "data": {"x": "x" * size}}
                r = client.post(CM, json=body)
                assert r.status_code == 413, r.text[:300]
                assert r.json()["reason"] == "RequestEntityTooLarge"
                for leak in ("StatusCode", "grpc", "etcdserver", "127.0.0.1", "/registry"):
                    assert leak not in r.text
            ok = client.post(
                CM, json={"metadata": {"name": "fits"}, "data": {"x": "x" * 1_000_000}}
            )
            assert ok.status_code == 201, ok.text[:300]
    finally:
        proc.stop()


def _nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("depth", [199, 200, 252, 253])
def test_objects_too_deep_to_serve_are_refused_at_write_time(
    http: httpx.Client, depth: int
) -> None:
    """orjson cannot encode past 254 levels, and a LIST wraps each item two levels down:
    an object accepted near that limit used to break every LIST that included it."""
    name = f"deep-{depth}"
    # Containers: the object, `data`, and `depth - 1` dicts under it (the leaf is a string).
    body = {"metadata": {"name": name}, "data": {"x": _nested(depth)}}
    r = http.post(BLOBS, content=json.dumps(body), headers={"content-type": "application/json"})
    if depth + 1 <= MAX_DEPTH:
        assert r.status_code == 201, r.text[:200]
    else:
        assert r.status_code == 422, r.text[:200]
        assert "nested" in r.json()["message"]
    listed = http.get(BLOBS)
    assert listed.status_code == 200
    with http.stream("GET", f"{BLOBS}?watch=1&timeoutSeconds=1&resourceVersion=0") as w:
        assert w.status_code == 200
        lines = [line for line in w.iter_lines() if line]
    assert lines and all(json.loads(line)["type"] == "ADDED" for line in lines)
