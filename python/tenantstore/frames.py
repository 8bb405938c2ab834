"""Storage-key frames around stored values.

A frame records the storage key a value was written under, so a value that is copied to another
key - another object, or another project's slice of the keyspace - is detected when read instead
of being served to the wrong tenant. The encoding runs in the Rust core; this module is the typed
entry point.

Layout:

    FRAME_MAGIC (b"\\x7ftsk") | FRAME_VERSION (0x01) | key length (u32 big-endian) | key | body

Decoding rule: data whose first byte is not `0x7f` is not a frame and `unframe` returns None
(legacy or foreign values pass through to the caller's own handling). Data whose first byte *is*
`0x7f` must be a complete, valid frame; anything else - a partial or different magic, a
truncated header, an unknown version, a key length past the end - raises `CorruptFrameError`.
There is no silent fallback for damaged frames.
"""

from __future__ import annotations

from typing import Final

from tenantstore import _native
from tenantstore._native import CorruptFrameError

__all__ = ["FRAME_MAGIC", "FRAME_VERSION", "CorruptFrameError", "frame", "unframe"]

#: First four bytes of every frame: 0x7f then ASCII "tsk".
FRAME_MAGIC: Final[bytes] = _native.FRAME_MAGIC
#: Format version byte written after the magic.
FRAME_VERSION: Final[int] = _native.FRAME_VERSION


def frame(key: bytes, body: bytes) -> bytes:
    """Wrap `body` with the storage `key` it is written under (one allocation).

    Raises ValueError for a key longer than 2**32 - 1 bytes.
    """
    return _native.frame(key, body)


def unframe(data: bytes) -> tuple[bytes, bytes] | None:
    """Split a frame into `(key, body)`.

    Returns None when `data` does not start with `0x7f` (not a frame). Raises
    `CorruptFrameError` for data that starts with `0x7f` but is not a complete, valid frame.
    """
    return _native.unframe(data)
