"""The `tenantstore` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from . import __version__
from .storage import ListOptions, NotFoundError

if TYPE_CHECKING:
    from .tenancy.factory import KV

DEFAULT_DB = os.path.join("tenantstore-data", "tenantstore.db")
DEFAULT_BACKEND = "sqlite://" + DEFAULT_DB
CONFIGMAPS = "/registry/configmaps"
ENV_PREFIX = "TENANTSTORE_"
# `server.metrics.DEFAULT_TOP_PROJECTS`, repeated: the server is imported only by `serve`.
DEFAULT_TOP_PROJECTS = 10
# Exit status of every configuration error (argparse's own usage errors use it too).
EXIT_CONFIG = 2
# Bound on opening the backend before serving. The etcd driver gives up after 5 s by
# itself; this only stops anything else (a SQLite file locked by another process waits
# 10 s) from holding start-up indefinitely.
OPEN_TIMEOUT = 12.0
BACKEND_FORMS = "sqlite://PATH, sqlite:///ABS/PATH or etcd://HOST:PORT[,HOST:PORT...]"


class ConfigError(Exception):
    """A setting the command cannot run with; its message is one line naming the setting."""


def _one_line(text: object) -> str:
    """Driver and parser messages may span lines (YAML's do); stderr gets one."""
    return " ".join(str(text).split())


# -- argument parsing ------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (argparse prints the usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: {_one_line(message)}; see '{self.prog} --help'\n")


class _Default:
    """A `serve` flag's default, wrapped so `main` can tell "not given" (then the
    environment variable applies) from "given the default value" (the flag wins)."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:  # what `%(default)s` shows in the help
        return "none" if self.value is None else str(self.value)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return port


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_name(action: argparse.Action) -> str:
    """`--max-body-bytes` -> `TENANTSTORE_MAX_BODY_BYTES` (uvicorn's convention)."""
    return ENV_PREFIX + action.option_strings[-1].lstrip("-").replace("-", "_").upper()


def _from_env(action: argparse.Action, raw: str) -> object:
    name = env_name(action)
    if action.nargs == 0:  # a switch such as --access-log
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ConfigError(f"{name}={raw!r}: expected 1 or 0 (true/false, yes/no, on/off)")
    convert: Callable[[str], object] = action.type if callable(action.type) else str
    try:
        value = convert(raw)
    except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
        raise ConfigError(f"{name}: {_one_line(exc)}") from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigError(f"{name}={raw!r}: expected one of {choices}")
    return value


def apply_environment(
    args: argparse.Namespace, actions: Sequence[argparse.Action], environ: dict[str, str]
) -> dict[str, str]:
    """Fill every flag not given on the command line from its environment variable, or
    its default; returns where each setting came from (the flag or the variable), for
    messages. An empty variable counts as unset."""
    sources: dict[str, str] = {}
    for action in actions:
        value = getattr(args, action.dest)
        if not isinstance(value, _Default):
            sources[action.dest] = action.option_strings[-1]
            continue
        raw = environ.get(env_name(action), "")
        if raw:
            setattr(args, action.dest, _from_env(action, raw))
            sources[action.dest] = env_name(action)
        else:
            setattr(args, action.dest, value.value)
            sources[action.dest] = action.option_strings[-1]
    return sources


# -- the backend -----------------------------------------------------------------------


def check_backend_url(url: str) -> None:
    """Refuse a URL no driver can serve before anything opens it: the SQLite driver
    would create directories for it, the etcd one would wait 5 s for an absent host."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"invalid backend URL {url!r}: expected {BACKEND_FORMS}")
    if scheme == "sqlite":
        if not rest.split("?", 1)[0]:
            raise ConfigError(f"invalid backend URL {url!r}: no file path (sqlite://PATH)")
        return
    if scheme not in ("etcd", "http"):
        raise ConfigError(
            f"invalid backend URL {url!r}: unknown scheme {scheme!r}, expected {BACKEND_FORMS}"
        )
    netloc = urlsplit(url).netloc
    if not netloc:
        raise ConfigError(f"invalid backend URL {url!r}: no host (etcd://HOST:PORT)")
    for endpoint in netloc.split(","):
        host, colon, port = endpoint.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise ConfigError(
                f"invalid backend URL {url!r}: {endpoint!r} is not HOST:PORT "
                "(etcd://HOST:PORT[,HOST:PORT...])"
            )


def _sqlite_path(url: str) -> str:
    return url.partition("://")[2].split("?", 1)[0]


def check_sqlite_path(url: str) -> None:
    """Name the path at fault in terms a person can fix, before SQLite says only "unable
    to open database file" (and before the driver creates the missing directories)."""
    path = _sqlite_path(url)
    if path == ":memory:":
        return

    def fail(problem: str) -> NoReturn:
        raise ConfigError(f"cannot open backend {url}: {problem}")

    full = os.path.abspath(path)
    parent = os.path.dirname(full)
    if os.path.isdir(full):
        fail(f"{full} is a directory, not a SQLite file")
    existing = parent
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        fail(f"{existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing != parent:
            fail(f"{existing} is not writable (cannot create {parent})")
        # SQLite's write-ahead log needs its -wal and -shm files beside the database.
        fail(f"{parent} is not writable")
    if os.path.lexists(full):
        if not os.path.isfile(full):
            fail(f"{full} is not a regular file")
        if not os.access(full, os.R_OK):
            fail(f"{full} is not readable")
        if not os.access(full, os.W_OK):
            fail(f"{full} is read-only")


def _open_failure(url: str, exc: BaseException, timeout: float) -> ConfigError:
    """One line for whatever opening the backend raised, without driver internals (the
    etcd address and the file path are what the user typed)."""
    scheme = url.partition("://")[0]
    if scheme in ("etcd", "http"):
        address = urlsplit(url).netloc
        detail = _one_line(exc)
        if isinstance(exc, TimeoutError) or "deadline" in detail.lower():
            return ConfigError(f"cannot reach etcd at {address}: no answer within 5 s")
        return ConfigError(f"cannot reach etcd at {address}: {detail}")
    if isinstance(exc, TimeoutError):
        return ConfigError(f"cannot open backend {url}: not opened within {timeout:g} s")
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
        path = os.path.abspath(_sqlite_path(url))
        return ConfigError(f"cannot open backend {url}: {path} is not a SQLite database")
    if isinstance(exc, sqlite3.Error):
        path = os.path.abspath(_sqlite_path(url))
        return ConfigError(f"cannot open backend {url}: {path}: {_one_line(exc)}")
    if isinstance(exc, OSError):
        what = f"{exc.filename}: " if exc.filename else ""
        return ConfigError(f"cannot open backend {url}: {what}{exc.strerror or exc}")
    if isinstance(exc, ValueError):
        return ConfigError(_one_line(exc))
    return ConfigError(f"cannot open backend {url}: {type(exc).__name__}: {_one_line(exc)}")


async def open_backend(url: str, timeout: float = OPEN_TIMEOUT) -> KV:
    """The KV `url` names, or `ConfigError` with one line saying what is wrong."""
    from .tenancy.factory import open_kv

    check_backend_url(url)
    if url.startswith("sqlite://"):
        check_sqlite_path(url)
    try:
        async with asyncio.timeout(timeout):
            return await open_kv(url)
    except Exception as exc:
        raise _open_failure(url, exc, timeout) from None


async def probe_backend(url: str, timeout: float = OPEN_TIMEOUT) -> None:
    """Open and close the backend: `serve` fails here, before binding its port, rather
    than in the server's lifespan (a traceback, and only once the port is bound)."""
    kv = await open_backend(url, timeout)
    await kv.close()


# -- commands --------------------------------------------------------------------------


def _configmap(name: str, namespace: str, **data: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())},
        "data": data,
    }


async def demo(url: str | None) -> int:
    """Three scopes over one shared cache: each sees only its own.

    Without a URL the data goes to a temporary SQLite file, so the demo never writes
    into the server's default database. Its objects have fixed names and are replaced on
    each run, so a second run on the same backend prints the same counts.
    """
    if url is None:
        with tempfile.TemporaryDirectory(prefix="tenantstore-demo-") as tmp:
            return await _demo("sqlite://" + os.path.join(tmp, "demo.db"), "a temporary database")
    return await _demo(url, url)


async def _demo(url: str, where: str) -> int:
    from .tenancy import SharedStorageFactory, all_projects, project_scope

    kv = await open_backend(url)
    factory = SharedStorageFactory(kv, [CONFIGMAPS])
    try:
        await factory.start()
        store = factory.storage(CONFIGMAPS)
        name = "tenantstore-demo"
        key = f"{CONFIGMAPS}/default/{name}"
        for scope in ("alpha", "beta", None):
            with project_scope(scope):
                with contextlib.suppress(NotFoundError):
                    await store.delete(key)
                await store.create(key, _configmap(name, "default", owner=scope or "root"))
        for scope in ("alpha", "beta", None):
            opts = ListOptions(recursive=True)
            with project_scope(scope):
                listed = await store.get_list(CONFIGMAPS, opts)
            owners = sorted({(o.get("data") or {}).get("owner", "?") for o in listed.items})
            print(f"{scope or 'root':>6}: {len(listed.items)} configmaps, owners {owners}")
        with all_projects():
            everything = await store.get_list(CONFIGMAPS, ListOptions(recursive=True))
        print(f"   all: {len(everything.items)} configmaps across every scope (all_projects())")
        print(f"one shared cache, one backend watch; data in {where}")
    finally:
        await factory.stop()
        await kv.close()
    return 0


def serve(args: argparse.Namespace, sources: dict[str, str]) -> int:
    """Run the Kubernetes-style API server until SIGTERM/SIGINT; 0 on a clean shutdown."""

    def via(dest: str) -> str:
        source = sources.get(dest, "")
        return f" (from {source})" if source.startswith(ENV_PREFIX) else ""

    try:
        check_backend_url(args.backend)  # before the server's imports: a typo fails fast
    except ConfigError as exc:
        raise ConfigError(f"{exc}{via('backend')}") from None
    from .server import ServerConfig, create_app, make_server
    from .server.registry import RegistryError, ResourceRegistry
    from .server.runner import resolve_http, resolve_loop

    try:
        http, loop = resolve_http(args.http), resolve_loop(args.loop)
    except ValueError as exc:
        raise ConfigError(f"{exc}{via('http')}{via('loop')}") from None

    try:
        registry = ResourceRegistry.with_builtins(args.resources)
    except RegistryError as exc:
        raise ConfigError(f"{_one_line(exc)}{via('resources')}") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read resources file {args.resources}{via('resources')}: {exc.strerror or exc}"
        ) from None
    # The event loop shares the GIL with the backend's threads (the SQLite reader and
    # writer, gRPC's poller). With Python's 5 ms switch interval a thread running Python
    # code holds the loop up to 5 ms each time, which the fairness benchmark sees as a
    # quiet project's p99 doubling under another project's writes.
    sys.setswitchinterval(args.gil_switch_interval)
    try:
        asyncio.run(probe_backend(args.backend))
    except ConfigError as exc:
        raise ConfigError(f"{exc}{via('backend')}") from None
    authenticator = None
    if args.token_auth_file is not None:
        from .server.auth import TokenFile, TokenFileError

        try:
            authenticator = TokenFile(args.token_auth_file)
        except TokenFileError as exc:
            raise ConfigError(f"{exc}{via('token_auth_file')}") from None
    if (args.tls_cert_file is None) != (args.tls_private_key_file is None):
        raise ConfigError("--tls-cert-file and --tls-private-key-file go together")
    if args.client_ca_file is not None and args.tls_cert_file is None:
        raise ConfigError("--client-ca-file needs --tls-cert-file and --tls-private-key-file")
    for flag_dest in ("tls_cert_file", "tls_private_key_file", "client_ca_file"):
        path = getattr(args, flag_dest)
        if path is not None and not os.access(path, os.R_OK):
            name = "--" + flag_dest.replace("_", "-")
            raise ConfigError(f"{name} {path}: cannot read the file{via(flag_dest)}")
    anonymous = authenticator is None
    if anonymous and not _loopback(args.host) and not args.insecure_allow_anonymous:
        raise ConfigError(
            f"--host {args.host} is not a loopback address and no authenticator is "
            "configured: give --token-auth-file, or --insecure-allow-anonymous to serve "
            "every project to anyone who can reach the port"
        )
    config = ServerConfig(
        backend=args.backend,
        mode=args.mode,
        resources_file=args.resources,
        max_body_bytes=args.max_body_bytes,
        read_timeout=args.request_read_timeout,
        authenticator=authenticator,
        metrics_groups=tuple(g for g in (args.metrics_group or "").split(",") if g),
        max_inflight_per_project=args.max_inflight_per_project,
        max_watches_per_project=args.max_watches_per_project,
        max_objects_per_project=args.max_objects_per_project,
        max_bytes_per_project=args.max_bytes_per_project,
        metrics_top_projects=args.metrics_top_projects,
        audit_log=args.audit_log,
        audit_log_maxsize=args.audit_log_maxsize,
        audit_log_maxbackup=args.audit_log_maxbackup,
        namespace_lifecycle=not args.no_namespace_lifecycle,
    )
    if anonymous:
        print(_ANONYMOUS_BANNER.format(host=args.host), file=sys.stderr, flush=True)
    server = make_server(
        create_app(config, registry),
        args.host,
        args.port,
        log_level=args.log_level,
        access_log=args.access_log,
        tls_cert_file=args.tls_cert_file,
        tls_key_file=args.tls_private_key_file,
        client_ca_file=args.client_ca_file,
        http=http,
        loop=loop,
    )
    server.run()
    return 0 if server.started else 1


DEFAULT_SERVER_URL = "https://127.0.0.1:8080"


def kubeconfig_document(
    server: str, project: str, user: str, token: str, ca_pem: bytes | None = None
) -> dict[str, object]:
    """A kubeconfig with one cluster (the project's control plane), one user (a bearer
    token) and a current context joining them, so `kubectl --kubeconfig FILE` needs no
    other flag. Names carry the project: several such files merge without clashing."""
    import base64

    cluster: dict[str, object] = {
        "server": f"{server.rstrip('/')}/projects/{project}/control-plane"
    }
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode("ascii")
    name = f"tenantstore-{project}"
    user_name = f"{user}@{name}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": user_name, "user": {"token": token}}],
        "contexts": [
            {
                "name": user_name,
                "context": {"cluster": name, "user": user_name, "namespace": "default"},
            }
        ],
        "current-context": user_name,
        "preferences": {},
    }


def _check_server_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"invalid --server {url!r}: expected https://HOST:PORT")
    if parts.query or parts.fragment:
        raise ConfigError(f"invalid --server {url!r}: no query or fragment, only a base URL")


def _token_for(path: str, user: str) -> str:
    from .server.auth import TokenFileError, read_token_file

    try:
        tokens = read_token_file(path)
    except TokenFileError as exc:
        raise ConfigError(_one_line(exc)) from None
    # A user may have several tokens: the first in the file, as a person reading it would.
    for token, who in tokens.items():
        if who.name == user:
            return token
    raise ConfigError(f"no token for user {user!r} in {path}")


def _read_ca(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read --ca {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ConfigError(f"--ca {path} is not a PEM certificate")
    return data


def _write_private(path: str, text: str) -> None:
    """Create (or truncate) `path` readable by its owner only: it holds a bearer token.
    An existing file is narrowed to 0600 too, before the token is written into it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write --out {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fd, 0o600)
        fh.write(text)


def kubeconfig(args: argparse.Namespace) -> int:
    """Write a kubeconfig for one user in one project (stdout, or `--out` with mode 0600)."""
    import yaml

    from .keys import is_valid_project_id

    if not is_valid_project_id(args.project):
        raise ConfigError(
            f"invalid --project {args.project!r}: must be a lowercase RFC 1123 label "
            "(at most 63 characters of a-z, 0-9 and '-', starting and ending alphanumeric)"
        )
    _check_server_url(args.server)
    token = _token_for(args.token_file, args.user)
    ca_pem = _read_ca(args.ca) if args.ca is not None else None
    doc = kubeconfig_document(args.server, args.project, args.user, token, ca_pem)
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    if args.out is None:
        sys.stdout.write(text)
    else:
        _write_private(args.out, text)
    return 0


def _kubeconfig_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "kubeconfig",
        help="write a kubeconfig for one user's token in one project",
        description="Write a kubeconfig whose cluster is a project's control plane "
        "(<server>/projects/<project>/control-plane) and whose user is the bearer token "
        "the --token-file (tenantstore serve --token-auth-file) gives USER, so that "
        "`kubectl --kubeconfig FILE get configmaps` needs no other flag.",
    )
    p.add_argument("--project", required=True, help="the project (a DNS-1123 label)")
    p.add_argument("--user", required=True, help="a user name in the token file")
    p.add_argument(
        "--token-file",
        required=True,
        metavar="FILE",
        help='static token file, lines token,user,uid,"group1,group2"',
    )
    p.add_argument(
        "--server",
        default=DEFAULT_SERVER_URL,
        metavar="URL",
        help=f"the server's base URL (default: {DEFAULT_SERVER_URL})",
    )
    p.add_argument(
        "--ca",
        metavar="FILE",
        help="the CA that signed the server's certificate (PEM), embedded as "
        "certificate-authority-data (default: the system's trust store)",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="write here, created with mode 0600 since it holds a token (default: stdout)",
    )


_ANONYMOUS_BANNER = """\
WARNING: tenantstore serve has no authenticator (no --token-auth-file): every request
WARNING: on {host} is served as an anonymous system:masters user, in every project and
WARNING: the root scope. Give --token-auth-file to require a token per project."""


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_SERVE_EPILOG = f"""\
environment:
  Every flag can be set from an environment variable named after it (uvicorn's
  convention): {ENV_PREFIX}<FLAG> in capitals with "-" as "_", e.g.
  --max-body-bytes 1048576 is {ENV_PREFIX}MAX_BODY_BYTES=1048576. A switch takes
  1 or 0 ({ENV_PREFIX}ACCESS_LOG=1). A flag on the command line wins over its
  variable; an empty variable counts as unset.
{{variables}}

exit status:
  0 after a clean shutdown (SIGTERM/SIGINT), 2 for a configuration error (a bad
  flag or variable, a backend that cannot be opened, a malformed resources file),
  reported on one line of stderr before the port is bound.
"""


def _serve_parser(sub: Any) -> tuple[argparse.ArgumentParser, list[argparse.Action]]:
    p_serve: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="serve a Kubernetes-style API; projects at /projects/<p>/control-plane/",
        description="Serve a Kubernetes-style REST API over tenantstore. Paths under\n"
        "/projects/<project>/control-plane/ are confined to that project; others are root.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions: list[argparse.Action] = []

    def flag(name: str, default: object, help: str, **kw: Any) -> None:
        actions.append(
            p_serve.add_argument(
                name, default=_Default(default), help=f"{help} (default: %(default)s)", **kw
            )
        )

    flag(
        "--backend",
        DEFAULT_BACKEND,
        "sqlite://PATH (sqlite:///abs/path) or etcd://HOST:PORT[,HOST:PORT...]",
        metavar="URL",
    )
    flag(
        "--mode",
        "shared",
        "one cacher per resource for every project, or one stack per project",
        choices=["shared", "per-project"],
    )
    flag("--resources", None, "YAML/JSON file declaring custom resources", metavar="FILE")
    flag("--host", "127.0.0.1", "address to listen on")
    flag("--port", 8080, "port to listen on; 0 picks a free port", type=_port)
    flag(
        "--max-body-bytes",
        3 * 1024 * 1024,
        "request size limit in bytes",
        type=_positive_int,
        metavar="N",
    )
    flag(
        "--request-read-timeout",
        30.0,
        "seconds a client has to send a request's headers, and then its body",
        type=_positive_float,
        metavar="SECONDS",
    )
    flag(
        "--gil-switch-interval",
        0.0005,
        "seconds a thread may hold the GIL while another waits for it (Python's default is "
        "0.005): the SQLite and gRPC threads then delay the event loop, and every project's "
        "requests, by at most this",
        type=_positive_float,
        metavar="SECONDS",
    )
    flag(
        "--log-level",
        "info",
        "server log level",
        choices=["critical", "error", "warning", "info", "debug"],
    )
    flag("--access-log", False, "log every request", action="store_true")
    flag(
        "--http",
        "auto",
        "HTTP/1.1 parser: auto is httptools where installed, else h11",
        choices=["auto", "httptools", "h11"],
    )
    flag(
        "--loop",
        "auto",
        "event loop: auto is uvloop where installed, else asyncio",
        choices=["auto", "uvloop", "asyncio"],
    )
    flag(
        "--token-auth-file",
        None,
        'static tokens, kube-apiserver\'s format: lines token,user,uid,"group1,group2"; '
        "re-read on SIGHUP",
        metavar="FILE",
    )
    flag(
        "--insecure-allow-anonymous",
        False,
        "with no --token-auth-file, serve a non-loopback --host anyway (anyone who "
        "reaches the port may use every project)",
        action="store_true",
    )
    flag("--tls-cert-file", None, "serve HTTPS with this certificate (PEM)", metavar="FILE")
    flag("--tls-private-key-file", None, "the certificate's private key (PEM)", metavar="FILE")
    flag(
        "--client-ca-file",
        None,
        "require client certificates signed by this CA (PEM), on top of tokens",
        metavar="FILE",
    )
    flag(
        "--metrics-group",
        None,
        "comma-separated groups besides system:masters that may read /metrics",
        metavar="GROUPS",
    )
    flag(
        "--metrics-top-projects",
        DEFAULT_TOP_PROJECTS,
        "projects /metrics labels by name, the busiest N (0: totals only)",
        type=_non_negative_int,
        metavar="N",
    )
    flag(
        "--no-namespace-lifecycle",
        False,
        "let objects be created in namespaces that do not exist, and delete a namespace "
        "without its content (the namespace lifecycle is on by default)",
        action="store_true",
    )
    flag(
        "--max-objects-per-project",
        None,
        "objects a project may hold across all resources (a create past it is 403)",
        type=_positive_int,
        metavar="N",
    )
    flag(
        "--max-bytes-per-project",
        None,
        "encoded bytes a project's objects may take across all resources",
        type=_positive_int,
        metavar="N",
    )
    flag(
        "--max-inflight-per-project",
        None,
        "requests served at once per project (past it: 429 with Retry-After)",
        type=_positive_int,
        metavar="N",
    )
    flag(
        "--max-watches-per-project",
        None,
        "watch streams open at once per project (past it: 429 with Retry-After)",
        type=_positive_int,
        metavar="N",
    )
    flag("--audit-log", None, "one JSON line per request to FILE, or - for stdout", metavar="FILE")
    flag(
        "--audit-log-maxsize",
        100,
        "rotate the audit log past this many MiB",
        type=_positive_int,
        metavar="MIB",
    )
    flag(
        "--audit-log-maxbackup",
        10,
        "rotated audit logs to keep",
        type=_positive_int,
        metavar="N",
    )
    names = "\n".join(f"  {env_name(a):<36}{a.option_strings[-1]}" for a in actions)
    p_serve.epilog = _SERVE_EPILOG.format(variables=names)
    return p_serve, actions


def build_parser() -> tuple[argparse.ArgumentParser, list[argparse.Action]]:
    """The whole command line; also returns the `serve` flags environment variables set."""
    parser = _Parser(prog="tenantstore", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tenantstore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser(
        "demo",
        help="write and list in three scopes over one shared cache",
        description="Write one ConfigMap in each of three scopes (projects alpha and beta, "
        "and the root) over one shared cache, and list what each scope sees. The data goes "
        "to a temporary SQLite database, deleted afterwards, unless --backend is given.",
    )
    where = p_demo.add_mutually_exclusive_group()
    where.add_argument(
        "--backend", metavar="URL", help="sqlite://PATH or etcd://HOST:PORT (default: a temp file)"
    )
    where.add_argument("--db", metavar="PATH", help="the same as --backend sqlite://PATH")
    _, serve_actions = _serve_parser(sub)
    _kubeconfig_parser(sub)
    p_bench = sub.add_parser("bench", help="measurements")
    bench_sub = p_bench.add_subparsers(dest="bench", required=True)
    p_scale = bench_sub.add_parser(
        "scale",
        help="what each project costs the server, shared vs per-project",
        description="Start the server alone in a process, bootstrap N projects (a few "
        "objects, a LIST of every resource type, one open WATCH each) and report "
        "(after - before) / N for memory, threads, tasks and backend watches.",
    )
    p_scale.add_argument(
        "--projects", default="20", help="N, or a series such as 10,100,1000 (default 20)"
    )
    p_scale.add_argument(
        "--resources", type=int, default=20, help="custom resource types (default 20)"
    )
    p_scale.add_argument("--mode", choices=["shared", "per-project", "both"], default="both")
    p_scale.add_argument(
        "--backend",
        default="etcd",
        help="etcd (start one, default), sqlite (a temp file), or etcd://HOST:PORT",
    )
    p_scale.add_argument(
        "--concurrency",
        type=int,
        default=24,
        help="projects bootstrapped at once, each on its own connection (default 24)",
    )
    p_scale.add_argument(
        "--per-project-max",
        type=int,
        help="skip per-project runs above this N (that mode needs a backend watch per "
        "project and resource)",
    )
    p_scale.add_argument("--settle-interval", type=float, default=2.0, help="seconds")
    p_scale.add_argument("--out", help="directory for scale.json, scale.txt and PNG plots")
    p_scale.add_argument("--quiet", action="store_true", help="no progress bar")
    p_scale.add_argument(
        "--plot-from",
        metavar="JSON[,JSON...]",
        help="run nothing: redraw the table and plots (into --out) from saved scale.json files",
    )
    p_load = bench_sub.add_parser(
        "load",
        help="a bounded mixed load from several client processes",
        description="Mixed reads, writes and watches across many projects from several "
        "client processes against a server on loopback; stops by itself and reports "
        "throughput, latency percentiles and errors.",
    )
    from .bench.options import add_arguments as add_load_arguments

    add_load_arguments(p_load)
    from .bench.httpstack import add_parsers as add_http_benches

    add_http_benches(bench_sub)
    return parser, serve_actions


def main(argv: Sequence[str] | None = None) -> int:
    parser, serve_actions = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        from .bench import EXTRA, missing_extra

        missing = missing_extra()
        if missing:
            print(
                f"tenantstore bench needs the '{EXTRA}' extra: "
                f"pip install 'tenantstore[{EXTRA}]' (missing: {', '.join(missing)})",
                file=sys.stderr,
            )
            return 2
        if args.bench == "load":
            from .bench.load import main as load_main

            return load_main(args)
        if args.bench != "scale":
            from .bench.httpstack import main as http_main

            return http_main(args)
        from .bench.scale import main as scale_main

        return scale_main(args)
    try:
        if args.command == "demo":
            url = "sqlite://" + args.db if args.db is not None else args.backend
            return asyncio.run(demo(url))
        if args.command == "serve":
            sources = apply_environment(args, serve_actions, dict(os.environ))
            return serve(args, sources)
        if args.command == "kubeconfig":
            return kubeconfig(args)
    except ConfigError as exc:
        print(f"tenantstore {args.command}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
