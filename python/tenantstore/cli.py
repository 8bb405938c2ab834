"""The `tenantstore` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import Sequence

from .storage import ListOptions

DEFAULT_DB = os.path.join("tenantstore-data", "tenantstore.db")
CONFIGMAPS = "/registry/configmaps"


def _configmap(name: str, namespace: str, **data: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())},
        "data": data,
    }


async def demo(path: str) -> int:
    """Three scopes over one shared cache on the embedded backend: each sees only its own."""
    from .tenancy import SharedStorageFactory, all_projects, project_scope
    from .tenancy.factory import open_kv

    kv = await open_kv("sqlite://" + path)
    factory = SharedStorageFactory(kv, [CONFIGMAPS])
    await factory.start()
    store = factory.storage(CONFIGMAPS)
    run = uuid.uuid4().hex[:6]
    try:
        for scope in ("alpha", "beta", None):
            label = scope or "root"
            name = f"settings-{run}"
            obj = _configmap(name, "default", owner=label)
            if scope is None:
                await store.create(f"{CONFIGMAPS}/default/{name}", obj)
            else:
                with project_scope(scope):
                    await store.create(f"{CONFIGMAPS}/default/{name}", obj)
        for scope in ("alpha", "beta", None):
            opts = ListOptions(recursive=True)
            if scope is None:
                listed = await store.get_list(CONFIGMAPS, opts)
            else:
                with project_scope(scope):
                    listed = await store.get_list(CONFIGMAPS, opts)
            owners = sorted({o["data"]["owner"] for o in listed.items})
            print(f"{scope or 'root':>6}: {len(listed.items)} configmaps, owners {owners}")
        with all_projects():
            everything = await store.get_list(CONFIGMAPS, ListOptions(recursive=True))
        print(f"   all: {len(everything.items)} configmaps across every scope (all_projects())")
        print(f"one shared cache, one backend watch; data in {path}")
    finally:
        await factory.stop()
        await kv.close()
    return 0


def serve(args: argparse.Namespace) -> int:
    """Run the Kubernetes-style API server until SIGTERM/SIGINT; 0 on a clean shutdown."""
    from .server import ServerConfig, create_app, make_server
    from .server.registry import RegistryError, ResourceRegistry

    try:
        registry = ResourceRegistry.with_builtins(args.resources)
    except (OSError, RegistryError) as exc:
        print(f"tenantstore serve: {exc}", file=sys.stderr)
        return 2
    config = ServerConfig(
        backend=args.backend,
        mode=args.mode,
        resources_file=args.resources,
        max_body_bytes=args.max_body_bytes,
        read_timeout=args.request_read_timeout,
    )
    server = make_server(
        create_app(config, registry),
        args.host,
        args.port,
        log_level=args.log_level,
        access_log=args.access_log,
    )
    server.run()
    return 0 if server.started else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tenantstore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="write and list in three scopes on embedded SQLite")
    p_demo.add_argument("--db", default=DEFAULT_DB, help="SQLite file (default: %(default)s)")
    p_serve = sub.add_parser(
        "serve",
        help="serve a Kubernetes-style API; projects at /projects/<p>/control-plane/",
        description="Serve a Kubernetes-style REST API over tenantstore. Paths under "
        "/projects/<project>/control-plane/ are confined to that project; others are root.",
    )
    p_serve.add_argument(
        "--backend",
        default="sqlite://" + DEFAULT_DB,
        help="sqlite://PATH (sqlite:///abs/path) or etcd://HOST:PORT (default: %(default)s)",
    )
    p_serve.add_argument("--mode", choices=["shared", "per-project"], default="shared")
    p_serve.add_argument("--resources", help="YAML/JSON file declaring custom resources")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p_serve.add_argument(
        "--max-body-bytes", type=int, default=3 * 1024 * 1024, help="request size limit"
    )
    p_serve.add_argument(
        "--request-read-timeout",
        type=float,
        default=30.0,
        help="seconds a client has to send a request's headers, and then its body "
        "(default: %(default)s)",
    )
    p_serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    p_serve.add_argument("--access-log", action="store_true", help="log every request")
    p_bench = sub.add_parser("bench", help="measurements")
    bench_sub = p_bench.add_subparsers(dest="bench", required=True)
    p_scale = bench_sub.add_parser(
        "scale",
        help="what each project costs the server, shared vs per-project",
        description="Start the server alone in a process, bootstrap N projects (a few "
        "objects, a LIST of every resource type, one open WATCH each) and report "
        "(after - before) / N for memory, threads, tasks and backend watches.",
    )
    p_scale.add_argument(
        "--projects", default="20", help="N, or a series such as 10,100,1000 (default 20)"
    )
    p_scale.add_argument(
        "--resources", type=int, default=20, help="custom resource types (default 20)"
    )
    p_scale.add_argument("--mode", choices=["shared", "per-project", "both"], default="both")
    p_scale.add_argument(
        "--backend",
        default="etcd",
        help="etcd (start one, default), sqlite (a temp file), or etcd://HOST:PORT",
    )
    p_scale.add_argument("--concurrency", type=int, default=24, help="concurrent clients")
    p_scale.add_argument(
        "--per-project-max",
        type=int,
        help="skip per-project runs above this N (that mode needs a backend watch per "
        "project and resource)",
    )
    p_scale.add_argument("--settle-interval", type=float, default=2.0, help="seconds")
    p_scale.add_argument("--out", help="directory for scale.json, scale.txt and PNG plots")
    p_scale.add_argument("--quiet", action="store_true", help="no progress bar")
    p_load = bench_sub.add_parser(
        "load",
        help="a bounded mixed load from several client processes",
        description="Mixed reads, writes and watches across many projects from several "
        "client processes against a server on loopback; stops by itself and reports "
        "throughput, latency percentiles and errors.",
    )
    from .bench.options import add_arguments as add_load_arguments

    add_load_arguments(p_load)
    args = parser.parse_args(argv)
    if args.command == "bench":
        from .bench import EXTRA, missing_extra

        missing = missing_extra()
        if missing:
            print(
                f"tenantstore bench needs the '{EXTRA}' extra: "
                f"pip install 'tenantstore[{EXTRA}]' (missing: {', '.join(missing)})",
                file=sys.stderr,
            )
            return 2
        if args.bench == "load":
            from .bench.load import main as load_main

            return load_main(args)
        from .bench.scale import main as scale_main

        return scale_main(args)
    if args.command == "demo":
        return asyncio.run(demo(args.db))
    if args.command == "serve":
        return serve(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
