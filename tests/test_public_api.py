"""The package root is the public API: every exported name resolves, and importing it
stays light (no gRPC) because the heavy names are resolved only when first used."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tenantstore

REQUIRED = {
    "SqliteKV",
    "EtcdKV",
    "open_kv",
    "KV",
    "KVStorage",
    "Cacher",
    "SharedStorageFactory",
    "PerProjectStorageFactory",
    "make_factory",
    "project_scope",
    "all_projects",
    "current_project",
    "ListOptions",
    "ObjectList",
    "Preconditions",
    "ResourceVersionMatch",
    "Storage",
    "Watch",
    "WatchEvent",
    "EventType",
    "StorageError",
    "NotFoundError",
    "AlreadyExistsError",
    "ConflictError",
    "GoneError",
    "InvalidError",
    "BadRequestError",
    "UnavailableError",
    "InternalError",
    "TooLargeResourceVersionError",
    "__version__",
}


def test_all_lists_the_public_names() -> None:
    assert set(tenantstore.__all__) >= REQUIRED
    assert len(tenantstore.__all__) == len(set(tenantstore.__all__))


@pytest.mark.parametrize("name", sorted(tenantstore.__all__))
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(tenantstore, name) is not None


def test_exports_are_the_objects_of_their_layers() -> None:
    from tenantstore.backends.sqlite import SqliteKV
    from tenantstore.storage import NotFoundError, StorageError
    from tenantstore.tenancy import SharedStorageFactory, project_scope

    assert tenantstore.SqliteKV is SqliteKV
    assert tenantstore.SharedStorageFactory is SharedStorageFactory
    assert tenantstore.project_scope is project_scope
    assert issubclass(tenantstore.NotFoundError, tenantstore.StorageError)
    assert tenantstore.StorageError is StorageError and tenantstore.NotFoundError is NotFoundError


def test_from_import_works() -> None:
    from tenantstore import (
        EtcdKV,
        ListOptions,
        SharedStorageFactory,
        SqliteKV,
        Storage,
        all_projects,
        project_scope,
    )

    assert EtcdKV.__name__ == "EtcdKV"
    assert SqliteKV.__name__ == "SqliteKV"
    assert SharedStorageFactory.__name__ == "SharedStorageFactory"
    assert ListOptions(recursive=True).recursive
    assert Storage.__name__ == "Storage"
    assert callable(project_scope) and callable(all_projects)


def test_dir_lists_the_lazy_names() -> None:
    assert set(tenantstore.__all__) <= set(dir(tenantstore))


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = tenantstore.no_such_name  # type: ignore[attr-defined]


def test_type_checkers_see_what_the_package_exports() -> None:
    """The names imported under `TYPE_CHECKING` must not drift from the lazy exports."""
    tree = ast.parse(Path(tenantstore.__file__).read_text())
    imported: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    imported.update(a.asname or a.name for a in stmt.names)
    assert imported | {"__version__"} == set(tenantstore.__all__)


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        # The same `tenantstore` as this process, not whatever the subprocess finds first.
        env={**os.environ, "PYTHONPATH": str(Path(tenantstore.__file__).parents[1])},
    )
    return set(out.stdout.split())


def test_import_tenantstore_does_not_load_grpc() -> None:
    loaded = _modules_after("import tenantstore")
    assert "tenantstore" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("grpc", "aetcd")}


def test_sqlite_names_do_not_load_grpc() -> None:
    """Only `EtcdKV` needs gRPC: an embedder on SQLite never loads it."""
    loaded = _modules_after(
        "from tenantstore import SqliteKV, SharedStorageFactory, project_scope, ListOptions"
    )
    assert "tenantstore.backends.sqlite" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("grpc", "aetcd")}


def test_etcd_name_loads_grpc() -> None:
    """The check above is not vacuous: resolving `EtcdKV` does load it."""
    loaded = _modules_after("from tenantstore import EtcdKV")
    assert "aetcd" in loaded and "grpc" in loaded


def test_the_cli_parser_needs_no_bench_or_test_dependency() -> None:
    """`tenantstore --help` lists the bench commands, but what they need (httpx,
    matplotlib, granian: the `bench` extra) is not installed with tenantstore: building
    the parser must not import them (the wheel smoke test caught this once)."""
    loaded = _modules_after(
        "from tenantstore.cli import build_parser\nbuild_parser()[0].format_help()"
    )
    assert "tenantstore.cli" in loaded
    extras = {"httpx", "matplotlib", "granian", "rich", "pytest"}
    assert not {m for m in loaded if m.split(".")[0] in extras}
