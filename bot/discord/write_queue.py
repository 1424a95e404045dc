"""Whose message write goes next when Discord's buckets are short.

Each message (a job's) has at most one write waiting: the publisher asks for a turn once
it has something to show and renders the newest state only when the turn comes, so a
waiting edit is replaced by newer states, never queued twice. When room comes free in a
bucket, the turns go:

1. finals first, then a message's first visible state, then progress, and last the
   changes of queue position or elapsed time alone;
2. within one class, round-robin between messages: the one whose last write is oldest
   goes first, so with `n` messages in a bucket refilled at `r` writes per second each
   message still changes about every `n / r` seconds; finals in the order their jobs
   ended (first come, first served keeps the longest wait for a final shortest).

A waiting write that a higher one is blocked on does not let a lower one take the room it
needs (a final waiting on a guild bucket holds that bucket for itself). A write may name
alternatives (an interaction's message can be edited through its token or by the bot's
own channel edit): the first that has room is used.
"""

from __future__ import annotations

import asyncio
import enum
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
    write: Callable[[], tuple[Write, ...]]  # alternatives, preferred first
    # (class, then the earlier goes first: the job's end for finals, else the last write)
    rank: Callable[[], tuple[Priority, float]]
    granted: asyncio.Future[Ticket] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class WriteQueue:
    """Turns per bucket. A turn that cannot go is parked under the first key that holds it
    back and looked at again only when that key is touched by an answer or reaches its
    reset time: with thousands of messages waiting in hundreds of buckets, an answer costs
    a look at its own bucket's waiting writes, not at all of them."""

    def __init__(self, ledger: BucketLedger) -> None:
        self._ledger = ledger
        self._turns: dict[object, _Turn] = {}
        self._fresh: list[_Turn] = []  # not looked at yet
        self._parked: dict[Key, dict[object, _Turn]] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._dirty: set[Key] = set()
        self._everything_dirty = False
        self._scheduled = False
        ledger.subscribe(self._touched)

    def waiting(self) -> int:
        return len(self._turns)

    def waiting_by_bucket(self) -> dict[str, int]:
        """Bucket id → writes waiting on it (for /metrics)."""
        counts: dict[str, int] = {}
        for turn in self._turns.values():
            for bucket, _ in self._ledger.keys(turn.write()[0]):
                counts[bucket] = counts.get(bucket, 0) + 1
        return counts

    async def turn(
        self,
        owner: object,
        write: Callable[[], tuple[Write, ...]],
        rank: Callable[[], tuple[Priority, float]],
    ) -> Ticket:
        """Wait for `owner`'s turn to write; the room is reserved in the returned Ticket.
        `write` and `rank` are read again at every look, as the state moves on."""
        turn = _Turn(owner, write, rank)
        previous = self._turns.get(owner)
        if previous is not None and not previous.granted.done():
            previous.granted.cancel()
        self._turns[owner] = turn
        self._fresh.append(turn)
        self._schedule()
        try:
            ticket = await turn.granted
        except asyncio.CancelledError:
            if turn.granted.done() and not turn.granted.cancelled():
                self._ledger.release(turn.granted.result())
            raise
        finally:
            if self._turns.get(owner) is turn:
                del self._turns[owner]
        return ticket

    # --- looking again ----------------------------------------------------------------------

    def _touched(self, keys: frozenset[Key]) -> None:
        if keys:
            self._dirty |= keys & self._parked.keys()
        else:
            self._everything_dirty = True
        if self._dirty or self._everything_dirty:
            self._schedule()

    def _reset_due(self, key: Key) -> None:
        self._timers.pop(key, None)
        self._dirty.add(key)
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._grant)

    def _candidates(self) -> list[_Turn]:
        keys = list(self._parked) if self._everything_dirty else list(self._dirty)
        self._dirty.clear()
        self._everything_dirty = False
        found, self._fresh = self._fresh, []
        for key in keys:
            found.extend(self._parked.pop(key, {}).values())
        live = [t for t in found if not t.granted.done() and self._turns.get(t.owner) is t]
        return sorted(live, key=lambda t: t.rank())

    def _grant(self) -> None:
        self._scheduled = False
        held: set[Key] = set()
        for turn in self._candidates():
            parked: tuple[Key, float | None] | None = None
            holds: set[Key] = set()  # what this turn, if it cannot go, keeps from lower ones
            for write in turn.write():
                keys = self._ledger.keys(write)
                blocked_by = [k for k in keys if k in held]
                if write.bot_token and GLOBAL_KEY in held:
                    blocked_by.append(GLOBAL_KEY)
                if blocked_by:
                    # Held back by a higher write in this look: its answer touches the
                    # key; a second's timer is the safety net should none come.
                    parked = parked or (blocked_by[0], 1.0)
                    continue
                wait, blocking = self._ledger.wait_for(write)
                if wait == 0:
                    turn.granted.set_result(self._ledger.reserve(write))
                    break
                holds.update(keys)
                holds.update(blocking)
                if parked is None or (wait is not None and (parked[1] or 0) > wait):
                    parked = ((blocking or (PROBE_KEY,))[0], wait)
            else:
                held |= holds
                key, wait = parked or (PROBE_KEY, 1.0)
                self._park(turn, key, wait)

    def _park(self, turn: _Turn, key: Key, wait: float | None) -> None:
        """Look at `turn` again when `key` is touched or, after `wait` s, resets."""
        self._parked.setdefault(key, {})[turn.owner] = turn
        if wait and key not in self._timers:
            loop = asyncio.get_running_loop()
            self._timers[key] = loop.call_later(max(wait, 0.001), self._reset_due, key)


# Pseudo keys: the global limit, and a route waiting for its first answer (any answer
# may be it: looked at again after every one).
GLOBAL_KEY: Key = ("global", "*")
PROBE_KEY: Key = ("probe", "*")
