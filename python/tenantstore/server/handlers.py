"""The REST verbs over `Storage`: one handler per Kubernetes verb, thin by design.

Every object-changing path copies before it modifies: objects returned by storage may be
the watch cache's shared copies (the update function of `guaranteed_update` receives a
private deep copy, so it may edit that one). The server owns uid, creationTimestamp,
generation and resourceVersion: client values of the first three are ignored on create and
preserved from the stored object on update; resourceVersion in an update body is a
precondition (409 Conflict when stale), never stored.

Quotas (`Quota`) are checked just before storage is called, against the per-project
usage the shared caches keep (`tenancy.ProjectUsage`): no backend round trip, and a
refused write writes nothing. As Kubernetes' quota admission between two updates of its
quota status, the check is not atomic with the write: creates of one project running
concurrently may each pass against the same count and together overshoot the limit, by
at most the project's concurrent creates (`--max-inflight-per-project` bounds them).
Sequential writes never overshoot: a write under a quota answers only once the cache has
counted it (`Quota.settle`), so the client's next request is checked against it.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..storage.encoded import EncodedList, encoded_reads
from ..storage.errors import (
    AlreadyExistsError,
    BadRequestError,
    ConflictError,
    InvalidError,
    NotFoundError,
    StorageError,
)
from ..storage.interface import Object, Storage
from ..storage.options import (
    ListOptions,
    ObjectList,
    Preconditions,
    ResourceVersionMatch,
    parse_decimal,
    validate_watch_request,
)
from ..storage.selectors import DEFAULT_FIELDS, FieldPaths, Predicate
from ..tenancy import ProjectUsage, object_size
from . import status_subresource
from .auth import MASTERS, ForbiddenError, User
from .dryrun import DryRunStorage, parse_dry_run, parse_dry_run_values
from .field_schema import schema_for
from .fields import selectable_fields
from .managed_fields import ApplyConflictError, field_manager, parse_force, record_update
from .managed_fields import apply as apply_config
from .namespaces import IMMORTAL_NAMESPACES, NamespaceLifecycle, namespace_for_create
from .patch import APPLY, JSON_PATCH, MERGE, STRATEGIC, apply_patch
from .protobuf import read_delete_options, read_object
from .registry import Resource
from .routing import Target
from .schema_validation import FieldValidation, SchemaValidators, field_validation
from .secrets import normalize_secret
from .status import JSON, PartsResponse, UnsupportedMediaTypeError, json_response, list_head
from .tables import requested_view
from .validation import (
    check_identity,
    generate_name,
    invalid,
    read_body,
    validate_name,
    validate_namespace_name,
)
from .watchstream import typed
from .yaml_body import decode_yaml

__all__ = [
    "ObjectHandlers",
    "Quota",
    "QuotaExceededError",
    "ServerLimits",
    "list_options",
    "parse_bool",
    "parse_int",
]

# Server-owned metadata a client cannot set on create.
_SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)
_GENERATE_ATTEMPTS = 8


class ServerLimits:
    """Request limits (a plain holder so handlers need not import the app config)."""

    __slots__ = ("max_body_bytes", "read_timeout", "watch_timeout")

    def __init__(
        self, max_body_bytes: int, watch_timeout: float, read_timeout: float = 30.0
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.watch_timeout = watch_timeout
        self.read_timeout = read_timeout


class QuotaExceededError(ForbiddenError):
    """A write refused by a project quota (a 403, as Kubernetes' quota admission)."""


class Quota:
    """One project's quota limits, checked against its usage in the shared caches."""

    __slots__ = ("max_bytes", "max_objects", "prefix", "project", "usage")

    def __init__(
        self,
        usage: ProjectUsage,
        project: str,
        prefix: str,
        *,
        max_objects: int | None,
        max_bytes: int | None,
    ) -> None:
        self.usage = usage
        self.project = project
        self.prefix = prefix
        self.max_objects = max_objects
        self.max_bytes = max_bytes

    def _refuse(self, res: Resource, name: str, what: str, requested: int, used: int) -> None:
        limited = self.max_objects if what == "objects" else self.max_bytes
        raise QuotaExceededError(
            f'{res.label} "{name}" is forbidden: exceeded quota: {what}, '
            f"requested: {requested}, used: {used}, limited: {limited}",
            details={"name": name, "group": res.group, "kind": res.plural},
        )

    def check_create(self, res: Resource, name: str, obj: Object) -> None:
        used = self.usage.of(self.project)
        if self.max_objects is not None and used.objects + 1 > self.max_objects:
            self._refuse(res, name, "objects", 1, used.objects)
        if self.max_bytes is not None:
            size = object_size(obj)
            if used.bytes + size > self.max_bytes:
                self._refuse(res, name, "bytes", size, used.bytes)

    def check_update(self, res: Resource, name: str, current: Object, new: Object) -> None:
        """Only growth is checked: an update that shrinks an object (or keeps its size)
        always passes, even over the limit, so a project over quota can still shed."""
        if self.max_bytes is None:
            return
        growth = object_size(new) - object_size(current)
        used = self.usage.of(self.project).bytes
        if growth > 0 and used + growth > self.max_bytes:
            self._refuse(res, name, "bytes", growth, used)

    async def settle(self, obj: Object | None) -> None:
        """Answer only once the cache has counted the write that produced `obj`."""
        meta = obj.get("metadata") if obj is not None else None
        rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
        if isinstance(rv, str) and rv.isdigit():
            await self.usage.settle(self.prefix, int(rv))


# -- query parameters ------------------------------------------------------------------


# DeleteOptions' query parameter for deleting an object that cannot be read.
UNSAFE_DELETE = "ignoreStoreReadErrorWithClusterBreakingPotential"


def parse_bool(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "")
    if value in ("", "0", "false", "False"):
        return False
    if value in ("1", "true", "True"):
        return True
    raise BadRequestError(f'invalid value for "{name}": "{value}" (want true or false)')


def parse_int(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    parsed = parse_decimal(value, 10**18 - 1)
    if parsed is None:
        raise BadRequestError(f'invalid value for "{name}": "{value}" (want an integer >= 0)')
    return parsed


def list_options(
    request: Request, *, watch: bool, fields: Mapping[str, FieldPaths] = DEFAULT_FIELDS
) -> ListOptions:
    q = request.query_params
    rv = q.get("resourceVersion", "")
    if rv and parse_decimal(rv) is None:
        raise BadRequestError(f'invalid resourceVersion "{rv}"')
    match_text = q.get("resourceVersionMatch", "")
    try:
        match = ResourceVersionMatch(match_text)
    except ValueError:
        raise BadRequestError(
            f'invalid resourceVersionMatch "{match_text}" (want NotOlderThan or Exact)'
        ) from None
    # Tri-state, as upstream's `*bool`: absent is the legacy watch, "false" is not.
    send_initial_events = (
        parse_bool(request, "sendInitialEvents") if "sendInitialEvents" in q else None
    )
    validate_watch_request(
        watch=watch,
        send_initial_events=send_initial_events,
        resource_version_match=match,
        continue_=q.get("continue", ""),
    )
    if not watch and match != ResourceVersionMatch.UNSET and rv == "":
        raise BadRequestError("resourceVersionMatch is forbidden unless resourceVersion is set")
    predicate = Predicate.parse(q.get("labelSelector", ""), q.get("fieldSelector", ""), fields)
    return ListOptions(
        send_initial_events=send_initial_events,
        resource_version=rv,
        resource_version_match=match,
        limit=0 if watch else (parse_int(request, "limit") or 0),
        continue_="" if watch else q.get("continue", ""),
        recursive=True,
        predicate=predicate,
        allow_watch_bookmarks=watch and parse_bool(request, "allowWatchBookmarks"),
    )


_stamp: tuple[int, str] = (-1, "")


def _now() -> str:
    """The RFC 3339 timestamp of the current second, formatted once per second: under a
    write load `strftime` was a visible share of a create."""
    global _stamp
    second = int(time.time())
    if _stamp[0] != second:
        when = datetime.datetime.fromtimestamp(second, datetime.UTC)
        _stamp = (second, when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _stamp[1]


def _object_error(err: StorageError, res: Resource, name: str) -> StorageError:
    """Storage errors of a single-object call, with Kubernetes' messages and details."""
    if isinstance(err, ApplyConflictError):
        return err
    details = {"name": name, "group": res.group, "kind": res.plural}
    if isinstance(err, NotFoundError):
        return NotFoundError(f'{res.label} "{name}" not found', details=details)
    if isinstance(err, AlreadyExistsError):
        return AlreadyExistsError(f'{res.label} "{name}" already exists', details=details)
    if isinstance(err, ConflictError):
        return ConflictError(
            f'Operation cannot be fulfilled on {res.label} "{name}": {err.message}',
            details=details,
        )
    return err


class ObjectHandlers:
    """get / list / create / replace / patch / delete / deletecollection of one request."""

    def __init__(
        self,
        storage: Storage,
        target: Target,
        limits: ServerLimits,
        quota: Quota | None = None,
        lifecycle: NamespaceLifecycle | None = None,
        validators: SchemaValidators | None = None,
    ) -> None:
        assert target.resource is not None
        self.storage = storage
        self.res: Resource = target.resource
        self.namespace = target.namespace
        self.name = target.name
        self.subresource = target.subresource
        self.limits = limits
        self.quota = quota
        self.validators = validators
        # Namespace lifecycle (None: `--no-namespace-lifecycle`, today's behaviour).
        self.lifecycle = lifecycle

    def _writer(self, dry_run: bool) -> Storage:
        """The storage a write goes to: a `DryRunStorage` that only checks, for a dry run."""
        return DryRunStorage(self.storage) if dry_run else self.storage

    @property
    def _is_namespaces(self) -> bool:
        return self.res.plural == "namespaces" and not self.res.group

    def _key(self, name: str | None = None) -> str:
        return self.res.key(self.namespace, name if name is not None else self.name)

    def _check_namespace(self) -> None:
        if self.namespace is not None:
            validate_namespace_name(self.res, self.namespace)

    # -- reads -------------------------------------------------------------------------
    async def get(self, request: Request) -> Response:
        rv = request.query_params.get("resourceVersion", "")
        if rv and parse_decimal(rv) is None:
            raise BadRequestError(f'invalid resourceVersion "{rv}"')
        storage = self.storage
        view = requested_view(request)
        try:
            if view is None and (encoded := encoded_reads(storage)) is not None:
                # The watch cache's bytes, typed as `typed` would: no dict made or encoded.
                got = await encoded.get_encoded(
                    self._key(),
                    resource_version=rv,
                    kind=self.res.kind,
                    api_version=self.res.api_version,
                )
                if isinstance(got, bytes):
                    return Response(got, media_type=JSON)
                obj: Object | None = got
            else:
                obj = await storage.get(self._key(), resource_version=rv)
        except StorageError as err:
            raise _object_error(err, self.res, self.name) from None
        assert obj is not None
        if view is not None:
            return json_response(view.render_object(typed(obj, self.res), self.res))
        return json_response(typed(obj, self.res))

    async def list(self, request: Request) -> Response:
        opts = list_options(request, watch=False, fields=selectable_fields(self.res))
        key = self.res.collection_key(self.namespace)
        storage = self.storage
        page: ObjectList | EncodedList
        view = requested_view(request)
        if view is None and (encoded := encoded_reads(storage)) is not None:
            page = await encoded.get_list_encoded(
                key, opts, kind=self.res.kind, api_version=self.res.api_version
            )
        else:
            page = await storage.get_list(key, opts)
        meta: dict[str, Any] = {"resourceVersion": str(page.resource_version)}
        if page.continue_:
            meta["continue"] = page.continue_
        if page.remaining_item_count is not None:
            meta["remainingItemCount"] = page.remaining_item_count
        if view is not None and isinstance(page, ObjectList):
            items = [typed(o, self.res) for o in page.items]
            return json_response(view.render_list(items, self.res, meta))
        body = {
            "kind": self.res.list_kind,
            "apiVersion": self.res.api_version,
            "metadata": meta,
            "items": []
            if isinstance(page, EncodedList)
            else [typed(o, self.res) for o in page.items],
        }
        if isinstance(page, EncodedList):
            head, tail = list_head(body)
            return PartsResponse((head, page.items, tail))
        return json_response(body)

    # -- writes ------------------------------------------------------------------------
    async def create(self, request: Request) -> Response:
        dry_run = parse_dry_run(request, "CreateOptions")
        storage = self._writer(dry_run)
        if self.res.namespaced and self.namespace is None:
            raise BadRequestError(
                f"{self.res.label} is namespaced: create it under /namespaces/<namespace>/"
            )
        self._check_namespace()
        manager = self._manager(request, "CreateOptions")
        fields = field_validation(self.validators, self.res, request, "CreateOptions")
        body = await self._read_object(request, fields.decode)
        meta = check_identity(self.res, body)
        body = normalize_secret(self.res, fields.check(body, str(meta.get("name") or "")))
        meta = dict(body.get("metadata") or {})
        generate = meta.get("generateName") if not meta.get("name") else None
        if generate is not None and not isinstance(generate, str):
            raise invalid(self.res, "", "metadata.generateName", generate, "must be a string")
        body_ns = meta.get("namespace")
        if self.res.namespaced:
            if body_ns not in (None, "", self.namespace):
                raise invalid(
                    self.res,
                    str(meta.get("name", "")),
                    "metadata.namespace",
                    body_ns,
                    "does not match the namespace of the request",
                )
            meta["namespace"] = self.namespace
        else:
            meta.pop("namespace", None)
        for field in _SERVER_FIELDS:
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        obj: Object = {**body, "kind": self.res.kind, "apiVersion": self.res.api_version}
        self._prepare_for_create(obj)
        if self.lifecycle is not None and self.namespace is not None:
            hint = meta.get("name") or generate or ""
            await self.lifecycle.admit_create(self.res, self.namespace, hint, dry_run=dry_run)
        attempts = _GENERATE_ATTEMPTS if generate else 1
        for attempt in range(attempts):
            name = generate_name(generate) if generate else meta.get("name")
            name = validate_name(self.res, name)
            obj["metadata"] = {**meta, "name": name}
            record_update(self.res, None, obj, manager, meta["creationTimestamp"])
            if self.quota is not None:
                self.quota.check_create(self.res, name, obj)
            try:
                created = await storage.create(self._key(name), obj)
            except AlreadyExistsError as err:
                if attempt + 1 < attempts:
                    continue
                raise _object_error(err, self.res, name) from None
            if self.quota is not None and not dry_run:
                await self.quota.settle(created)
            if self.lifecycle is not None and self._is_namespaces and not dry_run:
                await self.lifecycle.settle(created)
            return json_response(typed(created, self.res), 201)
        raise AssertionError("unreachable")

    def _prepare_for_create(self, obj: Object) -> None:
        """What every create sets on a new object (in place), whether it came as a POST or
        as an apply of an absent object: no client-set status where a status subresource
        owns it, and a new namespace `Active` (with the lifecycle's finalizer)."""
        status_subresource.for_create(self.res, obj)
        if self._is_namespaces:
            if self.lifecycle is not None:
                namespace_for_create(obj)
            else:
                obj["status"] = {"phase": "Active"}

    def _check_url_identity(self, meta: dict[str, Any]) -> None:
        name = meta.get("name")
        if name in (None, ""):
            validate_name(self.res, name)
        if name != self.name:
            raise invalid(
                self.res, self.name, "metadata.name", name, "does not match the name in the URL"
            )
        ns = meta.get("namespace")
        if self.res.namespaced and ns not in (None, "", self.namespace):
            raise invalid(self.res, self.name, "metadata.namespace", ns, "does not match the URL")
        if not self.res.namespaced and ns not in (None, ""):
            raise invalid(self.res, self.name, "metadata.namespace", ns, "not allowed on this type")

    def _finish_update(self, current: Object, new: Object) -> Object:
        """`new` (a private copy) with server-owned fields taken from `current`, and the
        half of the object this path may not change (`.status`, or all but it) too."""
        if self.subresource == status_subresource.STATUS:
            new = status_subresource.for_status_update(current, new)
        else:
            status_subresource.for_object_update(self.res, current, new)
        cur_meta = current.get("metadata") or {}
        meta = dict(new.get("metadata") or {})
        for field in ("uid", "creationTimestamp", "deletionTimestamp"):
            if field in cur_meta:
                meta[field] = cur_meta[field]
            else:
                meta.pop(field, None)
        meta.pop("resourceVersion", None)
        meta.pop("selfLink", None)
        meta["name"] = self.name
        if self.res.namespaced:
            meta["namespace"] = self.namespace
        else:
            meta.pop("namespace", None)
        generation = cur_meta.get("generation", 1)
        if not isinstance(generation, int):
            generation = 1
        if status_subresource.generation_moves(self.res, current, new):
            generation += 1
        meta["generation"] = generation
        new["metadata"] = meta
        new["kind"] = self.res.kind
        new["apiVersion"] = self.res.api_version
        return new

    async def replace(self, request: Request) -> Response:
        dry_run = parse_dry_run(request, "UpdateOptions")
        storage = self._writer(dry_run)
        self._check_namespace()
        manager = self._manager(request, "UpdateOptions")
        fields = field_validation(self.validators, self.res, request, "UpdateOptions")
        body = await self._read_object(request, fields.decode)
        check_identity(self.res, body)
        body = normalize_secret(self.res, fields.check(body, self.name))
        meta = body.get("metadata") or {}
        self._check_url_identity(meta)
        rv = meta.get("resourceVersion") or None
        if rv is not None and not isinstance(rv, str):
            raise invalid(self.res, self.name, "metadata.resourceVersion", rv, "must be a string")

        def update(current: Object) -> Object:
            new = self._finish_update(current, {**body, "metadata": dict(meta)})
            record_update(self.res, current, new, manager, _now(), self.subresource)
            if self.quota is not None:
                self.quota.check_update(self.res, self.name, current, new)
            return new

        try:
            updated = await storage.guaranteed_update(
                self._key(),
                update,
                preconditions=Preconditions(resource_version=rv) if rv else None,
            )
        except StorageError as err:
            raise _object_error(err, self.res, self.name) from None
        if self.quota is not None and not dry_run:
            await self.quota.settle(updated)
        if self.lifecycle is not None and self._is_namespaces and not dry_run:
            await self.lifecycle.after_write(updated)
        return json_response(typed(updated, self.res))

    async def patch(self, request: Request) -> Response:
        dry_run = parse_dry_run(request, "PatchOptions")
        storage = self._writer(dry_run)
        self._check_namespace()
        content_type = request.headers.get("content-type", "")
        media = content_type.split(";", 1)[0].strip().lower()
        # Custom resources have no patch strategies: no strategic merge patch, as upstream.
        accepted = (
            (JSON_PATCH, MERGE, APPLY) if self.res.group else (JSON_PATCH, MERGE, STRATEGIC, APPLY)
        )
        if media not in accepted:
            raise UnsupportedMediaTypeError(
                f'the body of the request was in an unknown format "{media}" - accepted media '
                f"types include: {', '.join(accepted)}"
            )
        fields = field_validation(self.validators, self.res, request, "PatchOptions")
        if media == APPLY:
            return await self._apply(request, storage, dry_run, fields)
        manager = self._manager(request, "PatchOptions")
        parse_force(request.query_params, apply=False)
        patch = fields.decode(await self._read(request))
        schema = schema_for(self.res)

        def update(current: Object) -> Object:
            patched = normalize_secret(self.res, apply_patch(media, current, patch, schema))
            if not isinstance(patched, dict):
                raise InvalidError(f'{self.res.kind} "{self.name}": a patch must yield an object')
            check_identity(self.res, patched)
            patched = fields.check(patched, self.name, patched=True)
            meta = patched.get("metadata") or {}
            self._check_url_identity({**meta, "name": meta.get("name", self.name)})
            cur_rv = (current.get("metadata") or {}).get("resourceVersion")
            want_rv = meta.get("resourceVersion")
            if want_rv not in (None, "", cur_rv):
                raise ConflictError(
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again"
                )
            new = self._finish_update(current, patched)
            record_update(self.res, current, new, manager, _now(), self.subresource)
            if self.quota is not None:
                self.quota.check_update(self.res, self.name, current, new)
            return new

        try:
            updated = await storage.guaranteed_update(self._key(), update)
        except StorageError as err:
            raise _object_error(err, self.res, self.name) from None
        if self.quota is not None and not dry_run:
            await self.quota.settle(updated)
        if self.lifecycle is not None and self._is_namespaces and not dry_run:
            await self.lifecycle.after_write(updated)
        return json_response(typed(updated, self.res))

    def _manager(self, request: Request, options_kind: str) -> str:
        return field_manager(
            request.query_params, request.headers.get("user-agent", ""), options_kind
        )

    async def _apply(
        self, request: Request, storage: Storage, dry_run: bool, fields: FieldValidation
    ) -> Response:
        """Server-side apply (`managed_fields.apply`); creates the object when absent
        (201), as upstream's apply does, through the same checks as a create (namespace
        lifecycle, quota) and an update (status subresource, schema)."""
        query = request.query_params
        manager = field_manager(query, "", "PatchOptions", apply=True)
        force = parse_force(query, apply=True)
        raw = await self._read(request)
        config = decode_yaml(raw)
        if not isinstance(config, dict):
            raise BadRequestError("an apply body must be an object (a YAML mapping)")
        for field in ("apiVersion", "kind"):
            if not config.get(field):
                raise BadRequestError(f"{field} must be set in an apply body")
        meta = check_identity(self.res, config)
        if meta.get("managedFields") is not None:
            raise BadRequestError("metadata.managedFields must be nil in an apply body")
        self._check_url_identity({**meta, "name": meta.get("name") or self.name})
        want_rv = meta.get("resourceVersion") or None
        existing: list[bool] = []

        def update(current: Object) -> Object:
            created = not current
            existing.append(not created)
            if want_rv is not None and want_rv != (current.get("metadata") or {}).get(
                "resourceVersion"
            ):
                raise ConflictError(
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again"
                )
            now = _now()
            new = apply_config(
                self.res,
                current,
                config,
                manager,
                force=force,
                now=now,
                subresource=self.subresource,
            )
            new = normalize_secret(self.res, new)
            if not created:
                new = fields.check(new, self.name, patched=True)
                new = self._finish_update(current, new)
                if self.quota is not None:
                    self.quota.check_update(self.res, self.name, current, new)
                return new
            if self.subresource:
                raise NotFoundError(f'{self.res.label} "{self.name}" not found')
            new = fields.check(new, self.name)
            new_meta = new["metadata"]
            new_meta.update(uid=str(uuid.uuid4()), creationTimestamp=now, generation=1)
            new_meta["name"] = self.name
            if self.res.namespaced:
                new_meta["namespace"] = self.namespace
            new.update(kind=self.res.kind, apiVersion=self.res.api_version)
            self._prepare_for_create(new)
            if self.quota is not None:
                self.quota.check_create(self.res, self.name, new)
            return new

        if self.lifecycle is not None and self.namespace is not None:
            try:
                await storage.get(self._key())
            except NotFoundError:
                # An apply that will create: the namespace must exist and be active.
                await self.lifecycle.admit_create(
                    self.res, self.namespace, self.name, dry_run=dry_run
                )
        try:
            updated = await storage.guaranteed_update(self._key(), update, ignore_not_found=True)
        except StorageError as err:
            raise _object_error(err, self.res, self.name) from None
        created = bool(existing) and not existing[-1]
        if self.quota is not None and not dry_run:
            await self.quota.settle(updated)
        if self.lifecycle is not None and self._is_namespaces and not dry_run:
            if created:
                await self.lifecycle.settle(updated)
            else:
                await self.lifecycle.after_write(updated)
        return json_response(typed(updated, self.res), 201 if created else 200)

    async def _read(self, request: Request) -> bytes:
        return await read_body(request, self.limits.max_body_bytes, self.limits.read_timeout)

    async def _read_object(self, request: Request, decode: Callable[[bytes], Any]) -> Any:
        """A create or update body in JSON or protobuf, decoded once."""
        limits = self.limits
        return await read_object(
            request, self.res, limits.max_body_bytes, limits.read_timeout, decode
        )

    async def _delete_options(self, request: Request) -> tuple[Preconditions | None, bool]:
        """The preconditions and whether it is a dry run: `dryRun` may come in the query
        or, as client-go sends it, in the `DeleteOptions` body (which wins, as upstream)."""
        dry_run = parse_dry_run(request, "DeleteOptions")
        raw = await read_body(request, self.limits.max_body_bytes, self.limits.read_timeout)
        if not raw.strip():
            return None, dry_run
        opts = read_delete_options(request, self.res, raw)
        if not isinstance(opts, dict):
            raise BadRequestError("DeleteOptions must be a JSON object")
        if opts.get("dryRun") is not None:
            dry_run = parse_dry_run_values(opts["dryRun"], "DeleteOptions")
        pre = opts.get("preconditions")
        if pre is None:
            return None, dry_run
        if not isinstance(pre, dict):
            raise BadRequestError("DeleteOptions.preconditions must be an object")
        uid, rv = pre.get("uid"), pre.get("resourceVersion")
        if not all(v is None or isinstance(v, str) for v in (uid, rv)):
            raise BadRequestError("preconditions.uid and resourceVersion must be strings")
        if uid is None and rv is None:
            return None, dry_run
        return Preconditions(uid=uid, resource_version=rv), dry_run

    async def delete(self, request: Request) -> Response:
        unsafe = parse_bool(request, UNSAFE_DELETE)
        if unsafe:
            self._check_unsafe_delete(request)
        preconditions, dry_run = await self._delete_options(request)
        storage = self._writer(dry_run)
        try:
            if self.lifecycle is not None and self._is_namespaces and not unsafe:
                marked = await self.lifecycle.delete(
                    storage, self.name, preconditions, dry_run=dry_run
                )
                return json_response(typed(marked, self.res))
            deleted = await storage.delete(
                self._key(), preconditions=preconditions, ignore_store_read_error=unsafe
            )
        except StorageError as err:
            raise _object_error(err, self.res, self.name) from None
        if self.quota is not None and not dry_run:
            await self.quota.settle(deleted)  # so that a create right after may use the room
        return json_response(typed(deleted, self.res))

    def _check_unsafe_delete(self, request: Request) -> None:
        """Upstream's `ignoreStoreReadErrorWithClusterBreakingPotential` removes a value
        nobody can read, without preconditions: only `system:masters` may (upstream asks
        for the `unsafe-delete-ignore-read-errors` verb, which cluster admins hold), and
        never as part of a collection delete."""
        user = getattr(request.state, "user", None)
        if not isinstance(user, User) or MASTERS not in user.groups:
            name = user.name if isinstance(user, User) else ""
            raise ForbiddenError(
                f'User "{name}" cannot unsafe-delete-ignore-read-errors resource '
                f'"{self.res.plural}" "{self.name}": only {MASTERS} may'
            )

    async def delete_collection(self, request: Request) -> Response:
        """Delete what a list with the same selectors returns (objects gone meanwhile are
        skipped); answers the list of deleted objects, as Kubernetes does."""
        _, dry_run = await self._delete_options(request)
        storage = self._writer(dry_run)
        opts = list_options(request, watch=False, fields=selectable_fields(self.res))
        page = await self.storage.get_list(
            self.res.collection_key(self.namespace),
            ListOptions(recursive=True, predicate=opts.predicate),
        )
        deleted: list[Object] = []
        for obj in page.items:
            meta = obj.get("metadata") or {}
            key = self.res.key(meta.get("namespace"), str(meta.get("name", "")))
            try:
                pre = Preconditions(uid=meta.get("uid"))
                if self.lifecycle is not None and self._is_namespaces:
                    name = str(meta.get("name", ""))
                    if name in IMMORTAL_NAMESPACES:
                        continue  # never deleted; the rest of the collection still is
                    gone = await self.lifecycle.delete(storage, name, pre, dry_run=dry_run)
                else:
                    gone = await storage.delete(key, preconditions=pre)
            except (NotFoundError, ConflictError):
                continue
            deleted.append(typed(gone, self.res))
        if self.quota is not None and deleted and not dry_run:
            await self.quota.settle(deleted[-1])
        body = {
            "kind": self.res.list_kind,
            "apiVersion": self.res.api_version,
            "metadata": {},
            "items": deleted,
        }
        return json_response(body)
