"""The `Storage` protocol: Kubernetes `storage.Interface` semantics over asyncio.

Every layer implements this one protocol (backends, the cacher, the tenancy
decorators), so each can wrap the next, as `k8s.io/apiserver/pkg/storage` does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from .options import ListOptions, ObjectList, Preconditions
from .watch import Watch

Object = dict[str, Any]
# update_fn(current) -> new object; may be sync or async. Raising aborts the update.
UpdateFunc = Callable[[Object], Object | Awaitable[Object]]
# validate(current) before a delete; may be sync or async; raise to refuse.
ValidateDeletion = Callable[[Object], Awaitable[None] | None]


@runtime_checkable
class Storage(Protocol):
    async def create(self, key: str, obj: Object, *, ttl: int | None = None) -> Object: ...

    async def get(
        self, key: str, *, resource_version: str = "", ignore_not_found: bool = False
    ) -> Object | None: ...

    async def get_list(self, key: str, opts: ListOptions) -> ObjectList: ...

    async def guaranteed_update(
        self,
        key: str,
        update_fn: UpdateFunc,
        *,
        ignore_not_found: bool = False,
        preconditions: Preconditions | None = None,
        suggestion: Object | None = None,
    ) -> Object: ...

    async def delete(
        self,
        key: str,
        *,
        preconditions: Preconditions | None = None,
        validate: ValidateDeletion | None = None,
    ) -> Object: ...

    async def watch(self, key: str, opts: ListOptions) -> Watch: ...

    async def count(self, key: str) -> int: ...

    async def current_resource_version(self) -> int: ...

    async def request_watch_progress(self) -> bool: ...

    async def ready(self) -> bool: ...

    async def close(self) -> None: ...
