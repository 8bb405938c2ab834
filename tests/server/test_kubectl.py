"""kubectl (Debian's kubernetes-client) against a project's control plane.

kubectl validates with the server's OpenAPI documents (``--validate=strict``, its
default: see ``test_kubectl_openapi.py``); manifests (``create -f``/``apply -f``) go as
JSON. The typed subcommands (``create configmap``, ``create namespace``, ...), which send
protobuf, are in ``test_kubectl_protobuf.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

from .conftest import ThreadServer

# A missing kubectl is an error, never a skip: scripts/test installs kubernetes-client.
KUBECTL = shutil.which("kubectl")


def _kubectl(
    server: ThreadServer, project: str | None, home: Path, *args: str, stdin: str = ""
) -> str:
    base = server.url + (f"/projects/{project}/control-plane" if project else "")
    assert KUBECTL is not None, "kubectl missing: apt-get install kubernetes-client"
    proc = subprocess.run(
        [KUBECTL, "--server", base, "--cache-dir", str(home / "cache"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def _manifest(name: str, owner: str) -> str:
    return (
        "apiVersion: v1\nkind: ConfigMap\n"
        f"metadata:\n  name: {name}\n  namespace: default\n"
        f"data:\n  owner: {owner}\n"
    )


def test_kubectl_create_get_delete(server: ThreadServer, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    p1, p2 = f"k1-{tag}", f"k2-{tag}"
    for project in (p1, p2, None):
        owner = project or "root"
        out = _kubectl(
            server,
            project,
            tmp_path,
            "create",
            "-f",
            "-",
            stdin=_manifest(f"cm-{tag}", owner),
        )
        assert f"configmap/cm-{tag} created" in out
    for project in (p1, p2, None):
        owner = project or "root"
        got = _kubectl(
            server,
            project,
            tmp_path,
            "get",
            "configmaps",
            "-n",
            "default",
            "-o",
            "jsonpath={range .items[*]}{.data.owner}{'\\n'}{end}",
        )
        owners = set(got.split())
        if project is not None:
            assert owners == {owner}
        else:
            assert owner in owners and p1 not in owners and p2 not in owners
    table = _kubectl(server, p1, tmp_path, "get", "cm", "-n", "default")
    assert f"cm-{tag}" in table
    _kubectl(server, p1, tmp_path, "label", "cm", f"cm-{tag}", "-n", "default", "x=y")
    labels = _kubectl(
        server,
        p1,
        tmp_path,
        "get",
        "cm",
        f"cm-{tag}",
        "-n",
        "default",
        "-o",
        "jsonpath={.metadata.labels.x}",
    )
    assert labels == "y"
    out = _kubectl(server, p1, tmp_path, "delete", "configmap", f"cm-{tag}", "-n", "default")
    assert "deleted" in out
    left = _kubectl(server, p1, tmp_path, "get", "configmaps", "-n", "default", "-o", "name")
    assert f"cm-{tag}" not in left
    # p2's object of the same name is untouched.
    assert f"cm-{tag}" in _kubectl(server, p2, tmp_path, "get", "cm", "-n", "default", "-o", "name")


def test_kubectl_custom_resource(server: ThreadServer, tmp_path: Path) -> None:
    project = f"kc-{uuid.uuid4().hex[:6]}"
    manifest = (
        "apiVersion: example.com/v1\nkind: Widget\n"
        "metadata:\n  name: w1\n  namespace: default\nspec:\n  size: 3\n"
    )
    _kubectl(server, project, tmp_path, "apply", "-f", "-", stdin=manifest)
    out = _kubectl(server, project, tmp_path, "get", "widgets", "-n", "default", "-o", "name")
    assert out.strip() == "widget.example.com/w1"
    assert "w1" in _kubectl(server, project, tmp_path, "get", "wd", "-n", "default")
