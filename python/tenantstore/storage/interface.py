"""The `Storage` protocol: Kubernetes `storage.Interface` semantics over asyncio.

Every layer implements this one protocol (backends, the cacher, the tenancy
decorators), so each can wrap the next, as `k8s.io/apiserver/pkg/storage` does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from .options import ListOptions, ObjectList, Preconditions, Stats
from .watch import Watch

Object = dict[str, Any]
# What an update function returns: the new object, or `(new object, ttl)` to (re)set the
# object's time to live in seconds (None: no TTL), as upstream's update functions return a
# `*uint64` TTL beside the object.
UpdateResult = Object | tuple[Object, int | None]
# update_fn(current) -> UpdateResult; may be sync or async. Raising aborts the update.
UpdateFunc = Callable[[Object], UpdateResult | Awaitable[UpdateResult]]
# validate(current) before a delete; may be sync or async; raise to refuse.
ValidateDeletion = Callable[[Object], Awaitable[None] | None]


@runtime_checkable
class Storage(Protocol):
    """Kubernetes' `storage.Interface`: create, get, list, update, delete and watch by key.

    The layers: `KVStorage` (the store, over a KV backend) reads and writes the backend;
    `Cacher` serves reads from memory and sends writes to the store; the tenancy
    `KeyRewriter` confines every call to the caller's scope. A storage from
    `SharedStorageFactory.storage(prefix)` is all three, outermost first.

    **Keys** are absolute, clean paths (no `..`, `//` or NUL: those are `InvalidError`,
    422, so no key can climb out of its scope). A storage built for one resource accepts
    only its resource prefix or keys below it (`InvalidError` otherwise): a ConfigMaps
    storage must never reach the Secrets stored beside it.

    **Scopes** (`tenantstore.tenancy.context`) decide where a key really lives, so that
    isolation is a property of disjoint key ranges rather than of filtering:

    * inside `project_scope(p)`, `<prefix>/ns/a` is stored as `<prefix>/clusters/p/ns/a`:
      every call sees and changes project `p`'s objects only;
    * outside any scope (the root scope), it is `<prefix>/root/ns/a`: root objects only,
      never a project's;
    * inside `all_projects()`, only `get_list` and `watch` (recursive, of the resource
      prefix itself) and `count` work, over every project and root; everything else is a
      `BadRequestError` (400). It is read-only and never a default, so no request reaches
      every tenant by accident.

    Errors raised through the tenancy layer name only the caller's unscoped keys, and a
    `continue` token only works in the scope that issued it.

    **`resource_version`** (a decimal string; anything else is `BadRequestError`, 400)
    says how fresh a read must be, as in the Kubernetes API:

    * `""`: the most recent state, a consistent read. The cacher sends a `get` to the
      store, as upstream's does (one point read costs less than proving a cache that
      every project writes to fresh); it answers a list from memory only once it has
      proved it is at the store's current revision (a progress notification from the
      backend), otherwise the store answers.
    * `"0"`: any state; the cacher answers from memory, however far behind.
    * `"N"`: a state not older than revision `N`. The cacher waits (up to its
      `wait_timeout`, 3 s by default) to reach `N`, then fails with
      `TooLargeResourceVersionError` (504, retry later); the store fails at once if `N`
      is ahead of its current revision.

    Errors every call may raise besides those listed per method: `UnavailableError`
    (503) when the backend cannot be reached or the storage is closed, and
    `InternalError` (500) for a stored value that cannot be decoded. All are
    `StorageError`s carrying the HTTP code and Kubernetes reason the server answers with.
    """

    async def create(self, key: str, obj: Object, *, ttl: int | None = None) -> Object:
        """Store `obj` at `key` if no object is there; return it as stored, with
        `metadata.resourceVersion` set to the revision of the write.

        `ttl` (seconds, > 0) makes the object expire, as an etcd lease does. The write
        goes to the store even through a cacher, and the cache learns of it from the
        backend's watch afterwards: a following read at `"0"` may not see it yet, one at
        `""` or at the returned revision does.

        Raises `AlreadyExistsError` (409) if the key exists; `InvalidError` (422) if `obj`
        is not a JSON-encodable object with `metadata`, already has a `resourceVersion`
        (a create cannot be conditional on one), or `ttl` is not positive;
        `BadRequestError` (400) in the `all_projects()` scope.
        """
        ...

    async def get(
        self, key: str, *, resource_version: str = "", ignore_not_found: bool = False
    ) -> Object | None:
        """The object at `key`, with its `metadata.resourceVersion`.

        `resource_version` as in the class docstring: `""` a consistent read, `"0"` any
        (possibly cached) state, `"N"` a state not older than `N`.

        Raises `NotFoundError` (404) if there is no object (unless `ignore_not_found`,
        then None); `TooLargeResourceVersionError` (504) for an `N` not reached in time;
        `BadRequestError` (400) for a malformed `resource_version` and in the
        `all_projects()` scope, which has no single objects.
        """
        ...

    async def get_list(self, key: str, opts: ListOptions) -> ObjectList:
        """The objects under `key` (`opts.recursive`; `key` itself excluded) or the one at
        `key` (a list of zero or one), filtered by `opts.predicate`, in key order.

        `ObjectList.resource_version` is the revision the whole list is consistent at;
        every page of a paginated list (`opts.limit`, then `opts.continue_` from the
        previous page) is read at that same revision, so pages never mix states.

        `opts.resource_version` as in the class docstring, refined by
        `opts.resource_version_match`: `NotOlderThan` (or unset) lists a state not older
        than `N`; `Exact` lists exactly revision `N` (it needs a non-zero `N`), served
        from the cache only if the cache is at `N`, otherwise read from the store's
        history. As in Kubernetes, an unset match with `N` > 0 and a `limit` means
        `Exact` (the legacy paginated list).

        A `continue` token whose `rv` is -1 (upstream's inconsistent continuation)
        resumes at its key but reads the current state, as a consistent list does.

        Raises `GoneError` (410) when `Exact` or a `continue` token asks for a revision
        the store has compacted away ("The resourceVersion for the provided list is too
        old."); for a continued list its `continue_` is an inconsistent token (rendered as
        the Status' `metadata.continue`) that finishes the list at the current state;
        `TooLargeResourceVersionError` (504) for an `N` not reached in time;
        `BadRequestError` (400) for a malformed `resource_version` or `continue` token,
        a token issued in another scope, and in the `all_projects()` scope for anything
        but a recursive list of the resource prefix. (`ListOptions` itself refuses,
        when built, a `continue` token with a `resource_version` other than `""`/`"0"`
        and a `limit`, and `Exact` without `N`.)
        """
        ...

    async def guaranteed_update(
        self,
        key: str,
        update_fn: UpdateFunc,
        *,
        ignore_not_found: bool = False,
        preconditions: Preconditions | None = None,
        suggestion: Object | None = None,
    ) -> Object:
        """Replace the object at `key` with `update_fn(current)`, retrying until the write
        lands on the value it was computed from; return the object as stored.

        The write is a compare-and-swap on the object's revision, so a concurrent writer
        is never overwritten: on a conflict the fresh value is read and `update_fn` runs
        again. It may therefore run several times and must have no side effects; raising
        from it aborts the update with that exception. `suggestion` is a guess at the
        current object (the cacher passes its cached copy) that saves the first read; if
        it proves stale the store re-reads before anything fails. When `update_fn`
        returns the object unchanged, nothing is written and the current object (with
        its existing `resourceVersion`) is returned, unless the stored bytes are not what
        the codec would write for it now (an older or non-canonical encoding, or a
        transformer reporting the value stale): then it is rewritten, as upstream does.
        `metadata.selfLink` is never stored (nor returned), as in Kubernetes since 1.20.

        `update_fn` may return `(obj, ttl)` instead of `obj`: `ttl` (seconds, > 0) makes the
        written object expire, as `create(..., ttl=)` does; a plain object (or a `None`
        ttl) writes it without one, since a put detaches any lease.

        Raises `NotFoundError` (404) if there is no object, unless `ignore_not_found`
        (then `update_fn({})` creates it); `ConflictError` (409) if `preconditions` (uid,
        resourceVersion) do not hold for the current object (re-read and decide again);
        `InvalidError` (422) if `update_fn` returns something without `metadata`;
        `BadRequestError` (400) in the `all_projects()` scope.
        """
        ...

    async def delete(
        self,
        key: str,
        *,
        preconditions: Preconditions | None = None,
        validate: ValidateDeletion | None = None,
        ignore_store_read_error: bool = False,
    ) -> Object:
        """Delete the object at `key`; return its last state, with `resourceVersion` set
        to the revision of the delete.

        `ignore_store_read_error` is upstream's
        `ignoreStoreReadErrorWithClusterBreakingPotential`: the one way to remove a value
        that cannot be decoded (corrupt, or encrypted with a lost key), which every other
        call refuses with `InternalError`. It deletes without reading, so neither
        `preconditions` nor `validate` run, and returns only `metadata.resourceVersion`.
        An object that *can* be read is refused with `ConflictError` (409): use a normal
        delete, which checks what it removes.

        Like an update, a delete only lands on the value it checked: if the object
        changes in between, `preconditions` and `validate(current)` are checked again on
        the fresh value, so `validate` may run more than once; raising from it refuses
        the delete with that exception.

        Raises `NotFoundError` (404) if there is no object; `ConflictError` (409) if
        `preconditions` do not hold; `BadRequestError` (400) in the `all_projects()`
        scope.
        """
        ...

    async def watch(self, key: str, opts: ListOptions) -> Watch:
        """A stream of the changes to the objects under `key` (`opts.recursive`) or to the
        one at `key`, as ADDED / MODIFIED / DELETED events filtered by `opts.predicate`
        (an object leaving the predicate's selection is DELETED, one entering it ADDED).

        Where it starts, by `opts.resource_version`: `""` the current state (the cacher
        first catches up with the store, as for a consistent read) as ADDED events, then
        every change after it; `"0"` any recent state as ADDED events, then the changes;
        `"N"` no initial state, every change after revision `N`. Events are never
        skipped or repeated, so a client resumes from the last `resourceVersion` it saw.
        With `opts.allow_watch_bookmarks` (or `opts.progress_notify`), BOOKMARK events
        carry the revision reached while nothing changes, so a resume point stays recent.

        A watch-list (`opts.send_initial_events=True`, upstream's WatchList) replaces the
        initial LIST of an informer: the state not older than `opts.resource_version`
        (`""` the current state, a consistent read; `"0"` any state; `"N"` not older than
        `N`, even if `N` was compacted) as ADDED events, then, with bookmarks allowed, one
        BOOKMARK at the revision that state is consistent at, annotated
        `k8s.io/initial-events-end: "true"` and carrying nothing else, then every change
        after it. `send_initial_events=False` sends no state: the changes after the
        current revision (`""`), the cache's (`"0"`) or `N`. The cacher serves both from
        memory; where it cannot prove a consistent state fresh it reads the state from
        the store once. Raises `TooLargeResourceVersionError` (504) for an `N` the store
        has not reached (`ListOptions` itself refuses, when built, `send_initial_events`
        with `resource_version_match=Exact`: 422).

        Failures after the watch has started arrive in the stream as a last ERROR event
        carrying a `metav1.Status`, then the stream ends: 410 when `N` is older than the
        store keeps (compacted) or than the cacher's event window, or when the consumer
        falls so far behind that its buffer fills up; the client then re-lists and
        watches again from the list's revision. Through a cacher, raises
        `TooLargeResourceVersionError` (504) for an `N` the store has not reached within
        the wait; raises `BadRequestError` (400) for a malformed `resource_version` and,
        in the `all_projects()` scope, for anything but a recursive watch of the
        resource prefix. Stop the watch with `stop()` or
        `async with`: events already queued are still delivered, then the stream ends
        (as upstream drains a stopped watch's result channel); an abandoned one holds
        its buffer until the storage closes.
        """
        ...

    async def count(self, key: str) -> int:
        """The number of objects under `key`, from the store (never the cache, so it is
        exact). In the `all_projects()` scope, of every project and root."""
        ...

    async def stats(self, key: str) -> Stats:
        """How many objects are under `key` and their estimated average stored size, from
        the store (exact, as `count`), as upstream's `Stats` for a resource."""
        ...

    async def current_resource_version(self) -> int:
        """The store's current revision: every write acknowledged so far is at or below
        it, so a read at this revision sees them all."""
        ...

    async def request_watch_progress(self) -> bool:
        """Ask the backend for a progress notification now: every watch allowing
        bookmarks gets a BOOKMARK at a revision covering every write acknowledged before
        the call. The cacher's consistent reads rely on it to prove the cache fresh.
        False (and nothing asked) when the backend cannot promise a notification that
        never overtakes an event (etcd before 3.4.31 / 3.5.13)."""
        ...

    async def ready(self) -> bool:
        """True when the storage can serve: for the store, the backend answers (SQLite:
        and accepts writes); for a cacher, its first list is in (`Cacher.health()` says
        whether it still follows the backend)."""
        ...

    async def close(self) -> None:
        """End every watch this storage opened and release what it holds; the KV is
        closed only by the store that owns it (`KVStorage(owns_kv=...)`)."""
        ...
