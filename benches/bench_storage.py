"""tenantstore's storage layer vs bare aetcd on the same etcd, SQLite beside (pytest-benchmark).

Run::

    pytest benches/bench_storage.py --benchmark-only -o timeout=0 --benchmark-group-by=group \
        --benchmark-columns=min,median,mean,rounds

One etcd (tests/etcd_server.py, Debian's etcd 3.4, data dir on the local disk, so every
write is fsynced) serves every etcd side in the same run. Each ``benchmark.group`` is one
operation on a Kubernetes-shaped ConfigMap of ~500 bytes of JSON:

- ``storage: create``: a new key each round.
- ``storage: get``: one key, consistent read (resourceVersion "").
- ``storage: update``: a small change each round (a counter in ``data``).
- ``storage: list 1,000``: a recursive list of a prefix holding 1,000 objects, no limit.

Sides:

- ``tenantstore-etcd``: ``KVStorage(await EtcdKV.connect(endpoint))`` (create,
  get, guaranteed_update, get_list).
- ``bare-aetcd``: the same operation through ``aetcd.Client``'s public API, done as
  directly as it allows: create = ``transaction(create(key) == 0 -> put)`` with orjson
  bytes; get = ``get`` + ``orjson.loads``; update = ``get`` + loads + change + dumps +
  ``transaction(mod(key) == rev -> put)`` (the minimum a guaranteed update costs: a read
  and a compare-and-swap); list = ``get_prefix`` + ``orjson.loads`` of each raw value.
- ``bare-stubs``: the same operations on aetcd's generated gRPC stubs (``aetcd.rpc``,
  what EtcdKV itself calls), skipping the Client's wrappers: the floor for any client
  written in Python on grpc.aio.
- ``tenantstore-sqlite``: the tenantstore operations over ``SqliteKV`` on a temp file
  (WAL, ``synchronous=FULL``: every create and update commits with an fsync).

Every side uses one client / channel of its own. Async calls run on one event loop per
module with ``loop.run_until_complete`` inside ``benchmark.pedantic``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import aetcd
import orjson
import pytest
from aetcd import rpc

from tenantstore.backends.etcd import EtcdKV
from tenantstore.backends.sqlite import SqliteKV
from tenantstore.storage import ListOptions
from tenantstore.store import KVStorage

PREFIX = "/registry/configmaps/bench"
LIST_KEY = f"{PREFIX}/list"
LIST_SIZE = 1_000
GET_KEY = f"{PREFIX}/get/cm-get"
# Rounds per benchmark (pedantic, one call per round), after WARMUP rounds.
ROUNDS = {"create": 1500, "get": 3000, "update": 1000, "list": 250}
WARMUP = {"create": 50, "get": 100, "update": 50, "list": 10}


def configmap(name: str) -> dict[str, Any]:
    """A ConfigMap of ~500 bytes of JSON, without a resourceVersion."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": "bench",
            "uid": "6f1c9a52-3f0e-4c8e-9d59-2d1f4b2a7c10",
            "labels": {"app": "bench", "tier": "storage"},
            "annotations": {"bench.tenantstore.io/owner": "benches/bench_storage.py"},
            "creationTimestamp": "2026-11-25T12:00:00Z",
        },
        "data": {"counter": "0", "payload": "x" * 220},
    }


Run = Callable[[], Coroutine[Any, Any, object]]


def _bench(benchmark: Any, loop: asyncio.AbstractEventLoop, op: str, side: str, run: Run) -> None:
    benchmark.group = f"storage: {'list 1,000' if op == 'list' else op}"
    benchmark.extra_info["side"] = side
    benchmark.pedantic(
        lambda: loop.run_until_complete(run()),
        rounds=ROUNDS[op],
        iterations=1,
        warmup_rounds=WARMUP[op],
    )


# --------------------------------------------------------------------------------------------
# Fixtures: one loop, one client per side, data written once per module
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    try:
        yield lp
    finally:
        lp.run_until_complete(lp.shutdown_asyncgens())
        lp.close()


async def _fill(store: KVStorage) -> None:
    """1,000 ConfigMaps under LIST_KEY and the key the get benches read."""
    names = [f"cm-{i:04}" for i in range(LIST_SIZE)]
    for i in range(0, LIST_SIZE, 100):  # batches, so etcd/SQLite group the fsyncs
        await asyncio.gather(
            *(store.create(f"{LIST_KEY}/{n}", configmap(n)) for n in names[i : i + 100])
        )
    await store.create(GET_KEY, configmap("cm-get"))


@pytest.fixture(scope="module")
def ts_etcd(loop: asyncio.AbstractEventLoop, etcd_server: Any) -> Iterator[KVStorage]:
    store = loop.run_until_complete(_connect_etcd(etcd_server.endpoint))
    loop.run_until_complete(_fill(store))
    try:
        yield store
    finally:
        loop.run_until_complete(store.close())


async def _connect_etcd(endpoint: str) -> KVStorage:
    return KVStorage(await EtcdKV.connect(endpoint))


@pytest.fixture(scope="module")
def bare(
    loop: asyncio.AbstractEventLoop, etcd_server: Any, ts_etcd: KVStorage
) -> Iterator[aetcd.Client]:
    """aetcd's Client on its own channel (ts_etcd wrote the shared data first)."""
    client = aetcd.Client(host="127.0.0.1", port=etcd_server.client_port)
    loop.run_until_complete(client.connect())
    try:
        yield client
    finally:
        loop.run_until_complete(client.close())


class Stubs:
    def __init__(self, endpoint: str) -> None:
        self.channel = rpc.insecure_channel(endpoint)
        self.kv = rpc.KVStub(self.channel)


@pytest.fixture(scope="module")
def stubs(loop: asyncio.AbstractEventLoop, etcd_server: Any, ts_etcd: KVStorage) -> Iterator[Stubs]:
    async def make() -> Stubs:
        s = Stubs(etcd_server.endpoint)
        await s.kv.Range(rpc.RangeRequest(key=b"\x00", count_only=True), wait_for_ready=True)
        return s

    s = loop.run_until_complete(make())
    try:
        yield s
    finally:
        loop.run_until_complete(s.channel.close())


@pytest.fixture(scope="module")
def ts_sqlite(
    loop: asyncio.AbstractEventLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KVStorage]:
    path: Path = tmp_path_factory.mktemp("bench-sqlite") / "store.db"

    async def make() -> KVStorage:
        return KVStorage(await SqliteKV.open(str(path)))

    store = loop.run_until_complete(make())
    loop.run_until_complete(_fill(store))
    try:
        yield store
    finally:
        loop.run_until_complete(store.close())


# --------------------------------------------------------------------------------------------
# The operations
# --------------------------------------------------------------------------------------------


def ts_create(store: KVStorage, where: str) -> Run:
    counter = itertools.count()

    async def run() -> object:
        name = f"cm-{next(counter):06}"
        return await store.create(f"{PREFIX}/{where}/{name}", configmap(name))

    return run


def ts_get(store: KVStorage) -> Run:
    async def run() -> object:
        return await store.get(GET_KEY, resource_version="")

    return run


def ts_update(store: KVStorage, key: str) -> Run:
    counter = itertools.count(1)

    def change(obj: dict[str, Any]) -> dict[str, Any]:
        obj["data"]["counter"] = str(next(counter))
        return obj

    async def run() -> object:
        return await store.guaranteed_update(key, change)

    return run


def ts_list(store: KVStorage) -> Run:
    opts = ListOptions(recursive=True)

    async def run() -> object:
        out = await store.get_list(LIST_KEY, opts)
        assert len(out.items) == LIST_SIZE
        return out

    return run


def bare_create(client: aetcd.Client) -> Run:
    counter = itertools.count()
    tx = client.transactions

    async def run() -> object:
        name = f"cm-{next(counter):06}"
        key = f"{PREFIX}/bare-create/{name}".encode()
        ok, _ = await client.transaction(
            compare=[tx.create(key) == 0],
            success=[tx.put(key, orjson.dumps(configmap(name)))],
            failure=[],
        )
        assert ok
        return ok

    return run


def bare_get(client: aetcd.Client) -> Run:
    key = GET_KEY.encode()

    async def run() -> object:
        got = await client.get(key)
        return orjson.loads(got.value)

    return run


def bare_update(client: aetcd.Client, key_str: str) -> Run:
    counter = itertools.count(1)
    tx = client.transactions
    key = key_str.encode()

    async def run() -> object:
        got = await client.get(key)
        obj = orjson.loads(got.value)
        obj["data"]["counter"] = str(next(counter))
        ok, _ = await client.transaction(
            compare=[tx.mod(key) == got.mod_revision],
            success=[tx.put(key, orjson.dumps(obj))],
            failure=[],
        )
        assert ok
        return obj

    return run


def bare_list(client: aetcd.Client) -> Run:
    prefix = (LIST_KEY + "/").encode()
    loads = orjson.loads

    async def run() -> object:
        got = await client.get_prefix(prefix)
        items = [loads(kv.value) for kv in got.kvs]
        assert len(items) == LIST_SIZE
        return items

    return run


def _create_txn(key: bytes, value: bytes) -> Any:
    return rpc.TxnRequest(
        compare=[
            rpc.Compare(
                key=key,
                target=rpc.Compare.CompareTarget.CREATE,
                result=rpc.Compare.CompareResult.EQUAL,
                create_revision=0,
            )
        ],
        success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value))],
    )


def stubs_create(s: Stubs) -> Run:
    counter = itertools.count()

    async def run() -> object:
        name = f"cm-{next(counter):06}"
        key = f"{PREFIX}/stubs-create/{name}".encode()
        resp = await s.kv.Txn(_create_txn(key, orjson.dumps(configmap(name))))
        assert resp.succeeded
        return resp

    return run


def stubs_get(s: Stubs) -> Run:
    key = GET_KEY.encode()

    async def run() -> object:
        resp = await s.kv.Range(rpc.RangeRequest(key=key))
        return orjson.loads(resp.kvs[0].value)

    return run


def stubs_update(s: Stubs, key_str: str) -> Run:
    counter = itertools.count(1)
    key = key_str.encode()

    async def run() -> object:
        resp = await s.kv.Range(rpc.RangeRequest(key=key))
        kv = resp.kvs[0]
        obj = orjson.loads(kv.value)
        obj["data"]["counter"] = str(next(counter))
        txn = await s.kv.Txn(
            rpc.TxnRequest(
                compare=[
                    rpc.Compare(
                        key=key,
                        target=rpc.Compare.CompareTarget.MOD,
                        result=rpc.Compare.CompareResult.EQUAL,
                        mod_revision=kv.mod_revision,
                    )
                ],
                success=[
                    rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=orjson.dumps(obj)))
                ],
            )
        )
        assert txn.succeeded
        return obj

    return run


def stubs_list(s: Stubs) -> Run:
    prefix = (LIST_KEY + "/").encode()
    req = rpc.RangeRequest(key=prefix, range_end=prefix[:-1] + b"0")  # "/" + 1 == "0"
    loads = orjson.loads

    async def run() -> object:
        resp = await s.kv.Range(req)
        items = [loads(kv.value) for kv in resp.kvs]
        assert len(items) == LIST_SIZE
        return items

    return run


def _update_key(loop: asyncio.AbstractEventLoop, store: KVStorage, side: str) -> str:
    key = f"{PREFIX}/update/cm-{side}"
    loop.run_until_complete(store.create(key, configmap(f"cm-{side}")))
    return key


# --------------------------------------------------------------------------------------------
# Benchmarks, grouped by operation (sides of one operation run back to back)
# --------------------------------------------------------------------------------------------


def test_create_tenantstore_etcd(benchmark: Any, loop: Any, ts_etcd: KVStorage) -> None:
    _bench(benchmark, loop, "create", "tenantstore-etcd", ts_create(ts_etcd, "ts-create"))


def test_create_bare_aetcd(benchmark: Any, loop: Any, bare: aetcd.Client) -> None:
    _bench(benchmark, loop, "create", "bare-aetcd", bare_create(bare))


def test_create_bare_stubs(benchmark: Any, loop: Any, stubs: Stubs) -> None:
    _bench(benchmark, loop, "create", "bare-stubs", stubs_create(stubs))


def test_create_tenantstore_sqlite(benchmark: Any, loop: Any, ts_sqlite: KVStorage) -> None:
    _bench(benchmark, loop, "create", "tenantstore-sqlite", ts_create(ts_sqlite, "ts-create"))


def test_get_tenantstore_etcd(benchmark: Any, loop: Any, ts_etcd: KVStorage) -> None:
    _bench(benchmark, loop, "get", "tenantstore-etcd", ts_get(ts_etcd))


def test_get_bare_aetcd(benchmark: Any, loop: Any, bare: aetcd.Client) -> None:
    _bench(benchmark, loop, "get", "bare-aetcd", bare_get(bare))


def test_get_bare_stubs(benchmark: Any, loop: Any, stubs: Stubs) -> None:
    _bench(benchmark, loop, "get", "bare-stubs", stubs_get(stubs))


def test_get_tenantstore_sqlite(benchmark: Any, loop: Any, ts_sqlite: KVStorage) -> None:
    _bench(benchmark, loop, "get", "tenantstore-sqlite", ts_get(ts_sqlite))


def test_update_tenantstore_etcd(benchmark: Any, loop: Any, ts_etcd: KVStorage) -> None:
    key = _update_key(loop, ts_etcd, "ts")
    _bench(benchmark, loop, "update", "tenantstore-etcd", ts_update(ts_etcd, key))


def test_update_bare_aetcd(
    benchmark: Any, loop: Any, ts_etcd: KVStorage, bare: aetcd.Client
) -> None:
    key = _update_key(loop, ts_etcd, "bare")
    _bench(benchmark, loop, "update", "bare-aetcd", bare_update(bare, key))


def test_update_bare_stubs(benchmark: Any, loop: Any, ts_etcd: KVStorage, stubs: Stubs) -> None:
    key = _update_key(loop, ts_etcd, "stubs")
    _bench(benchmark, loop, "update", "bare-stubs", stubs_update(stubs, key))


def test_update_tenantstore_sqlite(benchmark: Any, loop: Any, ts_sqlite: KVStorage) -> None:
    key = _update_key(loop, ts_sqlite, "ts")
    _bench(benchmark, loop, "update", "tenantstore-sqlite", ts_update(ts_sqlite, key))


def test_list_tenantstore_etcd(benchmark: Any, loop: Any, ts_etcd: KVStorage) -> None:
    _bench(benchmark, loop, "list", "tenantstore-etcd", ts_list(ts_etcd))


def test_list_bare_aetcd(benchmark: Any, loop: Any, bare: aetcd.Client) -> None:
    _bench(benchmark, loop, "list", "bare-aetcd", bare_list(bare))


def test_list_bare_stubs(benchmark: Any, loop: Any, stubs: Stubs) -> None:
    _bench(benchmark, loop, "list", "bare-stubs", stubs_list(stubs))


def test_list_tenantstore_sqlite(benchmark: Any, loop: Any, ts_sqlite: KVStorage) -> None:
    _bench(benchmark, loop, "list", "tenantstore-sqlite", ts_list(ts_sqlite))
