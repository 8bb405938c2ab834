"""The request scope: project_scope, root, all_projects."""

from __future__ import annotations

import asyncio

import pytest

from tenantstore.keys import InvalidProjectError
from tenantstore.tenancy import (
    ALL_PROJECTS,
    ScopeError,
    all_projects,
    current_project,
    current_scope,
    in_all_projects,
    project_scope,
)


def test_default_is_root() -> None:
    assert current_project() is None
    assert current_scope() is None
    assert not in_all_projects()


def test_sync_scope_sets_and_restores() -> None:
    with project_scope("p1") as scope:
        assert scope == "p1"
        assert current_project() == "p1"
        with project_scope("p1"):  # re-entering the same project is fine
            assert current_project() == "p1"
        assert current_project() == "p1"
    assert current_project() is None


async def test_async_scope_follows_awaits_and_tasks() -> None:
    seen: list[str | None] = []

    async def child() -> None:
        await asyncio.sleep(0)
        seen.append(current_project())

    async with project_scope("p2"):
        await asyncio.sleep(0)
        assert current_project() == "p2"
        task = asyncio.create_task(child())
        await asyncio.gather(child(), task)
    assert seen == ["p2", "p2"]
    assert current_project() is None


async def test_concurrent_requests_do_not_share_scope() -> None:
    async def request(project: str) -> list[str | None]:
        out = []
        async with project_scope(project):
            for _ in range(5):
                await asyncio.sleep(0)
                out.append(current_project())
        return out

    results = await asyncio.gather(*(request(f"p{i}") for i in range(10)))
    for i, got in enumerate(results):
        assert got == [f"p{i}"] * 5


@pytest.mark.parametrize("bad", ["", "a/b", "..", ".", "P1", "p_1", "-p", "p-", "a" * 64, "p1/"])
def test_invalid_project_ids_rejected_at_entry(bad: str) -> None:
    with pytest.raises(InvalidProjectError):
        project_scope(bad)
    assert current_project() is None


def test_non_str_project_rejected() -> None:
    with pytest.raises(TypeError):
        project_scope(1)  # type: ignore[arg-type]


def test_all_projects_is_explicit_and_refused_inside_a_project() -> None:
    with all_projects() as scope:
        assert scope is ALL_PROJECTS
        assert in_all_projects()
        assert current_project() is None
        with project_scope("p1"):  # narrowing is allowed
            assert current_project() == "p1"
        assert in_all_projects()
    assert not in_all_projects()
    with project_scope("p1"):
        with pytest.raises(ScopeError), all_projects():
            pass
        with pytest.raises(ScopeError), project_scope("p2"):
            pass
        with pytest.raises(ScopeError), project_scope(None):
            pass
        assert current_project() == "p1"
