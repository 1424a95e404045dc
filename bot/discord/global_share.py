"""Discord's global limit shared by the bot's processes (issue 17, DISCORD_PROTOCOL.md §8.1).

Discord allows 50 bot-token requests per second per bot, however many processes it runs
(interaction routes are exempt). Each process's `BucketLedger` paces the global limit; here
its rate becomes this process's share: the processes sharing the store heartbeat a registry
every `interval_s` and count those heard from within the lease period, and the ledger paces
at `floor(50 * safety / live)`. A process that joins or leaves says so, and the others count
again at once; one that died ages out within the lease period, so the survivors get its
share back within one heartbeat after its jobs are taken over. A global 429 one process
receives is announced, and every other ledger holds back for its Retry-After too.

No SQL here: the registry is a small Protocol (`bot/store/pg_processes.py` on PostgreSQL).
With SQLite (one process) nothing of this runs and the ledger keeps the whole limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from bot.discord.rate_limits import BucketLedger

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0  # the lease keeper's renewal cadence


class ProcessRegistry(Protocol):
    """The bot's live processes, shared by all of them."""

    async def heartbeat(self) -> int:
        """Say this process is alive; how many are (itself included)."""
        ...

    async def leave(self) -> None:
        """This process stops: it no longer counts."""
        ...

    async def announce_global_limit(self, retry_after: float) -> None:
        """Tell the others this process met Discord's global limit."""
        ...

    async def listen(
        self, on_change: Callable[[], None], on_global_limit: Callable[[float], None]
    ) -> bool:
        """Hear the others join or leave, and their global 429s; False if not available."""
        ...


class GlobalShare:
    def __init__(
        self,
        ledger: BucketLedger,
        registry: ProcessRegistry,
        *,
        interval_s: float = HEARTBEAT_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ledger = ledger
        self._registry = registry
        self._interval_s = interval_s
        self._now = monotonic
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._announcing: set[asyncio.Task[None]] = set()
        self._announced_until = 0.0
        self._stopping = False
        self.processes = 1  # the last count

    async def start(self) -> None:
        """Count once before returning (the first writes go at the right rate), then keep
        counting in the background."""
        ledger = self._ledger
        ledger.on_global_limited(self._announce)
        listening = False
        with contextlib.suppress(Exception):
            listening = await self._registry.listen(self._wake.set, ledger.hold_global)
        if not listening:
            log.warning(
                "the other processes' joins and global 429s are not heard; counting every %.0f s",
                self._interval_s,
            )
        await self._beat()
        self._task = asyncio.create_task(self._loop(), name="discord-global-share")

    async def _loop(self) -> None:
        while not self._stopping:
            # asyncio.timeout, not wait_for: 3.11's wait_for swallows a cancel that comes
            # as the wake does, and stop() would wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._wake.wait()
            self._wake.clear()
            if not self._stopping:
                await self._beat()

    async def _beat(self) -> None:
        try:
            processes = await self._registry.heartbeat()
        except Exception as exc:  # the store is away: keep the last share
            log.warning(
                "could not count the bot's processes (%s); pacing Discord's global limit "
                "at %d/s as before",
                type(exc).__name__,
                self._ledger.global_per_s,
            )
            return
        before = self._ledger.global_per_s
        rate = self._ledger.set_global_share(processes)
        if rate != before or processes != self.processes:
            log.info(
                "%d process(es) of the bot share Discord's global limit: this one paces at %d/s",
                processes,
                rate,
            )
        self.processes = processes

    def _announce(self, retry_after: float) -> None:
        """A global 429 here: the others hold back too (once per Retry-After)."""
        until = self._now() + retry_after
        if until <= self._announced_until:
            return
        self._announced_until = until
        task = asyncio.create_task(self._send(retry_after), name="discord-global-429")
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    async def _send(self, retry_after: float) -> None:
        try:
            await self._registry.announce_global_limit(retry_after)
        except Exception as exc:
            log.warning(
                "could not tell the other processes of a global 429 (%s)", type(exc).__name__
            )

    async def stop(self) -> None:
        """Stop counting and leave the registry: the others get this one's share back."""
        self._stopping = True
        tasks = [t for t in (self._task, *self._announcing) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        try:
            await self._registry.leave()
        except Exception as exc:  # its row ages out within the lease period
            log.warning("could not leave the process registry (%s)", type(exc).__name__)
