"""kubectl 1.32, unmodified and with validation on (its default, `--validate=strict`),
against the OpenAPI documents and field validation, in two projects.

kubectl reads `/openapi/v3`, finds `fieldValidation` among the parameters of the PATCH
operation of the manifest's kind and so sends `fieldValidation=Strict` instead of
validating itself; `kubectl explain` prints the schemas' descriptions."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ThreadServer
from .widgets import start_widget_server

KUBECTL = shutil.which("kubectl")


@pytest.fixture(scope="module")
def widget_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    server = start_widget_server(tmp_path_factory.mktemp("kubectl-openapi"))
    try:
        yield server
    finally:
        server.stop()


def _run(
    server: ThreadServer, project: str, home: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None, "kubectl missing: apt-get install kubernetes-client"
    base = f"{server.url}/projects/{project}/control-plane"
    return subprocess.run(
        [KUBECTL, "--server", base, "--cache-dir", str(home / "cache"), *args],
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


def _manifests(owner: str, size: int) -> str:
    return (
        "apiVersion: v1\nkind: ConfigMap\n"
        "metadata:\n  name: settings\n  namespace: default\n"
        f"data:\n  owner: {owner}\n"
        "---\n"
        "apiVersion: example.com/v1\nkind: Widget\n"
        "metadata:\n  name: gizmo\n  namespace: default\n"
        f"spec:\n  size: {size}\n  color: red\n"
    )


def _projects() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:6]
    return f"ko1-{tag}", f"ko2-{tag}"


def test_apply_and_create_with_validation_on(widget_server: ThreadServer, tmp_path: Path) -> None:
    p1, p2 = _projects()
    for n, project in enumerate((p1, p2), start=1):
        out = _ok(
            widget_server, project, tmp_path, "apply", "-f", "-", stdin=_manifests(project, n)
        )
        assert "configmap/settings created" in out
        assert "widget.example.com/gizmo created" in out
    # Only p1 gets a second config map, through `create -f`.
    extra = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: only-p1\ndata:\n  a: b\n"
    out = _ok(widget_server, p1, tmp_path, "create", "-n", "default", "-f", "-", stdin=extra)
    assert "configmap/only-p1 created" in out
    # A second apply changes what changed, by a patch the server validates too.
    out = _ok(widget_server, p1, tmp_path, "apply", "-f", "-", stdin=_manifests("again", 7))
    assert "configmap/settings configured" in out and "widget.example.com/gizmo configured" in out
    for project, owner, size in ((p1, "again", "7"), (p2, p2, "2")):
        got = _ok(
            widget_server,
            project,
            tmp_path,
            "get",
            "configmap/settings",
            "widget/gizmo",
            "-n",
            "default",
            "-o",
            "jsonpath={.items[0].data.owner} {.items[1].spec.size}",
        )
        assert got == f"{owner} {size}"
    names = _ok(widget_server, p2, tmp_path, "get", "cm", "-n", "default", "-o", "name")
    assert names.split() == ["configmap/settings"]  # p1's only-p1 is not p2's


def test_unknown_fields_are_the_servers_errors(widget_server: ThreadServer, tmp_path: Path) -> None:
    p1, p2 = _projects()
    manifest = (
        "apiVersion: example.com/v1\nkind: Widget\n"
        "metadata:\n  name: odd\n  namespace: default\n"
        "spec:\n  size: 1\n  foo: bar\n"
    )
    refused = _run(widget_server, p1, tmp_path, "apply", "-f", "-", stdin=manifest)
    assert refused.returncode != 0
    assert "Error from server (BadRequest)" in refused.stderr
    assert 'strict decoding error: unknown field "spec.foo"' in refused.stderr
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: odd\n  namespace: default\nspec: {}\n"
    refused = _run(widget_server, p1, tmp_path, "create", "-f", "-", stdin=cm)
    assert refused.returncode != 0
    assert (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
        'unknown field "spec"'
    ) in refused.stderr
    wrong = manifest.replace("size: 1", "size: big").replace("  foo: bar\n", "")
    refused = _run(widget_server, p1, tmp_path, "apply", "-f", "-", stdin=wrong)
    assert refused.returncode != 0
    assert 'spec.size in body must be of type integer: "string"' in refused.stderr
    assert _ok(widget_server, p1, tmp_path, "get", "widgets", "-A", "-o", "name") == ""
    # --validate=warn: the server drops the field and says so.
    warned = _run(
        widget_server, p2, tmp_path, "apply", "--validate=warn", "-f", "-", stdin=manifest
    )
    assert warned.returncode == 0, warned.stderr
    assert 'Warning: unknown field "spec.foo"' in warned.stderr
    spec = _ok(
        widget_server,
        p2,
        tmp_path,
        "get",
        "widget",
        "odd",
        "-n",
        "default",
        "-o",
        "jsonpath={.spec}",
    )
    assert spec == '{"size":1}'
    # An update of the existing object under strict validation: the patch is refused.
    refused = _run(widget_server, p2, tmp_path, "apply", "-f", "-", stdin=manifest)
    assert refused.returncode != 0
    assert 'strict decoding error: unknown field "spec.foo"' in refused.stderr
    assert _ok(widget_server, p1, tmp_path, "get", "widgets", "-A", "-o", "name") == ""


def test_explain_prints_the_descriptions(widget_server: ThreadServer, tmp_path: Path) -> None:
    for project in _projects():
        out = _ok(widget_server, project, tmp_path, "explain", "configmap.data")
        assert "KIND:       ConfigMap" in out
        assert "FIELD: data <map[string]string>" in out
        assert "The configuration data" in out
        out = _ok(widget_server, project, tmp_path, "explain", "widgets.spec.size")
        assert "GROUP:      example.com" in out and "KIND:       Widget" in out
        assert "FIELD: size <integer>" in out
        assert "How big the widget is." in out
        out = _ok(widget_server, project, tmp_path, "explain", "serviceaccount")
        assert "secrets\t<[]ObjectReference>" in out
