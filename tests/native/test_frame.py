"""Storage-key frames (Rust core via tenantstore.frames)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantstore.frames import FRAME_MAGIC, FRAME_VERSION, CorruptFrameError, frame, unframe


def test_constants() -> None:
    assert FRAME_MAGIC == b"\x7ftsk"
    assert FRAME_VERSION == 1
    assert issubclass(CorruptFrameError, ValueError)


def test_layout() -> None:
    data = frame(b"/k", b"body")
    assert data == b"\x7ftsk\x01" + struct.pack(">I", 2) + b"/k" + b"body"
    assert unframe(data) == (b"/k", b"body")
    assert unframe(frame(b"", b"")) == (b"", b"")


@pytest.mark.parametrize("data", [b"", b"{}", b"k8s\x00", b"\x00\x7ftsk", b"\x80"])
def test_not_a_frame(data: bytes) -> None:
    assert unframe(data) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x7f", "truncated header"),
        (b"\x7fts", "truncated header"),
        (b"\x7ftsk", "truncated header"),
        (b"\x7ftsk\x01\x00\x00", "truncated header"),
        (b"\x7fELF\x02\x01\x01", "magic"),
        (b"\x7fx", "magic"),
        (b"\x7ftsk\x02", "unknown format version 2"),
        (b"\x7ftsk\x00\x00\x00\x00\x00", "unknown format version 0"),
        (b"\x7ftsk\x01\x00\x00\x00\x05abc", "key length 5"),
        (b"\x7ftsk\x01\xff\xff\xff\xff", "key length 4294967295"),
    ],
)
def test_corrupt(data: bytes, message: str) -> None:
    with pytest.raises(CorruptFrameError, match=message):
        unframe(data)


def test_only_bytes_accepted() -> None:
    with pytest.raises(TypeError):
        frame("key", b"")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        unframe("\x7ftsk")  # type: ignore[arg-type]


@given(st.binary(), st.binary())
def test_round_trip(key: bytes, body: bytes) -> None:
    data = frame(key, body)
    assert len(data) == 9 + len(key) + len(body)
    assert unframe(data) == (key, body)


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_every_strict_prefix_is_corrupt(key: bytes, body: bytes) -> None:
    data = frame(key, body)
    for end in range(1, 9 + len(key)):
        with pytest.raises(CorruptFrameError):
            unframe(data[:end])


def _check_total(data: bytes) -> None:
    try:
        result = unframe(data)
    except CorruptFrameError:
        assert data[:1] == b"\x7f"
        return
    if result is None:
        assert data[:1] != b"\x7f"
    else:
        key, body = result
        assert data[:5] == FRAME_MAGIC + bytes([FRAME_VERSION])
        assert data == frame(key, body)


@given(st.binary())
def test_unframe_total_on_arbitrary_bytes(data: bytes) -> None:
    _check_total(data)


@given(st.binary())
def test_unframe_total_after_magic(rest: bytes) -> None:
    _check_total(FRAME_MAGIC + rest)
    _check_total(FRAME_MAGIC + bytes([FRAME_VERSION]) + rest)
    _check_total(b"\x7f" + rest)
