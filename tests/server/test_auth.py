"""The door, in-process: tokens, project groups, identical refusals, fair-share limits
and the audit log (the TLS end-to-end tests are in `test_tls.py`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tenantstore.server import ServerConfig
from tenantstore.server.audit import AuditEvent, AuditLog
from tenantstore.server.auth import (
    MASTERS,
    TokenFile,
    TokenFileError,
    User,
    project_authorizer,
)
from tenantstore.server.fairness import FairShare, TooManyRequestsError
from tests.server.conftest import ThreadServer

TOKENS = """\
alice-token,alice,u1,"project:p1"
bob-token,bob,u2,"project:p2,dev"
admin-token,admin,u3,"system:masters"
metrics-token,prom,u4,"monitoring"
"""


def cm_path(project: str | None, name: str = "") -> str:
    base = f"/projects/{project}/control-plane" if project else ""
    path = f"{base}/api/v1/namespaces/default/configmaps"
    return f"{path}/{name}" if name else path


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadServer, Path]]:
    tmp = tmp_path_factory.mktemp("auth")
    tokens = tmp / "tokens.csv"
    tokens.write_text(TOKENS)
    audit = tmp / "audit.log"
    server = ThreadServer(
        ServerConfig(
            backend=f"sqlite://{tmp / 'store.db'}",
            token_auth_file=str(tokens),
            metrics_groups=("monitoring",),
            audit_log=str(audit),
        )
    ).start()
    try:
        yield server, audit
    finally:
        server.stop()


def client(server: ThreadServer, token: str | None) -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


@pytest.mark.parametrize("token", [None, "wrong", "alice-token "])
def test_401_is_the_same_for_every_path(
    secured: tuple[ThreadServer, Path], token: str | None
) -> None:
    server, _ = secured
    paths = [
        cm_path("p1"),
        cm_path("no-such-project", "x"),
        "/projects/BAD_ID/control-plane/api/v1/configmaps",
        "/api/v1/nosuchresource",
        "/api",
        "/version",
        "/metrics",
    ]
    with client(server, token if token != "alice-token " else "") as c:
        answers = {(r.status_code, r.content) for r in (c.get(p) for p in paths)}
    assert len(answers) == 1
    code, body = answers.pop()
    assert code == 401 and json.loads(body)["reason"] == "Unauthorized"


def test_health_endpoints_need_no_token(secured: tuple[ThreadServer, Path]) -> None:
    server, _ = secured
    with client(server, None) as c:
        for path in (
            "/healthz",
            "/livez",
            "/readyz",
            "/readyz/backend",
            "/projects/p1/control-plane/readyz",
        ):
            assert c.get(path).status_code == 200, path


def test_projects_by_group_and_identical_403s(secured: tuple[ThreadServer, Path]) -> None:
    server, _ = secured
    with client(server, "alice-token") as alice, client(server, "bob-token") as bob:
        assert alice.post(cm_path("p1"), json={"metadata": {"name": "a"}}).status_code == 201
        assert [o["metadata"]["name"] for o in alice.get(cm_path("p1")).json()["items"]] == ["a"]
        assert bob.post(cm_path("p2"), json={"metadata": {"name": "b"}}).status_code == 201
        # p2 exists (bob wrote there), p3 does not: the refusals differ only in the name.
        existing = alice.get(cm_path("p2", "b"))
        missing = alice.get(cm_path("p3", "b"))
        assert existing.status_code == missing.status_code == 403
        assert existing.content.replace(b"p2", b"p3") == missing.content
        assert json.loads(existing.content)["reason"] == "Forbidden"
        # Every verb is checked, and the root scope is for masters only.
        assert alice.delete(cm_path("p2", "b")).status_code == 403
        assert alice.post(cm_path("p2"), json={"metadata": {"name": "x"}}).status_code == 403
        assert alice.get(cm_path(None)).status_code == 403
        assert alice.get(cm_path("p2") + "?watch=1").status_code == 403
        # Discovery and /version: any authenticated user.
        assert alice.get("/api/v1").status_code == 200
        assert alice.get("/projects/p2/control-plane/api/v1").status_code == 200
        assert alice.get("/version").status_code == 200
        assert alice.get("/metrics").status_code == 403
    with client(server, "admin-token") as admin:
        assert admin.get(cm_path("p2", "b")).status_code == 200
        assert admin.post(cm_path(None), json={"metadata": {"name": "r"}}).status_code == 201
        assert admin.get("/metrics").status_code == 200
    with client(server, "metrics-token") as prom:
        assert prom.get("/metrics").status_code == 200
        assert prom.get(cm_path("p1")).status_code == 403


def test_the_audit_log_has_a_line_per_request_and_no_bodies(
    secured: tuple[ThreadServer, Path],
) -> None:
    server, audit = secured
    marker = "audit-marker-5d1e"
    with client(server, "alice-token") as alice:
        r = alice.post(cm_path("p1"), json={"metadata": {"name": "aud"}, "data": {"m": marker}})
        assert r.status_code == 201
        assert alice.get(cm_path("p2", "b")).status_code == 403
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    create = next(
        x for x in lines if x["verb"] == "create" and x["name"] == "" and x["code"] == 201
    )
    assert create["code"] == 201 and create["groups"] == ["project:p1"]
    assert (create["project"], create["resource"], create["namespace"]) == (
        "p1",
        "configmaps",
        "default",
    )
    assert create["latencySeconds"] >= 0
    with client(server, "wrong-token") as stranger:
        assert stranger.get(cm_path("p1")).status_code == 401
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert lines[-1]["user"] == "" and lines[-1]["code"] == 401  # failed logins too
    denied = [x for x in lines if x["code"] == 403 and x["project"] == "p2"]
    assert denied and denied[-1]["name"] == "b" and denied[-1]["verb"] == "get"
    assert marker not in audit.read_text()


def test_token_file_format_and_reload(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text('t1,alice,u1,"project:p1,project:p2"\n# a comment\n\nt2,bob,u2\n')
    tokens = TokenFile(path)
    assert len(tokens) == 2
    path.write_text("t3,carol,u3,project:p3\n")
    assert tokens.reload() and len(tokens) == 1
    path.write_text("broken-line-without-fields\n")
    assert not tokens.reload() and len(tokens) == 1  # the old tokens stay in force
    for text, why in [
        ("t1,alice\n", "fields"),
        (",alice,u1\n", "required"),
        ("t1,a,u\nt1,b,u\n", "twice"),
    ]:
        path.write_text(text)
        with pytest.raises(TokenFileError, match=why):
            TokenFile(path)
    with pytest.raises(TokenFileError, match="cannot read"):
        TokenFile(tmp_path / "missing.csv")


def test_the_builtin_rule() -> None:
    allowed = project_authorizer()
    alice = User("alice", "u1", ("project:p1",))
    admin = User("admin", "u2", (MASTERS,))
    assert allowed(alice, "p1", "get", "configmaps", "ns", "a")
    assert not allowed(alice, "p2", "get", "configmaps", "ns", "a")
    assert not allowed(alice, None, "list", "configmaps", None, "")
    assert not allowed(User("x", "", ("project:p1-extra",)), "p1", "get", "configmaps", "", "")
    assert allowed(admin, None, "delete", "secrets", "ns", "s")
    assert allowed(admin, "anything", "watch", "configmaps", None, "")


def test_fair_share_counts_per_project_and_releases() -> None:
    share = FairShare(max_inflight=2, max_watches=1)
    r1, r2 = share.request("p1"), share.request("p1")
    with pytest.raises(TooManyRequestsError) as err:
        share.request("p1")
    assert err.value.code == 429 and err.value.retry_after_seconds == 1
    share.request("p2")()  # another project is unaffected
    w = share.watch("p1")  # watches are counted apart from requests
    with pytest.raises(TooManyRequestsError):
        share.watch("p1")
    r1()
    r1()  # releasing twice gives back one slot only
    share.request("p1")
    w()
    share.watch("p1")
    r2()
    assert share.rejected == {"requests": 1, "watches": 1}


def test_audit_log_rotates_by_size(tmp_path: Path) -> None:
    log = AuditLog(str(tmp_path / "audit.log"), maxsize_mib=1, maxbackup=2)
    event = AuditEvent(
        "alice", ("project:p1",), "p1", "get", "configmaps", "ns", "x" * 2000, "/p", 200, 0.001
    )
    for _ in range(1500):  # about 3 MiB of lines
        log.record(event)
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.log", "audit.log.1", "audit.log.2"]
    assert all(p.stat().st_size <= 1024 * 1024 for p in tmp_path.iterdir())
