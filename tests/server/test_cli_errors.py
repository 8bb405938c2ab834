"""Start-up and CLI errors a person can act on: the real `tenantstore` command.

Each configuration error must be one line on stderr naming the thing at fault (the URL,
path, flag or variable), exit status 2, no traceback, nothing created on disk, and come
before the server binds its port. The command runs as `python -m tenantstore` in a
child process, as a user runs it, in an empty working directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import tenantstore
from tenantstore.server.registry import RegistryError, load_resources_file

RUN_TIMEOUT = 30.0


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TENANTSTORE_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tenantstore", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def config_error(result: subprocess.CompletedProcess[str], *names: str) -> str:
    """The one stderr line of a configuration error, checked to name each of `names`."""
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert result.returncode == 2, result.stderr
    assert "serving on" not in result.stdout
    for name in names:
        assert name in lines[0]
    return lines[0]


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` made unwritable: by its mode, or for root (whom modes do not stop) by the
    immutable attribute; the test is skipped where neither is possible."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not available")
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"chattr +i failed: {made.stderr.decode(errors='replace').strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


# -- backend URLs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["postgres://h/db", "etcd://", "sqlite:", "sqlite://", "etcd://localhost"]
)
def test_invalid_backend_url_is_one_line_and_creates_nothing(url: str, tmp_path: Path) -> None:
    line = config_error(run(tmp_path, "serve", "--backend", url), repr(url))
    assert line.startswith("tenantstore serve: invalid backend URL")
    assert tree(tmp_path) == []


def test_unreachable_etcd_names_the_address(tmp_path: Path) -> None:
    line = config_error(run(tmp_path, "serve", "--backend", "etcd://127.0.0.1:1"), "127.0.0.1:1")
    assert line == "tenantstore serve: cannot reach etcd at 127.0.0.1:1: no answer within 5 s"


def test_parent_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    line = config_error(
        run(tmp_path, "serve", "--backend", "sqlite://afile/sub/ts.db"), "sqlite://afile/sub/ts.db"
    )
    assert line.endswith(f"{tmp_path / 'afile'} is not a directory")
    assert tree(tmp_path) == ["afile"]


def test_path_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    line = config_error(run(tmp_path, "serve", "--backend", "sqlite://adir"), "sqlite://adir")
    assert "is a directory" in line
    assert tree(tmp_path) == ["adir"]


def test_corrupt_sqlite_file_is_left_alone(tmp_path: Path) -> None:
    junk = os.urandom(8192)
    (tmp_path / "ts.db").write_bytes(junk)
    line = config_error(run(tmp_path, "serve", "--backend", "sqlite://ts.db"), "sqlite://ts.db")
    assert line.endswith("is not a SQLite database")
    assert (tmp_path / "ts.db").read_bytes() == junk
    assert tree(tmp_path) == ["ts.db"]


def test_read_only_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite://{data}/ts.db"
    with read_only(data):
        line = config_error(run(tmp_path, "serve", "--backend", url), url)
        assert line == f"tenantstore serve: cannot open backend {url}: {data} is not writable"
        nested = f"sqlite://{data}/sub/ts.db"
        config_error(run(tmp_path, "serve", "--backend", nested), nested, "not writable")
    assert tree(tmp_path) == ["data"]


def _sqlite_file(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (a)")
    conn.commit()
    conn.close()


def test_read_only_sqlite_file(tmp_path: Path) -> None:
    _sqlite_file(tmp_path / "ts.db")
    with read_only(tmp_path / "ts.db"):
        line = config_error(run(tmp_path, "serve", "--backend", "sqlite://ts.db"), "ts.db")
    assert line.endswith("ts.db is read-only")


def test_unreadable_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "ts.db"
    _sqlite_file(db)
    db.chmod(0)
    try:
        if os.access(db, os.R_OK):
            pytest.skip("running as root: file modes do not stop reads")
        line = config_error(run(tmp_path, "serve", "--backend", "sqlite://ts.db"), "ts.db")
        assert line.endswith("ts.db is not readable")
    finally:
        db.chmod(0o644)


# -- flags and environment variables ---------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--port", "99999"),
        ("--port", "-1"),
        ("--max-body-bytes", "-5"),
        ("--max-body-bytes", "0"),
        ("--request-read-timeout", "0"),
    ],
)
def test_bad_flag_value_is_refused_at_parsing(flag: str, value: str, tmp_path: Path) -> None:
    line = config_error(run(tmp_path, "serve", flag, value), flag, repr(value))
    assert line.startswith("tenantstore serve: argument")
    assert tree(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TENANTSTORE_PORT", "99999"),
        ("TENANTSTORE_MAX_BODY_BYTES", "lots"),
        ("TENANTSTORE_MODE", "sideways"),
        ("TENANTSTORE_ACCESS_LOG", "maybe"),
    ],
)
def test_bad_environment_variable_is_named(name: str, value: str, tmp_path: Path) -> None:
    line = config_error(run(tmp_path, "serve", env={name: value}), name)
    assert tree(tmp_path) == []
    assert value in line


def test_flag_wins_over_environment_variable(tmp_path: Path) -> None:
    line = config_error(
        run(
            tmp_path,
            "serve",
            "--backend",
            "sqlite://",
            "--port",
            "0",
            env={"TENANTSTORE_BACKEND": "postgres://h/db", "TENANTSTORE_PORT": "x"},
        ),
        "'sqlite://'",
    )
    assert "postgres" not in line and "TENANTSTORE" not in line


def test_backend_from_environment_is_named_in_errors(tmp_path: Path) -> None:
    line = config_error(
        run(tmp_path, "serve", env={"TENANTSTORE_BACKEND": "postgres://h/db"}),
        "'postgres://h/db'",
    )
    assert line.endswith("(from TENANTSTORE_BACKEND)")


def test_environment_configures_the_server(tmp_path: Path) -> None:
    """Variables reach the running server (port, backend), not only its error checks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTSTORE_")}
    env.update(TENANTSTORE_PORT="0", TENANTSTORE_BACKEND="sqlite://env/ts.db")
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tenantstore", "serve"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while "serving on" not in log.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=RUN_TIMEOUT)
    line = log.read_text()
    assert "tenantstore serving on http://127.0.0.1:" in line
    assert ":8080" not in line
    assert "backend sqlite://env/ts.db" in line
    assert (tmp_path / "env" / "ts.db").exists()


def test_help_shows_every_default_and_variable(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", "--help")
    assert result.returncode == 0
    flags = [
        "--backend",
        "--mode",
        "--resources",
        "--host",
        "--port",
        "--max-body-bytes",
        "--request-read-timeout",
        "--gil-switch-interval",
        "--log-level",
        "--access-log",
        "--http",
        "--loop",
        "--token-auth-file",
        "--insecure-allow-anonymous",
        "--tls-cert-file",
        "--tls-private-key-file",
        "--client-ca-file",
        "--metrics-group",
        "--metrics-top-projects",
        "--no-namespace-lifecycle",
        "--max-objects-per-project",
        "--max-bytes-per-project",
        "--max-inflight-per-project",
        "--max-watches-per-project",
        "--audit-log",
        "--audit-log-maxsize",
        "--audit-log-maxbackup",
    ]
    options = result.stdout.split("options:", 1)[1].split("environment:", 1)[0]
    # Each flag's help entry (up to the next flag) carries its default.
    entries = options.split("\n  --")[1:]
    assert sorted("--" + e.split()[0] for e in entries) == sorted(flags)
    for entry in entries:
        assert "(default:" in " ".join(entry.split()), entry
    for flag in flags:
        assert "TENANTSTORE_" + flag[2:].replace("-", "_").upper() in result.stdout


def test_version_and_python_m(tmp_path: Path) -> None:
    result = run(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout == f"tenantstore {tenantstore.__version__}\n"
    assert run(tmp_path, "--help").stdout.startswith("usage: tenantstore ")


# -- resources files -------------------------------------------------------------------


def test_resources_file_error_names_file_and_entry(tmp_path: Path) -> None:
    (tmp_path / "res.yaml").write_text(
        "resources:\n"
        "  - {group: example.com, version: v1, kind: Widget, plural: widgets}\n"
        "  - {group: example.com, version: v1, kind: Gadget}\n"
    )
    line = config_error(run(tmp_path, "serve", "--resources", "res.yaml"))
    assert line == 'tenantstore serve: res.yaml: resources[1] (Gadget): missing field "plural"'
    assert tree(tmp_path) == ["res.yaml"]


def test_missing_resources_file(tmp_path: Path) -> None:
    config_error(run(tmp_path, "serve", "--resources", "nope.yaml"), "nope.yaml")


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("- {group: a.io, kind: X, plural: xs}", 'resources[0] (X/xs): missing field "version"'),
        ("- {group: a.io, version: v1, plural: xs}", 'resources[0] (xs): missing field "kind"'),
        ("- {group: a.io, version: v1, kind: X}", 'resources[0] (X): missing field "plural"'),
        ("- {}", 'resources[0]: missing field "version"'),
        ("- {group: a.io, version: v1, kind: X, plural: xs, extra: 1}", "unknown field 'extra'"),
        ("- {version: v1, kind: Secret, plural: secrets}", "secrets is a built-in resource"),
        (
            "- {group: a.io, version: v1, kind: X, plural: xs}\n"
            "- {group: a.io, version: v2, kind: X, plural: xs}",
            "resources[1] (X/xs): xs.a.io already declared in resources[0]",
        ),
    ],
)
def test_resource_messages(entries: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("resources:\n" + "".join(f"  {e}\n" for e in entries.splitlines()))
    with pytest.raises(RegistryError) as info:
        load_resources_file(path)
    assert str(info.value).startswith(f"{path}: resources[")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("resources: [{: bad\n", "not valid YAML: line 1, column 14"),
        ("resource: []\n", "unknown top-level field 'resource'"),
    ],
)
def test_resources_file_level_messages_are_one_line(
    text: str, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(RegistryError) as info:
        load_resources_file(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# -- demo ------------------------------------------------------------------------------


def test_demo_uses_a_temporary_database(tmp_path: Path) -> None:
    result = run(tmp_path, "demo")
    assert result.returncode == 0, result.stderr
    assert "alpha: 1 configmaps" in result.stdout
    assert tree(tmp_path) == []


def test_demo_is_repeatable_on_one_backend(tmp_path: Path) -> None:
    first = run(tmp_path, "demo", "--backend", "sqlite://demo/ts.db")
    second = run(tmp_path, "demo", "--db", "demo/ts.db")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert first.stdout.splitlines()[:4] == second.stdout.splitlines()[:4]
    assert "root: 1 configmaps" in first.stdout
    assert (tmp_path / "demo" / "ts.db").exists()


def test_demo_bad_backend_is_one_line(tmp_path: Path) -> None:
    line = config_error(run(tmp_path, "demo", "--backend", "postgres://h/db"), "postgres://h/db")
    assert line.startswith("tenantstore demo: ")
    assert tree(tmp_path) == []
