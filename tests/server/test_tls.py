"""The door, end to end: a real `tenantstore serve` over TLS with a token file, spoken to
by httpx, kubectl (with a kubeconfig from `tenantstore kubeconfig`) and the official
`kubernetes` client; SIGHUP reloads, client certificates, anonymous mode, the audit log,
and the README's embedded authenticator/authorizer example.

The certificates are made here with `cryptography` (a CA, a server certificate for
127.0.0.1 as an IP SAN, a client CA and client certificates). One server serves most of
the module; tests that change its tokens or need other flags start their own.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import re
import shutil
import signal
import ssl
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tenantstore.cli import main as cli_main
from tenantstore.server import ServerConfig
from tests.reliability.http_support import start_serve

from .conftest import STARTUP_TIMEOUT, ServeProcess, ThreadServer

KUBECTL = shutil.which("kubectl")
ROOT = Path(__file__).resolve().parents[2]
CM = "/api/v1/namespaces/default/configmaps"
RELOAD_DEADLINE = 30.0

TOKENS = {
    "alice": ("tok-alice-5c1d", "project:p1"),
    "bob": ("tok-bob-77ae", "project:p2"),
    "admin": ("tok-admin-90f2", "system:masters"),
}


def _p(project: str | None, path: str = CM) -> str:
    return (f"/projects/{project}/control-plane" if project else "") + path


def _auth(user: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKENS[user][0]}"}


def _cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def write_tokens(path: Path, users: dict[str, tuple[str, str]]) -> None:
    """Atomically, so a reload never reads a half-written file."""
    lines = [f'{token},{name},uid-{name},"{groups}"' for name, (token, groups) in users.items()]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("# token,user,uid,groups\n" + "\n".join(lines) + "\n")
    os.replace(tmp, path)


# -- certificates -------------------------------------------------------------------


@dataclass
class Pki:
    ca: Path  # signs the server certificate
    server_cert: Path
    server_key: Path
    client_ca: Path  # signs client certificates (--client-ca-file)
    client_cert: Path
    client_key: Path
    stray_cert: Path  # a client certificate signed by `ca`, not by `client_ca`
    stray_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    ips: tuple[str, ...] = (),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name = issuer[0].subject if issuer else _name(subject)
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if ips:
        sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        sans.append(x509.DNSName("localhost"))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _save(directory: Path, stem: str, cert: x509.Certificate, key: Any = None) -> Path:
    path = directory / f"{stem}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        (directory / f"{stem}-key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    ca_key, client_ca_key = key(), key()
    ca = _issue("tenantstore test CA", ca_key, None, ca=True)
    client_ca = _issue("tenantstore test client CA", client_ca_key, None, ca=True)
    server_key, client_key, stray_key = key(), key(), key()
    server = _issue(
        "127.0.0.1",
        server_key,
        (ca, ca_key),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        ips=("127.0.0.1",),
    )
    client = _issue(
        "alice", client_key, (client_ca, client_ca_key), usage=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    stray = _issue("mallory", stray_key, (ca, ca_key), usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    return Pki(
        ca=_save(d, "ca", ca),
        server_cert=_save(d, "server", server, server_key),
        server_key=d / "server-key.pem",
        client_ca=_save(d, "client-ca", client_ca),
        client_cert=_save(d, "client", client, client_key),
        client_key=d / "client-key.pem",
        stray_cert=_save(d, "stray", stray, stray_key),
        stray_key=d / "stray-key.pem",
    )


def _tls(pki: Pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _client(url: str, pki: Pki, **kw: Any) -> httpx.Client:
    return httpx.Client(base_url=url, verify=_tls(pki, **kw), timeout=30)


def _serve_tls(tmp: Path, pki: Pki, tokens: Path, *extra: str) -> ServeProcess:
    return start_serve(
        tmp,
        "--tls-cert-file",
        str(pki.server_cert),
        "--tls-private-key-file",
        str(pki.server_key),
        "--token-auth-file",
        str(tokens),
        *extra,
    )


@dataclass
class Served:
    proc: ServeProcess
    url: str
    tokens: Path
    audit: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Served]:
    """The module's server: TLS, the token file, an audit log."""
    tmp = tmp_path_factory.mktemp("tls-serve")
    tokens, audit = tmp / "tokens.csv", tmp / "audit.log"
    write_tokens(tokens, TOKENS)
    proc = _serve_tls(tmp, pki, tokens, "--audit-log", str(audit))
    try:
        assert proc.url.startswith("https://127.0.0.1:")
        yield Served(proc, proc.url, tokens, audit)
    finally:
        proc.stop()


@pytest.fixture
def http(served: Served, pki: Pki) -> Iterator[httpx.Client]:
    with _client(served.url, pki) as client:
        yield client


# -- httpx over TLS -----------------------------------------------------------------


def test_plain_http_and_unverified_tls_are_refused(served: Served) -> None:
    """It really is TLS, with a certificate the system's trust store does not know."""
    with pytest.raises(httpx.TransportError):
        httpx.get(served.url.replace("https://", "http://") + "/healthz", timeout=10)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(served.url + "/healthz", timeout=10)


def test_401_is_the_same_bytes_whatever_the_path(http: httpx.Client) -> None:
    paths = [
        _p("p1"),  # a project with a user
        _p(f"nobody-{uuid.uuid4().hex[:6]}"),  # a project nobody ever used
        _p("Not_A_Label"),  # an invalid project id (a 400 once authenticated)
        "/api",  # discovery
        "/apis",
        "/version",
        _p(None),  # the root scope
    ]
    bodies = set()
    for headers in ({}, {"authorization": "Bearer not-a-token"}, {"authorization": "Basic x"}):
        for path in paths:
            r = http.get(path, headers=headers)
            assert r.status_code == 401, (path, headers, r.text)
            bodies.add(r.content)
    assert len(bodies) == 1
    status = json.loads(bodies.pop())
    assert status["kind"] == "Status" and status["reason"] == "Unauthorized"


def test_403_says_the_same_of_other_and_unknown_projects(http: httpx.Client) -> None:
    other = http.get(_p("p2"), headers=_auth("alice"))
    unknown_project = f"nothing-here-{uuid.uuid4().hex[:6]}"
    unknown = http.get(_p(unknown_project), headers=_auth("alice"))
    assert other.status_code == unknown.status_code == 403
    assert b'\\"p2\\"' in other.content
    assert other.content.replace(b"p2", b"X") == unknown.content.replace(
        unknown_project.encode(), b"X"
    )
    status = other.json()
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        'User "alice" cannot list resource "configmaps" in the namespace "default" in project "p2"'
    )
    # The root scope is masters' only.
    root = http.get(_p(None), headers=_auth("alice"))
    assert root.status_code == 403 and "the root scope" in root.json()["message"]


def test_alice_creates_and_lists_in_her_project(http: httpx.Client) -> None:
    name = f"cm-{uuid.uuid4().hex[:6]}"
    made = http.post(_p("p1"), json=_cm(name, owner="alice"), headers=_auth("alice"))
    assert made.status_code == 201, made.text
    listed = http.get(_p("p1"), headers=_auth("alice"))
    assert listed.status_code == 200
    assert name in {i["metadata"]["name"] for i in listed.json()["items"]}
    got = http.get(_p("p1", f"{CM}/{name}"), headers=_auth("alice"))
    assert got.status_code == 200 and got.json()["data"] == {"owner": "alice"}
    # bob's project does not see it, and bob cannot look in alice's.
    assert name not in {
        i["metadata"]["name"] for i in http.get(_p("p2"), headers=_auth("bob")).json()["items"]
    }
    assert http.get(_p("p1", f"{CM}/{name}"), headers=_auth("bob")).status_code == 403


def test_admin_uses_the_root_scope_and_metrics(http: httpx.Client) -> None:
    name = f"root-{uuid.uuid4().hex[:6]}"
    made = http.post(_p(None), json=_cm(name), headers=_auth("admin"))
    assert made.status_code == 201, made.text
    assert http.get(_p(None, f"{CM}/{name}"), headers=_auth("admin")).status_code == 200
    assert http.get(_p("p2"), headers=_auth("admin")).status_code == 200
    metrics = http.get("/metrics", headers=_auth("admin"))
    assert metrics.status_code == 200
    assert "tenantstore_http_requests_total" in metrics.text
    for user in ("alice", "bob"):
        denied = http.get("/metrics", headers=_auth(user))
        assert denied.status_code == 403
        assert denied.json()["message"] == f'User "{user}" cannot get path "/metrics"'
    assert http.get("/metrics").status_code == 401


def test_health_needs_no_token(http: httpx.Client) -> None:
    for path in ("/healthz", "/livez", "/readyz", "/readyz?verbose", _p("p1", "/readyz")):
        r = http.get(path)
        assert r.status_code == 200, (path, r.text)


def test_discovery_and_version_with_any_valid_token(http: httpx.Client) -> None:
    for user in TOKENS:
        for path in ("/api", "/api/v1", "/apis", "/version", _p("p1", "/api/v1")):
            r = http.get(path, headers=_auth(user))
            assert r.status_code == 200, (user, path, r.text)
        assert http.get(_p(None, "/version"), headers=_auth(user)).json()["major"]


def test_metrics_group_lets_alice_read_metrics(tmp_path: Path, pki: Pki, served: Served) -> None:
    proc = _serve_tls(tmp_path, pki, served.tokens, "--metrics-group", "ops,project:p1")
    try:
        with _client(proc.url, pki) as http:
            assert http.get("/metrics", headers=_auth("alice")).status_code == 200
            assert http.get("/metrics", headers=_auth("bob")).status_code == 403
            assert http.get("/metrics", headers=_auth("admin")).status_code == 200
    finally:
        proc.stop()


# -- kubectl with `tenantstore kubeconfig` ------------------------------------------


def _tenantstore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenantstore.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_with_a_generated_kubeconfig(served: Served, pki: Pki, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "alice.kubeconfig"
    made = _tenantstore(
        "kubeconfig",
        "--project",
        "p1",
        "--user",
        "alice",
        "--token-file",
        str(served.tokens),
        "--server",
        served.url,
        "--ca",
        str(pki.ca),
        "--out",
        str(kubeconfig),
    )
    assert made.returncode == 0 and made.stdout == "" and made.stderr == "", made

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        return subprocess.run(
            [KUBECTL, "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "c"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        )

    first = kubectl("get", "cm")
    assert first.returncode == 0, first.stderr
    name = f"kc-{uuid.uuid4().hex[:6]}"
    manifest = tmp_path / "cm.json"
    manifest.write_text(json.dumps(_cm(name, via="kubectl")))
    created = kubectl("create", "-f", str(manifest))
    assert created.returncode == 0, created.stderr
    assert f"configmap/{name} created" in created.stdout
    names = kubectl("get", "cm", "-o", "name")
    assert names.returncode == 0, names.stderr
    assert f"configmap/{name}" in names.stdout.split()
    # The same kubeconfig (alice's token, the CA) at another project's path: Forbidden.
    elsewhere = kubectl("--server", f"{served.url}/projects/p2/control-plane", "get", "cm")
    assert elsewhere.returncode != 0
    assert "Forbidden" in elsewhere.stderr and 'User "alice" cannot list' in elsewhere.stderr


# -- the official kubernetes client -------------------------------------------------


def test_kubernetes_client_with_a_bearer_token(served: Served, pki: Pki) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    def api(project: str) -> client.ApiClient:
        cfg = client.Configuration()
        cfg.host = f"{served.url}/projects/{project}/control-plane"
        cfg.api_key = {"authorization": TOKENS["alice"][0]}
        cfg.api_key_prefix = {"authorization": "Bearer"}
        cfg.ssl_ca_cert = str(pki.ca)
        return client.ApiClient(cfg)

    name = f"kube-{uuid.uuid4().hex[:6]}"
    with api("p1") as p1, api("p2") as p2:
        v1 = client.CoreV1Api(p1)
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"k": "v"})
        made = v1.create_namespaced_config_map("default", body)
        assert made.metadata.uid
        listed = v1.list_namespaced_config_map("default")
        assert name in {i.metadata.name for i in listed.items}
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(p2).list_namespaced_config_map("default")
        assert denied.value.status == 403
        assert json.loads(denied.value.body)["reason"] == "Forbidden"


# -- SIGHUP -------------------------------------------------------------------------


def _poll(check: Callable[[], bool], what: str) -> None:
    """Until `check()` holds, a bounded number of times; the deadline is generous and only
    bounds a failing run, nothing here measures time."""
    deadline = time.monotonic() + RELOAD_DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def test_sighup_reloads_tokens_and_running_watches_go_on(tmp_path: Path, pki: Pki) -> None:
    tokens = tmp_path / "tokens.csv"
    write_tokens(tokens, TOKENS)
    proc = _serve_tls(tmp_path / "srv", pki, tokens)
    carol = {"authorization": "Bearer tok-carol-1b2c"}
    try:
        with (
            _client(proc.url, pki) as http,
            _client(proc.url, pki) as watcher,
            watcher.stream("GET", _p("p2") + "?watch=true", headers=_auth("bob")) as watch,
        ):
            assert watch.status_code == 200
            assert http.get(_p("p2"), headers=carol).status_code == 401
            users = {k: v for k, v in TOKENS.items() if k != "bob"}
            users["carol"] = ("tok-carol-1b2c", "project:p2")
            write_tokens(tokens, users)
            proc.proc.send_signal(signal.SIGHUP)
            _poll(
                lambda: http.get(_p("p2"), headers=carol).status_code == 200,
                "carol's new token accepted",
            )
            denied = http.get(_p("p2"), headers=_auth("bob"))
            assert denied.status_code == 401
            assert http.get(_p("p1"), headers=_auth("alice")).status_code == 200
            # bob's watch, opened before the reload, still delivers.
            name = f"after-reload-{uuid.uuid4().hex[:6]}"
            assert http.post(_p("p2"), json=_cm(name), headers=carol).status_code == 201
            seen = []
            for line in watch.iter_lines():
                if not line:
                    continue
                event = json.loads(line)
                seen.append(event["type"])
                if event["object"]["metadata"].get("name") == name:
                    assert event["type"] == "ADDED"
                    break
            else:
                pytest.fail(f"bob's watch ended after the reload; events seen: {seen}")
        assert proc.proc.poll() is None  # SIGHUP did not stop the server
    finally:
        proc.stop()


def test_sighup_with_a_broken_file_keeps_the_tokens(tmp_path: Path, pki: Pki) -> None:
    tokens = tmp_path / "tokens.csv"
    write_tokens(tokens, TOKENS)
    proc = _serve_tls(tmp_path / "srv", pki, tokens)
    try:
        with _client(proc.url, pki) as http:
            tokens.write_text("only-a-token\n")
            proc.proc.send_signal(signal.SIGHUP)
            _poll(lambda: "token file not reloaded" in proc.output(), "the reload refused")
            assert http.get(_p("p1"), headers=_auth("alice")).status_code == 200
            assert proc.proc.poll() is None
    finally:
        proc.stop()


# -- client certificates ------------------------------------------------------------


def test_client_ca_requires_a_certificate_and_still_a_token(
    tmp_path: Path, pki: Pki, served: Served
) -> None:
    proc = _serve_tls(tmp_path, pki, served.tokens, "--client-ca-file", str(pki.client_ca))
    try:
        with _client(proc.url, pki) as bare, pytest.raises(httpx.TransportError):
            bare.get("/healthz")
        stray = _client(proc.url, pki, cert=pki.stray_cert, key=pki.stray_key)
        with stray, pytest.raises(httpx.TransportError):
            stray.get("/healthz")
        with _client(proc.url, pki, cert=pki.client_cert, key=pki.client_key) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get(_p("p1")).status_code == 401
            assert http.get(_p("p1"), headers=_auth("alice")).status_code == 200
            assert http.get(_p("p2"), headers=_auth("alice")).status_code == 403
    finally:
        proc.stop()


# -- anonymous mode -----------------------------------------------------------------


def test_anonymous_on_a_public_host_is_refused(tmp_path: Path) -> None:
    done = _tenantstore(
        "serve", "--host", "0.0.0.0", "--port", "0", "--backend", f"sqlite://{tmp_path}/s.db"
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("tenantstore serve: --host 0.0.0.0 is not a loopback address")
    assert "--token-auth-file" in lines[0] and "--insecure-allow-anonymous" in lines[0]
    assert done.stdout == ""


def test_insecure_allow_anonymous_starts_with_a_banner(tmp_path: Path) -> None:
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tenantstore.cli",
                "serve",
                "--host",
                "0.0.0.0",
                "--port",
                "0",
                "--insecure-allow-anonymous",
                "--log-level",
                "warning",
                "--backend",
                f"sqlite://{tmp_path}/s.db",
            ],
            stdout=fo,
            stderr=fe,
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while "tenantstore serving on http://0.0.0.0:" not in out.read_text():
                assert proc.poll() is None, err.read_text()
                assert time.monotonic() < deadline, "did not start"
                time.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    banner = [line for line in err.read_text().splitlines() if line.startswith("WARNING:")]
    assert banner and "no authenticator" in banner[0]
    assert "system:masters" in " ".join(banner)
    assert "WARNING:" not in out.read_text()


# -- the audit log ------------------------------------------------------------------


def _audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_audit_log_has_one_line_per_request_and_no_bodies(
    http: httpx.Client, served: Served
) -> None:
    tag = uuid.uuid4().hex[:8]
    name, marker = f"audited-{tag}", f"SECRET-MARKER-{tag}"
    obj = _p("p1", f"{CM}/{name}")
    before = len(_audit_lines(served.audit))
    # (user, method, path, body, code) and the audit line expected of it:
    # (verb, project, name)
    requests: list[tuple[str, str, str, Any, int, str, str | None, str]] = [
        ("alice", "POST", _p("p1"), _cm(name, password=marker), 201, "create", "p1", ""),
        ("alice", "GET", obj, None, 200, "get", "p1", name),
        ("alice", "PUT", obj, "REPLACE", 200, "update", "p1", name),
        ("alice", "GET", _p("p1"), None, 200, "list", "p1", ""),
        ("bob", "GET", obj, None, 403, "get", "p1", name),
        ("admin", "DELETE", obj, None, 200, "delete", "p1", name),
        ("admin", "GET", _p(None, f"{CM}/{name}"), None, 404, "get", None, name),
    ]
    for user, method, path, body, code, *_ in requests:
        if body == "REPLACE":
            body = _cm(name, password=marker + "-2")
        r = http.request(method, path, json=body, headers=_auth(user))
        assert r.status_code == code, (method, path, r.text)
        if code == 200 and method == "GET" and path == obj:
            assert r.json()["data"]["password"] == marker  # the marker was stored
    lines = _audit_lines(served.audit)[before:]
    got = [(e["user"], e["verb"], e["project"], e["name"], e["code"]) for e in lines]
    wanted = [(u, verb, proj, n, code) for u, _, _, _, code, verb, proj, n in requests]
    assert got == wanted
    for e, request in zip(lines, requests, strict=True):
        assert e["path"] == request[2]
        assert e["resource"] == "configmaps" and e["namespace"] == "default"
        assert e["groups"] == [TOKENS[e["user"]][1]]
        assert isinstance(e["latencySeconds"], int | float) and e["latencySeconds"] >= 0
        assert e["scope"] == ("root" if e["project"] is None else "project")
    text = served.audit.read_text()
    assert name in text  # the file does name the object ...
    assert marker not in text  # ... but holds nothing of its data


# -- `tenantstore kubeconfig` -------------------------------------------------------


def _run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = cli_main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_kubeconfig_to_stdout(capsys: pytest.CaptureFixture[str], served: Served, pki: Pki) -> None:
    rc, out, err = _run_cli(
        capsys,
        "kubeconfig",
        "--project",
        "p2",
        "--user",
        "bob",
        "--token-file",
        str(served.tokens),
        "--ca",
        str(pki.ca),
    )
    assert rc == 0 and err == ""
    doc = yaml.safe_load(out)
    assert doc["kind"] == "Config"
    (cluster,) = doc["clusters"]
    assert cluster["cluster"]["server"] == "https://127.0.0.1:8080/projects/p2/control-plane"
    data = cluster["cluster"]["certificate-authority-data"]
    assert base64.b64decode(data) == pki.ca.read_bytes()
    (user,) = doc["users"]
    assert user["user"] == {"token": TOKENS["bob"][0]}
    (context,) = doc["contexts"]
    assert doc["current-context"] == context["name"]
    assert context["context"]["cluster"] == cluster["name"]
    assert context["context"]["user"] == user["name"]


def test_kubeconfig_out_is_private(
    capsys: pytest.CaptureFixture[str], served: Served, tmp_path: Path
) -> None:
    out = tmp_path / "kc.yaml"
    out.write_text("old")
    out.chmod(0o644)
    rc, stdout, err = _run_cli(
        capsys,
        "kubeconfig",
        "--project",
        "p1",
        "--user",
        "alice",
        "--token-file",
        str(served.tokens),
        "--server",
        "http://10.1.2.3:9000/",
        "--out",
        str(out),
    )
    assert (rc, stdout, err) == (0, "", "")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    doc = yaml.safe_load(out.read_text())
    assert doc["clusters"][0]["cluster"] == {
        "server": "http://10.1.2.3:9000/projects/p1/control-plane"
    }
    assert doc["users"][0]["user"]["token"] == TOKENS["alice"][0]
    fresh = tmp_path / "fresh.yaml"
    rc, _, _ = _run_cli(
        capsys,
        "kubeconfig",
        "--project=p1",
        "--user=alice",
        f"--token-file={served.tokens}",
        f"--out={fresh}",
    )
    assert rc == 0 and stat.S_IMODE(fresh.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--user": "mallory"}, r"no token for user 'mallory' in .*tokens\.csv"),
        ({"--project": "P_1"}, r"invalid --project 'P_1': must be a lowercase RFC 1123 label"),
        ({"--token-file": "/nonexistent/t.csv"}, r"cannot read token file /nonexistent/t\.csv"),
        ({"--ca": "/nonexistent/ca.pem"}, r"cannot read --ca /nonexistent/ca\.pem"),
        ({"--ca": "TOKENS"}, r"--ca .* is not a PEM certificate"),
        ({"--server": "127.0.0.1:8080"}, r"invalid --server '127\.0\.0\.1:8080'"),
        ({"--out": "/nonexistent/dir/kc"}, r"cannot write --out /nonexistent/dir/kc"),
    ],
)
def test_kubeconfig_errors_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    served: Served,
    change: dict[str, str],
    message: str,
) -> None:
    opts = {"--project": "p1", "--user": "alice", "--token-file": str(served.tokens)}
    opts.update({k: str(served.tokens) if v == "TOKENS" else v for k, v in change.items()})
    argv = ["kubeconfig"] + [part for kv in opts.items() for part in kv]
    rc, out, err = _run_cli(capsys, *argv)
    assert rc == 2 and out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("tenantstore kubeconfig: ")
    assert re.search(message, err), err


def test_kubeconfig_token_file_parse_error_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("tok,alice,1\njust-a-token\n")
    rc, out, err = _run_cli(
        capsys, "kubeconfig", "--project", "p1", "--user", "alice", "--token-file", str(bad)
    )
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert f"{bad}:2:" in err


# -- the README's embedded authenticator and authorizer -----------------------------


def _readme_example() -> str:
    """The Python block of the README's "Running it for real" section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Running it for real", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section should have exactly one Python example"
    return str(blocks[0])


def test_readme_custom_authenticator_and_authorizer(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(_readme_example(), "README.md", "exec"), namespace)
    config: ServerConfig = namespace["config"]
    assert config.authenticator is namespace["authenticator"]
    config.backend = f"sqlite://{tmp_path / 'store.db'}"
    calls: list[tuple[Any, ...]] = []
    decide = config.authorizer
    assert decide is not None

    def recording(*args: Any) -> Any:
        calls.append(args)
        return decide(*args)

    config.authorizer = recording
    server = ThreadServer(config).start()
    key = {"x-api-key": "k-7f3a9c"}
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert http.get(_p("blue-a")).status_code == 401
            assert http.get(_p("blue-a"), headers={"x-api-key": "nope"}).status_code == 401
            made = http.post(_p("blue-a"), json=_cm("c1"), headers=key)
            assert made.status_code == 201, made.text
            assert http.get(_p("blue-a"), headers=key).json()["items"][0]["metadata"]["name"] == (
                "c1"
            )
            secrets = "/api/v1/namespaces/default/secrets"
            assert http.get(_p("blue-a", secrets), headers=key).status_code == 200
            secret = {"metadata": {"name": "s1"}, "data": {}}
            denied = http.post(_p("blue-a", secrets), json=secret, headers=key)
            assert denied.status_code == 403
            assert denied.json()["message"] == (
                'User "ci-bot" cannot create resource "secrets" in the namespace "default" '
                'in project "blue-a"'
            )
            assert http.get(_p("red-a"), headers=key).status_code == 403
            assert http.get(_p(None), headers=key).status_code == 403
            assert http.get("/api", headers=key).status_code == 200
            assert http.get("/metrics", headers=key).status_code == 403
    finally:
        server.stop()
    user = calls[0][0]
    assert (user.name, user.uid, user.groups) == ("ci-bot", "42", ("team:blue",))
    shapes = {(c[1], c[2], c[3], c[4], c[5]) for c in calls}
    assert ("blue-a", "create", "configmaps", "default", "") in shapes
    assert ("blue-a", "list", "configmaps", "default", "") in shapes
    assert ("blue-a", "create", "secrets", "default", "") in shapes
    assert (None, "list", "configmaps", "default", "") in shapes
