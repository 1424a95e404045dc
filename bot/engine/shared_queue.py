"""The engine's side of one account limit and one members' queue for all processes
(issue 17): on a store shared by several processes (PostgreSQL), what is sent next is
decided by the store's dispatch transaction, not by this process's `FairQueue` and
counters (see bot/store/pg_queue.py for how the database keeps them).

`SharedDispatch` runs that transaction on demand, one at a time: when a slot may have
freed here or a job was queued (the engine's `_pump`), when another process granted one
of our jobs a slot (NOTIFY), and every `period_s` while this process has jobs waiting (a
lost notification, a resubmission whose delay passed). After each run it starts this
process's granted jobs and shows the positions the database gives: a job's place in the
one round-robin of every process (with several accounts it counts every job ahead, not
only those competing for its accounts as the one-process positions do). Nothing here
knows Discord; on SQLite none of this exists and the engine behaves as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol, runtime_checkable

from bot.domain import Job
from bot.store.base import StoreError

log = logging.getLogger(__name__)

# A job of any process, the slots in use per account -> the account it would go to now.
Place = Callable[[Job, Mapping[str, int]], str | None]
# How often a process with waiting jobs runs a dispatch without being asked.
DISPATCH_PERIOD_S = 1.5


@runtime_checkable
class SharedQueue(Protocol):
    """What the store offers (`PostgresSharedQueue`)."""

    async def register_accounts(self, limits: Mapping[str, int]) -> None: ...

    async def dispatch(
        self, limits: Mapping[str, int], place: Place, *, known_waiting: bool = False
    ) -> list[Any]: ...

    async def granted(self) -> dict[str, str]: ...

    async def requeue(self, job_id: str, delay_s: float) -> bool: ...

    async def positions(self) -> dict[str, int]: ...

    @property
    def owner(self) -> str: ...

    async def listen(self, callback: Callable[[], None]) -> None: ...


def shared_queue_of(leases: object) -> SharedQueue | None:
    """The shared queue of a store's lease API (PostgreSQL), or None (SQLite)."""
    queue = getattr(leases, "queue", None)
    return queue if isinstance(queue, SharedQueue) else None


class SharedDispatch:
    """Single-flight dispatch runs: a wake during a run makes one more run after it."""

    def __init__(
        self,
        queue: SharedQueue,
        *,
        limits: Callable[[], Mapping[str, int]],
        place: Place,
        start: Callable[[dict[str, str]], None],
        show: Callable[[dict[str, int]], None],
        spawn: Callable[[Coroutine[Any, Any, None], str], None],
        waiting: Callable[[], bool],
    ) -> None:
        self.queue = queue
        self._limits = limits
        self._place = place
        self._waiting = waiting  # this process has jobs of its own in the queue
        self._start = start
        self._show = show
        self._spawn = spawn
        self._running = False
        self._again = False
        self._look = True  # read our grants: another process may have granted some
        self._requeueing: set[str] = set()  # their slot is being given back: not sent
        self.positions: dict[str, int] = {}  # this process's waiting jobs, as last read

    async def open(self) -> None:
        """Before the first dispatch: the accounts rows exist, and grants wake us."""
        await self.queue.register_accounts(self._limits())
        try:
            await self.queue.listen(self.poke)
        except (StoreError, OSError) as exc:  # the periodic dispatch still finds them
            log.warning(
                "dispatch notifications unavailable (%s); looking every %.1fs",
                exc,
                DISPATCH_PERIOD_S,
            )

    def poke(self) -> None:
        """Wake, and read which of our jobs were granted (a NOTIFY)."""
        self.look_next()
        self.wake()

    def look_next(self) -> None:
        """The next run reads our grants (the periodic look, for a lost NOTIFY)."""
        self._look = True

    def wake(self) -> None:
        if self._running:
            self._again = True
            return
        self._running = True
        self._spawn(self._run(), "shared-dispatch")

    def requeue(self, job_id: str, delay_s: float) -> None:
        """A job of ours back in the queue: its slot is given back, then a dispatch runs.
        Until then it still reads as granted, and must not be sent before its delay."""
        self._requeueing.add(job_id)

        async def write() -> None:
            try:
                await self.queue.requeue(job_id, delay_s)
            except StoreError as exc:
                # It keeps its slot (never too many in flight) and is sent with it.
                log.warning("job %s: not put back in the shared queue (%s)", job_id, exc)
            finally:
                self._requeueing.discard(job_id)
            self.wake()

        self._spawn(write(), f"requeue-{job_id}")

    async def _run(self) -> None:
        try:
            while True:
                self._again = False
                await self._once()
                if not self._again:
                    return
        finally:
            self._running = False

    async def _once(self) -> None:
        try:
            await self._dispatch_and_start()
        except StoreError as exc:
            log.warning("shared dispatch failed (%s); trying again shortly", exc)
        except Exception:  # a bug must not stop dispatching: the next wake tries again
            log.exception("shared dispatch failed unexpectedly")

    async def _dispatch_and_start(self) -> None:
        # Also when nothing of ours waits: a slot freed here may be another's turn.
        ours = self._waiting()
        grants = await self.queue.dispatch(self._limits(), self._place, known_waiting=ours)
        mine = {g.job_id: g.account for g in grants if g.owner == self.queue.owner}
        look, self._look = self._look, False
        if ours and (look or not mine):
            # Granted by another process (a NOTIFY), or before a takeover: read them.
            mine.update(await self.queue.granted())
        granted = {j: a for j, a in mine.items() if j not in self._requeueing}
        if granted:
            self._start(granted)
        # Only our jobs still waiting are shown a position.
        self.positions = await self.queue.positions() if self._waiting() else {}
        self._show(self.positions)
