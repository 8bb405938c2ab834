"""One size limit on every backend: a write too large for etcd is too large for SQLite
too, refused with 413 before it is sent (never a raw gRPC error, never a 500)."""

from __future__ import annotations

from typing import Any

import pytest

from tenantstore.backends.kv import DEFAULT_MAX_REQUEST_BYTES, REQUEST_OVERHEAD_BYTES
from tenantstore.storage import RequestEntityTooLargeError
from tenantstore.store import KVStorage


async def test_both_drivers_refuse_the_same_sizes(kv: Any, key_prefix: str) -> None:
    assert kv.max_request_bytes == DEFAULT_MAX_REQUEST_BYTES
    key = f"{key_prefix}/big"
    room = DEFAULT_MAX_REQUEST_BYTES - REQUEST_OVERHEAD_BYTES - len(key)
    with pytest.raises(RequestEntityTooLargeError) as err:
        await kv.create(key, b"x" * (room + 1))
    assert err.value.code == 413
    made = await kv.create(key, b"x" * room)  # the largest accepted write, stored
    assert made.succeeded
    with pytest.raises(RequestEntityTooLargeError):
        await kv.update(key, b"y" * (room + 1), expected_mod_revision=made.revision)
    current, _ = await kv.get(key)
    assert current is not None and current.value == b"x" * room


@pytest.mark.parametrize("size", [DEFAULT_MAX_REQUEST_BYTES, 2 * 1024 * 1024, 3 * 1024 * 1024])
async def test_the_store_refuses_an_object_too_large_for_the_backend(
    kv: Any, key_prefix: str, size: int
) -> None:
    store = KVStorage(kv, owns_kv=False)
    obj = {"metadata": {"name": "big", "namespace": "ns"}, "data": {"x": "x" * size}}
    with pytest.raises(RequestEntityTooLargeError) as err:
        await store.create(f"{key_prefix}/cm/ns/big", obj)
    assert "etcd" not in err.value.message and "StatusCode" not in err.value.message
    assert await store.get(f"{key_prefix}/cm/ns/big", ignore_not_found=True) is None
