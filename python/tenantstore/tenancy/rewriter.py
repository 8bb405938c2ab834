"""The key rewriter: a `Storage` decorator that confines every call to the caller's scope.

Every key under the resource prefix is rewritten from the request's scope (`context.py`):

    /registry/cm/ns/a   project "p1"  ->  /registry/cm/clusters/p1/ns/a
    /registry/cm/ns/a   root          ->  /registry/cm/root/ns/a
    /registry/cm        all_projects  ->  /registry/cm/          (list / watch / count only)

with the Rust key functions, for create, get, get_list, guaranteed_update, delete, watch and
count. Beyond the reference:

* keys are validated first (absolute, clean, no NUL), so `..` cannot climb out of a scope
  and the cacher's out-of-scope keys (`"\\x00unmapped/..."`) cannot be named;
* a key that is not the resource prefix or below it is refused on every operation (422),
  as upstream's `RunTestKeySchema` expects: a storage built for one resource must never
  reach another's keys, such as the root scope's Secrets from a ConfigMaps storage;
* continue tokens are bound to the scope that minted them, as in the reference (milo's
  `validateContinue`): the token a client sees carries its resume key relative to the
  resource prefix, scope segment included (`clusters/p1/ns/a`, in upstream's relative
  form), and a token whose key is outside the caller's scoped list prefix is a 400,
  "continue token does not belong to the current scope", counted in
  `tenantstore_continue_token_rejections_total{resource}`; the inconsistent token of a
  410 after compaction is re-based the same way;
* errors never show scoped keys: a `StorageError` from below is re-raised as a copy whose
  message, key and details have every `<prefix>/clusters/<project>` / `<prefix>/root`
  replaced by `<prefix>` (the caller's unscoped view), without the original chained; watch
  ERROR events are scrubbed the same way.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ..keys import CLUSTERS_SEGMENT, ROOT_SEGMENT, scoped_key
from ..storage import continue_token
from ..storage.encoded import EncodedList, encoded_reads
from ..storage.errors import BadRequestError, InvalidError, StorageError
from ..storage.events import EventType, WatchEvent
from ..storage.interface import Object, Storage, UpdateFunc, UpdateResult, ValidateDeletion
from ..storage.key_schema import validate_key
from ..storage.options import ListOptions, ObjectList, Preconditions, Stats
from ..storage.watch import Watch
from . import metrics
from .context import AllProjects, current_scope

__all__ = ["KeyRewriter", "ScrubbingWatch"]

T = TypeVar("T")

# admit(scoped key, object): raise (an InvalidError) to refuse writing the object there.
Admit = Callable[[str, Object], None]

_ALL_PROJECTS_READ_ONLY = (
    "the all-projects scope is read-only: only list, watch and count of the whole resource "
    "are allowed"
)


class KeyRewriter:
    """`Storage` that rewrites keys under `resource_prefix` into the caller's scope."""

    def __init__(
        self,
        inner: Storage,
        resource_prefix: str,
        resource_label: str | None = None,
        *,
        admit: Admit | None = None,
    ) -> None:
        self.inner = inner
        # Checks an object about to be written at a scoped key; raises to refuse it.
        self.admit = admit
        self.prefix = resource_prefix.rstrip("/")
        if not self.prefix.startswith("/"):
            raise ValueError(f"resource prefix must be an absolute path: {resource_prefix!r}")
        self.resource_label = resource_label or self.prefix
        self._m_rejections = metrics.CONTINUE_TOKEN_REJECTIONS.labels(self.resource_label)
        # <prefix>/clusters/<anything up to a delimiter> or <prefix>/root, as a whole segment.
        self._scope_re = re.compile(
            re.escape(self.prefix)
            + rf"/(?:{re.escape(CLUSTERS_SEGMENT)}/[^/\s\"'\\]*|{re.escape(ROOT_SEGMENT)})"
            + r"(?=[/\s\"'\\]|$)"
        )

    # -- key rewriting ----------------------------------------------------------------------
    def _under(self, key: str) -> bool:
        return key == self.prefix or key.startswith(self.prefix + "/")

    def _rewrite(self, key: str, *, reading_all: bool, recursive: bool) -> str:
        """The scoped key for `key` in the current scope.

        `reading_all`: the call may run in the all-projects scope (recursive list, watch,
        count); anything else there is a 400.
        """
        validate_key(key)
        scope = current_scope()
        if isinstance(scope, AllProjects):
            if not (reading_all and recursive):
                raise BadRequestError(_ALL_PROJECTS_READ_ONLY, key=key)
            if key.rstrip("/") != self.prefix:
                raise BadRequestError(
                    "the all-projects scope lists and watches the whole resource only "
                    f'("{self.prefix}")',
                    key=key,
                )
            return self.prefix + "/"
        if self._under(key):
            return scoped_key(key, self.prefix, scope)
        raise InvalidError(f'invalid key "{key}": not under the resource prefix "{self.prefix}"')

    # -- error scrubbing --------------------------------------------------------------------
    def scrub(self, text: str) -> str:
        """`text` with every scope segment after the prefix removed."""
        if not text or self.prefix not in text:
            return text
        return self._scope_re.sub(lambda _m: self.prefix, text)

    def _scrub_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._scrub_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub_value(v) for v in value]
        return value

    def scrub_error(self, exc: StorageError) -> StorageError:
        """A copy of `exc` that names only unscoped keys, with no chained exception."""
        cls = type(exc)
        new = cls.__new__(cls)
        new.__dict__.update(exc.__dict__)
        message = self.scrub(exc.message)
        new.message = message
        new.args = (message,)
        new.key = self.scrub(exc.key)
        new.details = self._scrub_value(exc.details)
        return new

    async def _run(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except StorageError as exc:
            err = self.scrub_error(exc)
        # Raised outside the handler so the scoped original is not kept as __context__.
        raise err

    # -- Storage ----------------------------------------------------------------------------
    async def create(self, key: str, obj: Object, *, ttl: int | None = None) -> Object:
        scoped = self._rewrite(key, reading_all=False, recursive=False)
        if self.admit is not None:
            self.admit(scoped, obj)
        return await self._run(self.inner.create(scoped, obj, ttl=ttl))

    async def get(
        self, key: str, *, resource_version: str = "", ignore_not_found: bool = False
    ) -> Object | None:
        scoped = self._rewrite(key, reading_all=False, recursive=False)
        return await self._run(
            self.inner.get(
                scoped, resource_version=resource_version, ignore_not_found=ignore_not_found
            )
        )

    async def get_encoded(
        self, key: str, *, resource_version: str = "", kind: str, api_version: str
    ) -> bytes | Object:
        """`get` on the byte path (`EncodedReads`) when the layer below has one. The bytes
        are the object's own: nothing in them depends on the scope, so they pass as they are."""
        scoped = self._rewrite(key, reading_all=False, recursive=False)
        inner = self.inner
        if (encoded := encoded_reads(inner)) is not None:
            return await self._run(
                encoded.get_encoded(
                    scoped, resource_version=resource_version, kind=kind, api_version=api_version
                )
            )
        got = await self._run(inner.get(scoped, resource_version=resource_version))
        assert got is not None
        return got

    async def get_list(self, key: str, opts: ListOptions) -> ObjectList:
        listed = await self._get_list(key, opts, None)
        assert isinstance(listed, ObjectList)
        return listed

    async def get_list_encoded(
        self, key: str, opts: ListOptions, *, kind: str, api_version: str
    ) -> EncodedList | ObjectList:
        """`get_list` on the byte path (`EncodedReads`) when the layer below has one; the
        continue token is re-based as for `get_list`, the items pass as they are."""
        return await self._get_list(key, opts, (kind, api_version))

    async def _list_below(
        self, scoped: str, opts: ListOptions, typed: tuple[str, str] | None
    ) -> ObjectList | EncodedList:
        inner = self.inner
        if typed is not None and (encoded := encoded_reads(inner)) is not None:
            return await encoded.get_list_encoded(scoped, opts, kind=typed[0], api_version=typed[1])
        return await inner.get_list(scoped, opts)

    async def _get_list(
        self, key: str, opts: ListOptions, typed: tuple[str, str] | None
    ) -> ObjectList | EncodedList:
        scoped = self._rewrite(key, reading_all=True, recursive=opts.recursive)
        if not opts.recursive:
            return await self._run(self._list_below(scoped, opts, typed))
        list_prefix = continue_token.list_prefix(scoped)
        if opts.continue_:
            opts = replace(opts, continue_=self._inbound_token(opts.continue_, list_prefix))
        err: StorageError | None = None
        try:
            result = await self._list_below(scoped, opts, typed)
        except StorageError as exc:
            err = self.scrub_error(exc)
            if err.continue_:
                # The inconsistent token of a 410 is bound to the scope like any other.
                err.continue_ = self._outbound_token(err.continue_, list_prefix)
        if err is not None:
            raise err  # outside the handler: the scoped original is not kept as context
        if result.continue_:
            result = replace(result, continue_=self._outbound_token(result.continue_, list_prefix))
        return result

    def _outbound_token(self, token: str, list_prefix: str) -> str:
        """The layer below's token, re-based on the resource prefix: its start key then
        names the scope (`clusters/p1/...`), which binds the token to it."""
        start, rv = continue_token.decode(token, list_prefix)
        return continue_token.encode(start, self.prefix + "/", rv)

    def _inbound_token(self, token: str, list_prefix: str) -> str:
        """A client's token for the layer below, if it resumes inside `list_prefix` (the
        caller's scope); otherwise a 400, counted, as milo's `validateContinue` does."""
        try:
            start, rv = continue_token.decode(token, self.prefix + "/")
        except BadRequestError:
            self._m_rejections.inc()
            raise
        if not start.startswith(list_prefix):
            self._m_rejections.inc()
            raise BadRequestError("continue token does not belong to the current scope")
        return continue_token.encode(start, list_prefix, rv)

    async def guaranteed_update(
        self,
        key: str,
        update_fn: UpdateFunc,
        *,
        ignore_not_found: bool = False,
        preconditions: Preconditions | None = None,
        suggestion: Object | None = None,
    ) -> Object:
        scoped = self._rewrite(key, reading_all=False, recursive=False)
        admit = self.admit
        if admit is not None:
            inner_fn = update_fn

            async def update_fn(current: Object) -> UpdateResult:
                updated = inner_fn(current)
                result = await updated if inspect.isawaitable(updated) else updated
                admit(scoped, result[0] if isinstance(result, tuple) else result)
                return result

        return await self._run(
            self.inner.guaranteed_update(
                scoped,
                update_fn,
                ignore_not_found=ignore_not_found,
                preconditions=preconditions,
                suggestion=suggestion,
            )
        )

    async def delete(
        self,
        key: str,
        *,
        preconditions: Preconditions | None = None,
        validate: ValidateDeletion | None = None,
        ignore_store_read_error: bool = False,
    ) -> Object:
        scoped = self._rewrite(key, reading_all=False, recursive=False)
        return await self._run(
            self.inner.delete(
                scoped,
                preconditions=preconditions,
                validate=validate,
                ignore_store_read_error=ignore_store_read_error,
            )
        )

    async def watch(self, key: str, opts: ListOptions) -> Watch:
        scoped = self._rewrite(key, reading_all=True, recursive=opts.recursive)
        inner = await self._run(self.inner.watch(scoped, opts))
        return ScrubbingWatch(inner, self)

    async def count(self, key: str) -> int:
        scoped = self._rewrite(key, reading_all=True, recursive=True)
        return await self._run(self.inner.count(scoped))

    async def stats(self, key: str) -> Stats:
        scoped = self._rewrite(key, reading_all=True, recursive=True)
        return await self._run(self.inner.stats(scoped))

    async def current_resource_version(self) -> int:
        return await self.inner.current_resource_version()

    async def request_watch_progress(self) -> bool:
        return await self.inner.request_watch_progress()

    async def ready(self) -> bool:
        return await self.inner.ready()

    async def close(self) -> None:
        await self.inner.close()

    def __repr__(self) -> str:
        return f"KeyRewriter({self.prefix!r}, inner={self.inner!r})"


class ScrubbingWatch:
    """A watch whose ERROR events name only unscoped keys."""

    __slots__ = ("_inner", "_rewriter")

    def __init__(self, inner: Watch, rewriter: KeyRewriter) -> None:
        self._inner = inner
        self._rewriter = rewriter

    def __aiter__(self) -> ScrubbingWatch:
        return self

    async def __anext__(self) -> WatchEvent:
        return self._scrub(await self._inner.__anext__())

    async def next_within(self, timeout: float) -> WatchEvent | None:
        ev = await self._inner.next_within(timeout)
        return None if ev is None else self._scrub(ev)

    def _scrub(self, ev: WatchEvent) -> WatchEvent:
        if ev.type is EventType.ERROR:
            return WatchEvent(EventType.ERROR, self._rewriter._scrub_value(ev.object))
        return ev

    def stop(self) -> None:
        self._inner.stop()

    async def close(self) -> None:
        self._inner.stop()

    async def __aenter__(self) -> ScrubbingWatch:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._inner.stop()

    def __getattr__(self, name: str) -> Any:
        # pending(), terminated, done... of the underlying QueueWatch.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)


if TYPE_CHECKING:
    # mypy proves the protocol is implemented (Go's `var _ storage.Interface = ...`).
    from ..storage.interface import Storage

    _: Storage = KeyRewriter.__new__(KeyRewriter)
