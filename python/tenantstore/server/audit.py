"""The audit log: one JSON line per request, as kube-apiserver's `--audit-log-path`.

Each line says who (user, groups; an empty user for a request that failed to
authenticate), where (project or root), what (verb, resource, namespace, name), the
outcome (response code) and how long it took (for a watch: until the stream started).
Bodies are never logged: objects are tenants' data. The file rotates by size (`maxsize` MiB, keeping
`maxbackup` old files, as kube-apiserver's flags of the same names); `-` writes to stdout.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from dataclasses import dataclass

import orjson

__all__ = ["AuditEvent", "AuditLog"]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    user: str
    groups: tuple[str, ...]
    project: str | None
    verb: str
    resource: str
    namespace: str | None
    name: str
    path: str
    code: int
    latency: float


class AuditLog:
    """Writes `AuditEvent`s as JSON lines; safe to call from the event loop (one
    buffered `write` per event; rotation happens inside the handler)."""

    def __init__(self, target: str, *, maxsize_mib: int = 100, maxbackup: int = 10) -> None:
        self.target = target
        handler: logging.Handler
        if target == "-":
            handler = logging.StreamHandler(sys.stdout)
        else:
            handler = logging.handlers.RotatingFileHandler(
                target,
                maxBytes=maxsize_mib * 1024 * 1024 if maxsize_mib > 0 else 0,
                backupCount=maxbackup,
                encoding="utf-8",
            )
        handler.setFormatter(logging.Formatter("%(message)s"))
        # A private logger: audit lines never reach the server's log, nor it theirs.
        self._logger = logging.Logger(f"tenantstore.audit:{target}")
        self._logger.addHandler(handler)
        self._logger.propagate = False
        self._handler = handler

    def record(self, event: AuditEvent) -> None:
        now = time.time()
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now * 1e6) % 1_000_000:06d}Z",
            "user": event.user,
            "groups": list(event.groups),
            "project": event.project,
            "scope": "root" if event.project is None else "project",
            "verb": event.verb,
            "resource": event.resource,
            "namespace": event.namespace,
            "name": event.name,
            "path": event.path,
            "code": event.code,
            "latencySeconds": round(event.latency, 6),
        }
        self._logger.info(orjson.dumps(line).decode())

    def close(self) -> None:
        self._handler.close()
