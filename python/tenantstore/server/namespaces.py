"""Namespace lifecycle, per project: admission of creates, and deleting a namespace's content.

What kube-apiserver's NamespaceLifecycle admission plugin and the namespace controller do
together, inside the server:

* a namespaced object may only be created in a namespace that exists (404 `namespaces
  "x" not found` otherwise) and is not being deleted (403 with upstream's
  `NamespaceTerminating` cause);
* `default` always exists, as in a real cluster: a fresh project has no namespace at all,
  so the first create in `default` creates it (a dry run only pretends), and `default`,
  `kube-system` and `kube-public` may not be deleted (403, as upstream);
* deleting a namespace marks it (`deletionTimestamp`, `status.phase: Terminating`) and
  answers at once; a background task then deletes every namespaced object in it, across
  every resource of the registry, and finally the namespace itself. A namespace holding
  `metadata.finalizers` then waits, `Terminating` with its `kubernetes` finalizer
  dropped, until an update removes the last of them, as upstream's finalizers hold any
  object (the only kind whose `metadata.finalizers` this server honours).

Everything runs inside the project scope of the namespace it concerns (the background
task enters it explicitly, in a context of its own), so one project's namespace deletion
only ever lists and deletes that project's keys: another project's namespace of the
same name is another key range. The existence check reads the shared cache first (a
point read from memory) and pays a consistent read only when the cache has no such
namespace, so a create right after its namespace's create is never refused because the
cache lags.

Robustness: the task retries with back-off until it is done; it survives the request
that started it and ends at shutdown. A namespace left marked (a restart mid-way)
is resumed at start in shared mode, where the tenant map says which project owns each
namespace, and otherwise on the next touch: a create in it or another delete of it.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import logging
import uuid
from typing import Any

from ..storage.errors import ConflictError, NotFoundError, StorageError
from ..storage.interface import Object, Storage
from ..storage.options import ListOptions, Preconditions
from ..tenancy import SharedStorageFactory, all_projects, current_project, project_scope
from ..tenancy.factory import StorageFactory
from .auth import ForbiddenError
from .registry import Resource, ResourceRegistry

__all__ = [
    "DEFAULT_NAMESPACE",
    "IMMORTAL_NAMESPACES",
    "NamespaceLifecycle",
    "is_deleted",
    "is_terminating",
    "namespace_for_create",
]

log = logging.getLogger("tenantstore.server")

DEFAULT_NAMESPACE = "default"
IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
FINALIZER = "kubernetes"
TERMINATING = "Terminating"
_PAGE = 500
_MAX_BACKOFF = 5.0


def is_deleted(ns: Object) -> bool:
    """Whether a delete marked the namespace: only then is its content deleted."""
    meta = ns.get("metadata") or {}
    return isinstance(meta, dict) and bool(meta.get("deletionTimestamp"))


def is_terminating(ns: Object) -> bool:
    """Whether creates in the namespace are refused: marked deleted, or in phase
    `Terminating` (which upstream's admission checks, whoever wrote it)."""
    status = ns.get("status") or {}
    return is_deleted(ns) or (isinstance(status, dict) and status.get("phase") == TERMINATING)


def namespace_for_create(obj: Object) -> None:
    """What upstream's namespace strategy sets on create (in place): phase `Active`,
    whatever the client sent, and the `kubernetes` finalizer the lifecycle removes."""
    obj["status"] = {"phase": "Active"}
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    finalizers = spec.get("finalizers")
    if not isinstance(finalizers, list):
        finalizers = []
    if FINALIZER not in finalizers:
        finalizers = [*finalizers, FINALIZER]
    spec["finalizers"] = finalizers


def _drop_spec_finalizer(ns: Object) -> Object:
    spec = ns.get("spec")
    if isinstance(spec, dict) and FINALIZER in (spec.get("finalizers") or []):
        spec["finalizers"] = [f for f in spec["finalizers"] if f != FINALIZER]
    return ns


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NamespaceLifecycle:
    """The lifecycle of every project's namespaces, for one server (see the module)."""

    def __init__(self, registry: ResourceRegistry, factory: StorageFactory) -> None:
        ns = registry.lookup("", "v1", "namespaces")
        assert ns is not None
        self.namespaces: Resource = ns
        self.registry = registry
        self.factory = factory
        self._tasks: dict[tuple[str | None, str], asyncio.Task[None]] = {}
        # Namespaces touched again while their task runs: it makes one more pass, since
        # the touch may have changed what it read (a finalizer removed meanwhile).
        self._again: set[tuple[str | None, str]] = set()
        self._stopped = False

    def _ns_storage(self) -> Storage:
        return self.factory.storage(self.namespaces.prefix)

    # -- admission ---------------------------------------------------------------------
    async def admit_create(
        self, res: Resource, namespace: str, name: str, *, dry_run: bool
    ) -> None:
        """Refuse a create of `res` in `namespace` unless the namespace exists and is
        active; create `default` on first use. Runs in the request's project scope."""
        project = current_project()
        if self._finalizing(project, namespace):
            raise self._terminating(res, namespace, name)
        storage = self._ns_storage()
        key = self.namespaces.key(None, namespace)
        ns = await storage.get(key, resource_version="0", ignore_not_found=True)
        if ns is None:
            ns = await storage.get(key, ignore_not_found=True)  # the cache may lag
        if ns is None:
            if namespace != DEFAULT_NAMESPACE:
                raise NotFoundError(
                    f'namespaces "{namespace}" not found',
                    details={"name": namespace, "kind": "namespaces"},
                )
            if not dry_run:
                await self._create_default(storage, key)
            return
        if is_terminating(ns):
            if is_deleted(ns):
                self.ensure_finalizing(project, namespace)
            raise self._terminating(res, namespace, name)

    @staticmethod
    def _terminating(res: Resource, namespace: str, name: str) -> ForbiddenError:
        why = (
            f"unable to create new content in namespace {namespace} because it is being terminated"
        )
        return ForbiddenError(
            f'{res.label} "{name}" is forbidden: {why}',
            details={
                "name": name,
                "group": res.group,
                "kind": res.plural,
                "causes": [
                    {
                        "reason": "NamespaceTerminating",
                        "message": why,
                        "field": "metadata.namespace",
                    }
                ],
            },
        )

    async def _create_default(self, storage: Storage, key: str) -> None:
        obj: Object = {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": DEFAULT_NAMESPACE,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _now(),
                "labels": {"kubernetes.io/metadata.name": DEFAULT_NAMESPACE},
            },
        }
        namespace_for_create(obj)
        try:
            await storage.create(key, obj)
        except StorageError as err:
            if err.code != 409:  # AlreadyExists: a concurrent first use made it
                raise

    # -- deletion ----------------------------------------------------------------------
    async def delete(
        self, storage: Storage, name: str, preconditions: Preconditions | None, *, dry_run: bool
    ) -> Object:
        """Mark namespace `name` terminating and start deleting its content; answers the
        marked namespace (it still exists), as upstream. `storage` is the request's
        (a `DryRunStorage` for a dry run, which writes nothing and starts nothing)."""
        if name in IMMORTAL_NAMESPACES:
            raise ForbiddenError(
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                details={"name": name, "kind": "namespaces"},
            )

        def mark(current: Object) -> Object:
            meta = current.setdefault("metadata", {})
            status = current.get("status")
            phase = status.get("phase") if isinstance(status, dict) else None
            if is_deleted(current) and phase == TERMINATING:
                return current  # already marked: nothing to write
            meta.setdefault("deletionTimestamp", _now())
            if not isinstance(status, dict):
                status = current["status"] = {}
            status["phase"] = TERMINATING
            return current

        marked = await storage.guaranteed_update(
            self.namespaces.key(None, name), mark, preconditions=preconditions
        )
        if not dry_run:
            await self.settle(marked)
            self.ensure_finalizing(current_project(), name)
        return marked

    async def after_write(self, namespace: Object) -> None:
        """After a namespace write (in the request's project scope): answer only once the
        cache has it, and resume deleting a marked namespace once an update left it
        without `metadata.finalizers` (upstream deletes an object on the update that
        removes its last finalizer)."""
        await self.settle(namespace)
        meta = namespace.get("metadata") or {}
        if is_deleted(namespace) and not meta.get("finalizers"):
            self.ensure_finalizing(current_project(), str(meta.get("name", "")))

    async def settle(self, namespace: Object) -> None:
        """Wait until the cache holds this state of the namespace. Admission reads the
        cache: without this, a create right after a namespace was marked (or its phase
        set) could pass on the older state. Namespace writes are rare, so the wait (the
        time the backend's watch takes to deliver one event) costs the hot path nothing.
        Writes made by another server on the same backend are seen when its event
        arrives, as upstream's admission sees them through its informer."""
        meta = namespace.get("metadata") or {}
        rv, name = meta.get("resourceVersion"), meta.get("name")
        if not (isinstance(rv, str) and rv.isdigit() and isinstance(name, str)):
            return
        try:
            await self._ns_storage().get(
                self.namespaces.key(None, name), resource_version=rv, ignore_not_found=True
            )
        except StorageError as err:  # the write stands; admission sees it a little later
            log.warning("namespace %s: cache did not reach revision %s: %s", name, rv, err)

    def _finalizing(self, project: str | None, name: str) -> bool:
        task = self._tasks.get((project, name))
        return task is not None and not task.done()

    def ensure_finalizing(self, project: str | None, name: str) -> None:
        """Start deleting `name`'s content in `project` unless a task already does."""
        if self._stopped:
            return
        if self._finalizing(project, name):
            self._again.add((project, name))
            return
        # A context of its own: the task outlives the request whose context it would
        # otherwise copy, and enters its project's scope explicitly.
        task = asyncio.get_running_loop().create_task(
            self._finalize(project, name),
            name=f"namespace-finalizer {project or '<root>'}/{name}",
            context=contextvars.Context(),
        )
        key = (project, name)
        self._tasks[key] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._tasks.get(key) is done:
                del self._tasks[key]

        task.add_done_callback(forget)

    async def _finalize(self, project: str | None, name: str) -> None:
        key, delay = (project, name), 0.1
        with project_scope(project):
            while True:
                self._again.discard(key)
                try:
                    await self._finalize_once(name)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # retried: a backend outage must not strand it
                    log.warning(
                        "namespace %s in %s: deleting its content failed, retrying: %s",
                        name,
                        f"project {project}" if project else "the root scope",
                        exc,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _MAX_BACKOFF)
                    continue
                if key not in self._again:
                    return

    async def _finalize_once(self, name: str) -> None:
        storage = self._ns_storage()
        key = self.namespaces.key(None, name)
        ns = await storage.get(key, ignore_not_found=True)
        if ns is None or not is_deleted(ns):
            return  # gone, or not the namespace that was deleted
        await self._delete_content(name)
        meta = ns.get("metadata") or {}
        if meta.get("finalizers"):
            # Someone else's finalizers hold the namespace: the content is gone, so drop
            # ours (`spec.finalizers`) and wait for theirs; the update that removes the
            # last one starts this task again (`after_update`).
            await storage.guaranteed_update(key, _drop_spec_finalizer, ignore_not_found=False)
            return
        try:
            await storage.delete(key, preconditions=Preconditions(uid=meta.get("uid")))
        except NotFoundError:
            pass
        except ConflictError:
            return  # replaced meanwhile by a namespace of the same name: not ours
        # A create admitted just before the namespace was marked may land after the first
        # sweep: sweep again once the namespace is gone, so nothing is left orphaned.
        # Admission refuses creates in the namespace while this task runs, so the sweep
        # never takes objects of a namespace re-created meanwhile through this server.
        await self._delete_content(name)

    async def _delete_content(self, namespace: str) -> None:
        for res in self.registry:
            if not res.namespaced:
                continue
            storage = self.factory.storage(res.prefix)
            while True:
                page = await storage.get_list(
                    res.collection_key(namespace), ListOptions(recursive=True, limit=_PAGE)
                )
                for obj in page.items:
                    meta: dict[str, Any] = obj.get("metadata") or {}
                    obj_key = res.key(namespace, str(meta.get("name", "")))
                    pre = Preconditions(uid=meta.get("uid"))
                    try:
                        await storage.delete(obj_key, preconditions=pre)
                    except (NotFoundError, ConflictError):
                        continue  # gone or replaced meanwhile: the next page sees it
                if not page.items:
                    break

    # -- start and stop ----------------------------------------------------------------
    async def resume(self) -> None:
        """Resume every namespace left terminating, where the owner of each is known
        (shared mode: the namespaces cache's tenant map); elsewhere they resume on the
        next touch."""
        factory = self.factory
        if not isinstance(factory, SharedStorageFactory):
            return
        prefix = self.namespaces.prefix
        with all_projects():
            page = await factory.storage(prefix).get_list(
                prefix, ListOptions(recursive=True, resource_version="0")
            )
        owners = factory.tenant_map(prefix)
        for ns in page.items:
            if not is_deleted(ns):
                continue
            meta = ns.get("metadata") or {}
            owner = owners.owner(str(meta.get("uid", "")))
            if owner is None or isinstance(owner, str):
                self.ensure_finalizing(owner, str(meta.get("name", "")))

    async def stop(self) -> None:
        self._stopped = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
