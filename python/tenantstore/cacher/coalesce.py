"""Sharing one store round trip among many concurrent callers, safely.

A consistent read needs the store's revision as of some moment *after* the read
began. Concurrent reads may share a round trip only if it starts after each of them
arrived: a caller that arrives while a round is in flight joins the next one, which
starts when the current one ends. Under load this turns one store call per read into
at most two rounds in flight, whatever the number of readers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class NextRound(Generic[T]):
    def __init__(self, fn: Callable[[], Awaitable[T]]) -> None:
        self._fn = fn
        self._next: asyncio.Future[T] | None = None
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self) -> T:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        fut = self._next
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run())
        # Shielded: one caller giving up must not cancel the round for the others.
        return await asyncio.shield(fut)

    async def _run(self) -> None:
        try:
            while self._next is not None:
                fut, self._next = self._next, None
                try:
                    result = await self._fn()
                except asyncio.CancelledError:
                    fut.cancel()
                    raise
                except Exception as exc:
                    if not fut.done():
                        fut.set_exception(exc)
                    fut.exception()  # retrieved: no "never retrieved" warning if unused
                else:
                    if not fut.done():
                        fut.set_result(result)
        finally:
            self._runner = None
            if self._next is not None and not self._next.done():
                self._next.cancel()
                self._next = None
