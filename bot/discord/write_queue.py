"""Whose message write goes next when Discord's buckets are short.

Each message (a job's) has at most one write waiting: the publisher asks for a turn once
it has something to show and renders the newest state only when the turn comes, so a
waiting edit is replaced by newer states, never queued twice. When room comes free in a
bucket, the turns go:

1. finals first, then a message's first visible state, then progress, and last the
   changes of queue position or elapsed time alone;
2. within one class, round-robin between messages: the one whose last write is oldest
   goes first, so with `n` messages in a bucket refilled at `r` writes per second each
   message still changes about every `n / r` seconds.

A waiting write that a higher one is blocked on does not let a lower one take the room it
needs (a final waiting on a guild bucket holds that bucket for itself).
"""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.discord.rate_limits import BucketLedger, Key, Ticket, Write


class Priority(enum.IntEnum):
    FINAL = 0
    FIRST = 1
    PROGRESS = 2
    COSMETIC = 3


@dataclass(eq=False)
class _Turn:
    owner: object
    write: Callable[[], Write]
    priority: Callable[[], Priority]
    last_turn_at: float
    granted: asyncio.Future[Ticket] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class WriteQueue:
    def __init__(self, ledger: BucketLedger, clock: Callable[[], float]) -> None:
        self._ledger = ledger
        self._clock = clock
        self._turns: dict[object, _Turn] = {}
        self._last_turn: dict[object, float] = {}
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        ledger.subscribe(self._kick)

    def waiting(self) -> int:
        return len(self._turns)

    def waiting_by_bucket(self) -> dict[str, int]:
        """Bucket id → writes waiting on it (for /metrics)."""
        counts: dict[str, int] = {}
        for turn in self._turns.values():
            for bucket, _ in self._ledger.keys(turn.write()):
                counts[bucket] = counts.get(bucket, 0) + 1
        return counts

    async def turn(
        self,
        owner: object,
        write: Callable[[], Write],
        priority: Callable[[], Priority],
    ) -> Ticket:
        """Wait for `owner`'s turn to write; the room is reserved in the returned Ticket.
        `write` and `priority` are read again at every round, as the state moves on."""
        turn = _Turn(owner, write, priority, self._last_turn.get(owner, -math.inf))
        previous = self._turns.get(owner)
        if previous is not None and not previous.granted.done():
            previous.granted.cancel()
        self._turns[owner] = turn
        self._kick()
        try:
            ticket = await turn.granted
        except asyncio.CancelledError:
            if turn.granted.done() and not turn.granted.cancelled():
                self._ledger.release(turn.granted.result())
            raise
        finally:
            if self._turns.get(owner) is turn:
                del self._turns[owner]
        self._last_turn[owner] = self._clock()
        return ticket

    def forget(self, owner: object) -> None:
        """`owner` will write no more (its final is out)."""
        self._last_turn.pop(owner, None)

    def _kick(self) -> None:
        if not self._scheduled and self._turns:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._grant)

    def _grant(self) -> None:
        self._scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held: set[Key] = set()
        next_wake = math.inf
        ranked = sorted(
            (t for t in self._turns.values() if not t.granted.done()),
            key=lambda t: (t.priority(), t.last_turn_at),
        )
        for turn in ranked:
            write = turn.write()
            keys = self._ledger.keys(write)
            if held.intersection(keys) or (write.bot_token and ("global", "*") in held):
                continue
            wait, blocking = self._ledger.wait_for(write)
            if wait == 0:
                turn.granted.set_result(self._ledger.reserve(write))
                continue
            held.update(keys)
            held.update(blocking)
            if wait is not None:
                next_wake = min(next_wake, wait)
        if next_wake < math.inf:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(next_wake, 0.001), self._kick)
