"""The `tenantstore` command's own errors: one line a person can act on, exit 2."""

from __future__ import annotations

import sys

import pytest

from tenantstore.cli import main


@pytest.mark.parametrize("command", [["scale", "--projects", "1"], ["load", "--requests", "1"]])
def test_bench_without_extra_says_what_to_install(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # None in sys.modules: import fails
    assert main(["bench", *command]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "tenantstore bench needs the 'bench' extra: "
        "pip install 'tenantstore[bench]' (missing: rich)\n"
    )
