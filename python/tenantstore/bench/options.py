"""The parameters and CLI flags of a load run (`tenantstore bench load`).

Apart from `load` because the `tenantstore` command wires these flags into its parser for
every invocation, `serve` included: this module must import without the `bench` extra
(no `httpx`), while `load` itself needs it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

__all__ = ["OPS", "LoadConfig", "add_arguments", "config_from_args"]

OPS = ("get", "list", "create", "update", "delete")


@dataclass
class LoadConfig:
    """One load run (the parameters are described in `tenantstore.bench.load`)."""

    backend: str = "sqlite"
    url: str | None = None
    mode: str = "shared"
    processes: int = 4
    requests: int = 2500
    concurrency: int = 16
    projects: int = 1000
    watches: int = 8
    seed: int = 1
    mix: tuple[int, int, int, int, int] = (30, 20, 20, 20, 10)
    watch_settle_seconds: float = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `load.main` (for wiring into the `tenantstore` CLI)."""
    d = LoadConfig()
    parser.add_argument("--backend", default=d.backend, help="sqlite, etcd, or a backend URL")
    parser.add_argument("--url", default=None, help="load this running server instead")
    parser.add_argument("--mode", choices=["shared", "per-project"], default=d.mode)
    parser.add_argument("--processes", type=int, default=d.processes)
    parser.add_argument("--requests", type=int, default=d.requests, help="per process")
    parser.add_argument("--concurrency", type=int, default=d.concurrency, help="per process")
    parser.add_argument("--projects", type=int, default=d.projects)
    parser.add_argument("--watches", type=int, default=d.watches, help="per process")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument(
        "--mix", default=",".join(map(str, d.mix)), help="get,list,create,update,delete weights"
    )
    parser.add_argument("--out", default=None, help="write the result as JSON to this file")


def config_from_args(args: argparse.Namespace) -> LoadConfig:
    mix = tuple(int(x) for x in str(args.mix).split(","))
    if len(mix) != len(OPS):
        raise SystemExit(f"--mix needs {len(OPS)} weights ({','.join(OPS)})")
    return LoadConfig(
        backend=args.backend,
        url=args.url,
        mode=args.mode,
        processes=args.processes,
        requests=args.requests,
        concurrency=args.concurrency,
        projects=args.projects,
        watches=args.watches,
        seed=args.seed,
        mix=(mix[0], mix[1], mix[2], mix[3], mix[4]),
    )
