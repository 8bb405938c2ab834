"""`kubectl apply`, client-side and `--server-side`, and the official Python client's
apply patch, unmodified, against two projects that must not see each other's objects.

Client-side apply computes a three-way strategic merge patch from its
`last-applied-configuration` annotation, the edited file and the live object: what the
server must merge by keys (`strategic_patch.py`). Server-side apply sends the file as an
`application/apply-patch+yaml` body (`managed_fields.py`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from .conftest import ThreadServer

KUBECTL = shutil.which("kubectl")


def _run(
    server: ThreadServer, project: str, home: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None, "kubectl missing: apt-get install kubernetes-client"
    return subprocess.run(
        [
            KUBECTL,
            "--server",
            f"{server.url}/projects/{project}/control-plane",
            "--cache-dir",
            str(home / "cache"),
            *args,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )


def _ok(server: ThreadServer, project: str, home: Path, *args: str, stdin: str = "") -> str:
    proc = _run(server, project, home, *args, stdin=stdin)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def _get(server: ThreadServer, project: str, home: Path, what: str) -> dict[str, Any]:
    out = _ok(
        server, project, home, "get", what, "-n", "default", "-o", "json", "--show-managed-fields"
    )
    got: dict[str, Any] = json.loads(out)
    return got


@pytest.fixture
def projects() -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"ka-{tag}", f"kb-{tag}"]


def _configmap(data: dict[str, str], labels: dict[str, str]) -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "app", "namespace": "default", "labels": labels},
        "data": data,
    }
    return json.dumps(doc)


def test_client_side_apply_removes_what_the_file_drops(
    server: ThreadServer, tmp_path: Path, projects: list[str]
) -> None:
    for i, p in enumerate(projects):
        first = _configmap({"keep": f"{i}", "drop": "x"}, {"app": "web", "tier": "front"})
        assert "configmap/app created" in _ok(server, p, tmp_path, "apply", "-f", "-", stdin=first)
    p = projects[0]
    # Someone else adds a key and a label: client-side apply must leave them alone.
    _ok(server, p, tmp_path, "label", "configmap", "app", "-n", "default", "extra=yes")
    _ok(
        server,
        p,
        tmp_path,
        "patch",
        "configmap",
        "app",
        "-n",
        "default",
        "-p",
        '{"data":{"theirs":"1"}}',
    )
    second = _configmap({"keep": "changed"}, {"app": "web"})
    assert "configmap/app configured" in _ok(server, p, tmp_path, "apply", "-f", "-", stdin=second)
    got = _get(server, p, tmp_path, "configmap/app")
    assert got["data"] == {"keep": "changed", "theirs": "1"}
    assert got["metadata"]["labels"] == {"app": "web", "extra": "yes"}
    last = json.loads(
        got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert last["data"] == {"keep": "changed"}
    managers = {(m["manager"], m["operation"]) for m in got["metadata"]["managedFields"]}
    assert ("kubectl-client-side-apply", "Update") in managers
    # The other project's object is its own.
    other = _get(server, projects[1], tmp_path, "configmap/app")
    assert other["data"] == {"keep": "1", "drop": "x"}
    assert other["metadata"]["labels"] == {"app": "web", "tier": "front"}


def test_client_side_apply_merges_lists_by_key(
    server: ThreadServer, tmp_path: Path, projects: list[str]
) -> None:
    def sa(secrets: list[str], pulls: list[str]) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "robot", "namespace": "default"},
                "secrets": [{"name": s} for s in secrets],
                "imagePullSecrets": [{"name": s} for s in pulls],
            }
        )

    for p in projects:
        _ok(server, p, tmp_path, "apply", "-f", "-", stdin=sa(["s1", "s2"], ["p1"]))
    p = projects[0]
    _ok(
        server,
        p,
        tmp_path,
        "patch",
        "serviceaccount",
        "robot",
        "-n",
        "default",
        "-p",
        '{"secrets":[{"name":"theirs"}]}',
    )
    _ok(server, p, tmp_path, "apply", "-f", "-", stdin=sa(["s1", "s3"], ["p2"]))
    got = _get(server, p, tmp_path, "serviceaccount/robot")
    # s2 left the file and goes; `theirs` was never in it and stays; pull secrets replace.
    assert sorted(s["name"] for s in got["secrets"]) == ["s1", "s3", "theirs"]
    assert got["imagePullSecrets"] == [{"name": "p2"}]
    other = _get(server, projects[1], tmp_path, "serviceaccount/robot")
    assert [s["name"] for s in other["secrets"]] == ["s1", "s2"]


def test_server_side_apply_create_update_conflict_force(
    server: ThreadServer, tmp_path: Path, projects: list[str]
) -> None:
    for i, p in enumerate(projects):
        out = _ok(
            server,
            p,
            tmp_path,
            "apply",
            "--server-side",
            "-f",
            "-",
            stdin=_configmap({"a": f"{i}", "b": "1"}, {"app": "ssa"}),
        )
        assert "configmap/app serverside-applied" in out
    p = projects[0]
    out = _ok(
        server,
        p,
        tmp_path,
        "apply",
        "--server-side",
        "-f",
        "-",
        stdin=_configmap({"a": "0"}, {"app": "ssa"}),
    )
    assert "serverside-applied" in out
    got = _get(server, p, tmp_path, "configmap/app")
    assert got["data"] == {"a": "0"}  # b left the file, and kubectl owned it alone
    [entry] = got["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("kubectl", "Apply")
    assert entry["fieldsV1"] == {
        "f:data": {"f:a": {}},
        "f:metadata": {"f:labels": {"f:app": {}}},
    }
    # Another manager takes `a`; applying a different value is then a conflict.
    _ok(
        server,
        p,
        tmp_path,
        "patch",
        "configmap",
        "app",
        "-n",
        "default",
        "--field-manager=other",
        "-p",
        '{"data":{"a":"theirs"}}',
    )
    mine = _configmap({"a": "mine"}, {"app": "ssa"})
    proc = _run(server, p, tmp_path, "apply", "--server-side", "-f", "-", stdin=mine)
    assert proc.returncode != 0
    assert 'conflict with "other" using v1: .data.a' in proc.stderr
    assert _get(server, p, tmp_path, "configmap/app")["data"] == {"a": "theirs"}
    _ok(
        server,
        p,
        tmp_path,
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        stdin=mine,
    )
    got = _get(server, p, tmp_path, "configmap/app")
    assert got["data"] == {"a": "mine"}
    assert {m["manager"] for m in got["metadata"]["managedFields"]} == {"kubectl"}
    # Nothing of this reached the other project.
    assert _get(server, projects[1], tmp_path, "configmap/app")["data"] == {"a": "1", "b": "1"}


def test_python_client_apply_patch(server: ThreadServer, projects: list[str]) -> None:
    apis = []
    for p in projects:
        cfg = client.Configuration()
        cfg.host = f"{server.url}/projects/{p}/control-plane"
        apis.append(client.ApiClient(cfg))
    try:
        for i, api in enumerate(apis):
            v1 = client.CoreV1Api(api)
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "py"},
                "data": {"who": f"p{i}"},
            }
            made = v1.patch_namespaced_config_map(
                "py",
                "default",
                body,
                field_manager="py-tool",
                _content_type="application/apply-patch+yaml",
            )
            assert made.data == {"who": f"p{i}"}
            [entry] = made.metadata.managed_fields
            assert (entry.manager, entry.operation) == ("py-tool", "Apply")
            assert entry.fields_v1 == {"f:data": {"f:who": {}}}
        v1 = client.CoreV1Api(apis[0])
        body["data"] = {"who": "again", "more": "1"}
        updated = v1.patch_namespaced_config_map(
            "py",
            "default",
            body,
            field_manager="py-tool",
            _content_type="application/apply-patch+yaml",
        )
        assert updated.data == {"who": "again", "more": "1"}
        other = client.CoreV1Api(apis[1]).read_namespaced_config_map("py", "default")
        assert other.data == {"who": "p1"}
    finally:
        for api in apis:
            api.close()


def test_client_side_then_server_side_apply(
    server: ThreadServer, tmp_path: Path, projects: list[str]
) -> None:
    """Moving an object from `kubectl apply` to `kubectl apply --server-side` takes over
    the fields the client-side applier last applied without a conflict, and keeps the
    annotation in step so a later client-side apply still diffs correctly."""
    p, other = projects
    for project in projects:
        _ok(
            server,
            project,
            tmp_path,
            "apply",
            "-f",
            "-",
            stdin=_configmap({"a": "1", "b": "1"}, {"app": "move"}),
        )
    out = _ok(
        server,
        p,
        tmp_path,
        "apply",
        "--server-side",
        "-f",
        "-",
        stdin=_configmap({"a": "2", "b": "1"}, {"app": "move"}),
    )
    assert "serverside-applied" in out
    got = _get(server, p, tmp_path, "configmap/app")
    assert got["data"] == {"a": "2", "b": "1"}
    last = json.loads(
        got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert last["data"] == {"a": "2", "b": "1"}
    # A field someone else changed since is still a conflict.
    _ok(
        server,
        p,
        tmp_path,
        "patch",
        "configmap",
        "app",
        "-n",
        "default",
        "--field-manager=other",
        "-p",
        '{"data":{"b":"theirs"}}',
    )
    proc = _run(
        server,
        p,
        tmp_path,
        "apply",
        "--server-side",
        "-f",
        "-",
        stdin=_configmap({"a": "2", "b": "3"}, {"app": "move"}),
    )
    assert proc.returncode != 0 and ".data.b" in proc.stderr
    assert _get(server, other, tmp_path, "configmap/app")["data"] == {"a": "1", "b": "1"}
