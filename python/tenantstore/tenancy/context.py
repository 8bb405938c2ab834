"""The request's tenancy scope, carried in a context variable.

Every storage call below the server runs in exactly one scope:

* a **project scope**, entered with `with project_scope("p1"):` (or `async with`): keys are
  rewritten into `<prefix>/clusters/p1/`;
* the **root scope**, the default when nothing was entered: keys go to `<prefix>/root/`, and
  an ordinary root request sees only root objects;
* the **all-projects scope**, entered only explicitly with `with all_projects():` from the
  root scope: read-only (list, watch, count; not single-object gets), over every project's
  and root's objects of the resource. It exists for controllers and operators that must see
  the whole resource; nothing reaches it by accident, because it is never a default.

The scope is a `contextvars.ContextVar`, so it follows the request across `await`s
and into tasks created inside it (asyncio copies the context into a new task), and it never
leaks into concurrent requests.

Escalation is refused: inside a project scope one cannot enter another project, the root scope
or the all-projects scope (`ScopeError`). Project ids are validated (DNS-1123 label, by
the Rust core) when the scope object is created, so a bad id fails at the point of entry.
"""

from __future__ import annotations

import contextvars
from types import TracebackType
from typing import Final, final

from ..keys import validate_project_id

__all__ = [
    "ALL_PROJECTS",
    "AllProjects",
    "Scope",
    "ScopeError",
    "all_projects",
    "current_project",
    "current_scope",
    "in_all_projects",
    "project_scope",
]


@final
class AllProjects:
    """Marker of the all-projects scope (a singleton, `ALL_PROJECTS`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ALL_PROJECTS"


ALL_PROJECTS: Final = AllProjects()

#: A scope: a project id, None for root, or `ALL_PROJECTS`.
Scope = str | None | AllProjects

_SCOPE: contextvars.ContextVar[Scope] = contextvars.ContextVar("tenantstore_scope", default=None)


class ScopeError(RuntimeError):
    """An attempt to leave a project scope from inside it (another project, root, all)."""


def current_scope() -> Scope:
    """The scope of the running request: a project id, None (root) or ALL_PROJECTS."""
    return _SCOPE.get()


def current_project() -> str | None:
    """The current project id, or None in the root (and in the all-projects) scope."""
    scope = _SCOPE.get()
    return scope if isinstance(scope, str) else None


def in_all_projects() -> bool:
    """True inside `all_projects`."""
    return _SCOPE.get() is ALL_PROJECTS


class _ScopeManager:
    """A sync and async context manager that sets the scope; reusable and re-entrant."""

    __slots__ = ("_scope", "_tokens")

    def __init__(self, scope: Scope) -> None:
        self._scope = scope
        self._tokens: list[contextvars.Token[Scope]] = []

    @property
    def scope(self) -> Scope:
        return self._scope

    def _enter(self) -> None:
        outer = _SCOPE.get()
        if isinstance(outer, str) and outer != self._scope:
            raise ScopeError(
                f"cannot enter scope {_describe(self._scope)} inside project scope {outer!r}"
            )
        self._tokens.append(_SCOPE.set(self._scope))

    def _exit(self) -> None:
        _SCOPE.reset(self._tokens.pop())

    def __enter__(self) -> Scope:
        self._enter()
        return self._scope

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit()

    async def __aenter__(self) -> Scope:
        self._enter()
        return self._scope

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit()

    def __repr__(self) -> str:
        return f"<scope {_describe(self._scope)}>"


def _describe(scope: Scope) -> str:
    if scope is None:
        return "root"
    if isinstance(scope, AllProjects):
        return "all-projects"
    return repr(scope)


def project_scope(project: str | None) -> _ScopeManager:
    """Run the block in `project`'s scope (None: explicitly the root scope).

    Raises `tenantstore.keys.InvalidProjectError` for an id that is not a DNS-1123
    label (`""`, `"a/b"`, `".."`, `"P1"`...), and `ScopeError` on entry inside
    another project's scope.
    """
    if project is not None:
        if not isinstance(project, str):
            raise TypeError(f"project id must be a str, not {type(project).__name__}")
        validate_project_id(project)
    return _ScopeManager(project)


def all_projects() -> _ScopeManager:
    """Run the block in the read-only all-projects scope.

    Only list, watch and count of the whole resource work there; writes and single-object
    gets raise `BadRequestError`. Refused (`ScopeError`) inside a project scope.
    """
    return _ScopeManager(ALL_PROJECTS)
