# What type checkers see of the package root. At run time `__init__.py` resolves these
# names lazily (PEP 562) so `import tenantstore` stays light; the two lists are kept in
# step by `tests/test_public_api.py`. The imports live here rather than under
# `if TYPE_CHECKING:` in `__init__.py` because the package root is shared vocabulary for
# the layer check (`tests/architecture/test_layers.py`), which reads every `.py` import.

from tenantstore.backends import KV as KV
from tenantstore.backends import open_kv as open_kv
from tenantstore.backends.etcd import EtcdKV as EtcdKV
from tenantstore.backends.sqlite import SqliteKV as SqliteKV
from tenantstore.cacher import Cacher as Cacher
from tenantstore.storage import AlreadyExistsError as AlreadyExistsError
from tenantstore.storage import BadRequestError as BadRequestError
from tenantstore.storage import ConflictError as ConflictError
from tenantstore.storage import EventType as EventType
from tenantstore.storage import GoneError as GoneError
from tenantstore.storage import InternalError as InternalError
from tenantstore.storage import InvalidError as InvalidError
from tenantstore.storage import ListOptions as ListOptions
from tenantstore.storage import NotFoundError as NotFoundError
from tenantstore.storage import ObjectList as ObjectList
from tenantstore.storage import Preconditions as Preconditions
from tenantstore.storage import ResourceVersionMatch as ResourceVersionMatch
from tenantstore.storage import Storage as Storage
from tenantstore.storage import StorageError as StorageError
from tenantstore.storage import TooLargeResourceVersionError as TooLargeResourceVersionError
from tenantstore.storage import UnavailableError as UnavailableError
from tenantstore.storage import Watch as Watch
from tenantstore.storage import WatchEvent as WatchEvent
from tenantstore.store import KVStorage as KVStorage
from tenantstore.tenancy import PerProjectStorageFactory as PerProjectStorageFactory
from tenantstore.tenancy import SharedStorageFactory as SharedStorageFactory
from tenantstore.tenancy import all_projects as all_projects
from tenantstore.tenancy import current_project as current_project
from tenantstore.tenancy import make_factory as make_factory
from tenantstore.tenancy import project_scope as project_scope

__version__: str

__all__ = [
    "KV",
    "AlreadyExistsError",
    "BadRequestError",
    "Cacher",
    "ConflictError",
    "EtcdKV",
    "EventType",
    "GoneError",
    "InternalError",
    "InvalidError",
    "KVStorage",
    "ListOptions",
    "NotFoundError",
    "ObjectList",
    "PerProjectStorageFactory",
    "Preconditions",
    "ResourceVersionMatch",
    "SharedStorageFactory",
    "SqliteKV",
    "Storage",
    "StorageError",
    "TooLargeResourceVersionError",
    "UnavailableError",
    "Watch",
    "WatchEvent",
    "__version__",
    "all_projects",
    "current_project",
    "make_factory",
    "open_kv",
    "project_scope",
]
