"""Measurement tools behind `tenantstore bench ...`: the scale harness and the load generator.

Their third-party dependencies come from the `bench` extra, not from the library's own
requirements, so this package's `__init__` and `options` import none of them: the
`tenantstore` command builds its parser and checks for the extra before anything here
touches `httpx`, `rich` or `matplotlib`.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRA", "EXTRA_MODULES", "missing_extra"]

EXTRA = "bench"
# Import names of the `bench` extra in pyproject.toml (all three: `bench scale` plots and
# draws tables only at the end of a run, so a late ImportError would waste the run).
EXTRA_MODULES = ("httpx", "rich", "matplotlib")


def missing_extra() -> list[str]:
    """The modules of the `bench` extra that cannot be imported, without importing any.

    `find_spec` locates a package without running it (`matplotlib` is slow to import),
    and answers `None` for a name blocked in `sys.modules`.
    """
    missing = []
    for name in EXTRA_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing
