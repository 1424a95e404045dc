"""One timer heap for every job in flight, instead of a sleeping task per job.

`TimerHeap.run(handler)` waits on the clock until the earliest entry is due and hands
due keys to `handler`. Rescheduling a key replaces its previous entry (stale entries
are skipped lazily), so each job has at most one pending wake-up.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

from bot.clock import Clock


class TimerHeap:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, str]] = []
        self._due_of: dict[str, tuple[float, int]] = {}
        self._counter = itertools.count()
        self._wake = asyncio.Event()
        self.parked = False  # True while waiting with nothing due (tests use it to settle)

    def __len__(self) -> int:
        return len(self._due_of)

    def __contains__(self, key: str) -> bool:
        return key in self._due_of

    def schedule(self, key: str, at: float) -> None:
        seq = next(self._counter)
        self._due_of[key] = (at, seq)
        heapq.heappush(self._heap, (at, seq, key))
        if self._heap[0][1] == seq:  # the new entry is the earliest: re-arm the wait
            self._wake.set()

    def cancel(self, key: str) -> None:
        self._due_of.pop(key, None)

    def due_at(self, key: str) -> float | None:
        entry = self._due_of.get(key)
        return entry[0] if entry else None

    def next_due(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def has_due(self) -> bool:
        nxt = self.next_due()
        return nxt is not None and nxt <= self._clock.time()

    def pop_due(self) -> list[str]:
        now = self._clock.time()
        due: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            at, seq, key = heapq.heappop(self._heap)
            if self._due_of.get(key) == (at, seq):
                del self._due_of[key]
                due.append(key)
        return due

    def _drop_stale(self) -> None:
        while self._heap:
            at, seq, key = self._heap[0]
            if self._due_of.get(key) == (at, seq):
                return
            heapq.heappop(self._heap)

    async def run(self, handler: Callable[[str], None]) -> None:
        """Forever: hand each key to `handler` when it falls due."""
        while True:
            for key in self.pop_due():
                handler(key)
            nxt = self.next_due()
            self._wake.clear()
            self.parked = True
            try:
                if nxt is None:
                    await self._wake.wait()
                else:
                    await self._wait(nxt - self._clock.time())
            finally:
                self.parked = False

    async def _wait(self, delay: float) -> None:
        sleeper = asyncio.ensure_future(self._clock.sleep(delay))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
