"""Pure functions of the server: patches (RFC 7386 / RFC 6902 examples), path parsing,
the resource registry file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tenantstore.server.patch import apply_patch, json_patch, merge_patch
from tenantstore.server.registry import (
    BUILTIN_RESOURCES,
    RegistryError,
    ResourceRegistry,
    load_resources_file,
)
from tenantstore.server.routing import Kind, parse_path, split_project
from tenantstore.server.status import UnsupportedMediaTypeError
from tenantstore.storage import BadRequestError, InvalidError, NotFoundError

# RFC 7386 appendix A.
MERGE_CASES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "want"), MERGE_CASES)
def test_merge_patch_rfc7386(target: Any, patch: Any, want: Any) -> None:
    before = repr(target)
    assert merge_patch(target, patch) == want
    assert repr(target) == before  # inputs untouched


def test_json_patch_rfc6902_examples() -> None:
    assert json_patch({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}]) == {
        "foo": "bar",
        "baz": "qux",
    }
    assert json_patch(
        {"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}]
    ) == {"foo": ["bar", "qux", "baz"]}
    assert json_patch({"foo": [1]}, [{"op": "add", "path": "/foo/-", "value": 2}]) == {
        "foo": [1, 2]
    }
    assert json_patch({"a": {"b": 1}}, [{"op": "move", "from": "/a/b", "path": "/c"}]) == {
        "a": {},
        "c": 1,
    }
    assert json_patch({"a/b": 1, "m~n": 2}, [{"op": "remove", "path": "/a~1b"}]) == {"m~n": 2}
    assert json_patch({"x": 1}, [{"op": "replace", "path": "", "value": [1]}]) == [1]
    target = {"foo": {"bar": [1]}}
    json_patch(target, [{"op": "add", "path": "/foo/bar/0", "value": 0}])
    assert target == {"foo": {"bar": [1]}}


@pytest.mark.parametrize(
    ("doc", "ops", "err"),
    [
        ({"a": 1}, [{"op": "remove", "path": "/b"}], InvalidError),
        ({"a": 1}, [{"op": "replace", "path": "/b", "value": 1}], InvalidError),
        ({"a": [1]}, [{"op": "add", "path": "/a/5", "value": 1}], InvalidError),
        ({"a": [1]}, [{"op": "add", "path": "/a/01", "value": 1}], InvalidError),
        ({"a": 1}, [{"op": "test", "path": "/a", "value": 2}], InvalidError),
        ({"a": {}}, [{"op": "move", "from": "/a", "path": "/a/b"}], InvalidError),
        ({"a": 1}, [{"op": "nope", "path": "/a"}], BadRequestError),
        ({"a": 1}, [{"op": "add", "path": "a", "value": 1}], BadRequestError),
        ({"a": 1}, [{"op": "add", "path": "/a"}], BadRequestError),
        ({"a": 1}, {"op": "add"}, BadRequestError),
    ],
)
def test_json_patch_errors(doc: Any, ops: Any, err: type[Exception]) -> None:
    with pytest.raises(err):
        json_patch(doc, ops)


def test_apply_patch_media_types() -> None:
    assert apply_patch("application/merge-patch+json; charset=utf-8", {"a": 1}, {"b": 2}) == {
        "a": 1,
        "b": 2,
    }
    with pytest.raises(UnsupportedMediaTypeError):
        apply_patch("application/apply-patch+yaml", {}, {})


def _registry() -> ResourceRegistry:
    from tenantstore.server.registry import parse_resource

    widget = parse_resource(
        {"group": "example.com", "version": "v1", "kind": "Widget", "plural": "widgets"}
    )
    return ResourceRegistry([*BUILTIN_RESOURCES, widget])


def test_split_project() -> None:
    assert split_project("/api/v1") == (None, "/api/v1")
    assert split_project("/projects/p1/control-plane") == ("p1", "/")
    assert split_project("/projects/p1/control-plane/api") == ("p1", "/api")
    with pytest.raises(BadRequestError):
        split_project("/projects/P1/control-plane/api")
    with pytest.raises(BadRequestError):
        split_project("/projects/a%2Fb/control-plane/api")
    with pytest.raises(NotFoundError):
        split_project("/projects/p1/api/v1")
    with pytest.raises(NotFoundError):
        split_project("/projects")


def test_parse_path() -> None:
    reg = _registry()
    t = parse_path("/api/v1/namespaces/ns1/configmaps/a", reg)
    assert t.kind == Kind.OBJECT and t.namespace == "ns1" and t.name == "a"
    assert t.resource is not None and t.resource.key(t.namespace, t.name) == (
        "/registry/configmaps/ns1/a"
    )
    t = parse_path("/api/v1/namespaces/ns1", reg)
    assert t.kind == Kind.OBJECT and t.resource is not None
    assert t.resource.key(t.namespace, t.name) == "/registry/namespaces/ns1"
    t = parse_path("/api/v1/configmaps", reg)
    assert t.kind == Kind.COLLECTION and t.namespace is None
    t = parse_path("/apis/example.com/v1/namespaces/n/widgets/w", reg)
    assert t.resource is not None and t.resource.key("n", "w") == (
        "/registry/example.com/widgets/n/w"
    )
    assert parse_path("/apis/example.com/v1", reg).kind == Kind.CORE_RESOURCES
    assert parse_path("/apis/example.com", reg).kind == Kind.GROUP
    for bad in (
        "/api/v1/configmaps/a",  # namespaced object without a namespace
        "/api/v1/namespaces/n/namespaces/x",  # cluster-scoped under a namespace
        "/api/v1/namespaces/n/configmaps/a/status",
        "/api/v1/pods",
        "/apis/example.com/v2/widgets",
        "/api//v1",
    ):
        with pytest.raises(NotFoundError):
            parse_path(bad, reg)


def test_registry_file(tmp_path: Path) -> None:
    good = tmp_path / "r.yaml"
    good.write_text(
        "resources:\n"
        "  - {group: example.com, version: v1, kind: Widget, plural: widgets}\n"
        "  - {group: example.com, version: v1, kind: Gadget, plural: gadgets, namespaced: false}\n"
    )
    loaded = load_resources_file(good)
    assert [r.prefix for r in loaded] == [
        "/registry/example.com/widgets",
        "/registry/example.com/gadgets",
    ]
    as_json = tmp_path / "r.json"
    as_json.write_text(
        '{"resources": [{"group": "a.io", "version": "v1beta1", "kind": "X", "plural": "xs"}]}'
    )
    assert load_resources_file(as_json)[0].api_version == "a.io/v1beta1"
    reg = ResourceRegistry.with_builtins(good)
    assert len(reg) == len(BUILTIN_RESOURCES) + 2
    for text in (
        "resources: [{group: example.com, version: v1, kind: W}]",
        "resources: [{group: nodot, version: v1, kind: W, plural: ws}]",
        "resources: [{group: example.com, version: v1, kind: w, plural: ws}]",
        "resources: [{group: example.com, version: v1, kind: W, plural: Ws}]",
        "resources: [{group: example.com, version: v1, kind: W, plural: ws, extra: 1}]",
        "resources: {}",
        "[1, 2]",
        "resources: [{: bad",
    ):
        good.write_text(text)
        with pytest.raises(RegistryError):
            load_resources_file(good)
    with pytest.raises(RegistryError):
        ResourceRegistry([*BUILTIN_RESOURCES, BUILTIN_RESOURCES[1]])


def test_registry_crd_form(tmp_path: Path) -> None:
    """The CRD-form keys of an entry: names, categories, status subresource, printer
    columns and schema are kept; malformed ones are refused with the entry named."""
    path = tmp_path / "r.yaml"
    path.write_text(
        "resources:\n"
        "  - group: example.com\n"
        "    version: v1\n"
        "    kind: Widget\n"
        "    plural: widgets\n"
        "    singular: widget\n"
        "    shortNames: [wd]\n"
        "    categories: [all]\n"
        "    subresources: {status: {}}\n"
        "    additionalPrinterColumns:\n"
        "      - {name: Size, type: integer, jsonPath: .spec.size}\n"
        "    schema:\n"
        "      openAPIV3Schema:\n"
        "        type: object\n"
        "        properties: {spec: {type: object}}\n"
    )
    (res,) = load_resources_file(path)
    assert res.short_names == ("wd",) and res.categories == ("all",)
    assert res.status_subresource
    assert [(c.name, c.type, c.json_path) for c in res.printer_columns] == [
        ("Size", "integer", ".spec.size")
    ]
    assert res.schema == {"type": "object", "properties": {"spec": {"type": "object"}}}
    assert res.discovery()["categories"] == ["all"]
    base = "resources: [{group: example.com, version: v1, kind: W, plural: ws, "
    for bad, words in (
        ("categories: [All]}]", "categories"),
        ("subresources: {scale: {}}}]", "scale"),
        ("subresources: {status: 1}}]", "subresources.status"),
        ("additionalPrinterColumns: [{name: A, type: int, jsonPath: .a}]}]", "type"),
        ("additionalPrinterColumns: [{name: A, type: string, jsonPath: a}]}]", "jsonPath"),
        ("schema: {type: object}}]", "openAPIV3Schema"),
        ("schema: {openAPIV3Schema: {type: string}}}]", "type object"),
    ):
        path.write_text(base + bad)
        with pytest.raises(RegistryError, match=words) as info:
            load_resources_file(path)
        assert "(W/ws)" in str(info.value)


async def test_watch_stream_runs_in_project_scope() -> None:
    """The streaming response re-enters the request's project scope: anything the watch
    does while streaming (it is iterated after the handler returned) is confined."""
    import asyncio

    from tenantstore.server.registry import BUILTIN_RESOURCES
    from tenantstore.server.watchstream import WatchResponse
    from tenantstore.storage import EventType, QueueWatch, WatchEvent
    from tenantstore.tenancy import current_project

    seen: list[str | None] = []

    class Recording(QueueWatch):
        async def next_within(self, timeout: float) -> WatchEvent | None:
            seen.append(current_project())
            return await super().next_within(timeout)

    w = Recording()
    w.send(WatchEvent(EventType.ADDED, {"metadata": {"name": "a"}}))
    w.finish()
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        await asyncio.sleep(3600)

    open_streams: set[Any] = set()
    response = WatchResponse(
        w,
        resource=BUILTIN_RESOURCES[1],
        project="p7",
        timeout=30,
        stopping=asyncio.Event(),
        open_streams=open_streams,
    )
    assert current_project() is None
    await response({"type": "http"}, receive, send)
    assert seen and set(seen) == {"p7"}
    assert current_project() is None
    bodies = [m.get("body", b"") for m in sent if m["type"] == "http.response.body"]
    assert b'"ADDED"' in bodies[0] and b'"kind":"ConfigMap"' in bodies[0]
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert not open_streams  # deregistered once the stream ended


def test_keep_large_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """On glibc the thresholds are taken; an operator's own glibc variable wins (the
    server then leaves the heap alone)."""
    import platform

    from tenantstore.server.runner import MMAP_THRESHOLD, TRIM_THRESHOLD, keep_large_buffers

    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert keep_large_buffers() is glibc
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", str(TRIM_THRESHOLD))
    assert keep_large_buffers() is False
    assert MMAP_THRESHOLD < TRIM_THRESHOLD


async def test_parts_response_sends_its_parts() -> None:
    """A LIST's envelope and items go out as they are, under one content-length that
    counts them all; `body` still joins them for code that reads it."""
    from tenantstore.server.status import PartsResponse

    response = PartsResponse((b'{"items":[', b'{"a":1},{"b":2}', b"]}"))
    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        raise AssertionError("not read")

    await response({"type": "http"}, receive, send)  # type: ignore[arg-type]
    assert response.body == b'{"items":[{"a":1},{"b":2}]}'
    headers = dict(sent[0]["headers"])  # type: ignore[call-overload]
    assert headers[b"content-length"] == str(len(response.body)).encode()
    assert [m["body"] for m in sent[1:]] == list(response.parts)
    assert [m["more_body"] for m in sent[1:]] == [True, True, False]
