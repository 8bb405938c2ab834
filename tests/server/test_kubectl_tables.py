"""kubectl, unmodified and with nothing turned off, reading two projects of one server:
the per-resource columns of `kubectl get` (server-side Tables), `get -w`, `describe`
of every built-in type and a custom resource with its events (field selectors),
categories (`get all`) and `api-resources` from aggregated discovery.

Objects are created over HTTP: what is under test is how kubectl reads them. Every
check runs in two projects holding objects of the same names, and checks that neither
sees the other's.
"""

from __future__ import annotations

import queue
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tenantstore.server import ServerConfig

from .conftest import ThreadServer

# A missing kubectl is an error, never a skip: scripts/test installs kubernetes-client.
KUBECTL = shutil.which("kubectl")

WIDGET = """\
  - group: example.com
    version: v1
    kind: Widget
    plural: widgets
    singular: widget
    namespaced: true
    shortNames: [wd]
    additionalPrinterColumns:
      - {name: Size, type: integer, jsonPath: .spec.size}
"""


def _start(tmp: Path, resources: str) -> ThreadServer:
    (tmp / "resources.yaml").write_text(resources)
    config = ServerConfig(
        backend=f"sqlite://{tmp / 'store.db'}", resources_file=str(tmp / "resources.yaml")
    )
    return ThreadServer(config).start()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    server = _start(tmp_path_factory.mktemp("kt"), "resources:\n" + WIDGET)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def srv_all(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    """The same Widget, declared in the `all` category."""
    server = _start(
        tmp_path_factory.mktemp("kt-all"), "resources:\n" + WIDGET + "    categories: [all]\n"
    )
    try:
        yield server
    finally:
        server.stop()


def _run(
    server: ThreadServer, project: str, home: Path, *args: str, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None, "kubectl missing: apt-get install kubernetes-client"
    proc = subprocess.run(
        [KUBECTL, "--server", _base(server, project), "--cache-dir", str(home / "cache"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    if ok:
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc


def _kubectl(server: ThreadServer, project: str, home: Path, *args: str) -> str:
    return _run(server, project, home, *args).stdout


def _base(server: ThreadServer, project: str) -> str:
    return f"{server.url}/projects/{project}/control-plane"


def _post(server: ThreadServer, project: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = httpx.post(_base(server, project) + path, json=body, timeout=30)
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


def _projects() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:6]
    return f"ka-{tag}", f"kb-{tag}"


def _header(out: str) -> list[str]:
    return out.splitlines()[0].split()


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()[1:] if line.strip()]


NS = "/api/v1/namespaces/default"


def _populate(server: ThreadServer, project: str, tag: str) -> dict[str, dict[str, Any]]:
    """One object of every type, named after `tag` (the same in both projects), with
    contents that differ per project."""
    made = {
        "configmaps": _post(
            server, project, NS + "/configmaps",
            {"metadata": {"name": f"cm-{tag}"}, "data": {"owner": project, "b": "c"}},
        ),
        "secrets": _post(
            server, project, NS + "/secrets",
            {"metadata": {"name": f"s-{tag}"}, "type": "Opaque", "data": {"k": "dg=="}},
        ),
        "namespaces": _post(
            server, project, "/api/v1/namespaces", {"metadata": {"name": f"ns-{tag}"}}
        ),
        "serviceaccounts": _post(
            server, project, NS + "/serviceaccounts",
            {"metadata": {"name": f"sa-{tag}"}, "secrets": [{"name": "t1"}, {"name": "t2"}]},
        ),
        "widgets": _post(
            server, project, "/apis/example.com/v1/namespaces/default/widgets",
            {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": f"w-{tag}"},
             "spec": {"size": 7 if project.startswith("ka") else 9}},
        ),
    }  # fmt: skip
    return made


KINDS = {
    "configmaps": ("ConfigMap", "v1"),
    "secrets": ("Secret", "v1"),
    "namespaces": ("Namespace", "v1"),
    "serviceaccounts": ("ServiceAccount", "v1"),
    "widgets": ("Widget", "example.com/v1"),
}


def _event_about(
    server: ThreadServer, project: str, plural: str, obj: dict[str, Any], name: str
) -> dict[str, Any]:
    kind, api_version = KINDS[plural]
    meta = obj["metadata"]
    involved = {
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "apiVersion": api_version,
        "namespace": meta.get("namespace", ""),
    }
    namespace = meta.get("namespace", "default")
    return _post(
        server, project, f"/api/v1/namespaces/{namespace}/events",
        {"metadata": {"name": name}, "involvedObject": involved, "type": "Normal",
         "reason": "Checked", "message": f"seen-by-{project}", "source": {"component": "test"},
         "firstTimestamp": meta["creationTimestamp"], "count": 1},
    )  # fmt: skip


def test_get_prints_the_server_columns(srv: ThreadServer, tmp_path: Path) -> None:
    p1, p2 = _projects()
    tag = uuid.uuid4().hex[:6]
    for project in (p1, p2):
        made = _populate(srv, project, tag)
        _event_about(srv, project, "configmaps", made["configmaps"], f"ev-{tag}")
    expected = {
        "cm": (["NAME", "DATA", "AGE"], [f"cm-{tag}", "2"]),
        "secrets": (["NAME", "TYPE", "DATA", "AGE"], [f"s-{tag}", "Opaque", "1"]),
        "ns": (["NAME", "STATUS", "AGE"], [f"ns-{tag}", "Active"]),
        "sa": (["NAME", "SECRETS", "AGE"], [f"sa-{tag}", "2"]),
        "events": (
            ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            ["Normal", "Checked", f"configmap/cm-{tag}"],
        ),
    }
    for project, other in ((p1, p2), (p2, p1)):
        for resource, (header, cells) in expected.items():
            out = _kubectl(srv, project, tmp_path, "get", resource)
            assert _header(out) == header, out
            rows = _rows(out)
            if resource == "ns":  # `default` too: the first create in it made it
                assert [r[0] for r in rows] == ["default", f"ns-{tag}"], out
                rows = rows[1:]
            [row] = rows
            assert all(cell in row for cell in cells), out
            if resource == "events":
                assert f"seen-by-{project}" in out and f"seen-by-{other}" not in out
        widgets = _kubectl(srv, project, tmp_path, "get", "widgets")
        assert _header(widgets) == ["NAME", "SIZE"]
        assert _rows(widgets) == [[f"w-{tag}", "7" if project == p1 else "9"]]
        assert _rows(_kubectl(srv, project, tmp_path, "get", "wd")) == _rows(widgets)
    # Across namespaces kubectl adds NAMESPACE from each row's metadata; sorting makes it
    # ask for whole objects (`includeObject=Object`).
    every = _kubectl(srv, p1, tmp_path, "get", "cm", "-A", "--sort-by=.metadata.name")
    assert _header(every) == ["NAMESPACE", "NAME", "DATA", "AGE"]
    assert [row[:3] for row in _rows(every)] == [["default", f"cm-{tag}", "2"]]
    wide = _kubectl(srv, p1, tmp_path, "get", "events", "-o", "wide")
    assert _header(wide)[-4:] == ["FIRST", "SEEN", "COUNT", "NAME"]
    assert "test" in _rows(wide)[0]  # SOURCE, a priority-1 column


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return out


def _until(lines: queue.Queue[str], needle: str, seen: list[str]) -> None:
    deadline = time.monotonic() + 30
    while not any(needle in line for line in seen):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{needle!r} never printed: {seen}"
        try:
            seen.append(lines.get(timeout=remaining))
        except queue.Empty:
            continue


def test_get_watch_prints_rows(srv: ThreadServer, tmp_path: Path) -> None:
    p1, p2 = _projects()
    _post(srv, p1, NS + "/configmaps", {"metadata": {"name": "first"}, "data": {"a": "b"}})
    assert KUBECTL is not None
    proc = subprocess.Popen(
        [KUBECTL, "--server", _base(srv, p1), "--cache-dir", str(tmp_path / "cache"),
         "get", "configmaps", "-w"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    try:
        lines = _lines(proc)
        seen: list[str] = []
        _until(lines, "first", seen)
        assert seen[0].split() == ["NAME", "DATA", "AGE"]
        _post(srv, p2, NS + "/configmaps", {"metadata": {"name": "elsewhere"}})
        _post(srv, p1, NS + "/configmaps", {"metadata": {"name": "second"}, "data": {"x": "y"}})
        _until(lines, "second", seen)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    row = next(line.split() for line in seen if "second" in line)
    assert row[:2] == ["second", "1"]
    assert not any("elsewhere" in line for line in seen)


# kind, name, what the output shows, whether kubectl's describer lists events (its
# secret and namespace describers do not, against any server).
DESCRIBE = {
    "configmaps": ("configmap", "cm-{tag}", [r"^Data$", r"^owner:$"], True),
    "secrets": ("secret", "s-{tag}", [r"^Type:\s+Opaque$", r"^k:\s+1 bytes$"], False),
    "namespaces": ("namespace", "ns-{tag}", [r"^Status:\s+Active$"], False),
    "serviceaccounts": ("serviceaccount", "sa-{tag}", [r"^Tokens:"], True),
    "widgets": ("widget", "w-{tag}", [r"^Kind:\s+Widget$", r"^\s+Size:\s+[79]$"], True),
}


@pytest.mark.parametrize("plural", list(DESCRIBE))
def test_describe_each_type(srv: ThreadServer, tmp_path: Path, plural: str) -> None:
    p1, p2 = _projects()
    tag = uuid.uuid4().hex[:6]
    for project in (p1, p2):
        made = _populate(srv, project, tag)
        # An event of the same name in each project, about that project's object.
        _event_about(srv, project, plural, made[plural], f"ev-{tag}")
    kind, name, expected, lists_events = DESCRIBE[plural]
    for project, other in ((p1, p2), (p2, p1)):
        out = _kubectl(srv, project, tmp_path, "describe", kind, name.format(tag=tag))
        assert re.search(rf"^Name:\s+{name.format(tag=tag)}$", out, re.M), out
        for pattern in expected:
            assert re.search(pattern, out, re.M), (pattern, out)
        if lists_events:
            events = out.split("\nEvents:", 1)[1]
            assert "Checked" in events and f"seen-by-{project}" in events, out
        assert f"seen-by-{other}" not in out and other not in out


def test_describe_event(srv: ThreadServer, tmp_path: Path) -> None:
    p1, p2 = _projects()
    tag = uuid.uuid4().hex[:6]
    for project in (p1, p2):
        made = _populate(srv, project, tag)
        _event_about(srv, project, "configmaps", made["configmaps"], f"ev-{tag}")
    for project, other in ((p1, p2), (p2, p1)):
        out = _kubectl(srv, project, tmp_path, "describe", "event", f"ev-{tag}")
        assert "Reason:" in out and "Checked" in out
        assert f"seen-by-{project}" in out and f"seen-by-{other}" not in out


def test_get_all_follows_the_categories(
    srv: ThreadServer, srv_all: ThreadServer, tmp_path: Path
) -> None:
    p1, p2 = _projects()
    tag = uuid.uuid4().hex[:6]
    for server in (srv, srv_all):
        _populate(server, p1, tag)
    # Nothing declares `all`: as against any API server, kubectl has nothing to expand.
    refused = _run(srv, p1, tmp_path / "a", "get", "all", ok=False)
    assert refused.returncode != 0
    assert 'the server doesn\'t have a resource type "all"' in refused.stderr
    # The Widget declares it: `get all` lists the project's widgets, and only those.
    out = _kubectl(srv_all, p1, tmp_path / "b", "get", "all")
    assert _header(out) == ["NAME", "SIZE"]
    assert _rows(out) == [[f"w-{tag}", "7"]]
    empty = _run(srv_all, p2, tmp_path / "b", "get", "all")
    assert empty.stdout == ""
    assert "No resources found in default namespace." in empty.stderr


def test_api_resources(srv_all: ThreadServer, tmp_path: Path) -> None:
    p1, _ = _projects()
    out = _kubectl(srv_all, p1, tmp_path, "api-resources", "-o", "wide")
    assert _header(out)[:2] == ["NAME", "SHORTNAMES"]
    rows = {row[0]: row for row in _rows(out)}
    assert rows["configmaps"][1] == "cm" and rows["namespaces"][1] == "ns"
    assert rows["widgets"][1:3] == ["wd", "example.com/v1"]
    assert rows["widgets"][-1] == "all"  # CATEGORIES
    assert "secrets" in rows and "events" in rows
