"""Fixtures of the tenancy tests: a started shared factory over the real KV backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tenantstore.backends.kv import KV
from tenantstore.tenancy import SharedStorageFactory


def obj(name: str, ns: str | None = "ns", uid: str | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": uid or str(uuid.uuid4())}
    if ns is not None:
        meta["namespace"] = ns
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": dict(spec)}


@pytest.fixture
def prefix(key_prefix: str) -> str:
    return f"{key_prefix}/configmaps"


@pytest.fixture
async def factory(kv: KV, prefix: str) -> AsyncIterator[SharedStorageFactory]:
    f = SharedStorageFactory(kv, [prefix], bookmark_interval=0.2)
    await f.start()
    try:
        yield f
    finally:
        await f.stop()


async def wait_until(pred: Any, within: float = 10.0, interval: float = 0.02) -> None:
    """Poll ``pred()`` (sync or async) until true; fail after ``within`` seconds."""
    import asyncio
    import inspect

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        got = pred()
        if inspect.isawaitable(got):
            got = await got
        if got:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)
