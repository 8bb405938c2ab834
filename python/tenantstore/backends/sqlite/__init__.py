"""The embedded default backend, an etcd-shaped log in one SQLite file.

The design follows kine (the SQL-backed etcd shim k3s uses), and so does the split:

* `sql.py` (`SqliteDB`): the log table and its queries, the connections and their
  threads, group commit, compaction and the TTL sweep (kine's dialect and `generic`).
* `log.py` (`Tailer`): one tailer reading new rows and fanning them out to bounded
  watcher buffers, backlog reads, demotion of slow watchers (kine's `sqllog`). It
  reads the log only through the small `LogSource` protocol `SqliteDB` satisfies.
* `driver.py` (`SqliteKV`): the `KV` contract composed of the two (kine's
  `logstructured`).

Importing this package registers the `sqlite://` scheme: `open_kv` imports it lazily.
"""

from __future__ import annotations

from .. import register_driver
from ..kv import InvalidKVInputError
from .driver import SqliteKV, open_url

__all__ = ["InvalidKVInputError", "SqliteKV", "open_url"]

register_driver("sqlite", open_url)
