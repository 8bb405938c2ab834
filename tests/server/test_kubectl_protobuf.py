"""kubectl's typed subcommands, which speak protobuf, against two projects.

`kubectl create configmap|namespace|secret generic|serviceaccount` send protobuf bodies and
ask for protobuf answers (`Accept: application/vnd.kubernetes.protobuf,application/json`);
`kubectl get -o yaml` reads the objects back in JSON. kubectl runs as installed, with no
flag turned off, each project with its own values, and neither project sees the other's.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import yaml

from .conftest import ThreadServer

KUBECTL = shutil.which("kubectl")


def _run(
    server: ThreadServer, project: str, home: Path, *args: str
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
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )


def _ok(server: ThreadServer, project: str, home: Path, *args: str) -> str:
    proc = _run(server, project, home, *args)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def _get(server: ThreadServer, project: str, home: Path, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = yaml.safe_load(_ok(server, project, home, "get", *args, "-o", "yaml"))
    return out


def test_typed_create_subcommands(server: ThreadServer, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    projects = (f"kp1-{tag}", f"kp2-{tag}")
    for project in projects:
        home = tmp_path / project
        home.mkdir()
        ns = f"team-{tag}"
        out = _ok(server, project, home, "create", "namespace", ns)
        assert f"namespace/{ns} created" in out
        out = _ok(
            server,
            project,
            home,
            "create",
            "configmap",
            "settings",
            "-n",
            ns,
            f"--from-literal=owner={project}",
            "--from-literal=color=blue",
        )
        assert "configmap/settings created" in out
        out = _ok(
            server,
            project,
            home,
            "create",
            "secret",
            "generic",
            "creds",
            "-n",
            ns,
            "--from-literal=user=admin",
            f"--from-literal=password=pw-{project}",
        )
        assert "secret/creds created" in out
        out = _ok(server, project, home, "create", "serviceaccount", "robot", "-n", ns)
        assert "serviceaccount/robot created" in out

    for project in projects:
        home = tmp_path / project
        ns = f"team-{tag}"
        namespace = _get(server, project, home, "namespace", ns)
        assert namespace["kind"] == "Namespace" and namespace["status"] == {"phase": "Active"}
        assert namespace["metadata"]["name"] == ns and namespace["metadata"]["uid"]
        cm = _get(server, project, home, "configmap", "settings", "-n", ns)
        assert cm["data"] == {"owner": project, "color": "blue"}
        assert cm["metadata"]["namespace"] == ns
        secret = _get(server, project, home, "secret", "creds", "-n", ns)
        assert secret["type"] == "Opaque" and "stringData" not in secret
        decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert decoded == {"user": "admin", "password": f"pw-{project}"}
        sa = _get(server, project, home, "serviceaccount", "robot", "-n", ns)
        assert sa["kind"] == "ServiceAccount" and sa["metadata"]["name"] == "robot"
        # Each project lists its own objects only.
        listed = _get(server, project, home, "configmaps", "-A")
        assert [(i["metadata"]["name"], i["data"]["owner"]) for i in listed["items"]] == [
            ("settings", project)
        ]

    # A duplicate is refused with the message of the Status kubectl decoded from protobuf.
    home = tmp_path / projects[0]
    dup = _run(server, projects[0], home, "create", "configmap", "settings", "-n", f"team-{tag}")
    assert dup.returncode != 0
    assert 'configmaps "settings" already exists' in dup.stderr
    # Deleting in one project leaves the other's namespace alone.
    _ok(server, projects[0], home, "delete", "namespace", f"team-{tag}")
    gone = _run(server, projects[0], home, "get", "namespace", f"team-{tag}")
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    other = _get(server, projects[1], tmp_path / projects[1], "namespace", f"team-{tag}")
    assert other["metadata"]["name"] == f"team-{tag}"


def test_binary_files(server: ThreadServer, tmp_path: Path) -> None:
    """`--from-file` with bytes that are not UTF-8: ConfigMap `binaryData` and Secret
    `data`, raw bytes in kubectl's protobuf, base64 in the JSON read back."""
    tag = uuid.uuid4().hex[:6]
    blob = bytes(range(256)) * 4
    path = tmp_path / "blob.bin"
    path.write_bytes(blob)
    text = tmp_path / "note.txt"
    text.write_text("plain ✓\n")
    for project in (f"kb1-{tag}", f"kb2-{tag}"):
        home = tmp_path / project
        home.mkdir()
        _ok(
            server,
            project,
            home,
            "create",
            "configmap",
            "files",
            f"--from-file=blob={path}",
            f"--from-file=note={text}",
        )
        cm = _get(server, project, home, "configmap", "files")
        assert base64.b64decode(cm["binaryData"]["blob"]) == blob
        assert cm["data"] == {"note": "plain ✓\n"}
        _ok(server, project, home, "create", "secret", "generic", "keys", f"--from-file={path}")
        secret = _get(server, project, home, "secret", "keys")
        assert base64.b64decode(secret["data"]["blob.bin"]) == blob


def test_project_without_objects_sees_none(server: ThreadServer, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    mine, other = f"kp3-{tag}", f"kp4-{tag}"
    for project in (mine, other):
        (tmp_path / project).mkdir()
    _ok(server, mine, tmp_path / mine, "create", "configmap", "only-mine", "--from-literal=a=b")
    missing = _run(server, other, tmp_path / other, "get", "configmap", "only-mine")
    assert missing.returncode != 0
    assert 'configmaps "only-mine" not found' in missing.stderr
    # A typed create of the same name in the other project is its own object.
    _ok(server, other, tmp_path / other, "create", "configmap", "only-mine", "--from-literal=a=c")
    assert _get(server, mine, tmp_path / mine, "configmap", "only-mine")["data"] == {"a": "b"}
    assert _get(server, other, tmp_path / other, "configmap", "only-mine")["data"] == {"a": "c"}
