"""Time as a dependency, so that the engine and the fakes can run on a controlled clock.

`SystemClock` is the real thing. `FakeClock` only moves when told to (`advance`), and
wakes the sleepers whose time has come, which keeps tests deterministic and fast.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock Unix seconds."""
        ...

    async def sleep(self, delay: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(max(0.0, delay))


class FakeClock:
    """A clock that stands still until `advance()` moves it."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()

    def time(self) -> float:
        return self._now

    async def sleep(self, delay: float) -> None:
        if delay <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + delay, next(self._counter), future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper that is now due."""
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())
