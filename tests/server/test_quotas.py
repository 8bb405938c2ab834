"""Project quotas, fair-share refusals and bounded per-project metrics, against a real
`tenantstore serve` (anonymous on loopback: every request may use every project).

The servers run with `--no-namespace-lifecycle` (see `NO_LIFECYCLE`). The quota server
allows 5 objects and 6000 bytes per project, 2 requests and 2 watch streams in flight per
project; each test uses projects of its own.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.reliability.http_support import host_port, start_serve
from tests.server.conftest import ServeProcess

MAX_OBJECTS = 5
MAX_BYTES = 6500  # two 2.5 KB objects, their managedFields and a small one fit
DEADLINE = 20.0
# The tests count objects exactly: the `default` namespace the lifecycle creates on first
# use would be one more object per project.
NO_LIFECYCLE = ("--no-namespace-lifecycle",)


def cm_path(project: str | None, name: str = "", namespace: str = "default") -> str:
    base = f"/projects/{project}/control-plane" if project is not None else ""
    path = f"{base}/api/v1/namespaces/{namespace}/configmaps"
    return f"{path}/{name}" if name else path


def configmap(name: str, payload: str = "v") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"k": payload},
    }


@pytest.fixture(scope="module")
def quota_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    proc = start_serve(
        tmp_path_factory.mktemp("quota"),
        *NO_LIFECYCLE,
        "--max-objects-per-project",
        str(MAX_OBJECTS),
        "--max-bytes-per-project",
        str(MAX_BYTES),
        "--max-inflight-per-project",
        "2",
        "--max-watches-per-project",
        "2",
    )
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def client(quota_serve: ServeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=quota_serve.url, timeout=30) as c:
        yield c


def names(client: httpx.Client, project: str) -> list[str]:
    resp = client.get(cm_path(project))
    assert resp.status_code == 200, resp.text
    return sorted(o["metadata"]["name"] for o in resp.json()["items"])


def assert_quota_refusal(resp: httpx.Response, message: str) -> None:
    assert resp.status_code == 403, resp.text
    status = resp.json()
    assert status["kind"] == "Status"
    assert status["reason"] == "Forbidden"
    assert status["message"] == message


def metric_samples(url: str) -> dict[str, list[Any]]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


# -- object quota ------------------------------------------------------------------------


def test_object_quota_refuses_the_create_past_it_and_writes_nothing(client: httpx.Client) -> None:
    for i in range(MAX_OBJECTS):
        resp = client.post(cm_path("objq"), json=configmap(f"cm{i}"))
        assert resp.status_code == 201, resp.text
    resp = client.post(cm_path("objq"), json=configmap("extra"))
    assert_quota_refusal(
        resp,
        f'configmaps "extra" is forbidden: exceeded quota: objects, requested: 1, '
        f"used: {MAX_OBJECTS}, limited: {MAX_OBJECTS}",
    )
    assert client.get(cm_path("objq", "extra")).status_code == 404
    assert names(client, "objq") == [f"cm{i}" for i in range(MAX_OBJECTS)]
    # Every resource counts: a namespace is refused as well.
    ns = client.post(
        "/projects/objq/control-plane/api/v1/namespaces",
        json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}},
    )
    assert ns.status_code == 403, ns.text
    assert "exceeded quota: objects" in ns.json()["message"]
    # Updates are not counted against the object quota.
    cur = client.get(cm_path("objq", "cm0")).json()
    cur["data"] = {"k": "changed"}
    assert client.put(cm_path("objq", "cm0"), json=cur).status_code == 200
    # Deletes always work, and free room for a create right after.
    assert client.delete(cm_path("objq", "cm0")).status_code == 200
    resp = client.post(cm_path("objq"), json=configmap("extra"))
    assert resp.status_code == 201, resp.text
    assert client.post(cm_path("objq"), json=configmap("again")).status_code == 403


def test_quotas_are_per_project(client: httpx.Client) -> None:
    for i in range(MAX_OBJECTS):
        assert client.post(cm_path("full"), json=configmap(f"cm{i}")).status_code == 201
    assert client.post(cm_path("full"), json=configmap("x")).status_code == 403
    # Another project, and the root scope (the operator's), are unaffected.
    for i in range(MAX_OBJECTS):
        resp = client.post(cm_path("neighbour"), json=configmap(f"cm{i}"))
        assert resp.status_code == 201, resp.text
    for i in range(MAX_OBJECTS + 1):
        resp = client.post(cm_path(None), json=configmap(f"root{i}"))
        assert resp.status_code == 201, resp.text


def test_generate_name_create_is_refused_too(client: httpx.Client) -> None:
    for i in range(MAX_OBJECTS):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "g-"}}
        resp = client.post(cm_path("genq"), json=body)
        assert resp.status_code == 201, (i, resp.text)
    resp = client.post(cm_path("genq"), json=body)
    assert resp.status_code == 403
    assert "exceeded quota: objects" in resp.json()["message"]
    assert len(names(client, "genq")) == MAX_OBJECTS


# -- byte quota --------------------------------------------------------------------------


def test_byte_quota_refuses_creates_and_updates_that_grow_past_it(client: httpx.Client) -> None:
    big = "x" * 2500
    assert client.post(cm_path("bytq"), json=configmap("a", big)).status_code == 201
    assert client.post(cm_path("bytq"), json=configmap("b", big)).status_code == 201
    resp = client.post(cm_path("bytq"), json=configmap("c", big))
    assert resp.status_code == 403, resp.text
    message = resp.json()["message"]
    assert message.startswith('configmaps "c" is forbidden: exceeded quota: bytes, requested: ')
    assert message.endswith(f", limited: {MAX_BYTES}")
    assert client.get(cm_path("bytq", "c")).status_code == 404
    # A small object still fits.
    assert client.post(cm_path("bytq"), json=configmap("small")).status_code == 201

    # An update that grows past the limit is refused (PUT and PATCH), nothing written.
    cur = client.get(cm_path("bytq", "a")).json()
    grown = {**cur, "data": {"k": "y" * 3500}}
    resp = client.put(cm_path("bytq", "a"), json=grown)
    assert resp.status_code == 403, resp.text
    assert 'configmaps "a" is forbidden: exceeded quota: bytes' in resp.json()["message"]
    resp = client.patch(
        cm_path("bytq", "a"),
        json={"data": {"k": "z" * 3500}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert resp.status_code == 403, resp.text
    after = client.get(cm_path("bytq", "a")).json()
    assert after["data"] == {"k": big}
    assert after["metadata"]["resourceVersion"] == cur["metadata"]["resourceVersion"]
    # Shrinking is always allowed, and makes room for a growth elsewhere.
    shrunk = {**after, "data": {"k": "s"}}
    assert client.put(cm_path("bytq", "a"), json=shrunk).status_code == 200
    resp = client.patch(
        cm_path("bytq", "b"),
        json={"data": {"k": "z" * 3500}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert resp.status_code == 200, resp.text


# -- fair share: 429 -----------------------------------------------------------------------


def _slow_post(url: str, project: str) -> socket.socket:
    """A create whose body never comes: it stays in flight until the read timeout."""
    sock = socket.create_connection(host_port(url), timeout=30)
    head = (
        f"POST {cm_path(project)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n{"
    )
    sock.sendall(head.encode())
    return sock


def _poll(fn: Any, want: int) -> httpx.Response:
    deadline = time.monotonic() + DEADLINE
    while True:
        resp: httpx.Response = fn()
        if resp.status_code == want or time.monotonic() > deadline:
            return resp
        time.sleep(0.05)


def test_inflight_limit_answers_429_with_retry_after(
    quota_serve: ServeProcess, client: httpx.Client
) -> None:
    slow = [_slow_post(quota_serve.url, "busy") for _ in range(2)]
    try:
        # Once both slow creates are admitted, the project has no room left.
        resp = _poll(lambda: client.get(cm_path("busy")), 429)
        assert resp.status_code == 429, resp.text
        assert resp.headers["Retry-After"] == "1"
        assert resp.json()["reason"] == "TooManyRequests"
        # Other projects are served meanwhile.
        assert client.get(cm_path("calm")).status_code == 200
        samples = metric_samples(quota_serve.url)
        reasons = {s.labels["reason"]: s.value for s in samples["tenantstore_rejected_requests"]}
        assert reasons["too_many_requests"] >= 1
        top = {
            s.labels["project"]: s.value
            for s in samples["tenantstore_top_project_rejected_requests"]
        }
        assert top.get("busy", 0) >= 1
        inflight = {
            s.labels["project"]: s.value
            for s in samples["tenantstore_top_project_inflight_requests"]
        }
        assert inflight.get("busy") == 2
    finally:
        for sock in slow:
            sock.close()
    assert _poll(lambda: client.get(cm_path("busy")), 200).status_code == 200


def test_watch_limit_answers_429_and_a_closed_watch_frees_its_place(
    quota_serve: ServeProcess,
) -> None:
    url = f"{quota_serve.url}{cm_path('watcher')}?watch=1"
    with httpx.Client(timeout=30) as c:
        first = c.send(c.build_request("GET", url), stream=True)
        second = c.send(c.build_request("GET", url), stream=True)
        try:
            assert first.status_code == second.status_code == 200
            third = c.get(url)
            assert third.status_code == 429, third.text
            assert third.headers["Retry-After"] == "1"
            assert "too many watches" in third.json()["message"]
        finally:
            first.close()
        # The server notices the closed stream and frees its place.
        try:
            again = _poll(lambda: c.send(c.build_request("GET", url), stream=True), 200)
            assert again.status_code == 200
            again.close()
        finally:
            second.close()


# -- usage survives a restart (the first list is counted) -----------------------------------


def test_objects_stored_before_start_count(tmp_path: Path) -> None:
    proc = start_serve(tmp_path, *NO_LIFECYCLE)
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as c:
            for i in range(3):
                assert c.post(cm_path("old"), json=configmap(f"cm{i}")).status_code == 201
    finally:
        proc.stop()
    proc = start_serve(tmp_path, *NO_LIFECYCLE, "--max-objects-per-project", "3")
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as c:
            resp = c.post(cm_path("old"), json=configmap("new"))
            assert_quota_refusal(
                resp,
                'configmaps "new" is forbidden: exceeded quota: objects, requested: 1, '
                "used: 3, limited: 3",
            )
            assert c.delete(cm_path("old", "cm0")).status_code == 200
            assert c.post(cm_path("old"), json=configmap("new")).status_code == 201
    finally:
        proc.stop()


# -- bounded metrics ---------------------------------------------------------------------

PROJECTS = 1000
TOP = 5


def test_metrics_stay_bounded_with_a_thousand_projects(tmp_path: Path) -> None:
    proc = start_serve(tmp_path, *NO_LIFECYCLE, "--metrics-top-projects", str(TOP))
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as c:
            for i in range(3):
                assert c.post(cm_path("biggest"), json=configmap(f"cm{i}")).status_code == 201

        def create(first: int) -> list[int]:
            with httpx.Client(base_url=proc.url, timeout=30) as c:
                return [
                    c.post(cm_path(f"p{i}"), json=configmap("cm")).status_code
                    for i in range(first, PROJECTS, 4)
                ]

        with ThreadPoolExecutor(4) as pool:
            codes = [code for batch in pool.map(create, range(4)) for code in batch]
        assert codes == [201] * PROJECTS
        want = PROJECTS + 3

        def objects() -> float:
            return float(metric_samples(proc.url)["tenantstore_objects"][0].value)

        deadline = time.monotonic() + DEADLINE
        while objects() != want and time.monotonic() < deadline:
            time.sleep(0.1)
        samples = metric_samples(proc.url)
        assert samples["tenantstore_objects"][0].value == want
        assert samples["tenantstore_projects_with_objects"][0].value == PROJECTS + 1
        top = samples["tenantstore_top_project_objects"]
        assert len(top) == TOP
        assert top[0].labels == {"project": "biggest"} and top[0].value == 3
        # No metric has more than N series labelled by project, and nothing else names
        # a project at all: the exposition does not grow with the project count.
        projects: set[str] = set()
        for name, series in samples.items():
            labelled = [s for s in series if "project" in s.labels]
            assert len(labelled) <= TOP, name
            projects.update(s.labels["project"] for s in labelled)
            if name.startswith("tenantstore_") and not labelled:
                assert len(series) < 200, name  # verb x resource x code, never x project
        assert len(projects) <= 2 * TOP  # the top objects and the top bytes may differ
        assert sum(len(s) for s in samples.values()) < 2000
    finally:
        proc.stop()


def test_metrics_top_zero_exports_totals_only(tmp_path: Path) -> None:
    proc = start_serve(tmp_path, *NO_LIFECYCLE, "--metrics-top-projects", "0")
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as c:
            assert c.post(cm_path("solo"), json=configmap("cm")).status_code == 201
            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline:
                samples = metric_samples(proc.url)
                if samples["tenantstore_objects"][0].value == 1:
                    break
                time.sleep(0.05)
        assert samples["tenantstore_objects"][0].value == 1
        assert samples["tenantstore_object_bytes"][0].value > 0
        for name, series in samples.items():
            assert all("project" not in s.labels for s in series), name
    finally:
        proc.stop()
