"""Continue tokens in the Kubernetes format.

A token is base64url (unpadded) of `{"v":"meta.k8s.io/v1","rv":<list RV>,"start":<key>}`
where `start` is the key to resume from, relative to the list's key prefix, without a
leading "/" (`"bar\x00"`), exactly as upstream's `storage.EncodeContinue` writes it, so
tokens minted by Kubernetes tooling and by tenantstore are interchangeable. Decoding also
accepts a leading "/" (the form tenantstore issued before). `rv: -1` is upstream's
*inconsistent* token: resume at `start`, but read the current state (a 410 after
compaction hands one out so the client can finish its list).

Decoding is strict: a token that does not round-trip through a path clean (so "../"
cannot climb out of the listed prefix), has no RV (0) or no start key, or is not
base64/JSON at all, is a `BadRequestError`; tokens are client input.
"""

from __future__ import annotations

import base64
import binascii
import posixpath

import orjson

from .errors import BadRequestError, InternalError

API_VERSION = "meta.k8s.io/v1"
# The `rv` of an inconsistent continuation: resume at the start key, at the current state.
INCONSISTENT_RV = -1
MAX_TOKEN_LENGTH = 8192


def list_prefix(key: str) -> str:
    """The key prefix a recursive list of `key` covers (always ends with '/')."""
    return key if key.endswith("/") else key + "/"


def encode(next_key: str, prefix: str, resource_version: int) -> str:
    """Encode a token resuming at `next_key` (a full storage key under `prefix`)."""
    base = prefix[:-1] if prefix.endswith("/") else prefix
    if not next_key.startswith(base + "/"):
        raise ValueError(f"next key {next_key!r} is not under the list prefix {prefix!r}")
    start = next_key[len(base) + 1 :]
    try:
        raw = orjson.dumps({"v": API_VERSION, "rv": resource_version, "start": start})
    except orjson.JSONEncodeError:  # a key that is not valid UTF-8 (from raw backend bytes)
        raise InternalError("cannot encode a continue token for a key that is not UTF-8") from None
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(token: str, prefix: str) -> tuple[str, int]:
    """Return (full key to resume from, list RV) for a token issued for `prefix`."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise BadRequestError("continue key is not valid: too long")
    try:
        padded = token + "=" * (-len(token) % 4)
        data = base64.b64decode(padded, altchars=b"-_", validate=True)
        body = orjson.loads(data)
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise BadRequestError(f"continue key is not valid: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequestError("continue key is not valid: not an object")
    if body.get("v") != API_VERSION:
        raise BadRequestError(
            "continue key is not valid: server does not recognize this encoded version "
            f"{body.get('v')!r}"
        )
    rv = body.get("rv")
    start = body.get("start")
    if (
        not isinstance(rv, int)
        or isinstance(rv, bool)
        or not (0 < rv < 2**63 or rv == INCONSISTENT_RV)
    ):
        raise BadRequestError("continue key is not valid: incorrect encoded start resourceVersion")
    if not isinstance(start, str) or not start:
        raise BadRequestError("continue key is not valid: encoded start key empty")
    # Both forms name the same key: "bar" (upstream's) and "/bar" (tenantstore's before).
    rel = start[1:] if start.startswith("/") else start
    path = rel.rstrip("\x00")
    if (
        not path
        or "\x00" in path
        or rel.startswith("/")
        or path.startswith("../")
        or path == ".."
        or posixpath.normpath("/" + path) != "/" + path
    ):
        raise BadRequestError(f"continue key is not valid: {start!r}")
    base = prefix[:-1] if prefix.endswith("/") else prefix
    return base + "/" + rel, rv
