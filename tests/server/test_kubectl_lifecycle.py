"""kubectl, unmodified, against two projects: server-side dry runs, `kubectl diff`, the
status subresource and namespace deletion; neither project ever sees the other's."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenantstore.server import ServerConfig

from .conftest import ThreadServer

# A missing kubectl is an error, never a skip: scripts/test installs kubernetes-client.
KUBECTL = shutil.which("kubectl")

RESOURCES_YAML = """\
resources:
  - group: example.com
    version: v1
    kind: Widget
    plural: widgets
    singular: widget
    namespaced: true
    shortNames: [wd]
    subresources: {status: {}}
"""


@pytest.fixture(scope="module")
def kserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    tmp = tmp_path_factory.mktemp("kubectl-lifecycle")
    (tmp / "resources.yaml").write_text(RESOURCES_YAML)
    config = ServerConfig(
        backend=f"sqlite://{tmp / 'store.db'}", resources_file=str(tmp / "resources.yaml")
    )
    server = ThreadServer(config).start()
    try:
        yield server
    finally:
        server.stop()


class Kubectl:
    """kubectl with a private HOME, pointed at one project's control plane."""

    def __init__(self, server: ThreadServer, project: str, home: Path) -> None:
        self.base = f"{server.url}/projects/{project}/control-plane"
        self.home = home

    def run(
        self, *args: str, stdin: str = "", code: int | None = 0
    ) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None, "kubectl missing: apt-get install kubernetes-client"
        proc = subprocess.run(
            [KUBECTL, "--server", self.base, "--cache-dir", str(self.home / "cache"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            env={"HOME": str(self.home), "PATH": "/usr/bin:/bin"},
        )
        if code is not None:
            assert proc.returncode == code, (
                f"kubectl {' '.join(args)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def out(self, *args: str, stdin: str = "") -> str:
        return self.run(*args, stdin=stdin).stdout


@pytest.fixture
def two(kserver: ThreadServer, tmp_path: Path) -> tuple[Kubectl, Kubectl]:
    tag = uuid.uuid4().hex[:6]
    return Kubectl(kserver, f"kl1-{tag}", tmp_path), Kubectl(kserver, f"kl2-{tag}", tmp_path)


def _configmap(name: str, ns: str = "default", **data: str) -> str:
    lines = "".join(f'  {k}: "{v}"\n' for k, v in data.items())
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n"
        f"data:\n{lines}"
    )


def _widget(name: str, ns: str = "default", size: int = 1) -> str:
    return (
        f"apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n"
        f"  namespace: {ns}\nspec:\n  size: {size}\n"
    )


def _namespace(name: str) -> str:
    return f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"


def _data(k: Kubectl, name: str, ns: str = "default") -> str:
    return k.out("get", "configmap", name, "-n", ns, "-o", "jsonpath={.data.owner}")


def test_kubectl_server_dry_run_and_diff(two: tuple[Kubectl, Kubectl], tmp_path: Path) -> None:
    p1, p2 = two
    manifest = tmp_path / "cm.yaml"
    for k, owner in ((p1, "p1"), (p2, "p2")):
        manifest.write_text(_configmap("app", owner=owner))
        out = k.out("create", "--dry-run=server", "-f", str(manifest))
        assert "configmap/app created (server dry run)" in out
        assert k.out("get", "configmaps", "-n", "default", "-o", "name") == ""
        assert "configmap/app created" in k.out("apply", "-f", str(manifest))

    for k, owner in ((p1, "p1"), (p2, "p2")):
        manifest.write_text(_configmap("app", owner=owner))
        same = k.run("diff", "-f", str(manifest))
        assert same.stdout == "" and same.returncode == 0
        manifest.write_text(_configmap("app", owner=f"{owner}-new"))
        changed = k.run("diff", "-f", str(manifest), code=1)
        assert f"-  owner: {owner}\n+  owner: {owner}-new\n" in changed.stdout
        out = k.out("apply", "--dry-run=server", "-f", str(manifest))
        assert "configmap/app configured (server dry run)" in out
        assert _data(k, "app") == owner
        out = k.out("delete", "--dry-run=server", "-f", str(manifest))
        assert 'configmap "app" deleted (server dry run)' in out
        assert _data(k, "app") == owner  # still there, unchanged


def test_kubectl_status_subresource(two: tuple[Kubectl, Kubectl]) -> None:
    p1, p2 = two
    for k in (p1, p2):
        assert "created" in k.out("apply", "-f", "-", stdin=_widget("w"))
    out = p1.out(
        "patch", "widget", "w", "--subresource=status", "--type=merge", "-p",
        '{"status":{"ready":true}}',
    )  # fmt: skip
    assert "widget.example.com/w patched" in out
    fields = "jsonpath={.status.ready} {.metadata.generation}"
    assert p1.out("get", "widget", "w", "--subresource=status", "-o", fields) == "true 1"
    assert p2.out("get", "widget", "w", "--subresource=status", "-o", fields) == " 1"
    # The object path changes the spec (generation moves) but never the status.
    p1.out("patch", "wd", "w", "--type=merge", "-p", '{"spec":{"size":2},"status":{"ready":false}}')
    assert p1.out("get", "wd", "w", "-o", "jsonpath={.spec.size} " + fields[9:]) == "2 true 2"


def test_kubectl_delete_namespace(two: tuple[Kubectl, Kubectl]) -> None:
    p1, p2 = two
    missing = p1.run("create", "-f", "-", stdin=_configmap("x", "team"), code=1)
    assert 'namespaces "team" not found' in missing.stderr
    for k, owner in ((p1, "p1"), (p2, "p2")):
        assert "namespace/team created" in k.out("create", "-f", "-", stdin=_namespace("team"))
        k.out("apply", "-f", "-", stdin=_configmap("c", "team", owner=owner))
        k.out("apply", "-f", "-", stdin=_widget("w", "team"))
    out = p1.out("delete", "namespace", "team")  # waits until the namespace is gone
    assert 'namespace "team" deleted' in out
    gone = p1.run("get", "namespace", "team", code=1)
    assert 'namespaces "team" not found' in gone.stderr
    assert p1.out("get", "configmaps,widgets", "-n", "team", "-o", "name") == ""
    # p2's namespace of the same name, and what is in it, are untouched.
    assert p2.out("get", "namespace", "team", "-o", "jsonpath={.status.phase}") == "Active"
    listed = p2.out("get", "configmaps,widgets", "-n", "team", "-o", "name").split()
    assert listed == ["configmap/c", "widget.example.com/w"]
    assert _data(p2, "c", "team") == "p2"


def test_kubectl_diff_of_a_new_object_creates_nothing(
    two: tuple[Kubectl, Kubectl], tmp_path: Path
) -> None:
    p1, p2 = two
    manifest = tmp_path / "new.yaml"
    manifest.write_text(_configmap("fresh", owner="p1"))
    shown = p1.run("diff", "-f", str(manifest), code=1)
    assert "+  name: fresh" in shown.stdout and "+  owner: p1" in shown.stdout
    for k in (p1, p2):
        assert k.out("get", "configmaps", "-n", "default", "-o", "name") == ""


def test_kubectl_create_in_a_terminating_namespace_is_forbidden(
    two: tuple[Kubectl, Kubectl],
) -> None:
    p1, p2 = two
    held = _namespace("held") + "  finalizers: [example.com/hold]\n"
    for k in (p1, p2):
        k.out("create", "-f", "-", stdin=held)
    assert 'namespace "held" deleted' in p1.out("delete", "namespace", "held", "--wait=false")
    refused = p1.run("create", "-f", "-", stdin=_configmap("x", "held"), code=1)
    assert "Forbidden" in refused.stderr
    assert "unable to create new content in namespace held because it is being terminated" in (
        refused.stderr
    )
    # p2's namespace of the same name is not terminating.
    p2.out("create", "-f", "-", stdin=_configmap("x", "held"))
    p1.out("patch", "namespace", "held", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    p1.out("wait", "--for=delete", "namespace/held", "--timeout=60s")
    assert p2.out("get", "namespace", "held", "-o", "jsonpath={.status.phase}") == "Active"
