"""Kubernetes' protobuf messages for the tests, built with Google's `protobuf` package.

The field numbers are those of `k8s.io/api/core/v1/generated.proto` and
`k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto` (proto2), written out again here
rather than taken from the server's Rust tables, so that a wrong number or type in the
server's codec shows up as a test failure instead of agreeing with itself.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

MAGIC = b"k8s\x00"

S, B, BOOL, I32, I64 = "string", "bytes", "bool", "int32", "int64"
_SCALARS = {
    S: descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    B: descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
    BOOL: descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    I32: descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    I64: descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
}
SMAP, BMAP = "map<string,string>", "map<string,bytes>"

# message -> [(field, number, type)]; "[T]" is repeated T.
_MESSAGES: dict[str, list[tuple[str, int, str]]] = {
    "TypeMeta": [("apiVersion", 1, S), ("kind", 2, S)],
    "Unknown": [("typeMeta", 1, "TypeMeta"), ("raw", 2, B), ("contentEncoding", 3, S),
                ("contentType", 4, S)],
    "Time": [("seconds", 1, I64), ("nanos", 2, I32)],
    "MicroTime": [("seconds", 1, I64), ("nanos", 2, I32)],
    "FieldsV1": [("Raw", 1, B)],
    "OwnerReference": [("kind", 1, S), ("name", 3, S), ("uid", 4, S), ("apiVersion", 5, S),
                       ("controller", 6, BOOL), ("blockOwnerDeletion", 7, BOOL)],
    "ManagedFieldsEntry": [("manager", 1, S), ("operation", 2, S), ("apiVersion", 3, S),
                           ("time", 4, "Time"), ("fieldsType", 6, S), ("fieldsV1", 7, "FieldsV1"),
                           ("subresource", 8, S)],
    "ObjectMeta": [("name", 1, S), ("generateName", 2, S), ("namespace", 3, S),
                   ("selfLink", 4, S), ("uid", 5, S), ("resourceVersion", 6, S),
                   ("generation", 7, I64), ("creationTimestamp", 8, "Time"),
                   ("deletionTimestamp", 9, "Time"), ("deletionGracePeriodSeconds", 10, I64),
                   ("labels", 11, SMAP), ("annotations", 12, SMAP),
                   ("ownerReferences", 13, "[OwnerReference]"), ("finalizers", 14, "[string]"),
                   ("managedFields", 17, "[ManagedFieldsEntry]")],
    "ListMeta": [("selfLink", 1, S), ("resourceVersion", 2, S), ("continue", 3, S),
                 ("remainingItemCount", 4, I64)],
    "ConfigMap": [("metadata", 1, "ObjectMeta"), ("data", 2, SMAP), ("binaryData", 3, BMAP),
                  ("immutable", 4, BOOL)],
    "Secret": [("metadata", 1, "ObjectMeta"), ("data", 2, BMAP), ("type", 3, S),
               ("stringData", 4, SMAP), ("immutable", 5, BOOL)],
    "ObjectReference": [("kind", 1, S), ("namespace", 2, S), ("name", 3, S), ("uid", 4, S),
                        ("apiVersion", 5, S), ("resourceVersion", 6, S), ("fieldPath", 7, S)],
    "LocalObjectReference": [("name", 1, S)],
    "ServiceAccount": [("metadata", 1, "ObjectMeta"), ("secrets", 2, "[ObjectReference]"),
                       ("imagePullSecrets", 3, "[LocalObjectReference]"),
                       ("automountServiceAccountToken", 4, BOOL)],
    "NamespaceSpec": [("finalizers", 1, "[string]")],
    "NamespaceCondition": [("type", 1, S), ("status", 2, S), ("lastTransitionTime", 4, "Time"),
                           ("reason", 5, S), ("message", 6, S)],
    "NamespaceStatus": [("phase", 1, S), ("conditions", 2, "[NamespaceCondition]")],
    "Namespace": [("metadata", 1, "ObjectMeta"), ("spec", 2, "NamespaceSpec"),
                  ("status", 3, "NamespaceStatus")],
    "EventSource": [("component", 1, S), ("host", 2, S)],
    "EventSeries": [("count", 1, I32), ("lastObservedTime", 2, "MicroTime")],
    "Event": [("metadata", 1, "ObjectMeta"), ("involvedObject", 2, "ObjectReference"),
              ("reason", 3, S), ("message", 4, S), ("source", 5, "EventSource"),
              ("firstTimestamp", 6, "Time"), ("lastTimestamp", 7, "Time"), ("count", 8, I32),
              ("type", 9, S), ("eventTime", 10, "MicroTime"), ("series", 11, "EventSeries"),
              ("action", 12, S), ("related", 13, "ObjectReference"),
              ("reportingComponent", 14, S), ("reportingInstance", 15, S)],
    "Preconditions": [("uid", 1, S), ("resourceVersion", 2, S)],
    "DeleteOptions": [("gracePeriodSeconds", 1, I64), ("preconditions", 2, "Preconditions"),
                      ("orphanDependents", 3, BOOL), ("propagationPolicy", 4, S),
                      ("dryRun", 5, "[string]"),
                      ("ignoreStoreReadErrorWithClusterBreakingPotential", 6, BOOL)],
    "StatusCause": [("reason", 1, S), ("message", 2, S), ("field", 3, S)],
    "StatusDetails": [("name", 1, S), ("group", 2, S), ("kind", 3, S),
                      ("causes", 4, "[StatusCause]"), ("retryAfterSeconds", 5, I32),
                      ("uid", 6, S)],
    "Status": [("metadata", 1, "ListMeta"), ("status", 2, S), ("message", 3, S),
               ("reason", 4, S), ("details", 5, "StatusDetails"), ("code", 6, I32)],
    **{f"{kind}List": [("metadata", 1, "ListMeta"), ("items", 2, f"[{kind}]")]
       for kind in ("ConfigMap", "Secret", "ServiceAccount", "Namespace", "Event")},
    "RawExtension": [("raw", 1, B)],
    "WatchEvent": [("type", 1, S), ("object", 2, "RawExtension")],
}  # fmt: skip


def _build() -> dict[str, type[Message]]:
    fd = descriptor_pb2.FileDescriptorProto(name="k8s_test.proto", package="k8s", syntax="proto2")
    opt = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    repeated = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    msg_type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
    for name, fields in _MESSAGES.items():
        msg = fd.message_type.add(name=name)
        for field, number, ty in fields:
            if ty in (SMAP, BMAP):
                entry = msg.nested_type.add(name=f"{field[0].upper()}{field[1:]}Entry")
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, label=opt, type=_SCALARS[S])
                entry.field.add(
                    name="value", number=2, label=opt, type=_SCALARS[ty.split(",")[1].rstrip(">")]
                )
                msg.field.add(
                    name=field,
                    number=number,
                    label=repeated,
                    type=msg_type,
                    type_name=f".k8s.{name}.{entry.name}",
                )
                continue
            label = opt
            if ty.startswith("["):
                label, ty = repeated, ty[1:-1]
            if ty in _SCALARS:
                msg.field.add(name=field, number=number, label=label, type=_SCALARS[ty])
            else:
                msg.field.add(
                    name=field, number=number, label=label, type=msg_type, type_name=f".k8s.{ty}"
                )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"k8s.{name}"))
        for name in _MESSAGES
    }


M = _build()


def new(message: str, /, **fields: Any) -> Any:
    """A fresh message of type `message` (typed `Any`: the classes are built at run time)."""
    return M[message](**fields)


def envelope(msg: Message, kind: str, api_version: str = "v1") -> bytes:
    """`msg` as a Kubernetes protobuf body: the magic, then `runtime.Unknown`."""
    unknown = new(
        "Unknown",
        typeMeta=new("TypeMeta", apiVersion=api_version, kind=kind),
        raw=msg.SerializeToString(),
    )
    return MAGIC + unknown.SerializeToString()


def open_envelope(body: bytes) -> tuple[str, str, bytes]:
    """`(apiVersion, kind, raw)` of a protobuf body."""
    assert body[:4] == MAGIC, body[:16]
    unknown = new("Unknown")
    unknown.ParseFromString(body[4:])
    return unknown.typeMeta.apiVersion, unknown.typeMeta.kind, unknown.raw


def parse(body: bytes, kind: str) -> Any:
    """The message of a protobuf body that must hold `kind` of `v1`."""
    api_version, got_kind, raw = open_envelope(body)
    assert (api_version, got_kind) == ("v1", kind)
    msg = new(kind)
    msg.ParseFromString(raw)
    return msg
