"""Type stubs for the Rust core, `tenantstore._native`.

Kept in step with the runtime module by `python -m mypy.stubtest tenantstore._native`
(run by `scripts/test`), so a binding change that the stub misses fails the checks.
"""

from collections.abc import Container, Iterable, Sequence
from typing import Final, final

__all__ = [
    "CLUSTERS_SEGMENT",
    "FRAME_MAGIC",
    "FRAME_VERSION",
    "PROTOBUF_MAGIC",
    "ROOT_SEGMENT",
    "CachedObject",
    "CorruptFrameError",
    "Index",
    "IndexSnapshot",
    "InvalidProjectError",
    "OwnerMap",
    "ProtobufDecodeError",
    "ProtobufEncodeError",
    "Selector",
    "frame",
    "json_to_protobuf",
    "project_of_key",
    "projects_of_keys",
    "protobuf_kinds",
    "protobuf_to_json",
    "protobuf_watch_frame",
    "scope_prefix",
    "scoped_key",
    "scoped_keys",
    "trim_heap",
    "tune_heap",
    "unframe",
    "validate_project_id",
]

# --- keys -----------------------------------------------------------------------------------

class InvalidProjectError(ValueError):
    """A project id that is not a DNS-1123 label."""

CLUSTERS_SEGMENT: Final[str]
ROOT_SEGMENT: Final[str]

def validate_project_id(project_id: str) -> None: ...
def scope_prefix(resource_prefix: str, project: str | None) -> str: ...
def scoped_key(key: str, resource_prefix: str, project: str | None) -> str: ...
def project_of_key(key: str, resource_prefix: str) -> str | None: ...
def scoped_keys(keys: Iterable[str], resource_prefix: str, project: str | None) -> list[str]: ...
def projects_of_keys(keys: Iterable[str], resource_prefix: str) -> list[str | None]: ...

# --- frames ---------------------------------------------------------------------------------

class CorruptFrameError(ValueError):
    """Data starting with 0x7f that is not a complete, valid frame."""

FRAME_MAGIC: Final[bytes]
FRAME_VERSION: Final[int]

def frame(key: bytes, body: bytes) -> bytes: ...
def unframe(data: bytes) -> tuple[bytes, bytes] | None: ...

# --- index ---------------------------------------------------------------------------------

@final
class CachedObject:
    """One cached object: its JSON without `resourceVersion`, revision and projection."""

    def __new__(cls, data: bytes, resource_version: int) -> CachedObject: ...
    @property
    def resource_version(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def data(self) -> bytes: ...
    @property
    def name(self) -> str | None: ...
    @property
    def namespace(self) -> str | None: ...
    @property
    def uid(self) -> str | None: ...
    def encode(self, kind: str | None = None, api_version: str | None = None) -> bytes: ...
    def encode_event(
        self, event_type: str, kind: str | None = None, api_version: str | None = None
    ) -> bytes: ...
    def with_resource_version(self, resource_version: int) -> CachedObject: ...
    def matches(self, selector: Selector) -> bool: ...

@final
class Selector:
    """A compiled label/field selector, evaluated on a `CachedObject`'s projection."""

    def __new__(
        cls,
        labels: Sequence[tuple[str, str, Sequence[str]]],
        fields: Sequence[tuple[Sequence[Sequence[str]], str, str]],
    ) -> Selector: ...
    @property
    def empty(self) -> bool: ...
    def matches(self, obj: CachedObject) -> bool: ...

# (objects, key of the last one, whether a key follows it)
_Page = tuple[list[CachedObject], str | None, bool]
# (the items' JSON joined by commas, how many, key of the last one, whether a key follows it)
_EncodedPage = tuple[bytes, int, str | None, bool]

@final
class Index:
    """Ordered `key -> CachedObject` map with O(1) snapshots; thread-safe."""

    def __new__(cls, prefix: str = "") -> Index: ...
    def put(self, key: str, obj: CachedObject) -> CachedObject | None: ...
    def put_many(self, items: list[tuple[str, CachedObject]]) -> None: ...
    def delete(self, key: str) -> CachedObject | None: ...
    def get(self, key: str) -> CachedObject | None: ...
    def resource_version(self, key: str) -> int | None: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: object, /) -> bool: ...
    def range(
        self, prefix: str = "", start_after: str | None = None, limit: int | None = None
    ) -> list[tuple[str, int, CachedObject]]: ...
    def select(
        self,
        prefix: str,
        start: str | None = None,
        inclusive: bool = False,
        limit: int | None = None,
        selector: Selector | None = None,
    ) -> _Page: ...
    def select_encoded(
        self,
        prefix: str,
        start: str | None = None,
        inclusive: bool = False,
        limit: int | None = None,
        selector: Selector | None = None,
        kind: str | None = None,
        api_version: str | None = None,
    ) -> _EncodedPage: ...
    def count(self, prefix: str = "", start_after: str | None = None) -> int: ...
    def keys(self, prefix: str = "") -> list[str]: ...
    def clear(self) -> None: ...
    def snapshot(self) -> IndexSnapshot: ...

@final
class IndexSnapshot:
    """Immutable point-in-time view of an `Index`."""

    def get(self, key: str) -> CachedObject | None: ...
    def resource_version(self, key: str) -> int | None: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: object, /) -> bool: ...
    def range(
        self, prefix: str = "", start_after: str | None = None, limit: int | None = None
    ) -> list[tuple[str, int, CachedObject]]: ...
    def select(
        self,
        prefix: str,
        start: str | None = None,
        inclusive: bool = False,
        limit: int | None = None,
        selector: Selector | None = None,
    ) -> _Page: ...
    def select_encoded(
        self,
        prefix: str,
        start: str | None = None,
        inclusive: bool = False,
        limit: int | None = None,
        selector: Selector | None = None,
        kind: str | None = None,
        api_version: str | None = None,
    ) -> _EncodedPage: ...
    def count(self, prefix: str = "", start_after: str | None = None) -> int: ...
    def keys(self, prefix: str = "") -> list[str]: ...

# --- owners ---------------------------------------------------------------------------------

@final
class OwnerMap:
    """`uid -> owner` for the tenant map: canonical UUIDs as 16 bytes, owners interned."""

    def __new__(cls) -> OwnerMap: ...
    def claim(self, uid: str, owner: str) -> bool: ...
    def owner(self, uid: str) -> str | None: ...
    def forget(self, uid: str) -> bool: ...
    def uids(self) -> list[str]: ...
    def mark(self, uid: str) -> bool: ...
    def sweep(self, keep: Container[str]) -> int: ...
    def __len__(self) -> int: ...
    def __contains__(self, uid: object, /) -> bool: ...

def trim_heap() -> bool: ...
def tune_heap(mmap_threshold: int, trim_threshold: int) -> bool: ...

# --- protobuf -------------------------------------------------------------------------------

PROTOBUF_MAGIC: Final[bytes]

class ProtobufDecodeError(ValueError):
    """A protobuf body that is not a valid encoding of the kind it must hold."""

class ProtobufEncodeError(ValueError):
    """JSON with no protobuf encoding (an unknown kind, a value of the wrong type)."""

def protobuf_to_json(data: bytes, api_version: str, kind: str) -> bytes: ...
def json_to_protobuf(json: bytes) -> bytes: ...
def protobuf_watch_frame(event_json: bytes) -> bytes: ...
def protobuf_kinds() -> list[tuple[str, str]]: ...
