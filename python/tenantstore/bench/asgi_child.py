"""The server the HTTP benches start: `tenantstore serve`'s application, plus static routes.

The same application (`create_app`, its middleware and router) runs under each server
being compared: uvicorn through `make_server` (the configuration `tenantstore serve`
uses, with the parser and loop asked for) or granian through `bench_app` as a factory.
A bench that compares a response against its floor first stores a body with
`PUT /__bench/static/<name>` and then reads it back with `GET`: a precomputed response
through the same server and ASGI entry point, without storage or encoding. The paths
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
from starlette.types import Receive, Scope, Send

from ..server import ServerConfig, create_app, make_server

BACKEND_ENV = "TENANTSTORE_BENCH_BACKEND"
STATIC_PREFIX = "/__bench/static/"


def bench_app() -> Starlette:
    """The application over the backend `TENANTSTORE_BENCH_BACKEND` names (shared mode)."""
    app = create_app(ServerConfig(backend=os.environ[BACKEND_ENV], mode="shared"))
    bodies: dict[str, bytes] = {}

    async def static(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        name = scope["path"][len(STATIC_PREFIX) :]
        if request.method == "PUT":
            bodies[name] = await request.body()
            response = Response(status_code=204)
        elif (body := bodies.get(name)) is not None:
            response = Response(body, media_type="application/json")
        else:
            response = Response(status_code=404)
        await response(scope, receive, send)

    base: type[Starlette] = type(app)

    class WithStatic(base):  # type: ignore[valid-type,misc]
        """The application, answering the static paths first at its ASGI entry point:
        every request reaches `Api.handle` straight from there, so that is where a
        static floor must branch off to share the rest of the server's path."""

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"].startswith(STATIC_PREFIX):
                await static(scope, receive, send)
                return
            await super().__call__(scope, receive, send)

    app.__class__ = WithStatic
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
