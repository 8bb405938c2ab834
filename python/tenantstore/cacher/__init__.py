"""The shared watch cache: reflector, index + event window, watchers and dispatch."""

from .cacher import Cacher
from .reflector import KeyFunc, default_key_func
from .watchers import CacheWatcher, ScanningWatcherTable, WatcherTable
from .window import CacheEvent, EventWindow

__all__ = [
    "CacheEvent",
    "CacheWatcher",
    "Cacher",
    "EventWindow",
    "KeyFunc",
    "ScanningWatcherTable",
    "WatcherTable",
    "default_key_func",
]
