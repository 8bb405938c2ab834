"""The KV contract on a real etcd (v3 API), as the Kubernetes etcd3 store uses it.

Built on `aetcd`'s generated gRPC stubs and request types (`aetcd.rpc`): its high-level
`Client` has no `limit`/`revision` on ranges and its `Watcher` drops progress
notifications and the compact revision, so this module issues the RPCs itself:

* get / range / count: `KV.Range` (with `revision`, `limit`, `count_only`).
* create: `Txn(create_revision(key) == 0 ? put[lease] : range(key))`.
* update: `Txn(mod_revision(key) == expected ? put : range(key))`.
* delete: `Txn(mod_revision(key) == expected ? delete(prev_kv) : range(key))`;
  `expected == 0` deletes unconditionally.
* TTL: a lease granted for the TTL (reused across writes like Kubernetes' lease manager
  when the reuse window, 5% of the TTL capped at 60 s, is at least a second).
* watch: one bidirectional `Watch` stream per client, multiplexing every watch of the
  process on that endpoint (like clientv3), created with `prev_kv` and, on request,
  `progress_notify`. The stream requires a leader (`hasleader` metadata), so a member
  that loses its cluster cancels the watches instead of silently going stale.

One gRPC channel is shared per process, endpoint and event loop (`shared_client`); each
`EtcdKV` holds a reference and `close()` releases it.

Errors: UNAVAILABLE / DEADLINE_EXCEEDED (and any broken watch stream) become
`UnavailableError`; etcd's "required revision has been compacted" becomes
`CompactedError`; "required revision is a future revision" becomes
`TooLargeResourceVersionError`.

A watch whose stream breaks (for example an etcd restart) ends with `UnavailableError`;
it does not resume by itself. Re-watch from the last seen revision + 1: etcd keeps the
history, so nothing is lost unless that revision was compacted meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from aetcd import rpc

from ..storage.errors import (
    InternalError,
    RequestEntityTooLargeError,
    StorageError,
    TooLargeResourceVersionError,
    UnavailableError,
)
from . import register_driver
from .kv import (
    DEFAULT_MAX_REQUEST_BYTES,
    CompactedError,
    InvalidKVInputError,
    KeyValue,
    KVEvent,
    KVEventType,
    RangeResult,
    TxnResult,
    check_key,
    check_range_end,
    check_revision,
    check_size,
    check_ttl,
    check_value,
)

__all__ = [
    "EtcdKV",
    "InvalidKVInputError",
    "SharedClient",
    "map_rpc_error",
    "open_watch_count",
    "shared_client",
]

_CHANNEL_OPTIONS: Final[list[tuple[str, int]]] = [
    # Ranges over many objects exceed gRPC's 4 MiB default (Kubernetes: MaxInt32).
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.max_send_message_length", 2**31 - 1),
    # Detect dead connections (Kubernetes: keepalive 30 s, timeout 10 s). etcd rejects
    # pings on idle connections, hence no permit_without_calls.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
    # Reconnect promptly after an etcd restart (gRPC's default backoff grows to 120 s).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]

# clientv3.WithRequireLeader: the server cancels watches when its member has no leader.
_WATCH_METADATA: Final = (("hasleader", "true"),)

_ALL_KEYS: Final = b"\x00"
_EVENT_PUT: Final = 0
_EVENT_DELETE: Final = 1

_ERR_COMPACTED: Final = "required revision has been compacted"
_ERR_FUTURE_REV: Final = "required revision is a future revision"


def _keys_only(k: bytes) -> Any:
    return rpc.RangeRequest(key=k, keys_only=True)


def _key(key: object, what: str = "key") -> bytes:
    return check_key(key, what).encode("utf-8", "surrogateescape")


def _range_start(start: object, end: object) -> bytes:
    # etcd rejects an empty key; for a range, "\x00" is the smallest key there is.
    if start == "" and isinstance(end, str) and end:
        return _ALL_KEYS
    return _key(start, "range start")


def _range_end(end: object) -> bytes:
    # "" = single key; "\x00" = to the end of the keyspace: both pass through as etcd
    # interprets them.
    return check_range_end(end).encode("utf-8", "surrogateescape")


def _kv(pb: Any) -> KeyValue:
    # Positional, no conversions: protobuf already gives bytes and ints, and this runs
    # once per item of every list.
    return KeyValue(
        pb.key.decode("utf-8", "surrogateescape"),
        pb.value,
        pb.create_revision,
        pb.mod_revision,
        pb.lease,
    )


def _target(endpoint: str) -> str:
    """gRPC target for "host:port" or "h1:p1,h2:p2" (several IP endpoints of one cluster)."""
    parts = [p.strip() for p in endpoint.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"empty etcd endpoint: {endpoint!r}")
    parts = [p.split("://", 1)[1] if "://" in p else p for p in parts]
    if len(parts) == 1:
        return parts[0]
    for p in parts:
        host = p.rsplit(":", 1)[0]
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(
                f"several etcd endpoints must be IPv4 host:port pairs, got {p!r}"
            ) from None
    return "ipv4:" + ",".join(parts)


def map_rpc_error(err: BaseException, *, requested: int = 0) -> StorageError:
    """Translate a gRPC / etcd error into the storage error hierarchy."""
    if isinstance(err, StorageError):
        return err
    if isinstance(err, TimeoutError):
        return UnavailableError(f"etcd request timed out: {err}")
    if not isinstance(err, rpc.AioRpcError):
        return UnavailableError(f"etcd: {type(err).__name__}: {err}")
    code = err.code()
    details = str(err.details() or "")
    if _ERR_COMPACTED in details:
        return CompactedError(requested, 0)
    if _ERR_FUTURE_REV in details:
        return TooLargeResourceVersionError(
            f"resource version {requested} is newer than the store: {details}",
            resource_version=requested,
        )
    if code in (
        rpc.StatusCode.UNAVAILABLE,
        rpc.StatusCode.DEADLINE_EXCEEDED,
        rpc.StatusCode.CANCELLED,
        rpc.StatusCode.ABORTED,
    ):
        return UnavailableError(f"etcd unavailable: {details}")
    if code == rpc.StatusCode.RESOURCE_EXHAUSTED and "too many requests" in details:
        return UnavailableError(f"etcd overloaded: {details}", retry_after_seconds=1)
    if "request is too large" in details or (
        code == rpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details
    ):
        # etcd's ErrRequestTooLarge, or gRPC's message limit (etcd's limit plus 512 KiB).
        return RequestEntityTooLargeError("the object is too large for the backend to store")
    if code == rpc.StatusCode.INVALID_ARGUMENT:
        return InvalidKVInputError(f"etcd rejected the request: {details}")
    return InternalError(f"etcd error {code}: {details}")


# ---------------------------------------------------------------------------------------
# watches


class _Closed:
    pass


_CLOSED: Final = _Closed()


class _EtcdWatch:
    """One etcd watch on the client's shared stream; implements `KVWatch`."""

    def __init__(
        self,
        stream: _WatchStream,
        owner: EtcdKV | None,
        key: bytes,
        range_end: bytes,
        start_revision: int,
        progress_notify: bool,
    ) -> None:
        self._stream = stream
        self._owner = owner
        self.key = key
        self.range_end = range_end
        self.start_revision = start_revision
        self.progress_notify = progress_notify
        self.watch_id: int | None = None
        self.closed = False
        self._queue: asyncio.Queue[KVEvent | BaseException | _Closed] = asyncio.Queue()

    def create_request(self) -> Any:
        return rpc.WatchRequest(
            create_request=rpc.WatchCreateRequest(
                key=self.key,
                range_end=self.range_end,
                start_revision=self.start_revision,
                progress_notify=self.progress_notify,
                prev_kv=True,
            )
        )

    # called by the stream

    def _push(self, event: KVEvent) -> None:
        if not self.closed:
            self._queue.put_nowait(event)

    def _fail(self, err: BaseException) -> None:
        if self.closed:
            return
        self._finish()
        self._queue.put_nowait(err)

    def _finish(self) -> None:
        self.closed = True
        if self._owner is not None:
            self._owner._watches.discard(self)

    # KVWatch

    def __aiter__(self) -> AsyncIterator[KVEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[KVEvent]:
        while True:
            item = await self._queue.get()
            if isinstance(item, _Closed):
                self._queue.put_nowait(item)  # later iterations end too
                return
            if isinstance(item, BaseException):
                self._queue.put_nowait(_CLOSED)
                raise item
            yield item

    async def close(self) -> None:
        if self.closed:
            return
        self._finish()
        self._stream.cancel(self)
        self._queue.put_nowait(_CLOSED)

    def __repr__(self) -> str:
        return (
            f"<etcd watch {self.key!r}..{self.range_end!r} from {self.start_revision} "
            f"id={self.watch_id} closed={self.closed}>"
        )


def _events(resp: Any) -> list[KVEvent]:
    out: list[KVEvent] = []
    for ev in resp.events:
        prev = _kv(ev.prev_kv) if ev.HasField("prev_kv") else None
        kv = _kv(ev.kv)
        if ev.type == _EVENT_DELETE:
            # etcd's delete event: key, mod_revision = the delete's revision, the rest 0.
            out.append(KVEvent(KVEventType.DELETE, kv, prev, kv.mod_revision))
        else:
            out.append(KVEvent(KVEventType.PUT, kv, prev, kv.mod_revision))
    return out


class _WatchStream:
    """The bidirectional Watch RPC shared by all watches of one client.

    etcd answers create requests in order, so pending creations are matched FIFO with
    `created` responses. When the stream breaks every watch on it fails with
    `UnavailableError` and the next `watch()` opens a fresh stream.
    """

    def __init__(self, stub: Any) -> None:
        self._requests: asyncio.Queue[Any] = asyncio.Queue()
        self._pending: collections.deque[_EtcdWatch] = collections.deque()
        self._active: dict[int, _EtcdWatch] = {}
        self.dead = False
        self._call = stub.Watch(self._request_iter(), metadata=_WATCH_METADATA)
        self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def watch_count(self) -> int:
        return sum(1 for w in self._pending if not w.closed) + len(self._active)

    def add(self, watch: _EtcdWatch) -> None:
        self._pending.append(watch)
        self._requests.put_nowait(watch.create_request())

    def cancel(self, watch: _EtcdWatch) -> None:
        # Pending watches are cancelled when their `created` response arrives.
        if watch.watch_id is not None and self._active.pop(watch.watch_id, None) is not None:
            self._send_cancel(watch.watch_id)

    def request_progress(self) -> None:
        self._requests.put_nowait(rpc.WatchRequest(progress_request=rpc.WatchProgressRequest()))

    def _send_cancel(self, watch_id: int) -> None:
        if not self.dead:
            self._requests.put_nowait(
                rpc.WatchRequest(cancel_request=rpc.WatchCancelRequest(watch_id=watch_id))
            )

    async def _request_iter(self) -> AsyncIterator[Any]:
        while True:
            req = await self._requests.get()
            if req is None:
                return
            yield req

    async def _run(self) -> None:
        err: BaseException = UnavailableError("etcd watch stream ended")
        try:
            async for resp in self._call:
                self._dispatch(resp)
        except asyncio.CancelledError:
            err = UnavailableError("etcd client closed")
            raise
        except Exception as e:
            err = UnavailableError(f"etcd watch stream broken: {map_rpc_error(e).message}")
        finally:
            self._fail_all(err)

    def _fail_all(self, err: BaseException) -> None:
        self.dead = True
        watches = [*self._pending, *self._active.values()]
        self._pending.clear()
        self._active.clear()
        for w in watches:
            w._fail(err)
        self._requests.put_nowait(None)

    def _dispatch(self, resp: Any) -> None:
        watch_id = int(resp.watch_id)
        if resp.created:
            if not self._pending:
                if not resp.canceled and watch_id >= 0:
                    self._send_cancel(watch_id)
                return
            w = self._pending.popleft()
            if resp.canceled or watch_id < 0:
                w._fail(self._cancel_error(w, resp))
                return
            if w.closed:
                self._send_cancel(watch_id)
                return
            w.watch_id = watch_id
            self._active[watch_id] = w
            if not resp.events and not resp.compact_revision:
                return  # the creation ack is not a progress notification
        if watch_id == -1 and not resp.events:
            # A progress response for the whole stream (etcd >= 3.5 RequestProgress).
            for w in list(self._active.values()):
                w._push(KVEvent(KVEventType.PROGRESS, None, None, int(resp.header.revision)))
            return
        w2 = self._active.get(watch_id)
        if w2 is None:
            return  # leftovers of a cancelled watch
        if resp.canceled or resp.compact_revision:
            del self._active[watch_id]
            w2._fail(self._cancel_error(w2, resp))
            return
        if resp.events:
            for ev in _events(resp):
                w2._push(ev)
        else:
            w2._push(KVEvent(KVEventType.PROGRESS, None, None, int(resp.header.revision)))

    @staticmethod
    def _cancel_error(w: _EtcdWatch, resp: Any) -> StorageError:
        if resp.compact_revision:
            return CompactedError(w.start_revision, int(resp.compact_revision))
        reason = str(resp.cancel_reason or "watch cancelled by etcd")
        if _ERR_COMPACTED in reason:
            return CompactedError(w.start_revision, 0)
        return UnavailableError(f"etcd cancelled the watch: {reason}")

    async def close(self) -> None:
        self._requests.put_nowait(None)
        self._call.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


# ---------------------------------------------------------------------------------------
# the shared client


class _Leases:
    """Kubernetes' lease manager: reuse one lease for writes with a similar TTL."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._id = 0
        self._expires = 0.0

    @staticmethod
    def reuse_seconds(ttl: int) -> int:
        return min(60, ttl // 20)

    async def get(self, client: SharedClient, ttl: int) -> int:
        reuse = self.reuse_seconds(ttl)
        async with self._lock:
            now = time.monotonic()
            if reuse > 0 and self._id and now + ttl < self._expires <= now + ttl + reuse:
                return self._id
            grant = ttl + reuse
            resp = await client.call(
                client.lease.LeaseGrant, rpc.LeaseGrantRequest(TTL=grant, ID=0)
            )
            if resp.error:
                raise InternalError(f"etcd lease grant failed: {resp.error}")
            if reuse > 0:
                self._id = int(resp.ID)
                self._expires = now + grant
            return int(resp.ID)


class SharedClient:
    """One gRPC channel to an etcd endpoint, shared by every `EtcdKV` on it (refcounted)."""

    def __init__(self, endpoint: str, *, request_timeout: float) -> None:
        self.endpoint = endpoint
        self.request_timeout = request_timeout
        self.loop = asyncio.get_running_loop()
        self.channel = rpc.insecure_channel(_target(endpoint), options=_CHANNEL_OPTIONS)
        self.kv = rpc.KVStub(self.channel)
        self.lease = rpc.LeaseStub(self.channel)
        self.maintenance = rpc.MaintenanceStub(self.channel)
        self._watch_stub = rpc.WatchStub(self.channel)
        self.server_version: tuple[int, ...] | None = None
        self._stream: _WatchStream | None = None
        self.leases = _Leases()
        self.refs = 0
        self.closed = False

    async def call(
        self,
        method: Any,
        request: Any,
        *,
        requested: int = 0,
        rpc_timeout: float | None = None,
        wait_for_ready: bool = False,
    ) -> Any:
        if self.closed:
            raise UnavailableError("etcd client is closed")
        try:
            return await method(
                request,
                timeout=rpc_timeout if rpc_timeout is not None else self.request_timeout,
                wait_for_ready=wait_for_ready,
            )
        except rpc.AioRpcError as e:
            raise map_rpc_error(e, requested=requested) from e

    def stream(self) -> _WatchStream:
        if self.closed:
            raise UnavailableError("etcd client is closed")
        if self._stream is None or self._stream.dead:
            self._stream = _WatchStream(self._watch_stub)
        return self._stream

    @property
    def watch_count(self) -> int:
        s = self._stream
        return 0 if s is None or s.dead else s.watch_count

    async def aclose(self) -> None:
        self.closed = True
        if self._stream is not None:
            await self._stream.close()
            self._stream = None
        await self.channel.close()


_clients: dict[tuple[str, asyncio.AbstractEventLoop], SharedClient] = {}


def shared_client(endpoint: str, *, request_timeout: float = 30.0) -> SharedClient:
    """The process's client for `endpoint` on the running loop, with one more reference.

    gRPC channels are bound to an event loop, so the cache is keyed by (endpoint, loop);
    clients of closed loops are dropped. Release with `_release`.
    """
    loop = asyncio.get_running_loop()
    for key in [k for k in _clients if k[1].is_closed()]:
        del _clients[key]
    client = _clients.get((endpoint, loop))
    if client is None or client.closed:
        client = SharedClient(endpoint, request_timeout=request_timeout)
        _clients[(endpoint, loop)] = client
    client.refs += 1
    return client


async def _release(client: SharedClient) -> None:
    client.refs -= 1
    if client.refs > 0:
        return
    key = (client.endpoint, client.loop)
    if _clients.get(key) is client:
        del _clients[key]
    await client.aclose()


def open_watch_count() -> int:
    """Etcd watches open (or being created) in this process, over all clients."""
    return sum(c.watch_count for c in _clients.values())


# ---------------------------------------------------------------------------------------
# EtcdKV


class EtcdKV:
    """`tenantstore.backends.kv.KV` on etcd."""

    def __init__(
        self, client: SharedClient, *, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    ) -> None:
        self._client = client
        self._watches: set[_EtcdWatch] = set()
        self._closed = False
        # etcd's `--max-request-bytes` (not discoverable from a client): set it to the
        # server's value when that is not etcd's default.
        self.max_request_bytes = max_request_bytes

    @classmethod
    async def connect(
        cls,
        endpoint: str,
        *,
        timeout: float = 5.0,
        request_timeout: float = 30.0,
    ) -> EtcdKV:
        """Connect to "host:port" (or "h1:p1,h2:p2"), waiting up to `timeout` for etcd
        to answer a read; raises `UnavailableError` if it does not."""
        client = shared_client(endpoint, request_timeout=request_timeout)
        kv = cls(client)
        try:
            await client.call(
                client.kv.Range,
                rpc.RangeRequest(key=_ALL_KEYS, count_only=True),
                rpc_timeout=timeout,
                wait_for_ready=True,
            )
        except BaseException:
            await kv.close()
            raise
        return kv

    @classmethod
    async def from_url(
        cls,
        url: str,
        *,
        timeout: float = 5.0,
        request_timeout: float = 30.0,
    ) -> EtcdKV:
        """Connect to "etcd://host:port[,host:port...]" (http:// is accepted too)."""
        parts = urlsplit(url)
        if parts.scheme not in ("etcd", "http", "") or not parts.netloc:
            raise ValueError(f"not an etcd URL: {url!r}")
        return await cls.connect(parts.netloc, timeout=timeout, request_timeout=request_timeout)

    @property
    def endpoint(self) -> str:
        return self._client.endpoint

    @property
    def client(self) -> SharedClient:
        return self._client

    # -- reads

    async def _range(self, req: Any) -> Any:
        try:
            return await self._client.call(self._client.kv.Range, req, requested=req.revision)
        except CompactedError as e:
            raise CompactedError(e.requested, await self._compact_revision()) from e

    async def get(self, key: str) -> tuple[KeyValue | None, int]:
        resp = await self._range(rpc.RangeRequest(key=_key(key)))
        kv = _kv(resp.kvs[0]) if resp.kvs else None
        return kv, int(resp.header.revision)

    async def range(
        self, start: str, end: str, *, revision: int = 0, limit: int = 0
    ) -> RangeResult:
        resp = await self._range(
            rpc.RangeRequest(
                key=_range_start(start, end),
                range_end=_range_end(end),
                revision=check_revision(revision, "revision"),
                limit=check_revision(limit, "limit"),
            )
        )
        return RangeResult(
            kvs=[_kv(kv) for kv in resp.kvs],
            # The header revision: the store's current revision, even for a range at an
            # older `revision` (as etcd and the KV contract define it).
            revision=int(resp.header.revision),
            more=bool(resp.more),
            count=int(resp.count),
        )

    async def count(self, start: str, end: str) -> int:
        resp = await self._range(
            rpc.RangeRequest(
                key=_range_start(start, end), range_end=_range_end(end), count_only=True
            )
        )
        return int(resp.count)

    async def current_revision(self) -> int:
        resp = await self._range(rpc.RangeRequest(key=_ALL_KEYS, count_only=True))
        return int(resp.header.revision)

    async def compact_revision(self) -> int:
        """The revision history is compacted to (0 if never compacted).

        etcd has no RPC for it: a watch from revision 1 is refused with the compaction
        point. Costs a watch round trip; meant for errors and diagnostics.
        """
        return await self._compact_revision()

    async def _compact_revision(self) -> int:
        """etcd's compaction point, learned from a watch at revision 1 (0 if unknown)."""
        w = _EtcdWatch(self._client.stream(), None, _ALL_KEYS, b"", 1, False)
        w._stream.add(w)
        try:
            async with asyncio.timeout(2.0):
                async for _ in w:
                    break
        except CompactedError as e:
            return e.compact_revision
        except (StorageError, TimeoutError):
            pass
        finally:
            await w.close()
        return 0

    # -- writes

    async def _txn(self, compare: Sequence[Any], success: Sequence[Any], key: bytes) -> Any:
        return await self._client.call(
            self._client.kv.Txn,
            rpc.TxnRequest(
                compare=list(compare),
                success=list(success),
                failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key))],
            ),
        )

    @staticmethod
    def _failed(resp: Any) -> TxnResult:
        rng = resp.responses[0].response_range if resp.responses else None
        current = _kv(rng.kvs[0]) if rng is not None and rng.kvs else None
        return TxnResult(False, int(resp.header.revision), current)

    async def _put_txn(
        self, key: str, value: bytes, compare: Any, lease: int, *, creating: bool = False
    ) -> TxnResult:
        k = _key(key)
        value = check_value(value)
        put = rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value, lease=lease))
        # A create's key is created by this very put: its create_revision is the write's.
        # An update reads it back in the same transaction, without echoing the value.
        ops = [put] if creating else [put, rpc.RequestOp(request_range=_keys_only(k))]
        resp = await self._txn([compare], ops, k)
        if not resp.succeeded:
            return self._failed(resp)
        revision = int(resp.header.revision)
        create_revision = revision
        if not creating:
            rng = resp.responses[1].response_range
            create_revision = int(rng.kvs[0].create_revision) if rng.kvs else revision
        return TxnResult(True, revision, KeyValue(key, value, create_revision, revision, lease))

    async def create(self, key: str, value: bytes, *, ttl: int | None = None) -> TxnResult:
        k = _key(key)
        check_size(key, check_value(value), self.max_request_bytes)
        lease = 0
        if ttl is not None:
            check_ttl(ttl)
            lease = await self._client.leases.get(self._client, ttl)
        compare = rpc.Compare(
            key=k,
            target=rpc.Compare.CompareTarget.CREATE,
            result=rpc.Compare.CompareResult.EQUAL,
            create_revision=0,
        )
        return await self._put_txn(key, value, compare, lease, creating=True)

    async def update(
        self, key: str, value: bytes, *, expected_mod_revision: int, ttl: int | None = None
    ) -> TxnResult:
        check_size(check_key(key), check_value(value), self.max_request_bytes)
        lease = 0
        if ttl is not None:
            check_ttl(ttl)
            lease = await self._client.leases.get(self._client, ttl)
        compare = rpc.Compare(
            key=_key(key),
            target=rpc.Compare.CompareTarget.MOD,
            result=rpc.Compare.CompareResult.EQUAL,
            mod_revision=check_revision(expected_mod_revision, "expected_mod_revision"),
        )
        return await self._put_txn(key, value, compare, lease)

    async def delete(self, key: str, *, expected_mod_revision: int) -> TxnResult:
        k = _key(key)
        expected_mod_revision = check_revision(expected_mod_revision, "expected_mod_revision")
        compare = []
        if expected_mod_revision:
            compare.append(
                rpc.Compare(
                    key=k,
                    target=rpc.Compare.CompareTarget.MOD,
                    result=rpc.Compare.CompareResult.EQUAL,
                    mod_revision=expected_mod_revision,
                )
            )
        resp = await self._txn(
            compare,
            [rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k, prev_kv=True))],
            k,
        )
        if not resp.succeeded:
            return self._failed(resp)
        deleted = resp.responses[0].response_delete_range
        if not deleted.deleted:
            # Unconditional delete of an absent key: nothing happened.
            return TxnResult(False, int(resp.header.revision), None)
        # `current` is the deleted key-value (its last state).
        prev = _kv(deleted.prev_kvs[0]) if deleted.prev_kvs else None
        return TxnResult(True, int(resp.header.revision), prev)

    async def compact(self, revision: int) -> None:
        if check_revision(revision, "revision") == 0:
            return
        # CompactedError: already compacted at or past `revision`.
        with contextlib.suppress(CompactedError):
            await self._client.call(
                self._client.kv.Compact,
                rpc.CompactionRequest(revision=revision, physical=False),
                requested=revision,
            )

    # -- watch

    def watch(
        self, start: str, end: str, *, start_revision: int, progress_notify: bool = False
    ) -> _EtcdWatch:
        """Events for [start, end) from `start_revision` (inclusive; 0 = from now)."""
        if self._closed:
            raise UnavailableError("EtcdKV is closed")
        key, range_end = _range_start(start, end), _range_end(end)
        start_revision = check_revision(start_revision, "start_revision")
        stream = self._client.stream()
        w = _EtcdWatch(stream, self, key, range_end, start_revision, progress_notify)
        self._watches.add(w)
        stream.add(w)
        return w

    async def request_progress(self) -> bool:
        """Ask etcd for a progress notification on every watch of the shared stream.

        Returns False, asking nothing, on etcd releases whose requested notifications can
        overtake events still queued for a watcher (etcd-io/etcd#15220, fixed in 3.4.31
        and 3.5.13; Kubernetes gates its consistent reads from cache on the same check):
        a notification that runs ahead of events would let a "consistent" read miss them.
        """
        if not await self._progress_is_reliable():
            return False
        self._client.stream().request_progress()
        return True

    async def _progress_is_reliable(self) -> bool:
        client = self._client
        if client.server_version is None:
            try:
                resp = await client.call(client.maintenance.Status, rpc.StatusRequest())
                client.server_version = tuple(
                    int(p) for p in str(resp.version).split("-")[0].split(".")[:3]
                )
            except (StorageError, ValueError):
                return False
        version = client.server_version
        return version >= (3, 5, 13) or ((3, 4, 31) <= version < (3, 5, 0))

    @property
    def watch_count(self) -> int:
        """Watches opened through this EtcdKV that are still open."""
        return len(self._watches)

    # -- lifecycle

    async def ready(self) -> bool:
        if self._closed:
            # The channel may live on for other `EtcdKV`s sharing it: answering for them
            # would call a closed KV ready.
            return False
        try:
            await self._client.call(
                self._client.kv.Range,
                rpc.RangeRequest(key=_ALL_KEYS, count_only=True),
                rpc_timeout=min(self._client.request_timeout, 2.0),
                wait_for_ready=True,
            )
        except StorageError:
            return False
        return True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for w in list(self._watches):
            await w.close()
        await _release(self._client)

    async def __aenter__(self) -> EtcdKV:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"EtcdKV({self.endpoint!r})"


async def open_url(url: str) -> EtcdKV:
    """The `etcd://` (and `http://`) driver."""
    return await EtcdKV.from_url(url)


register_driver("etcd", open_url)
register_driver("http", open_url)
