"""Keeping job leases when several processes share one database (issue 17).

The store says who holds what (`bot.store.base.JobLeases`); this keeps it going:

- renews every lease this process holds in one statement, every third of the lease;
- drops a job here the moment its local deadline passes (the store sets it `margin_s`
  before the database's expiry), and when a renewal or a fenced write finds it lost;
- every `scan_s`, and at once when another process NOTIFYs that it released its leases,
  claims jobs whose lease expired (or whose owner died on this host) and hands them to
  the engine, which resumes them as at start.

Nothing here knows Discord; the engine decides what a claimed or lost job means.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.store.base import ClaimedJob, JobLeases, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    lease_s: float = 30.0
    renew_s: float = 10.0  # a third of the lease
    margin_s: float = 5.0  # stop acting this long before the lease expires
    scan_s: float = 5.0  # look for jobs to take over this often (and on NOTIFY)

    def __post_init__(self) -> None:
        if not 0 < self.renew_s < self.lease_s - self.margin_s:
            raise ValueError("renewals must come well before the local deadline")


def leases_of(store: object) -> JobLeases | None:
    """The store's lease API when it offers one (PostgreSQL); None for SQLite."""
    leases = getattr(store, "leases", None)
    return leases if isinstance(leases, JobLeases) else None


class LeaseKeeper:
    def __init__(
        self,
        leases: JobLeases,
        settings: LeaseSettings,
        *,
        adopt: Callable[[list[ClaimedJob]], Awaitable[None]],
        lose: Callable[[str], None],
        needed: Callable[[str], bool],
        monotonic: Callable[[], float] = time.monotonic,
        dead_owners: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        self.leases = leases
        self.settings = settings
        self._adopt = adopt
        self._lose = lose
        self._needed = needed
        self._now = monotonic
        self._dead_owners = dead_owners or _dead_on_this_host
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unneeded: set[str] = set()  # not needed at the last renewal either
        self.takeovers = 0  # jobs claimed from another owner (counted for metrics)
        self.lost = 0  # jobs dropped because their lease was no longer ours

    def holds(self, job_id: str) -> bool:
        return self.leases.holds(job_id)

    async def start(self) -> list[ClaimedJob]:
        """Enable leasing, listen for hand-overs, claim what is free now, start the loop."""
        s = self.settings
        self.leases.enable(s.lease_s, s.margin_s)
        try:
            await self.leases.listen(self._wake.set)
        except (StoreError, OSError) as exc:  # polling still finds released jobs
            log.warning("lease notifications unavailable (%s); scanning every %.0fs", exc, s.scan_s)
        claimed = await self._claim()
        self._task = asyncio.create_task(self._loop(), name="lease-keeper")
        return claimed

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def release(self) -> None:
        """A clean stop: every lease goes back at once and the others are woken."""
        try:
            released = await self.leases.release()
        except StoreError as exc:
            log.warning(
                "leases not released (%s); they lapse within %.0fs", exc, self.settings.lease_s
            )
            return
        log.info("released %d job lease(s) for another process to take over", released)

    async def _loop(self) -> None:
        s = self.settings
        next_renew = self._now() + s.renew_s
        next_scan = self._now() + s.scan_s
        while True:
            timeout = max(0.0, min(next_renew, next_scan) - self._now())
            # asyncio.timeout, not wait_for: 3.11's wait_for swallows a cancel that comes
            # as the wake does, and stop() would then wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            woken = self._wake.is_set()
            self._wake.clear()
            renew = self._now() >= next_renew
            scan = woken or self._now() >= next_scan
            if renew:
                next_renew = self._now() + s.renew_s
            if scan:
                next_scan = self._now() + s.scan_s
            try:
                await self.tick(renew=renew, scan=scan)
            except StoreError as exc:
                # The local deadlines still stop us in time; try again on the next round.
                log.warning("lease upkeep failed (%s); retrying", exc)
            except Exception:
                log.exception("lease upkeep failed unexpectedly")

    async def tick(self, *, renew: bool = True, scan: bool = True) -> list[ClaimedJob]:
        """One round: drop what lapsed here, renew, take over what is free (and adopt it)."""
        self._drop_expired()  # first: after a freeze, nothing acts on a lapsed lease
        if renew:
            await self._renew()
        claimed = await self._claim() if scan else []
        if claimed:
            await self._adopt(claimed)
        return claimed

    def _drop_expired(self) -> None:
        for job_id in self.leases.expired():
            log.warning("job %s: lease deadline passed before a renewal; dropped here", job_id)
            self.lost += 1
            self._lose(job_id)

    async def _renew(self) -> None:
        # Jobs nobody here works on any more (ended and delivered, or never shown) are let
        # go after two renewals, so a final about to be attached keeps its lease.
        idle = {job_id for job_id in self.leases.held() if not self._needed(job_id)}
        for job_id in idle & self._unneeded:
            self.leases.forget(job_id)
        self._unneeded = idle - self._unneeded
        for job_id in await self.leases.renew():
            log.warning("job %s: lease lost (another process holds it now); dropped here", job_id)
            self.lost += 1
            self._lose(job_id)

    async def _claim(self) -> list[ClaimedJob]:
        dead = self._dead_owners(await self.leases.live_owners())
        claimed = await self.leases.claim(dead_owners=dead)
        for item in claimed:
            if item.previous_owner == self.leases.owner:
                continue
            self.takeovers += 1
            log.info(
                "job %s: taken over from %s (epoch %d)",
                item.job.id,
                item.previous_owner or "a released lease",
                item.epoch,
            )
        return claimed


def _dead_on_this_host(owners: list[str]) -> list[str]:
    from bot.store.postgres import dead_on_this_host

    return dead_on_this_host(owners)
