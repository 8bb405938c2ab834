"""`dryRun=All`: every check of a write, and its answer, without the write.

The storage layers have no dry run (a `Storage` writes or fails), so the server wraps the
request's storage in `DryRunStorage`, as upstream's `DryRunnableStorage` wraps its
`storage.Interface`: reads pass through, and each write is replaced by a consistent read
of the current object plus the checks the write would make (preconditions, existence,
the update function itself). The handlers run unchanged above it, so validation, quota,
conflicts, name generation and namespace lifecycle fail exactly as a real write would.

The wrapper sits above the tenancy layer: every read it makes runs in the request's
project scope, like the write it stands for, so a dry run sees (and reveals) nothing a
real write would not.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import orjson
from starlette.requests import Request

from ..storage.errors import AlreadyExistsError, BadRequestError, InvalidError
from ..storage.interface import Object, Storage, UpdateFunc, ValidateDeletion
from ..storage.options import ListOptions, ObjectList, Preconditions, Stats
from ..storage.watch import Watch

__all__ = ["DRY_RUN_ALL", "DryRunStorage", "parse_dry_run", "parse_dry_run_values"]

DRY_RUN_ALL = "All"


def parse_dry_run(request: Request, options_kind: str) -> bool:
    """Whether the request's query asks for a dry run (see `parse_dry_run_values`)."""
    values = request.query_params.getlist("dryRun")
    return parse_dry_run_values(values, options_kind) if values else False


def parse_dry_run_values(values: Any, options_kind: str) -> bool:
    """Whether `values` (an options' `dryRun` list) ask for a dry run; 422 for any value
    but `All`, as upstream's `ValidateDryRun` refuses it (an `Invalid` on
    `<options_kind>.meta.k8s.io`, such as `CreateOptions`), so that a typo is never
    mistaken for a real write."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise BadRequestError(f"{options_kind}.dryRun must be a list of strings")
    if all(v == DRY_RUN_ALL for v in values):
        return bool(values)
    shown = orjson.dumps(values).decode()
    cause = f'Unsupported value: {shown}: supported values: "{DRY_RUN_ALL}"'
    raise InvalidError(
        f'{options_kind}.meta.k8s.io "" is invalid: dryRun: {cause}',
        details={
            "group": "meta.k8s.io",
            "kind": options_kind,
            "causes": [{"reason": "FieldValueNotSupported", "message": cause, "field": "dryRun"}],
        },
    )


class DryRunStorage:
    """A `Storage` whose writes only check and answer (see the module docstring).

    A dry-run create answers the object as it would be stored but without a
    `resourceVersion` (there is no write to take one from, as upstream answers); a
    dry-run update answers the new object at the current object's `resourceVersion`; a
    dry-run delete answers the current object.
    """

    __slots__ = ("inner",)

    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    # -- writes: checked, never made ---------------------------------------------------
    async def create(self, key: str, obj: Object, *, ttl: int | None = None) -> Object:
        if await self.inner.get(key, ignore_not_found=True) is not None:
            raise AlreadyExistsError("already exists", key=key)
        answer = copy.deepcopy(obj)
        meta = answer.get("metadata")
        if isinstance(meta, dict):
            meta.pop("resourceVersion", None)
        return answer

    async def guaranteed_update(
        self,
        key: str,
        update_fn: UpdateFunc,
        *,
        ignore_not_found: bool = False,
        preconditions: Preconditions | None = None,
        suggestion: Object | None = None,
    ) -> Object:
        current = await self.inner.get(key, ignore_not_found=ignore_not_found)
        if current is None:
            current = {}
        if preconditions is not None:
            preconditions.check(key, current)
        rv = (current.get("metadata") or {}).get("resourceVersion")
        result: Any = update_fn(copy.deepcopy(current))
        if inspect.isawaitable(result):
            result = await result
        new = result[0] if isinstance(result, tuple) else result
        if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
            raise InvalidError("the update produced an object without metadata", key=key)
        new = copy.deepcopy(new)
        if rv is not None:
            new["metadata"]["resourceVersion"] = rv
        return new

    async def delete(
        self,
        key: str,
        *,
        preconditions: Preconditions | None = None,
        validate: ValidateDeletion | None = None,
        ignore_store_read_error: bool = False,
    ) -> Object:
        current = await self.inner.get(key)
        assert current is not None
        if preconditions is not None:
            preconditions.check(key, current)
        if validate is not None:
            checked = validate(current)
            if inspect.isawaitable(checked):
                await checked
        return current

    # -- reads: the real storage's -----------------------------------------------------
    async def get(
        self, key: str, *, resource_version: str = "", ignore_not_found: bool = False
    ) -> Object | None:
        return await self.inner.get(
            key, resource_version=resource_version, ignore_not_found=ignore_not_found
        )

    async def get_list(self, key: str, opts: ListOptions) -> ObjectList:
        return await self.inner.get_list(key, opts)

    async def watch(self, key: str, opts: ListOptions) -> Watch:
        return await self.inner.watch(key, opts)

    async def count(self, key: str) -> int:
        return await self.inner.count(key)

    async def stats(self, key: str) -> Stats:
        return await self.inner.stats(key)

    async def current_resource_version(self) -> int:
        return await self.inner.current_resource_version()

    async def request_watch_progress(self) -> bool:
        return await self.inner.request_watch_progress()

    async def ready(self) -> bool:
        return await self.inner.ready()

    async def close(self) -> None:
        """Nothing: the wrapped storage belongs to the factory, not to one request."""
