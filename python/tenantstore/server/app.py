"""The ASGI application: configuration, lifespan (backend + factory), request dispatch.

One catch-all route: the path is parsed by `routing` (project prefix, then an ordinary
Kubernetes path) and dispatched here, inside `project_scope(project)` for project
paths, so every storage call of the request (and of its watch stream) is confined to the
project's keys. The lifespan opens the KV backend, builds the tenancy factory for the
registry's resource prefixes and starts it; on shutdown it ends open watch streams, stops
the factory and closes the backend.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..storage.errors import BadRequestError, NotFoundError, StorageError, to_status
from ..storage.watch import Watch
from ..tenancy import (
    ProjectUsage,
    SharedStorageFactory,
    StorageFactory,
    make_factory,
    project_scope,
)
from ..tenancy.factory import KV, open_kv
from . import discovery, health
from .audit import AuditEvent, AuditLog
from .auth import (
    MASTERS,
    Authenticator,
    Authorizer,
    ForbiddenError,
    TokenFile,
    User,
    authenticate,
    authorize,
    project_authorizer,
)
from .connection import DEFAULT_READ_TIMEOUT
from .fairness import FairShare, TooManyRequestsError
from .fields import selectable_fields
from .handlers import (
    ObjectHandlers,
    Quota,
    QuotaExceededError,
    ServerLimits,
    list_options,
    parse_bool,
    parse_int,
)
from .health import Check, HealthChecks
from .metrics import (
    DEFAULT_TOP_PROJECTS,
    REQUEST_LATENCY,
    REQUESTS,
    ProjectMetrics,
    bind_backend,
    bind_loop,
    bind_projects,
    unbind_projects,
)
from .namespaces import NamespaceLifecycle
from .openapi import OpenAPIDocuments
from .protobuf import Negotiated, negotiate
from .registry import ResourceRegistry
from .routing import Kind, Target, parse_path, split_project
from .schema_validation import SchemaValidators
from .status import MethodNotAllowedError, json_response, status_response
from .tables import requested_view
from .validation import DEFAULT_MAX_BODY_BYTES
from .warning_headers import apply_warnings
from .watchstream import DEFAULT_WATCH_TIMEOUT, WatchResponse

__all__ = ["DEFAULT_BACKEND", "ServerConfig", "ServerState", "create_app", "open_kv"]

log = logging.getLogger("tenantstore.server")

DEFAULT_BACKEND = "sqlite://" + os.path.join("tenantstore-data", "tenantstore.db")
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_METHOD_SET = frozenset(_METHODS)
# /healthz, /livez, /readyz (and /readyz/<check>), at the root or in a project.
_HEALTH = re.compile(r"^(?:/projects/[^/]*/control-plane)?/(?:healthz|livez|readyz)(?:/[^/]*)?/?$")


@dataclass
class ServerConfig:
    """Everything `create_app` needs; the CLI fills it from flags."""

    backend: str = DEFAULT_BACKEND
    mode: Literal["shared", "per-project"] = "shared"
    resources_file: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    watch_timeout: float = DEFAULT_WATCH_TIMEOUT
    # Seconds a client has to send a request's headers, and then its body.
    read_timeout: float = DEFAULT_READ_TIMEOUT
    # Passed to the factory (window_seconds, bookmark_interval, ...).
    factory_options: dict[str, Any] = field(default_factory=dict)
    # -- the door (see `auth.py`) --
    # Who is calling: None serves everyone as an anonymous master (loopback only, unless
    # the operator insists). `token_auth_file` builds a `TokenFile` authenticator.
    authenticator: Authenticator | None = None
    token_auth_file: str | None = None
    # May they: None is the built-in rule (`project:<p>` groups, `system:masters`).
    authorizer: Authorizer | None = None
    # Groups besides `system:masters` that may read /metrics.
    metrics_groups: tuple[str, ...] = ()
    # -- fair sharing and quotas (None: no limit) --
    # Quotas count from the shared caches: enforced in shared mode only (per-project
    # mode has no cross-resource view of a project without a backend round trip).
    max_inflight_per_project: int | None = None
    max_watches_per_project: int | None = None
    max_objects_per_project: int | None = None
    max_bytes_per_project: int | None = None
    # Projects /metrics labels by name (the busiest N); 0 exports totals only.
    metrics_top_projects: int = DEFAULT_TOP_PROJECTS
    # -- audit (`-` for stdout); rotation as kube-apiserver's flags --
    audit_log: str | None = None
    audit_log_maxsize: int = 100
    audit_log_maxbackup: int = 10
    # Namespace lifecycle (`namespaces.py`): creates need an existing, active namespace
    # and deleting a namespace deletes its content. False is `--no-namespace-lifecycle`:
    # objects in any namespace, a namespace deleted alone.
    namespace_lifecycle: bool = True

    def resolved_authenticator(self) -> Authenticator | None:
        """The authenticator in force: the embedder's, else the token file's, else none."""
        if self.authenticator is not None:
            return self.authenticator
        if self.token_auth_file is not None:
            return TokenFile(self.token_auth_file)
        return None


class ServerState:
    """What the lifespan builds and the handlers use; one per application."""

    def __init__(self, config: ServerConfig, registry: ResourceRegistry) -> None:
        self.config = config
        self.registry = registry
        self.limits = ServerLimits(config.max_body_bytes, config.watch_timeout, config.read_timeout)
        # Both derive from the registry's schemas; the documents are built on first request.
        self.openapi = OpenAPIDocuments(registry)
        self.validators = SchemaValidators(registry)
        self.kv: KV | None = None
        self.factory: StorageFactory | None = None
        self.lifecycle: NamespaceLifecycle | None = None
        self._resume: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        # Set when shutdown begins: every open watch stream ends.
        self.stopping = asyncio.Event()
        self.open_streams: set[Watch] = set()
        self.authenticator = config.resolved_authenticator()
        self.authorizer: Authorizer = config.authorizer or project_authorizer()
        self.fair_share = FairShare(config.max_inflight_per_project, config.max_watches_per_project)
        # Requests refused by fair sharing (429) or a quota (403): per project (an entry
        # only for projects refused at least once) and per reason.
        self.rejected_by_project: Counter[str] = Counter()
        self.rejected_by_reason: Counter[str] = Counter()
        self._project_metrics: ProjectMetrics | None = None
        self.audit: AuditLog | None = None
        if config.audit_log is not None:
            self.audit = AuditLog(
                config.audit_log,
                maxsize_mib=config.audit_log_maxsize,
                maxbackup=config.audit_log_maxbackup,
            )
        self.health = {
            Kind.LIVEZ: HealthChecks("livez", self.liveness_checks),
            Kind.HEALTHZ: HealthChecks("healthz", self.health_checks),
            Kind.READYZ: HealthChecks("readyz", self.readiness_checks),
        }

    def begin_shutdown(self) -> None:
        """End open watch streams; callable from any thread."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._end_streams()
        else:
            loop.call_soon_threadsafe(self._end_streams)

    def _end_streams(self) -> None:
        self.stopping.set()
        for watch in list(self.open_streams):
            watch.stop()

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        kv = await open_kv(self.config.backend)
        try:
            factory = make_factory(
                self.config.mode,
                kv,
                self.registry.prefixes,
                resource_labels={r.prefix: r.label for r in self.registry},
                **self.config.factory_options,
            )
            await factory.start()
        except BaseException:
            await kv.close()
            raise
        self.kv, self.factory = kv, factory
        if self.config.namespace_lifecycle:
            self.lifecycle = NamespaceLifecycle(self.registry, factory)
            self._resume = asyncio.create_task(self._resume_lifecycle(self.lifecycle))
        quotas = self.config.max_objects_per_project, self.config.max_bytes_per_project
        if self.usage is None and any(q is not None for q in quotas):
            log.warning("project quotas are not enforced in %s mode", self.config.mode)
        bind_loop(self.loop)
        bind_backend(kv)
        self._project_metrics = ProjectMetrics(
            inflight=self.fair_share.inflight,
            rejected=self.rejected_by_project,
            rejected_by_reason=self.rejected_by_reason,
            usage=self.usage,
            top=self.config.metrics_top_projects,
        )
        bind_projects(self._project_metrics)

    @staticmethod
    async def _resume_lifecycle(lifecycle: NamespaceLifecycle) -> None:
        try:
            await lifecycle.resume()
        except Exception:  # the next touch of each namespace resumes it instead
            log.exception("resuming terminating namespaces failed")

    @property
    def usage(self) -> ProjectUsage | None:
        """Objects and bytes per project, where the factory keeps them (shared mode)."""
        factory = self.factory
        return factory.usage if isinstance(factory, SharedStorageFactory) else None

    def quota(self, project: str | None, prefix: str) -> Quota | None:
        """The quota of a project's writes, or None when nothing is enforced: no limit
        is set, per-project mode, or the root scope (the operator's, never limited)."""
        config, usage = self.config, self.usage
        if project is None or usage is None:
            return None
        if config.max_objects_per_project is None and config.max_bytes_per_project is None:
            return None
        return Quota(
            usage,
            project,
            prefix,
            max_objects=config.max_objects_per_project,
            max_bytes=config.max_bytes_per_project,
        )

    def record_rejection(self, project: str | None, err: StorageError) -> None:
        if isinstance(err, TooManyRequestsError):
            reason = "too_many_requests"
        elif isinstance(err, QuotaExceededError):
            reason = "quota"
        else:
            return
        self.rejected_by_reason[reason] += 1
        if project is not None:
            self.rejected_by_project[project] += 1

    def reload_credentials(self) -> bool:
        """Re-read the token file (SIGHUP); False when there is none or it did not parse."""
        tokens = self.authenticator
        return isinstance(tokens, TokenFile) and tokens.reload()

    async def stop(self) -> None:
        self._end_streams()
        if self.audit is not None:
            self.audit.close()
        bind_loop(None)
        bind_backend(None)
        unbind_projects(self._project_metrics)
        if self._resume is not None:
            self._resume.cancel()
            await asyncio.gather(self._resume, return_exceptions=True)
            self._resume = None
        if self.lifecycle is not None:
            await self.lifecycle.stop()
            self.lifecycle = None
        if self.factory is not None:
            await self.factory.stop()
            self.factory = None
        if self.kv is not None:
            await self.kv.close()
            self.kv = None

    # -- health -----------------------------------------------------------------------
    def _backend_check(self) -> Check:
        async def probe() -> str | None:
            kv = self.kv
            if kv is None:
                return "not connected"
            return await health.within(health.BACKEND_TIMEOUT, kv.ready, "backend unreachable")

        return Check("backend", probe)

    def _cache_checks(self) -> list[Check]:
        checks: list[Check] = []
        for res in self.registry:

            async def probe(prefix: str = res.prefix) -> str | None:
                factory = self.factory
                if factory is None:
                    return "not started"
                return factory.cache_health(prefix)

            checks.append(Check(f"cache-{res.label}", probe))
        return checks

    def _shutdown_check(self) -> Check:
        async def probe() -> str | None:
            return "shutting down" if self.stopping.is_set() else None

        return Check("shutdown", probe)

    def liveness_checks(self) -> list[Check]:
        return [Check("ping", health.ping)]

    def health_checks(self) -> list[Check]:
        return [Check("ping", health.ping), self._backend_check()]

    def readiness_checks(self) -> list[Check]:
        return [
            Check("ping", health.ping),
            self._backend_check(),
            *self._cache_checks(),
            self._shutdown_check(),
        ]


_K8S_VERBS = {"POST": "create", "PUT": "update"}


def k8s_verb(verb: str) -> str:
    """Kubernetes' verb for an HTTP verb as `_verb` names it (`POST` is `create`)."""
    return _K8S_VERBS.get(verb, verb.lower())


def _verb(method: str, target: Target, watch: bool) -> str:
    if method == "GET" or method == "HEAD":
        if target.kind == Kind.COLLECTION:
            return "WATCH" if watch else "LIST"
        return "GET"
    if method == "DELETE" and target.kind == Kind.COLLECTION:
        return "DELETECOLLECTION"
    return method


class Api:
    """The catch-all endpoint."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        state = self.state
        verb, resource = request.method, ""
        user: User | None = None
        project: str | None = None
        target: Target | None = None
        release: Callable[[], None] | None = None
        negotiated: Negotiated | None = None
        try:
            raw = request.scope.get("raw_path") or request.url.path.encode()
            path = raw.split(b"?", 1)[0].decode("latin-1")
            # Health endpoints stay open, as in Kubernetes; everything else needs a user,
            # checked before the path is even parsed: an unauthenticated caller learns
            # nothing, not even whether its path would have been valid.
            if _HEALTH.match(path) is None:
                user = await authenticate(state.authenticator, request)
                # Handlers that need the caller's groups (an unsafe delete) read it here.
                request.state.user = user
            project, rest = split_project(path)
            target = parse_path(rest, state.registry)
            if target.resource is not None:
                resource = target.resource.label
            watch = target.kind == Kind.COLLECTION and parse_bool(request, "watch")
            verb = _verb(request.method, target, watch)
            if user is not None:
                await self._authorize(user, project, k8s_verb(verb), target)
                release = (
                    state.fair_share.watch(project) if watch else state.fair_share.request(project)
                )
            if target.resource is not None:
                negotiated = negotiate(request, target.resource)  # a 406 before any work
            # Root requests enter the root scope explicitly too: should a project scope ever
            # leak into this context, entering fails (a 500) instead of serving root paths
            # from that project's data.
            async with project_scope(project):
                response = await self._dispatch(request, target, project, watch)
            if isinstance(response, WatchResponse) and release is not None:
                response.on_close, release = release, None  # held while the stream runs
        except StorageError as err:
            state.record_rejection(project, err)
            response = status_response(err)
        except ClientDisconnect:
            # The client went away mid-body: its error, not the server's (no traceback).
            response = status_response(BadRequestError("the client disconnected mid-request"))
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            response = json_response(to_status(RuntimeError()), 500)
        finally:
            if release is not None:
                release()
        if negotiated is not None:
            response = negotiated.encode(response)
        apply_warnings(request, response)
        elapsed = time.perf_counter() - started
        REQUESTS.labels(verb, resource, str(response.status_code)).inc()
        REQUEST_LATENCY.labels(verb, resource).observe(elapsed)
        if state.audit is not None and (user is not None or response.status_code == 401):
            state.audit.record(
                AuditEvent(
                    user=user.name if user is not None else "",
                    groups=user.groups if user is not None else (),
                    project=project,
                    verb=k8s_verb(verb),
                    resource=resource,
                    namespace=target.namespace if target is not None else None,
                    name=target.name if target is not None and target.resource else "",
                    path=request.url.path,
                    code=response.status_code,
                    latency=elapsed,
                )
            )
        return response

    async def _authorize(self, user: User, project: str | None, verb: str, target: Target) -> None:
        res = target.resource
        if res is not None:
            # A subresource is authorized as upstream names it: `widgets.example.com/status`.
            label = f"{res.label}/{target.subresource}" if target.subresource else res.label
            await authorize(
                self.state.authorizer,
                user,
                project,
                verb,
                label,
                target.namespace,
                target.name,
            )
            return
        if target.kind == Kind.METRICS:
            allowed = {MASTERS, *self.state.config.metrics_groups}
            if not allowed.intersection(user.groups):
                raise ForbiddenError(f'User "{user.name}" cannot get path "/metrics"')
        # Discovery, /version and the rest of the non-resource paths: any user.

    async def _dispatch(
        self, request: Request, target: Target, project: str | None, watch: bool
    ) -> Response:
        method = request.method
        if target.kind in (Kind.COLLECTION, Kind.OBJECT):
            return await self._resource(request, target, project, watch)
        if method not in ("GET", "HEAD"):
            raise MethodNotAllowedError(f"{method} is not supported on {request.url.path}")
        return await self._server_endpoint(request, target, project)

    async def _server_endpoint(
        self, request: Request, target: Target, project: str | None
    ) -> Response:
        registry = self.state.registry
        kind = target.kind
        if kind in (Kind.API_VERSIONS, Kind.GROUP_LIST):
            return self._discovery_root(request, kind == Kind.API_VERSIONS)
        if kind == Kind.CORE_RESOURCES:
            doc = discovery.api_resource_list(registry, target.group, target.version)
            return json_response(doc)
        if kind == Kind.GROUP:
            return json_response(discovery.api_group(registry, target.group))
        if kind == Kind.VERSION:
            return json_response(discovery.version_info())
        if kind in (Kind.HEALTHZ, Kind.LIVEZ, Kind.READYZ):
            return await self.state.health[kind].respond(request, target.name or None)
        if kind == Kind.OPENAPI:
            return self.state.openapi.respond(request, target.name, project)
        if kind == Kind.METRICS and project is None:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
        if kind == Kind.ROOT:
            paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]
            for group in registry.groups:
                paths.append(f"/apis/{group}")
                paths += [f"/apis/{group}/{v}" for v in registry.group_versions(group)]
            if project is None:
                paths.append("/metrics")
            return json_response({"paths": sorted(paths)})
        # /metrics inside a project: not served.
        path = request.url.path
        raise NotFoundError(f"the server could not find the requested resource ({path})")

    def _discovery_root(self, request: Request, core: bool) -> Response:
        """`/api` or `/apis`: aggregated discovery when the client asks for it, else the
        legacy document; the answer depends on `Accept`, which caches must know."""
        registry = self.state.registry
        version = discovery.aggregated_version(request.headers.get("accept", ""))
        if version is not None:
            doc = discovery.aggregated_discovery(registry, core=core, version=version)
            response = json_response(doc)
            response.headers["content-type"] = discovery.aggregated_content_type(version)
        elif core:
            response = json_response(discovery.api_versions(request.headers.get("host", "")))
        else:
            response = json_response(discovery.api_group_list(registry))
        response.headers["vary"] = "Accept"
        return response

    async def _resource(
        self, request: Request, target: Target, project: str | None, watch: bool
    ) -> Response:
        assert target.resource is not None and self.state.factory is not None
        prefix = target.resource.prefix
        storage = self.state.factory.storage(prefix)
        quota = self.state.quota(project, prefix) if request.method != "GET" else None
        handlers = ObjectHandlers(
            storage,
            target,
            self.state.limits,
            quota,
            self.state.lifecycle,
            validators=self.state.validators,
        )
        method = request.method
        if target.subresource and method not in ("GET", "HEAD", "PUT", "PATCH"):
            raise MethodNotAllowedError(
                f"the server does not allow this method on the requested resource ({method})"
            )
        if target.kind == Kind.COLLECTION:
            if method in ("GET", "HEAD"):
                if watch:
                    return await self._watch(request, target, project)
                return await handlers.list(request)
            if method == "POST":
                return await handlers.create(request)
            if method == "DELETE":
                return await handlers.delete_collection(request)
        else:
            if method in ("GET", "HEAD"):
                return await handlers.get(request)
            if method == "PUT":
                return await handlers.replace(request)
            if method == "PATCH":
                return await handlers.patch(request)
            if method == "DELETE":
                return await handlers.delete(request)
        raise MethodNotAllowedError(
            f"the server does not allow this method on the requested resource ({method})"
        )

    async def _watch(self, request: Request, target: Target, project: str | None) -> Response:
        assert target.resource is not None and self.state.factory is not None
        res = target.resource
        view = requested_view(request)
        opts = list_options(request, watch=True, fields=selectable_fields(res))
        timeout = parse_int(request, "timeoutSeconds")
        storage = self.state.factory.storage(res.prefix)
        w = await storage.watch(res.collection_key(target.namespace), opts)
        return WatchResponse(
            w,
            resource=res,
            project=project,
            timeout=float(timeout) if timeout else self.state.limits.watch_timeout,
            stopping=self.state.stopping,
            open_streams=self.state.open_streams,
            encode=view.watch_encoder(res) if view is not None else None,
        )


def create_app(
    config: ServerConfig | None = None, registry: ResourceRegistry | None = None
) -> Starlette:
    """The application; `app.state.tenantstore` is its `ServerState`."""
    config = config or ServerConfig()
    registry = registry or ResourceRegistry.with_builtins(config.resources_file)
    state = ServerState(config, registry)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    api = Api(state)
    route = Route("/{path:path}", api.handle, methods=_METHODS)
    app = _App(api, routes=[route], lifespan=lifespan)
    app.state.tenantstore = state
    return app


class _App(Starlette):
    """Starlette, except that requests skip its middleware and router.

    Every request is answered by `Api.handle`, which renders every error itself, so the
    dozen middleware and routing frames between the server and it add nothing but cost:
    for a watch, whose response streams for minutes to hours, about 6 KiB per open watch
    (the scale harness's heap per project); for every other request, about a tenth of
    the server's CPU under a write load (`benches/bench_writes.py --profile`). Only a
    method `Api` does not serve takes Starlette's path, for its 405.
    """

    def __init__(self, api: Api, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _missing_host(scope):
            response = status_response(BadRequestError("missing required Host header"))
            await response(scope, receive, send)
            return
        if scope["type"] == "http" and scope["method"] in _METHOD_SET:
            scope["app"] = self
            response = await self._api.handle(Request(scope, receive))
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _missing_host(scope: Scope) -> bool:
    """An HTTP/1.1 request without `Host`, which RFC 9112 says to answer with 400 (Go's
    server, hence kube-apiserver, does). h11 refuses it itself; httptools passes it on,
    so the check lives here, the same under every parser."""
    if scope.get("http_version") != "1.1":
        return False
    return not any(name == b"host" for name, _ in scope.get("headers", ()))
