"""Who is calling, and may they: authentication and per-project authorization.

A multi-tenant server without a door makes isolation a convention; this is the door, with
the project as the unit of access, in Kubernetes' terms:

* an **authenticator** turns a request into a `User` (name, uid, groups) or None. The
  built-in one reads kube-apiserver's static token file (`--token-auth-file`: CSV lines
  `token,user,uid,"group1,group2"`, clients send `Authorization: Bearer <token>`),
  reloaded on SIGHUP. An embedder passes any callable of the same shape;
* an **authorizer** decides each resource request from `(user, project, verb, resource,
  namespace, name)`; `project` is None for the root scope. The built-in rule: a user may
  use project `p` when one of its groups is `project:<p>`; `system:masters` may use every
  project and the root scope. An embedder passes any callable of the same shape.

Failures are deliberately uninformative: every unauthenticated request gets the same 401
whatever its path, and a 403 names only what the caller typed, so neither reveals
whether a project or an object exists. Authorization is checked when a request starts:
a watch keeps running if its token is later removed from the file, as in Kubernetes.
"""

from __future__ import annotations

import csv
import inspect
import io
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from starlette.requests import Request

from ..storage.errors import StorageError

__all__ = [
    "MASTERS",
    "PROJECT_GROUP_PREFIX",
    "Authenticator",
    "Authorizer",
    "ForbiddenError",
    "TokenFile",
    "TokenFileError",
    "UnauthorizedError",
    "User",
    "authenticate",
    "authorize",
    "project_authorizer",
    "read_token_file",
]

log = logging.getLogger("tenantstore.server.auth")

T = TypeVar("T")

MASTERS = "system:masters"
PROJECT_GROUP_PREFIX = "project:"


@dataclass(frozen=True, slots=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()


ANONYMOUS = User("system:anonymous", "", ("system:unauthenticated", MASTERS))

# authenticator(request) -> the user, or None when the request carries no valid
# credentials. May be a coroutine function.
Authenticator = Callable[[Request], "User | Awaitable[User | None] | None"]
# authorizer(user, project or None for root, verb, resource, namespace, name) -> allowed.
# May be a coroutine function.
Authorizer = Callable[[User, "str | None", str, str, "str | None", str], "bool | Awaitable[bool]"]


class UnauthorizedError(StorageError):
    code = 401
    reason = "Unauthorized"


class ForbiddenError(StorageError):
    code = 403
    reason = "Forbidden"


class TokenFileError(ValueError):
    """A token file that cannot be read or parsed (the message names file and line)."""


def _parse_tokens(text: str, path: str) -> dict[str, User]:
    users: dict[str, User] = {}
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or (len(row) == 1 and not row[0].strip()) or row[0].startswith("#"):
            continue
        if len(row) < 3:
            raise TokenFileError(
                f'{path}:{lineno}: want token,user,uid[,"group1,group2"], got {len(row)} fields'
            )
        token, name, uid = (f.strip() for f in row[:3])
        if not token or not name:
            raise TokenFileError(f"{path}:{lineno}: the token and the user name are required")
        if token in users:
            raise TokenFileError(f"{path}:{lineno}: a token is listed twice")
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        users[token] = User(name, uid, groups)
    return users


def read_token_file(path: str | os.PathLike[str]) -> dict[str, User]:
    """Token -> user, in file order, from a static token file; `TokenFileError` (one line
    naming the file, and the line at fault) for a file that cannot be read or parsed.
    Public so that tools that hand tokens out (`tenantstore kubeconfig`) read the file
    exactly as the server does."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise TokenFileError(f"cannot read token file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TokenFileError(f"token file {path} is not UTF-8") from None
    return _parse_tokens(text, path)


class TokenFile:
    """kube-apiserver's static token file, as an authenticator; `reload()` re-reads it
    (the server calls it on SIGHUP; a file that no longer parses keeps the old tokens)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._users = self._read()

    def _read(self) -> dict[str, User]:
        return read_token_file(self.path)

    def reload(self) -> bool:
        """Re-read the file; False (and the old tokens kept) if it cannot be read."""
        try:
            users = self._read()
        except TokenFileError as exc:
            log.error("token file not reloaded, the previous tokens stay in force: %s", exc)
            return False
        with self._lock:
            self._users = users
        log.warning("token file %s reloaded: %d tokens", self.path, len(users))
        return True

    def __len__(self) -> int:
        return len(self._users)

    def __call__(self, request: Request) -> User | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        with self._lock:
            return self._users.get(token.strip())


def project_authorizer(masters: str = MASTERS, prefix: str = PROJECT_GROUP_PREFIX) -> Authorizer:
    """The built-in rule: group `project:<p>` may use project `p`; `system:masters` may
    use every project and the root scope."""

    def allowed(
        user: User,
        project: str | None,
        verb: str,
        resource: str,
        namespace: str | None,
        name: str,
    ) -> bool:
        if masters in user.groups:
            return True
        return project is not None and f"{prefix}{project}" in user.groups

    return allowed


async def _resolve(value: T | Awaitable[T]) -> T:
    if inspect.isawaitable(value):
        return await value
    return value


async def authenticate(authenticator: Authenticator | None, request: Request) -> User:
    """The caller, or `UnauthorizedError`; anonymous (a master) with no authenticator."""
    if authenticator is None:
        return ANONYMOUS
    user = await _resolve(authenticator(request))
    if user is None:
        raise UnauthorizedError("Unauthorized")
    return user


async def authorize(
    authorizer: Authorizer,
    user: User,
    project: str | None,
    verb: str,
    resource: str,
    namespace: str | None,
    name: str,
) -> None:
    """`ForbiddenError` unless allowed, with Kubernetes' message naming only what the
    caller asked for: the same bytes whether or not the project or object exists."""
    if await _resolve(authorizer(user, project, verb, resource, namespace, name)):
        return
    scope = f'project "{project}"' if project is not None else "the root scope"
    where = f' in the namespace "{namespace}"' if namespace else ""
    what = f'resource "{resource}"' if resource else "this path"
    raise ForbiddenError(f'User "{user.name}" cannot {verb.lower()} {what}{where} in {scope}')
