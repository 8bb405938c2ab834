"""The layers in the README are the layers in the code: an import graph check.

Each module of `tenantstore` belongs to a layer; a module may import its own layer, the
one directly below, and the shared vocabulary every layer speaks (the `Storage`
protocol package, the codec and transformer protocols, the typed wrappers of the Rust
core). Only the wiring modules, whose job is to assemble a whole stack, reach further.
The test reads the sources with `ast`, so it sees every import, including the ones
inside functions and under `TYPE_CHECKING`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "python" / "tenantstore"

# Lowest first: a module may import its own rank and the rank directly below. The
# entry points share the top rank: the API server, the CLI and the bench command.
LAYERS = [["backends"], ["store"], ["cacher"], ["tenancy"], ["server", "cli"]]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}

# Shared vocabulary, importable from every layer.
SHARED = {"storage", "codec", "transformers", "keys", "frames", "index", "kubeproto", "__init__"}

# Only the typed wrappers may import the extension module.
NATIVE_WRAPPERS = {
    "tenantstore.keys",
    "tenantstore.frames",
    "tenantstore.index",
    "tenantstore.kubeproto",
}

# Modules that assemble a whole stack (KV driver -> store -> cacher -> tenancy).
WIRING = {
    "tenantstore.tenancy.factory",
    "tenantstore.tenancy.shared",
    "tenantstore.tenancy.per_project",
    "tenantstore.tenancy.scope_router",
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2:
        return "__init__"
    top = parts[1]
    if not (ROOT / top).exists() and not (ROOT / f"{top}.py").exists():
        return "__init__"  # a name defined in the package root (`__version__`)
    if top in ("cli", "__main__", "bench"):
        return "cli"
    return top


def _imports(path: Path) -> set[str]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("tenantstore"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("tenantstore"):
                continue
            if node.module is None or target in ("tenantstore",):
                # `from . import x` / `from tenantstore import _native`: the names are modules.
                found.update(f"{target}.{a.name}" for a in node.names)
            else:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(ROOT.rglob("*.py"))}


def _violations(graph: dict[str, set[str]] | None = None) -> list[str]:
    out: list[str] = []
    for module, targets in (import_graph() if graph is None else graph).items():
        src = _layer(module)
        for target in sorted(targets):
            if target == "tenantstore._native" or target.startswith("tenantstore._native."):
                if module not in NATIVE_WRAPPERS:
                    out.append(f"{module} imports the extension {target} directly")
                continue
            dst = _layer(target)
            if dst in SHARED:
                continue
            if module == "tenantstore":
                continue  # the package root: the public facade, re-exporting every layer
            if src in SHARED:
                out.append(f"shared module {module} imports layer module {target}")
                continue
            if module in WIRING or target in WIRING or src is None or dst is None:
                continue
            if src not in RANK or dst not in RANK:
                out.append(f"{module} -> {target}: unknown layer {src!r} or {dst!r}")
                continue
            if RANK[dst] > RANK[src]:
                out.append(f"{module} ({src}) imports {target} from the layer above ({dst})")
            elif RANK[src] - RANK[dst] > 1:
                out.append(f"{module} ({src}) reaches past a layer to {target} ({dst})")
    return out


def test_every_module_imports_only_its_own_layer_or_the_one_below() -> None:
    assert _violations() == []


def test_the_check_sees_a_violation() -> None:
    """The rule is not vacuous: each kind of edge it forbids is reported, and the real
    graph has cross-layer edges, all of them legal."""
    forbidden = {
        "tenantstore.server.app": {"tenantstore.backends.sqlite"},  # past a layer
        "tenantstore.store.kv_storage": {"tenantstore.cacher.cacher"},  # upward
        "tenantstore.cacher.cacher": {"tenantstore._native"},  # the extension, unwrapped
        "tenantstore.codec": {"tenantstore.store"},  # shared vocabulary into a layer
    }
    assert len(_violations(forbidden)) == 4
    allowed = {
        "tenantstore.tenancy.shared": {"tenantstore.backends.kv"},  # wiring
        "tenantstore.server.app": {"tenantstore.tenancy.factory", "tenantstore.storage"},
    }
    assert _violations(allowed) == []
    graph = import_graph()
    assert "tenantstore.store.kv_storage" in graph
    assert any(t.startswith("tenantstore.backends") for t in graph["tenantstore.store.kv_storage"])
    assert any(t.startswith("tenantstore.cacher") for t in graph["tenantstore.tenancy.shared"])


@pytest.mark.parametrize("driver", ["sqlite", "etcd"])
def test_no_module_above_the_drivers_names_a_driver(driver: str) -> None:
    users = [
        m
        for m, targets in import_graph().items()
        if f"tenantstore.backends.{driver}" in targets
        and not m.startswith("tenantstore.backends")
        and m != "tenantstore"  # the public facade names every driver, lazily
    ]
    assert users == []
