"""The official `kubernetes` Python client against the server, in two projects and root.

Runs for every (backend, mode) of the matrix: SQLite shared, SQLite per-project, etcd
shared. Every test uses fresh project ids, so the module's one server can be shared;
root-scope assertions check for the absence of project objects, not exact contents.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from .conftest import ThreadServer

NS = "default"


def _api(server: ThreadServer, project: str | None) -> client.ApiClient:
    cfg = client.Configuration()
    cfg.host = server.url + (f"/projects/{project}/control-plane" if project else "")
    return client.ApiClient(cfg)


@pytest.fixture
def projects() -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"p1-{tag}", f"p2-{tag}"]


@pytest.fixture
def apis(
    any_server: ThreadServer, projects: list[str]
) -> Iterator[dict[str | None, client.ApiClient]]:
    made = {p: _api(any_server, p) for p in [*projects, None]}
    yield made
    for api in made.values():
        api.close()


def _cm(name: str, **data: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data)


def test_create_get_list_isolated(
    apis: dict[str | None, client.ApiClient], projects: list[str]
) -> None:
    tag = uuid.uuid4().hex[:6]
    for scope, api in apis.items():
        v1 = client.CoreV1Api(api)
        owner = scope or "root"
        for i in range(3):
            made = v1.create_namespaced_config_map(NS, _cm(f"cm-{tag}-{i}", owner=owner))
            assert made.metadata.uid and made.metadata.resource_version
            assert made.metadata.generation == 1
    for scope, api in apis.items():
        v1 = client.CoreV1Api(api)
        owner = scope or "root"
        listed = v1.list_namespaced_config_map(NS)
        mine = [c for c in listed.items if c.metadata.name.startswith(f"cm-{tag}")]
        assert len(mine) == 3
        assert {c.data["owner"] for c in mine} == {owner}
        if scope is not None:
            # A project sees nothing but its own objects, across all namespaces too.
            everything = v1.list_config_map_for_all_namespaces()
            assert {c.data["owner"] for c in everything.items} == {owner}
        got = v1.read_namespaced_config_map(f"cm-{tag}-0", NS)
        assert got.data["owner"] == owner
    # A name that exists in p1 only is a 404 in p2 and root.
    only = f"only-{tag}"
    client.CoreV1Api(apis[projects[0]]).create_namespaced_config_map(NS, _cm(only, x="1"))
    for scope in (projects[1], None):
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(apis[scope]).read_namespaced_config_map(only, NS)
        assert exc.value.status == 404


def test_pagination(apis: dict[str | None, client.ApiClient], projects: list[str]) -> None:
    tag = uuid.uuid4().hex[:6]
    ns = f"page-{tag}"
    for scope in (projects[0], projects[1]):
        v1 = client.CoreV1Api(apis[scope])
        v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        for i in range(7):
            v1.create_namespaced_config_map(ns, _cm(f"cm-{i}", owner=scope))
    v1 = client.CoreV1Api(apis[projects[0]])
    names: list[str] = []
    token = None
    pages = 0
    while True:
        page = v1.list_namespaced_config_map(ns, limit=3, _continue=token)
        pages += 1
        names += [c.metadata.name for c in page.items]
        assert {c.data["owner"] for c in page.items} == {projects[0]}
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count is not None
        # Tokens are bound to the project that minted them: replayed in another project,
        # one is refused (as milo's validateContinue does).
        with pytest.raises(client.exceptions.ApiException) as err:
            client.CoreV1Api(apis[projects[1]]).list_namespaced_config_map(
                ns, limit=3, _continue=token
            )
        assert err.value.status == 400
        assert "does not belong to the current scope" in str(err.value.body)
    assert pages == 3
    assert names == [f"cm-{i}" for i in range(7)]


def test_update_conflict_and_delete(
    apis: dict[str | None, client.ApiClient], projects: list[str]
) -> None:
    v1 = client.CoreV1Api(apis[projects[0]])
    name = f"upd-{uuid.uuid4().hex[:6]}"
    made = v1.create_namespaced_config_map(NS, _cm(name, v="1"))
    made.data = {"v": "2"}
    updated = v1.replace_namespaced_config_map(name, NS, made)
    assert updated.data == {"v": "2"}
    assert updated.metadata.generation == 2
    assert updated.metadata.uid == made.metadata.uid
    # `made` still carries the old resourceVersion: a stale write is a 409 Conflict.
    made.data = {"v": "3"}
    with pytest.raises(ApiException) as exc:
        v1.replace_namespaced_config_map(name, NS, made)
    assert exc.value.status == 409
    # The same name in p2 is a different object: deleting there is a 404.
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(apis[projects[1]]).delete_namespaced_config_map(name, NS)
    assert exc.value.status == 404
    # A stale delete precondition is a 409; a matching one deletes.
    with pytest.raises(ApiException) as exc:
        v1.delete_namespaced_config_map(
            name,
            NS,
            body=client.V1DeleteOptions(
                preconditions=client.V1Preconditions(
                    resource_version=made.metadata.resource_version
                )
            ),
        )
    assert exc.value.status == 409
    v1.delete_namespaced_config_map(name, NS)
    with pytest.raises(ApiException) as exc:
        v1.read_namespaced_config_map(name, NS)
    assert exc.value.status == 404


def test_watch_isolated(apis: dict[str | None, client.ApiClient], projects: list[str]) -> None:
    p1, p2 = projects
    v1 = client.CoreV1Api(apis[p1])
    start_rv = v1.list_namespaced_config_map(NS).metadata.resource_version
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def consume() -> None:
        w = watch.Watch()
        for ev in w.stream(
            v1.list_namespaced_config_map, NS, resource_version=start_rv, timeout_seconds=20
        ):
            seen.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                w.stop()
        done.set()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    tag = uuid.uuid4().hex[:6]
    # Writes in p2 and root never reach p1's watch.
    client.CoreV1Api(apis[p2]).create_namespaced_config_map(NS, _cm(f"other-{tag}"))
    client.CoreV1Api(apis[None]).create_namespaced_config_map(NS, _cm(f"root-{tag}"))
    name = f"w-{tag}"
    made = v1.create_namespaced_config_map(NS, _cm(name, v="1"))
    made.data = {"v": "2"}
    v1.replace_namespaced_config_map(name, NS, made)
    v1.delete_namespaced_config_map(name, NS)
    assert done.wait(30), f"watch did not see the delete: {seen}"
    assert seen == [("ADDED", name), ("MODIFIED", name), ("DELETED", name)]


def test_custom_resources(apis: dict[str | None, client.ApiClient], projects: list[str]) -> None:
    p1, p2 = projects
    co1 = client.CustomObjectsApi(apis[p1])
    co2 = client.CustomObjectsApi(apis[p2])
    name = f"wd-{uuid.uuid4().hex[:6]}"
    body = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": 1},
    }
    made = co1.create_namespaced_custom_object("example.com", "v1", NS, "widgets", body)
    assert made["metadata"]["generation"] == 1
    patched = co1.patch_namespaced_custom_object(
        "example.com", "v1", NS, "widgets", name, {"spec": {"size": 2}}
    )
    assert patched["spec"] == {"size": 2}
    assert patched["metadata"]["generation"] == 2
    assert co2.list_namespaced_custom_object("example.com", "v1", NS, "widgets")["items"] == []
    listed = co1.list_namespaced_custom_object("example.com", "v1", NS, "widgets")
    assert [i["metadata"]["name"] for i in listed["items"]] == [name]
    assert listed["kind"] == "WidgetList"
    cluster = {"apiVersion": "example.com/v1", "kind": "Cluster", "metadata": {"name": name}}
    co2.create_cluster_custom_object("example.com", "v1", "clusters", cluster)
    assert co1.list_cluster_custom_object("example.com", "v1", "clusters")["items"] == []
    co2.delete_cluster_custom_object("example.com", "v1", "clusters", name)


def test_namespaces_cluster_scoped(
    apis: dict[str | None, client.ApiClient], projects: list[str]
) -> None:
    name = f"ns-{uuid.uuid4().hex[:6]}"
    v1 = client.CoreV1Api(apis[projects[0]])
    made = v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    assert made.status.phase == "Active"
    assert name in [n.metadata.name for n in v1.list_namespace().items]
    other = client.CoreV1Api(apis[projects[1]])
    assert name not in [n.metadata.name for n in other.list_namespace().items]
    v1.delete_namespace(name)
