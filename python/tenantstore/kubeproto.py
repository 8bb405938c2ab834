"""Kubernetes' protobuf encoding of the built-in kinds, to and from the JSON the server stores.

kubectl's typed subcommands (`kubectl create configmap`, `create namespace`, ...) and
client-go's typed clients speak `application/vnd.kubernetes.protobuf`: the magic `k8s\\0`,
then a `runtime.Unknown` envelope naming the apiVersion and kind around the typed message.
The codec runs in the Rust core and goes straight between the wire format and JSON bytes,
so the server keeps one representation (JSON) and protobuf exists only at its edge. This
module is the typed entry point.

A decoded body is the JSON a Go client would have sent for the same object: Go's field
order, `omitempty` honoured, times in RFC 3339, `bytes` fields in base64. Unknown protobuf
fields are skipped; malformed data, invalid UTF-8 or an envelope naming another kind raise
`ProtobufDecodeError`. JSON that has no protobuf form (a value of the wrong type, a kind the
codec does not know) raises `ProtobufEncodeError`.
"""

from __future__ import annotations

from ._native import (
    PROTOBUF_MAGIC,
    ProtobufDecodeError,
    ProtobufEncodeError,
    json_to_protobuf,
    protobuf_kinds,
    protobuf_to_json,
    protobuf_watch_frame,
)

__all__ = [
    "KINDS",
    "MAGIC",
    "ProtobufDecodeError",
    "ProtobufEncodeError",
    "json_to_protobuf",
    "protobuf_to_json",
    "protobuf_watch_frame",
]

#: The four bytes every protobuf-encoded Kubernetes object starts with.
MAGIC: bytes = PROTOBUF_MAGIC

#: Every `(apiVersion, kind)` the codec encodes and decodes.
KINDS: frozenset[tuple[str, str]] = frozenset(protobuf_kinds())
