"""The protobuf codec (`tenantstore.kubeproto`) on the fields a create cannot carry to
storage (server-owned metadata, lists, Status, DeleteOptions): messages built with Google's
`protobuf` package from the upstream field numbers, decoded to JSON compared with JSON
written by hand, encoded back and compared with the message they came from."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from tenantstore.kubeproto import (
    KINDS,
    ProtobufDecodeError,
    ProtobufEncodeError,
    json_to_protobuf,
    protobuf_to_json,
)

from . import k8s_proto as k

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


def _round_trip(msg: Any, kind: str, want: dict[str, Any], api_version: str = "v1") -> None:
    body = k.envelope(msg, kind, api_version)
    got = orjson.loads(protobuf_to_json(body, api_version, kind))
    assert got == {"kind": kind, "apiVersion": api_version, **want}
    again = json_to_protobuf(orjson.dumps(got))
    got_version, got_kind, raw = k.open_envelope(again)
    assert (got_version, got_kind) == (api_version, kind)
    back = k.new(kind)
    back.ParseFromString(raw)
    assert back == msg


def test_every_object_meta_field() -> None:
    meta = k.new(
        "ObjectMeta",
        name="n",
        generateName="n-",
        namespace="ns",
        selfLink="/api/v1/namespaces/ns/configmaps/n",
        uid="u",
        resourceVersion="42",
        generation=7,
        creationTimestamp=k.new("Time", seconds=T0),
        deletionTimestamp=k.new("Time", seconds=T0 + 60),
        deletionGracePeriodSeconds=0,
        labels={"a": "1"},
        annotations={"b": "2"},
        ownerReferences=[k.new("OwnerReference", apiVersion="v1", kind="K", name="o", uid="x")],
        finalizers=["f/one", "f/two"],
        managedFields=[
            k.new(
                "ManagedFieldsEntry",
                manager="kubectl",
                operation="Apply",
                apiVersion="v1",
                time=k.new("Time", seconds=T0),
                fieldsType="FieldsV1",
                fieldsV1=k.new("FieldsV1", Raw=b'{"f:data":{"f:a":{}}}'),
                subresource="status",
            )
        ],
    )
    _round_trip(
        k.new("ConfigMap", metadata=meta),
        "ConfigMap",
        {
            "metadata": {
                "name": "n",
                "generateName": "n-",
                "namespace": "ns",
                "selfLink": "/api/v1/namespaces/ns/configmaps/n",
                "uid": "u",
                "resourceVersion": "42",
                "generation": 7,
                "creationTimestamp": "2023-11-14T22:13:20Z",
                "deletionTimestamp": "2023-11-14T22:14:20Z",
                "deletionGracePeriodSeconds": 0,
                "labels": {"a": "1"},
                "annotations": {"b": "2"},
                # Required in Go (no omitempty): written even when empty.
                "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "o", "uid": "x"}],
                "finalizers": ["f/one", "f/two"],
                "managedFields": [
                    {
                        "manager": "kubectl",
                        "operation": "Apply",
                        "apiVersion": "v1",
                        "time": "2023-11-14T22:13:20Z",
                        "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:data": {"f:a": {}}},
                        "subresource": "status",
                    }
                ],
            }
        },
    )


def test_list_meta_and_items() -> None:
    listed = k.new(
        "SecretList",
        metadata=k.new(
            "ListMeta",
            selfLink="/x",
            resourceVersion="9",
            remainingItemCount=3,
            **{"continue": "c"},  # a Python keyword
        ),
        items=[k.new("Secret", metadata=k.new("ObjectMeta", name="s"), data={"k": b"\xff"})],
    )
    _round_trip(
        listed,
        "SecretList",
        {
            "metadata": {
                "selfLink": "/x",
                "resourceVersion": "9",
                "continue": "c",
                "remainingItemCount": 3,
            },
            "items": [
                {"metadata": {"name": "s"}, "data": {"k": base64.b64encode(b"\xff").decode()}}
            ],
        },
    )
    empty = k.new("NamespaceList", metadata=k.new("ListMeta"))
    _round_trip(empty, "NamespaceList", {"metadata": {}, "items": []})


def test_status_with_details() -> None:
    status = k.new(
        "Status",
        metadata=k.new("ListMeta"),
        status="Failure",
        message="m",
        reason="Invalid",
        details=k.new(
            "StatusDetails",
            name="n",
            group="g",
            kind="k",
            uid="u",
            causes=[k.new("StatusCause", reason="FieldValueInvalid", message="bad", field="f")],
            retryAfterSeconds=5,
        ),
        code=422,
    )
    _round_trip(
        status,
        "Status",
        {
            "metadata": {},
            "status": "Failure",
            "message": "m",
            "reason": "Invalid",
            "details": {
                "name": "n",
                "group": "g",
                "kind": "k",
                "uid": "u",
                "causes": [{"reason": "FieldValueInvalid", "message": "bad", "field": "f"}],
                "retryAfterSeconds": 5,
            },
            "code": 422,
        },
    )


@pytest.mark.parametrize("api_version", ["v1", "meta.k8s.io/v1"])
def test_delete_options(api_version: str) -> None:
    opts = k.new(
        "DeleteOptions",
        gracePeriodSeconds=0,
        preconditions=k.new("Preconditions", uid="u", resourceVersion="3"),
        orphanDependents=False,
        propagationPolicy="Foreground",
        dryRun=["All"],
        ignoreStoreReadErrorWithClusterBreakingPotential=False,
    )
    body = k.envelope(opts, "DeleteOptions", api_version)
    got = orjson.loads(protobuf_to_json(body, "v1", "DeleteOptions"))
    assert got == {
        "kind": "DeleteOptions",
        "apiVersion": api_version,
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "u", "resourceVersion": "3"},
        "orphanDependents": False,
        "propagationPolicy": "Foreground",
        "dryRun": ["All"],
        "ignoreStoreReadErrorWithClusterBreakingPotential": False,
    }


def test_unknown_fields_are_skipped() -> None:
    """Fields a newer Kubernetes may add (all wire types) are skipped, as Go does."""
    raw = bytes(k.new("ConfigMap", data={"a": "b"}).SerializeToString())
    extra = b"\x78\x01" + b"\x81\x01" + b"\x00" * 8 + b"\x8a\x01\x02hi" + b"\x95\x01" + b"\x00" * 4
    unknown = k.new("Unknown", typeMeta=k.new("TypeMeta", apiVersion="v1", kind="ConfigMap"))
    unknown.raw = raw + extra
    got = orjson.loads(protobuf_to_json(k.MAGIC + unknown.SerializeToString(), "v1", "ConfigMap"))
    assert got == {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {}, "data": {"a": "b"}}


def test_errors() -> None:
    with pytest.raises(ProtobufDecodeError, match="expected prefix"):
        protobuf_to_json(b"{}", "v1", "ConfigMap")
    with pytest.raises(ProtobufDecodeError, match="Secret"):
        protobuf_to_json(k.envelope(k.new("Secret"), "Secret"), "v1", "ConfigMap")
    for bad in (
        {"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": 1}},
        {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"generation": "1"}},
        {"kind": "Event", "apiVersion": "v1", "eventTime": "2023-11-14"},
        {"kind": "Widget", "apiVersion": "example.com/v1"},
    ):
        with pytest.raises(ProtobufEncodeError):
            json_to_protobuf(orjson.dumps(bad))
    assert ("v1", "ConfigMap") in KINDS and ("example.com/v1", "Widget") not in KINDS
