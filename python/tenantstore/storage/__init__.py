"""The storage interface: one protocol, its options, events, errors and helpers."""

from .continue_token import decode as decode_continue
from .continue_token import encode as encode_continue
from .errors import (
    AlreadyExistsError,
    BadRequestError,
    ConflictError,
    GoneError,
    InternalError,
    InvalidError,
    NotFoundError,
    RequestEntityTooLargeError,
    ResourceExpiredError,
    StorageError,
    TooLargeResourceVersionError,
    UnavailableError,
    to_status,
)
from .events import EventType, WatchEvent
from .interface import Object, Storage, UpdateFunc, UpdateResult, ValidateDeletion
from .options import ListOptions, ObjectList, Preconditions, ResourceVersionMatch, Stats
from .selectors import FieldSelector, LabelSelector, Predicate
from .watch import QueueWatch, Watch

__all__ = [
    "AlreadyExistsError",
    "BadRequestError",
    "ConflictError",
    "EventType",
    "FieldSelector",
    "GoneError",
    "InternalError",
    "InvalidError",
    "LabelSelector",
    "ListOptions",
    "NotFoundError",
    "Object",
    "ObjectList",
    "Preconditions",
    "Predicate",
    "QueueWatch",
    "RequestEntityTooLargeError",
    "ResourceExpiredError",
    "ResourceVersionMatch",
    "Stats",
    "Storage",
    "StorageError",
    "TooLargeResourceVersionError",
    "UnavailableError",
    "UpdateFunc",
    "UpdateResult",
    "ValidateDeletion",
    "Watch",
    "WatchEvent",
    "decode_continue",
    "encode_continue",
    "to_status",
]
