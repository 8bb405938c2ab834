"""The server the HTTP benches start: `tenantstore serve`'s application, plus static routes.

The same application (`create_app`, its middleware and router) runs under each server
being compared: uvicorn through `make_server` (the configuration `tenantstore serve`
uses, with the parser and loop asked for) or granian through `bench_app` as a factory.
A bench that compares a response against its floor first stores a body with
`PUT /__bench/static/<name>` and then reads it back with `GET`: a precomputed response
through the same server, middleware and router, without storage or encoding. The routes
exist only in this module, never in `tenantstore serve`.

    python -m tenantstore.bench.asgi_child --backend sqlite://x.db --port 8080 --http h11
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..server import ServerConfig, create_app, make_server

BACKEND_ENV = "TENANTSTORE_BENCH_BACKEND"
STATIC_PREFIX = "/__bench/static/"


def bench_app() -> Starlette:
    """The application over the backend `TENANTSTORE_BENCH_BACKEND` names (shared mode)."""
    app = create_app(ServerConfig(backend=os.environ[BACKEND_ENV], mode="shared"))
    bodies: dict[str, bytes] = {}

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if request.method == "PUT":
            bodies[name] = await request.body()
            return Response(status_code=204)
        body = bodies.get(name)
        if body is None:
            return Response(status_code=404)
        return Response(body, media_type="application/json")

    # Ahead of the catch-all API route, so it passes the same middleware and router.
    app.router.routes.insert(0, Route(STATIC_PREFIX + "{name}", static, methods=["GET", "PUT"]))
    return app


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tenantstore.bench.asgi_child")
    ap.add_argument("--backend", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--http", default="auto")
    ap.add_argument("--loop", default="auto")
    args = ap.parse_args(argv)
    os.environ[BACKEND_ENV] = args.backend
    server = make_server(
        bench_app(), "127.0.0.1", args.port, log_level="warning", http=args.http, loop=args.loop
    )
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
