"""IDENTIFY spaced across processes (issue 17, DISCORD_PROTOCOL.md §13).

Discord lets a bot start `max_concurrency` sessions per 5 s, one per bucket
`shard_id % max_concurrency`, for the whole bot: several processes must take turns.
discord.py's own `before_identify_hook` only sleeps 5 s inside one process. Here each
IDENTIFY first takes its bucket's lock in the shared store (a PostgreSQL advisory lock:
`bot/store/pg_identify.py`) and keeps it for the 5 s that must follow, so the next process
in that bucket IDENTIFYs only after them. No SQL here: the lock is a small Protocol.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)

# Discord: one IDENTIFY per bucket per 5 s. The lock is released this long after the hook
# returns, and the IDENTIFY is sent just after it returns; the quarter second covers the
# difference between one process's send and the next one's.
IDENTIFY_INTERVAL_S = 5.0
SPACING_MARGIN_S = 0.25


class BucketLocks(Protocol):
    """A lock per IDENTIFY bucket that every process of the bot shares."""

    async def acquire(self, bucket: int) -> Callable[[], Awaitable[None]]:
        """Wait for `bucket`'s lock; return the function that releases it. Raises when the
        lock cannot be had (the store is unreachable, or the wait ran out)."""
        ...


class IdentifySpacer:
    """The body of `before_identify_hook` when the processes share a store."""

    def __init__(
        self,
        locks: BucketLocks,
        max_concurrency: Callable[[], Awaitable[int]],
        *,
        hold_s: float = IDENTIFY_INTERVAL_S + SPACING_MARGIN_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._locks = locks
        self._max_concurrency = max_concurrency
        self._concurrency: int | None = None
        self._hold_s = hold_s
        self._sleep = sleep
        self._holding: set[asyncio.Task[None]] = set()

    async def bucket_of(self, shard_id: int | None) -> int:
        if self._concurrency is None:
            try:
                self._concurrency = max(1, await self._max_concurrency())
            except Exception as exc:
                log.warning(
                    "could not read Discord's max_concurrency (%s); IDENTIFYs take one turn each",
                    type(exc).__name__,
                )
                self._concurrency = 1
        return (shard_id or 0) % self._concurrency

    async def before_identify(self, shard_id: int | None) -> None:
        """Return when this shard may IDENTIFY; its bucket stays locked for the 5 s after."""
        bucket = await self.bucket_of(shard_id)
        try:
            release = await self._locks.acquire(bucket)
        except Exception as exc:
            log.warning(
                "the IDENTIFY lock of bucket %d could not be taken (%s); waiting %.0f s instead",
                bucket,
                type(exc).__name__,
                IDENTIFY_INTERVAL_S,
            )
            await self._sleep(IDENTIFY_INTERVAL_S)
            return
        log.debug("shard %s holds IDENTIFY bucket %d", shard_id, bucket)
        task = asyncio.create_task(self._release_later(release), name=f"identify-{bucket}")
        self._holding.add(task)
        task.add_done_callback(self._holding.discard)

    async def _release_later(self, release: Callable[[], Awaitable[None]]) -> None:
        try:
            await self._sleep(self._hold_s)
        finally:
            await release()

    @property
    def holding(self) -> int:
        """Buckets this process holds right now."""
        return len(self._holding)

    async def close(self) -> None:
        """Let go of every bucket at once: a closing process IDENTIFYs no more."""
        tasks = list(self._holding)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
