"""Protobuf bodies and responses over real HTTP, checked against messages built with
Google's `protobuf` package from the upstream field numbers (`k8s_proto`), not with the
server's own encoder.

Each round trip: a protobuf create, its JSON answer compared with the JSON written out by
hand, then a protobuf read compared with the message sent (server-owned metadata aside).
"""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from typing import Any

import httpx
import orjson
import pytest

from . import k8s_proto as k
from .conftest import ThreadServer

PB = "application/vnd.kubernetes.protobuf"
JSON_ONLY = {"accept": "application/json"}
PB_ONLY = {"accept": PB}
KUBECTL_ACCEPT = {"accept": f"{PB},application/json"}
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"


def _base(project: str) -> str:
    return f"/projects/{project}/control-plane"


def _path(project: str, plural: str, name: str = "", namespace: str | None = "default") -> str:
    ns = f"/namespaces/{namespace}" if namespace else ""
    return f"{_base(project)}/api/v1{ns}/{plural}" + (f"/{name}" if name else "")


@pytest.fixture
def project() -> str:
    return f"pb-{uuid.uuid4().hex[:8]}"


def _post(http: httpx.Client, path: str, body: bytes, **headers: str) -> httpx.Response:
    return http.post(path, content=body, headers={"content-type": PB, **JSON_ONLY, **headers})


def _rfc3339(seconds: int, micros: int | None = None) -> str:
    when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{micros:06d}Z" if micros is not None else f"{text}Z"


def _server_meta(created: dict[str, Any]) -> dict[str, Any]:
    meta = created["metadata"]
    fields = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")
    return {k: meta[k] for k in fields if k in meta}


def _adopt_server_fields(sent: Any, created: dict[str, Any], namespace: str | None) -> None:
    """What the server sets on create, copied into the message that was sent."""
    meta = created["metadata"]
    sent.metadata.uid = meta["uid"]
    sent.metadata.resourceVersion = meta["resourceVersion"]
    sent.metadata.generation = meta["generation"]
    stamp = datetime.datetime.strptime(meta["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    sent.metadata.creationTimestamp.seconds = int(stamp.replace(tzinfo=datetime.UTC).timestamp())
    if namespace is not None:
        sent.metadata.namespace = namespace


def _get_pb(http: httpx.Client, path: str, kind: str) -> Any:
    resp = http.get(path, headers=PB_ONLY)
    assert resp.status_code == 200, resp.content
    assert resp.headers["content-type"] == PB
    got = k.parse(resp.content, kind)
    # The server's own bookkeeping of the write (an `Update` entry of its field manager)
    # rides along; the JSON side checks it, here it is set aside for the comparison.
    for entry in got.metadata.managedFields:
        assert entry.operation in ("Update", "Apply") and entry.fieldsType == "FieldsV1"
        assert json.loads(entry.fieldsV1.Raw)
    del got.metadata.managedFields[:]
    return got


def _full_meta(name: str) -> Any:
    return k.new(
        "ObjectMeta",
        name=name,
        labels={"app": "demo", "tier": "web"},
        annotations={"example.com/note": "héllo ✓"},
        ownerReferences=[
            k.new(
                "OwnerReference",
                apiVersion="v1",
                kind="ConfigMap",
                name="owner",
                uid="4c1b2d7e-0000-4000-8000-000000000001",
                controller=True,
                blockOwnerDeletion=False,
            )
        ],
        finalizers=["example.com/keep"],
    )


_FULL_META_JSON = {
    "labels": {"app": "demo", "tier": "web"},
    "annotations": {"example.com/note": "héllo ✓"},
    "ownerReferences": [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "owner",
            "uid": "4c1b2d7e-0000-4000-8000-000000000001",
            "controller": True,
            "blockOwnerDeletion": False,
        }
    ],
    "finalizers": ["example.com/keep"],
}


# -- round trips, one per kind ------------------------------------------------------------


def test_configmap_round_trip(http: httpx.Client, project: str) -> None:
    blob = bytes(range(256))
    sent = k.new(
        "ConfigMap",
        metadata=_full_meta("cm"),
        data={"greeting": "hi", "empty": "", "multi": "a\nb"},
        binaryData={"blob": blob, "none": b""},
        immutable=True,
    )
    resp = _post(http, _path(project, "configmaps"), k.envelope(sent, "ConfigMap"))
    assert resp.status_code == 201, resp.text
    assert resp.headers["content-type"] == "application/json"
    created = resp.json()
    assert created == {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {
            "name": "cm",
            "namespace": "default",
            **_FULL_META_JSON,
            **_server_meta(created),
        },
        "immutable": True,
        "data": {"empty": "", "greeting": "hi", "multi": "a\nb"},
        "binaryData": {"blob": base64.b64encode(blob).decode(), "none": ""},
    }
    assert http.get(_path(project, "configmaps", "cm"), headers=JSON_ONLY).json() == created
    got = _get_pb(http, _path(project, "configmaps", "cm"), "ConfigMap")
    _adopt_server_fields(sent, created, "default")
    assert got == sent


def test_configmap_false_and_absent_flags(http: httpx.Client, project: str) -> None:
    """`immutable: false` is kept (a pointer in Go); an absent one stays absent."""
    for name, flag in (("off", False), ("unset", None)):
        sent = k.new("ConfigMap", metadata=k.new("ObjectMeta", name=name))
        if flag is not None:
            sent.immutable = flag
        created = _post(http, _path(project, "configmaps"), k.envelope(sent, "ConfigMap")).json()
        assert created.get("immutable", "absent") == ("absent" if flag is None else flag)
        got = _get_pb(http, _path(project, "configmaps", name), "ConfigMap")
        assert got.HasField("immutable") == (flag is not None)
        assert "data" not in created and "binaryData" not in created


def test_secret_string_data_matches_json(http: httpx.Client, project: str) -> None:
    """`stringData` is folded into `data` and `type` defaults to `Opaque`, for protobuf and
    JSON bodies alike: both store the same object."""
    sent = k.new(
        "Secret",
        metadata=k.new("ObjectMeta", name="s-pb"),
        data={"raw": b"\x00\x01\xfe", "shared": b"old"},
        stringData={"user": "admin", "shared": "new"},
        immutable=True,
    )
    resp = _post(http, _path(project, "secrets"), k.envelope(sent, "Secret"))
    assert resp.status_code == 201, resp.text
    via_pb = resp.json()
    want_data = {
        "raw": base64.b64encode(b"\x00\x01\xfe").decode(),
        "shared": base64.b64encode(b"new").decode(),
        "user": base64.b64encode(b"admin").decode(),
    }
    assert via_pb["data"] == want_data
    assert via_pb["type"] == "Opaque" and via_pb["immutable"] is True
    assert "stringData" not in via_pb
    as_json = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s-json"},
        "data": {"raw": want_data["raw"], "shared": base64.b64encode(b"old").decode()},
        "stringData": {"user": "admin", "shared": "new"},
        "immutable": True,
    }
    via_json = http.post(_path(project, "secrets"), json=as_json).json()
    strip = ("metadata",)
    assert {k_: v for k_, v in via_json.items() if k_ not in strip} == {
        k_: v for k_, v in via_pb.items() if k_ not in strip
    }
    got = _get_pb(http, _path(project, "secrets", "s-pb"), "Secret")
    assert dict(got.data) == {"raw": b"\x00\x01\xfe", "shared": b"new", "user": b"admin"}
    assert len(got.stringData) == 0 and got.type == "Opaque" and got.immutable is True
    # stringData in a JSON replace is folded too.
    current = http.get(_path(project, "secrets", "s-json")).json()
    current["stringData"] = {"extra": "x"}
    current.pop("immutable")
    replaced = http.put(_path(project, "secrets", "s-json"), json=current)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["data"]["extra"] == base64.b64encode(b"x").decode()
    assert "stringData" not in replaced.json()


def test_serviceaccount_round_trip(http: httpx.Client, project: str) -> None:
    sent = k.new(
        "ServiceAccount",
        metadata=_full_meta("robot"),
        secrets=[
            k.new(
                "ObjectReference",
                kind="Secret",
                namespace="default",
                name="token",
                uid="u-1",
                apiVersion="v1",
                resourceVersion="9",
                fieldPath="data",
            ),
            k.new("ObjectReference", name="second"),
        ],
        imagePullSecrets=[k.new("LocalObjectReference", name="registry")],
        automountServiceAccountToken=False,
    )
    resp = _post(http, _path(project, "serviceaccounts"), k.envelope(sent, "ServiceAccount"))
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created == {
        "kind": "ServiceAccount",
        "apiVersion": "v1",
        "metadata": {
            "name": "robot",
            "namespace": "default",
            **_FULL_META_JSON,
            **_server_meta(created),
        },
        "secrets": [
            {
                "kind": "Secret",
                "namespace": "default",
                "name": "token",
                "uid": "u-1",
                "apiVersion": "v1",
                "resourceVersion": "9",
                "fieldPath": "data",
            },
            {"name": "second"},
        ],
        "imagePullSecrets": [{"name": "registry"}],
        "automountServiceAccountToken": False,
    }
    got = _get_pb(http, _path(project, "serviceaccounts", "robot"), "ServiceAccount")
    _adopt_server_fields(sent, created, "default")
    assert got == sent


def test_namespace_round_trip(http: httpx.Client, project: str) -> None:
    """A new namespace is `Active` whatever status it was sent with; a replace of its
    `/status` keeps the status it is given, conditions and their times included."""
    sent = k.new(
        "Namespace",
        metadata=k.new("ObjectMeta", name="team", labels={"env": "dev"}),
        spec=k.new("NamespaceSpec", finalizers=["kubernetes"]),
        status=k.new("NamespaceStatus", phase="Terminating"),
    )
    path = _path(project, "namespaces", namespace=None)
    resp = _post(http, path, k.envelope(sent, "Namespace"))
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created == {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": "team", "labels": {"env": "dev"}, **_server_meta(created)},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }
    got = _get_pb(http, path + "/team", "Namespace")
    sent.status.phase = "Active"
    _adopt_server_fields(sent, created, None)
    assert got == sent

    stamp = 1_700_000_000
    sent.status.conditions.append(
        k.new(
            "NamespaceCondition",
            type="NamespaceDeletionDiscoveryFailure",
            status="False",
            lastTransitionTime=k.new("Time", seconds=stamp),
            reason="ResourcesDiscovered",
            message="all resources discovered",
        )
    )
    resp = http.put(
        path + "/team/status",
        content=k.envelope(sent, "Namespace"),
        headers={"content-type": PB},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"]["conditions"] == [
        {
            "type": "NamespaceDeletionDiscoveryFailure",
            "status": "False",
            "lastTransitionTime": _rfc3339(stamp),
            "reason": "ResourcesDiscovered",
            "message": "all resources discovered",
        }
    ]
    got = _get_pb(http, path + "/team", "Namespace")
    sent.metadata.resourceVersion = resp.json()["metadata"]["resourceVersion"]
    assert got == sent


def test_event_round_trip(http: httpx.Client, project: str) -> None:
    first, last, at, seen = 1_700_000_000, 1_700_000_060, 1_700_000_030, 1_700_000_090
    sent = k.new(
        "Event",
        metadata=k.new("ObjectMeta", name="cm.1789"),
        involvedObject=k.new(
            "ObjectReference",
            kind="ConfigMap",
            namespace="default",
            name="cm",
            uid="u-2",
            apiVersion="v1",
            resourceVersion="3",
            fieldPath="data[a]",
        ),
        reason="Updated",
        message="the config map changed",
        source=k.new("EventSource", component="tester", host="node-1"),
        firstTimestamp=k.new("Time", seconds=first),
        lastTimestamp=k.new("Time", seconds=last),
        count=4,
        type="Normal",
        eventTime=k.new("MicroTime", seconds=at, nanos=123_456_000),
        series=k.new(
            "EventSeries", count=2, lastObservedTime=k.new("MicroTime", seconds=seen, nanos=7_000)
        ),
        action="Update",
        related=k.new("ObjectReference", kind="Secret", name="s"),
        reportingComponent="example.com/tester",
        reportingInstance="tester-1",
    )
    resp = _post(http, _path(project, "events"), k.envelope(sent, "Event"))
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created == {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {"name": "cm.1789", "namespace": "default", **_server_meta(created)},
        "involvedObject": {
            "kind": "ConfigMap",
            "namespace": "default",
            "name": "cm",
            "uid": "u-2",
            "apiVersion": "v1",
            "resourceVersion": "3",
            "fieldPath": "data[a]",
        },
        "reason": "Updated",
        "message": "the config map changed",
        "source": {"component": "tester", "host": "node-1"},
        "firstTimestamp": _rfc3339(first),
        "lastTimestamp": _rfc3339(last),
        "count": 4,
        "type": "Normal",
        "eventTime": _rfc3339(at, 123_456),
        "series": {"count": 2, "lastObservedTime": _rfc3339(seen, 7)},
        "action": "Update",
        "related": {"kind": "Secret", "name": "s"},
        "reportingComponent": "example.com/tester",
        "reportingInstance": "tester-1",
    }
    got = _get_pb(http, _path(project, "events", "cm.1789"), "Event")
    _adopt_server_fields(sent, created, "default")
    assert got == sent


def test_minimal_event_is_what_go_would_send(http: httpx.Client, project: str) -> None:
    """Fields Go's JSON never omits (structs, times, the reporting strings) are there,
    zero, as in the JSON a Go client sends for the same object."""
    sent = k.new("Event", metadata=k.new("ObjectMeta", name="bare"))
    created = _post(http, _path(project, "events"), k.envelope(sent, "Event")).json()
    assert {k_: v for k_, v in created.items() if k_ != "metadata"} == {
        "kind": "Event",
        "apiVersion": "v1",
        "involvedObject": {},
        "source": {},
        "firstTimestamp": None,
        "lastTimestamp": None,
        "eventTime": None,
        "reportingComponent": "",
        "reportingInstance": "",
    }
    got = _get_pb(http, _path(project, "events", "bare"), "Event")
    assert not got.HasField("series") and not got.HasField("related")
    assert got.firstTimestamp.seconds == 0 and got.eventTime.seconds == 0


# -- lists, errors, deletes and watches ----------------------------------------------------


def test_list_and_status_in_protobuf(http: httpx.Client, project: str) -> None:
    for name in ("a", "b"):
        cm = k.new("ConfigMap", metadata=k.new("ObjectMeta", name=name), data={"n": name})
        assert _post(http, _path(project, "configmaps"), k.envelope(cm, "ConfigMap")).is_success
    resp = http.get(_path(project, "configmaps"), headers=KUBECTL_ACCEPT)
    assert resp.headers["content-type"] == PB
    listed = k.parse(resp.content, "ConfigMapList")
    assert [(i.metadata.name, dict(i.data)) for i in listed.items] == [
        ("a", {"n": "a"}),
        ("b", {"n": "b"}),
    ]
    assert int(listed.metadata.resourceVersion) >= int(listed.items[1].metadata.resourceVersion)
    # A paginated list carries its continue token.
    page = k.parse(
        http.get(_path(project, "configmaps"), params={"limit": 1}, headers=PB_ONLY).content,
        "ConfigMapList",
    )
    assert len(page.items) == 1 and getattr(page.metadata, "continue")

    # Errors come back as a protobuf Status when protobuf is preferred.
    missing = http.get(_path(project, "configmaps", "nope"), headers=KUBECTL_ACCEPT)
    assert missing.status_code == 404 and missing.headers["content-type"] == PB
    status = k.parse(missing.content, "Status")
    assert (status.status, status.reason, status.code) == ("Failure", "NotFound", 404)
    assert (status.details.name, status.details.kind) == ("nope", "configmaps")
    assert status.message == 'configmaps "nope" not found'
    dup = k.new("ConfigMap", metadata=k.new("ObjectMeta", name="a"))
    again = _post(http, _path(project, "configmaps"), k.envelope(dup, "ConfigMap"), **PB_ONLY)
    assert again.status_code == 409
    assert k.parse(again.content, "Status").reason == "AlreadyExists"
    # JSON when the client prefers it.
    assert http.get(_path(project, "configmaps", "nope")).json()["reason"] == "NotFound"


def test_other_project_sees_nothing(http: httpx.Client, project: str) -> None:
    other = f"{project}-x"
    cm = k.new("ConfigMap", metadata=k.new("ObjectMeta", name="mine"), data={"o": project})
    assert _post(http, _path(project, "configmaps"), k.envelope(cm, "ConfigMap")).is_success
    missing = http.get(_path(other, "configmaps", "mine"), headers=PB_ONLY)
    assert missing.status_code == 404
    assert k.parse(missing.content, "Status").reason == "NotFound"
    empty = http.get(_path(other, "configmaps"), headers=PB_ONLY)
    assert list(k.parse(empty.content, "ConfigMapList").items) == []


def test_delete_options_in_protobuf(http: httpx.Client, project: str) -> None:
    cm = k.new("ConfigMap", metadata=k.new("ObjectMeta", name="gone"))
    created = _post(http, _path(project, "configmaps"), k.envelope(cm, "ConfigMap")).json()
    path = _path(project, "configmaps", "gone")
    for api_version, uid, code in (
        ("v1", "not-the-uid", 409),
        ("meta.k8s.io/v1", created["metadata"]["uid"], 200),
    ):
        opts = k.new("DeleteOptions", preconditions=k.new("Preconditions", uid=uid))
        resp = http.request(
            "DELETE",
            path,
            content=k.envelope(opts, "DeleteOptions", api_version),
            headers={"content-type": PB, **KUBECTL_ACCEPT},
        )
        assert resp.status_code == code, resp.content
        assert resp.headers["content-type"] == PB
        if code == 200:
            assert k.parse(resp.content, "ConfigMap").metadata.name == "gone"
        else:
            assert k.parse(resp.content, "Status").reason == "Conflict"
    garbage = http.request("DELETE", path, content=b"k8s\x00\x0a\xff", headers={"content-type": PB})
    assert garbage.status_code == 400 and garbage.json()["reason"] == "BadRequest"


def _frames(buf: bytes) -> tuple[list[Any], bytes]:
    """The complete length-prefixed `WatchEvent` frames at the start of `buf`, and the rest."""
    events = []
    while len(buf) >= 4 and len(buf) >= 4 + (size := int.from_bytes(buf[:4], "big")):
        event = k.new("WatchEvent")
        event.ParseFromString(buf[4 : 4 + size])
        events.append(event)
        buf = buf[4 + size :]
    return events, buf


def _event_object(event: Any) -> tuple[str, Any]:
    _, kind, raw = k.open_envelope(event.object.raw)
    obj = k.new(kind)
    obj.ParseFromString(raw)
    return kind, obj


async def test_watch_in_protobuf(server: ThreadServer, project: str) -> None:
    """A watch-list in protobuf: length-prefixed `WatchEvent` frames, each object a whole
    protobuf body; the initial state, the bookmark that ends it, then the changes."""
    path = _path(project, "configmaps")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

        async def create(name: str) -> None:
            cm = k.new("ConfigMap", metadata=k.new("ObjectMeta", name=name), data={"n": name})
            made = await client.post(
                path, content=k.envelope(cm, "ConfigMap"), headers={"content-type": PB}
            )
            assert made.status_code == 201

        await create("before")
        params = {
            "watch": "true",
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "20",
        }
        headers = {"accept": f"{PB};stream=watch"}
        events: list[Any] = []
        buf = b""
        created = False
        async with client.stream("GET", path, params=params, headers=headers) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"] == f"{PB};stream=watch"
            async for chunk in stream.aiter_bytes():
                got, buf = _frames(buf + chunk)
                events += got
                if len(events) >= 2 and not created:
                    created = True
                    await create("after")
                if any(
                    e.type == "ADDED" and _event_object(e)[1].metadata.name == "after" for e in got
                ):
                    break
    added, bookmark, *rest = events
    assert added.type == "ADDED" and _event_object(added)[1].metadata.name == "before"
    assert dict(_event_object(added)[1].data) == {"n": "before"}
    assert bookmark.type == "BOOKMARK"
    kind, marker = _event_object(bookmark)
    assert kind == "ConfigMap"
    assert dict(marker.metadata.annotations) == {"k8s.io/initial-events-end": "true"}
    assert [(e.type, _event_object(e)[1].metadata.name) for e in rest if e.type != "BOOKMARK"] == [
        ("ADDED", "after")
    ]


# -- negotiation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "want"),
    [
        ("", "application/json"),
        ("*/*", "application/json"),
        ("application/*", "application/json"),
        (f"{PB}, */*", PB),
        (f"application/json;q=0.5, {PB}", PB),
        (f"{PB};q=0.1, application/json", "application/json"),
        ("application/json;as=Table;v=v1;g=meta.k8s.io, application/json", "application/json"),
        (f"text/html, {PB}", PB),
    ],
)
def test_accept(http: httpx.Client, project: str, accept: str, want: str) -> None:
    resp = http.get(_path(project, "configmaps"), headers={"accept": accept})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == want


def test_not_acceptable(http: httpx.Client, project: str) -> None:
    """406 before anything is done: nothing acceptable, or protobuf for a custom resource."""
    for path, accept in (
        (_path(project, "configmaps"), "application/yaml"),
        (_path(project, "configmaps"), f"{PB};q=0"),
        (_base(project) + WIDGETS, PB),
    ):
        resp = http.get(path, headers={"accept": accept})
        assert resp.status_code == 406, (path, accept)
        assert resp.json()["reason"] == "NotAcceptable"
    cm = k.new("ConfigMap", metadata=k.new("ObjectMeta", name="never"))
    refused = _post(
        http, _path(project, "configmaps"), k.envelope(cm, "ConfigMap"), accept="text/plain"
    )
    assert refused.status_code == 406
    assert http.get(_path(project, "configmaps", "never")).status_code == 404


def test_custom_resources_stay_json(http: httpx.Client, project: str) -> None:
    widget = k.new("ConfigMap", metadata=k.new("ObjectMeta", name="w"))
    resp = _post(http, _base(project) + WIDGETS, k.envelope(widget, "Widget", "example.com/v1"))
    assert resp.status_code == 415 and resp.json()["reason"] == "UnsupportedMediaType"
    listed = http.get(_base(project) + WIDGETS, headers=KUBECTL_ACCEPT)
    assert listed.status_code == 200
    assert listed.headers["content-type"] == "application/json"
    assert listed.json()["kind"] == "WidgetList"


def test_binary_data_must_be_base64(http: httpx.Client, project: str) -> None:
    """What no Go client could send (binaryData that is not base64) has no protobuf form;
    the schema's `format: byte` refuses it on the way in (422), so nothing stored lacks
    one."""
    bad = {"metadata": {"name": "odd"}, "binaryData": {"b": "not base64!"}}
    refused = http.post(_path(project, "configmaps"), json=bad)
    assert refused.status_code == 422 and refused.json()["reason"] == "Invalid"
    assert "binaryData" in refused.json()["message"]
    assert http.get(_path(project, "configmaps", "odd")).status_code == 404


# -- hostile bodies ----------------------------------------------------------------------


def _cm_raw(**fields: Any) -> bytes:
    return bytes(k.new("ConfigMap", **fields).SerializeToString())


def _unknown(api_version: str, kind: str, raw: bytes) -> bytes:
    """An envelope around hand-made bytes (the `protobuf` package refuses to write
    invalid UTF-8, so those bodies are spelled out)."""
    unknown = k.new("Unknown", typeMeta=k.new("TypeMeta", apiVersion=api_version, kind=kind))
    unknown.raw = raw
    return k.MAGIC + bytes(unknown.SerializeToString())


_GOOD = _unknown("v1", "ConfigMap", _cm_raw(metadata=k.new("ObjectMeta", name="ok")))
_FAR_FUTURE = k.new("Time", seconds=10**12)  # past year 9999
_NOT_JSON = k.new("ManagedFieldsEntry", fieldsV1=k.new("FieldsV1", Raw=b"{not json"))

HOSTILE: dict[str, bytes] = {
    "empty": b"",
    "magic only": k.MAGIC,
    "garbage": b"\x00\x01\x02\x03 not protobuf",
    "json": orjson.dumps({"metadata": {"name": "j"}}),
    "wrong magic": b"k9s\x00" + _GOOD[4:],
    "truncated": _GOOD[:-3],
    # runtime.Unknown.raw claiming 4 GiB
    "huge length prefix": k.MAGIC + b"\x12\xff\xff\xff\xff\x0f",
    # ConfigMap.metadata claiming 256 MiB
    "huge nested length": _unknown("v1", "ConfigMap", b"\x0a\xff\xff\xff\x7f\x0a\x01a"),
    # an unknown field 9 whose varint runs past 10 bytes
    "overlong varint": k.MAGIC + b"\x48" + b"\xff" * 11,
    "another kind": _unknown("v1", "Secret", b""),
    "another group": _unknown("example.com/v1", "ConfigMap", b""),
    "unknown kind": _unknown("v1", "Pod", b""),
    # metadata{name: "\xc3\x28"}
    "name not utf-8": _unknown("v1", "ConfigMap", b"\x0a\x04\x0a\x02\xc3\x28"),
    # data{"k": "\xff\xfe"}
    "data value not utf-8": _unknown("v1", "ConfigMap", b"\x12\x07\x0a\x01k\x12\x02\xff\xfe"),
    # data{"\xff": "v"}
    "data key not utf-8": _unknown("v1", "ConfigMap", b"\x12\x06\x0a\x01\xff\x12\x01v"),
    # metadata as a varint
    "wrong wire type": _unknown("v1", "ConfigMap", b"\x08\x01"),
    # a start-group for unknown field 9
    "group wire type": _unknown("v1", "ConfigMap", b"\x4b\x4c"),
    "field number zero": _unknown("v1", "ConfigMap", b"\x02\x00"),
    "time out of range": _unknown(
        "v1", "ConfigMap", _cm_raw(metadata=k.new("ObjectMeta", creationTimestamp=_FAR_FUTURE))
    ),
    # 40 KB of empty owner references would fan out to 100,000 JSON values
    "fan-out": _unknown(
        "v1",
        "ConfigMap",
        _cm_raw(metadata=k.new("ObjectMeta", ownerReferences=[k.new("OwnerReference")] * 20_000)),
    ),
    "fieldsV1 not json": _unknown(
        "v1", "ConfigMap", _cm_raw(metadata=k.new("ObjectMeta", managedFields=[_NOT_JSON]))
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_bodies_are_400(http: httpx.Client, project: str, name: str) -> None:
    resp = _post(http, _path(project, "configmaps"), HOSTILE[name])
    assert resp.status_code == 400, (name, resp.status_code, resp.text)
    body = resp.json()
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "BadRequest", 400)
    assert "Traceback" not in body["message"] and "/registry" not in body["message"]
    assert http.get(_path(project, "configmaps")).json()["items"] == []


def test_valid_protobuf_is_still_validated(http: httpx.Client, project: str) -> None:
    """Decoding is not validation: a bad name is the same 422 as in JSON."""
    cm = k.new("ConfigMap", metadata=k.new("ObjectMeta", name="Not_A_Name"))
    resp = _post(http, _path(project, "configmaps"), k.envelope(cm, "ConfigMap"))
    assert resp.status_code == 422 and resp.json()["reason"] == "Invalid"
    empty_name = k.new("ConfigMap", metadata=k.new("ObjectMeta", generateName="gen-"))
    made = _post(http, _path(project, "configmaps"), k.envelope(empty_name, "ConfigMap"))
    assert made.status_code == 201 and made.json()["metadata"]["name"].startswith("gen-")
