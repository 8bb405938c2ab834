"""NextRound: concurrent callers share rounds, but never one that began before them."""

from __future__ import annotations

import asyncio

import pytest

from tenantstore.cacher.coalesce import NextRound


async def settle() -> None:
    """Let every ready task run until all of them are blocked."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_callers_share_rounds_that_start_after_they_arrive() -> None:
    started = 0
    release = asyncio.Event()

    async def fn() -> int:
        nonlocal started
        started += 1
        mine = started
        await release.wait()
        return mine

    rounds = NextRound(fn)
    first = [asyncio.create_task(rounds()) for _ in range(5)]
    await settle()  # round 1 is running with those five
    assert started == 1
    later = [asyncio.create_task(rounds()) for _ in range(5)]
    await settle()
    assert started == 1  # the late callers wait for the next round, not this one
    release.set()
    assert await asyncio.gather(*first) == [1] * 5
    assert await asyncio.gather(*later) == [2] * 5
    assert started == 2


async def test_errors_reach_every_caller_of_the_round_and_the_next_round_runs() -> None:
    calls = 0

    async def fn() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("backend down")
        return calls

    rounds = NextRound(fn)
    results = await asyncio.gather(rounds(), rounds(), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await rounds() == 2


async def test_a_caller_giving_up_does_not_cancel_the_round() -> None:
    release = asyncio.Event()

    async def fn() -> str:
        await release.wait()
        return "done"

    rounds = NextRound(fn)
    impatient = asyncio.create_task(rounds())
    patient = asyncio.create_task(rounds())
    await settle()
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    release.set()
    assert await patient == "done"
