"""etcd-specific behaviour of `EtcdKV` against a real etcd (the shared contract is in
test_kv_contract.py).

Tests that restart, kill or compact etcd use a private server (`own_etcd`) so the
session's server stays pristine for everyone else. All waits are bounded; nothing
asserts on timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tenantstore.backends.etcd import EtcdKV, map_rpc_error, open_watch_count
from tenantstore.backends.kv import CompactedError, KVEvent, KVEventType, KVWatch, prefix_end
from tenantstore.storage.errors import TooLargeResourceVersionError, UnavailableError
from tests.etcd_server import EtcdCluster, EtcdServer, etcd_watcher_total, free_ports

pytestmark = pytest.mark.etcd

WAIT = 15.0  # generous bound for anything etcd does "soon" (progress interval is 1 s)


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path / "own-etcd")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def ekv(etcd_server: EtcdServer) -> AsyncIterator[EtcdKV]:
    kv = await EtcdKV.connect(etcd_server.endpoint)
    try:
        yield kv
    finally:
        await kv.close()


async def next_event(it: AsyncIterator[KVEvent], within: float = WAIT) -> KVEvent:
    return await asyncio.wait_for(anext(it), within)


async def next_change(it: AsyncIterator[KVEvent], within: float = WAIT) -> KVEvent:
    """The next PUT/DELETE, skipping progress notifications."""
    async with asyncio.timeout(within):
        while True:
            ev = await anext(it)
            if ev.type is not KVEventType.PROGRESS:
                return ev


async def until(
    cond: Callable[[], Awaitable[bool]], within: float = WAIT, interval: float = 0.05
) -> None:
    """Poll `cond` until it holds; fails after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            if await cond():
                return
            await asyncio.sleep(interval)


async def connect_when_ready(endpoint: str) -> EtcdKV:
    async with asyncio.timeout(WAIT):
        while True:
            try:
                return await EtcdKV.connect(endpoint, timeout=2.0)
            except UnavailableError:
                await asyncio.sleep(0.1)


# ---------------------------------------------------------------------------------------
# basics specific to the etcd mapping


async def test_from_url_and_empty_start(etcd_server: EtcdServer, key_prefix: str) -> None:
    kv = await EtcdKV.from_url(f"etcd://{etcd_server.endpoint}")
    try:
        assert kv.endpoint == etcd_server.endpoint
        await kv.create(f"{key_prefix}/a", b"1")
        # An empty start key means "from the first key" (etcd itself rejects b"").
        assert await kv.count("", "\x00") >= 1
        assert await kv.ready()
    finally:
        await kv.close()


async def test_future_revision_is_too_large(ekv: EtcdKV, key_prefix: str) -> None:
    rev = await ekv.current_revision()
    with pytest.raises(TooLargeResourceVersionError):
        await ekv.range(key_prefix, prefix_end(key_prefix), revision=rev + 1000)


async def test_txn_results_carry_revisions(ekv: EtcdKV, key_prefix: str) -> None:
    key = f"{key_prefix}/k"
    created = await ekv.create(key, b"v1")
    assert created.succeeded and created.current is not None
    assert created.current.create_revision == created.current.mod_revision == created.revision
    updated = await ekv.update(key, b"v2", expected_mod_revision=created.revision)
    assert updated.succeeded and updated.current is not None
    assert updated.current.create_revision == created.revision
    assert updated.current.mod_revision == updated.revision > created.revision
    stale = await ekv.update(key, b"v3", expected_mod_revision=created.revision)
    assert not stale.succeeded and stale.current == updated.current
    deleted = await ekv.delete(key, expected_mod_revision=0)
    assert deleted.succeeded and deleted.current == updated.current
    again = await ekv.delete(key, expected_mod_revision=0)
    assert not again.succeeded and again.current is None


async def test_unreachable_endpoint_is_unavailable() -> None:
    (port,) = free_ports(1)
    with pytest.raises(UnavailableError):
        await EtcdKV.connect(f"127.0.0.1:{port}", timeout=0.5)


def test_map_rpc_error_passes_storage_errors() -> None:
    err = UnavailableError("x")
    assert map_rpc_error(err) is err
    assert isinstance(map_rpc_error(TimeoutError()), UnavailableError)


# ---------------------------------------------------------------------------------------
# shared client


async def test_shared_client_is_reused(etcd_server: EtcdServer, key_prefix: str) -> None:
    a = await EtcdKV.connect(etcd_server.endpoint)
    b = await EtcdKV.connect(etcd_server.endpoint)
    try:
        assert a.client is b.client
        assert a.client.refs >= 2
        await a.create(f"{key_prefix}/x", b"1")
    finally:
        await a.close()
    # b keeps the channel alive after a released it.
    got, _ = await b.get(f"{key_prefix}/x")
    assert got is not None and got.value == b"1"
    client = b.client
    await b.close()
    assert client.closed
    c = await EtcdKV.connect(etcd_server.endpoint)
    try:
        assert c.client is not client
        assert await c.ready()
    finally:
        await c.close()


async def test_watches_share_one_stream_and_route_events(ekv: EtcdKV, key_prefix: str) -> None:
    rev = await ekv.current_revision()
    pa, pb = f"{key_prefix}/a/", f"{key_prefix}/b/"
    wa = ekv.watch(pa, prefix_end(pa), start_revision=rev + 1)
    wb = ekv.watch(pb, prefix_end(pb), start_revision=rev + 1)
    try:
        assert ekv.watch_count == 2
        await ekv.create(pb + "1", b"b")
        await ekv.create(pa + "1", b"a")
        ita, itb = aiter(wa), aiter(wb)
        ea, eb = await next_change(ita), await next_change(itb)
        assert ea.kv is not None and ea.kv.key == pa + "1"
        assert eb.kv is not None and eb.kv.key == pb + "1"
        assert ea.revision == eb.revision + 1
    finally:
        await wa.close()
        await wb.close()
    assert ekv.watch_count == 0


async def test_closed_watches_are_cancelled_on_the_server(own_etcd: EtcdServer) -> None:
    kv = await EtcdKV.connect(own_etcd.endpoint)
    try:
        base = await etcd_watcher_total(own_etcd.metrics_url)
        watches: list[KVWatch] = [
            kv.watch(f"/w{i}/", prefix_end(f"/w{i}/"), start_revision=0) for i in range(3)
        ]
        assert kv.watch_count == 3 and open_watch_count() >= 3

        async def server_has(n: int) -> bool:
            return await etcd_watcher_total(own_etcd.metrics_url) == n

        await until(lambda: server_has(base + 3))
        for w in watches:
            await w.close()
        assert kv.watch_count == 0
        await until(lambda: server_has(base))
        # Iterating a closed watch just ends.
        assert [ev async for ev in watches[0]] == []
    finally:
        await kv.close()


# ---------------------------------------------------------------------------------------
# progress notifications


async def test_progress_notifications(ekv: EtcdKV, key_prefix: str) -> None:
    rev = await ekv.current_revision()
    w = ekv.watch(key_prefix, prefix_end(key_prefix), start_revision=rev + 1, progress_notify=True)
    try:
        it = aiter(w)
        # The server sends them every --experimental-watch-progress-notify-interval (1 s).
        ev = await next_event(it)
        assert ev.type is KVEventType.PROGRESS
        assert ev.kv is None and ev.prev_kv is None
        assert ev.revision >= rev
        # Events keep flowing between notifications, in order.
        created = await ekv.create(f"{key_prefix}/k", b"v")
        change = await next_change(it)
        assert change.type is KVEventType.PUT and change.revision == created.revision
        progress = await next_event(it)
        while progress.type is not KVEventType.PROGRESS:
            progress = await next_event(it)
        assert progress.revision >= created.revision
    finally:
        await w.close()


async def test_requested_progress(ekv: EtcdKV, key_prefix: str) -> None:
    rev = await ekv.current_revision()
    w = ekv.watch(key_prefix, prefix_end(key_prefix), start_revision=rev + 1)
    try:
        it = aiter(w)
        # The watch must be registered before the request, or it misses the broadcast.
        await until(lambda: _is_registered(w))
        asked = await ekv.request_progress()
        # Only etcd releases with the fix for etcd-io/etcd#15220 are asked: on older ones a
        # requested notification may overtake queued events.
        version = ekv._client.server_version
        assert version is not None
        assert asked == (version >= (3, 5, 13) or (3, 4, 31) <= version < (3, 5, 0))
        if asked:
            ev = await next_event(it)
            assert ev.type is KVEventType.PROGRESS and ev.revision >= rev
    finally:
        await w.close()


async def _is_registered(w: KVWatch) -> bool:
    return getattr(w, "watch_id", None) is not None


# ---------------------------------------------------------------------------------------
# leases


async def test_ttl_expiry_is_a_delete_event(ekv: EtcdKV, key_prefix: str) -> None:
    key = f"{key_prefix}/lease"
    rev = await ekv.current_revision()
    w = ekv.watch(key_prefix, prefix_end(key_prefix), start_revision=rev + 1)
    try:
        created = await ekv.create(key, b"short-lived", ttl=1)
        assert created.succeeded and created.current is not None
        assert created.current.lease != 0
        it = aiter(w)
        put = await next_change(it)
        assert put.type is KVEventType.PUT and put.kv is not None and put.kv.lease != 0
        gone = await next_change(it)
        assert gone.type is KVEventType.DELETE
        assert gone.kv is not None and gone.kv.key == key and gone.kv.value == b""
        assert gone.kv.mod_revision == gone.revision > created.revision
        assert gone.prev_kv is not None and gone.prev_kv.value == b"short-lived"
        got, _ = await ekv.get(key)
        assert got is None
    finally:
        await w.close()


# ---------------------------------------------------------------------------------------
# compaction


async def test_compaction(own_etcd: EtcdServer) -> None:
    kv = await EtcdKV.connect(own_etcd.endpoint)
    try:
        first = await kv.create("/c/k", b"0")
        last = first
        for i in range(1, 5):
            assert last.current is not None
            last = await kv.update("/c/k", str(i).encode(), expected_mod_revision=last.revision)
        await kv.compact(last.revision)
        await kv.compact(last.revision)  # already compacted: a no-op
        await kv.compact(first.revision)  # below the compaction point: a no-op

        with pytest.raises(CompactedError) as err:
            await kv.range("/c/", prefix_end("/c/"), revision=first.revision)
        assert err.value.requested == first.revision
        assert err.value.compact_revision == last.revision
        assert err.value.code == 410

        at = await kv.range("/c/", prefix_end("/c/"), revision=last.revision)
        assert [x.value for x in at.kvs] == [b"4"] and at.revision == last.revision

        w = kv.watch("/c/", prefix_end("/c/"), start_revision=first.revision)
        with pytest.raises(CompactedError) as werr:
            async with asyncio.timeout(WAIT):
                async for _ in w:
                    pass
        assert werr.value.requested == first.revision
        assert werr.value.compact_revision == last.revision
        assert kv.watch_count == 0

        # From the compaction point on, the history is still there.
        w2 = kv.watch("/c/", prefix_end("/c/"), start_revision=last.revision)
        try:
            ev = await next_change(aiter(w2))
            assert ev.revision == last.revision and ev.kv is not None and ev.kv.value == b"4"
        finally:
            await w2.close()
    finally:
        await kv.close()


# ---------------------------------------------------------------------------------------
# restarts


async def test_watch_across_restart_ends_unavailable_then_rewatch_has_no_gap(
    own_etcd: EtcdServer,
) -> None:
    """A watch does not survive an etcd restart: it ends with UnavailableError. A new
    watch from the last seen revision + 1 continues without a gap."""
    kv = await EtcdKV.connect(own_etcd.endpoint)
    try:
        first = await kv.create("/r/0", b"0")
        w = kv.watch("/r/", prefix_end("/r/"), start_revision=first.revision)
        it = aiter(w)
        seen = [await next_change(it)]
        assert seen[0].revision == first.revision

        await asyncio.to_thread(own_etcd.restart)

        with pytest.raises(UnavailableError):
            async with asyncio.timeout(WAIT):
                while True:
                    seen.append(await anext(it))
        assert kv.watch_count == 0
        last_seen = max(ev.revision for ev in seen if ev.type is not KVEventType.PROGRESS)

        # Writes after the restart (retried while the channel reconnects).
        writes = []
        async with asyncio.timeout(WAIT):
            for i in range(1, 4):
                while True:
                    try:
                        writes.append(await kv.create(f"/r/{i}", str(i).encode()))
                        break
                    except UnavailableError:
                        await asyncio.sleep(0.1)

        w2 = kv.watch("/r/", prefix_end("/r/"), start_revision=last_seen + 1)
        try:
            it2 = aiter(w2)
            got = [await next_change(it2) for _ in writes]
        finally:
            await w2.close()
        assert [ev.revision for ev in got] == [r.revision for r in writes]
        assert got[0].revision == last_seen + 1  # nothing happened in between
    finally:
        await kv.close()


async def test_killed_server_is_unavailable_then_recovers(own_etcd: EtcdServer) -> None:
    kv = await EtcdKV.connect(own_etcd.endpoint)
    try:
        await kv.create("/k/a", b"1")
        w = kv.watch("/k/", prefix_end("/k/"), start_revision=0)
        own_etcd.kill()
        with pytest.raises(UnavailableError):
            async with asyncio.timeout(WAIT):
                async for _ in w:
                    pass
        with pytest.raises(UnavailableError):
            await kv.get("/k/a")
        assert not await kv.ready()
        await asyncio.to_thread(own_etcd.start)
        await until(kv.ready)
        got, _ = await kv.get("/k/a")
        assert got is not None and got.value == b"1"
    finally:
        await kv.close()


# ---------------------------------------------------------------------------------------
# a three-member cluster


async def test_cluster_leader_failover(tmp_path: Path) -> None:
    cluster = EtcdCluster(tmp_path / "cluster", size=3)
    await asyncio.to_thread(cluster.start)
    try:
        kv = await EtcdKV.connect(cluster.endpoint)
        try:
            before = await kv.create("/f/a", b"1")
            leader = cluster.leader_index()
            cluster.kill(leader)
            assert cluster.leader_index() != leader

            async def write_ok() -> bool:
                try:
                    await kv.create("/f/b", b"2")
                except UnavailableError:
                    return False
                return True

            await until(write_ok)
            res = await kv.range("/f/", prefix_end("/f/"))
            assert [x.key for x in res.kvs] == ["/f/a", "/f/b"]
            assert res.revision > before.revision
        finally:
            await kv.close()
    finally:
        await asyncio.to_thread(cluster.stop)
