"""Issue 15 item 4 on a real SQLite file and a real PostgreSQL database: the quota counts
what a member chose to spend. Jobs ended by the service or the owner's account (auth,
credit, outage, timeout, the bot's own fault) and jobs cancelled before they reached the
provider do not count in per_day / fast_per_day; moderation refusals and jobs cancelled
after they started do. Both stores answer the same."""

from __future__ import annotations

from bot.domain import ErrorCode, JobStatus, SpeedMode
from tests.integration.test_community_store import DAY0, insert, job
from tests.pg import StoreBackend


async def test_the_owners_failures_do_not_count_against_a_member(
    store_backend: StoreBackend,
) -> None:
    started = job(status=JobStatus.CANCELLED, error=ErrorCode.CANCELLED)
    started.provider_ref = "task-1"  # it reached the provider before the cancel
    counted = [
        job(),  # a completed fast job
        job(mode=SpeedMode.RELAX),
        job(status=JobStatus.FAILED, error=ErrorCode.MODERATED),
        job(status=JobStatus.FAILED, error=ErrorCode.GENERATION_FAILED),
        job(status=JobStatus.FAILED),  # no code recorded: counted, to be safe
        started,
        job(status=JobStatus.RUNNING),
    ]
    free = [
        job(status=JobStatus.FAILED, error=code)
        for code in (
            ErrorCode.AUTH,
            ErrorCode.INSUFFICIENT_CREDIT,
            ErrorCode.UNAVAILABLE,
            ErrorCode.RATE_LIMITED,
            ErrorCode.SUBMIT_INTERRUPTED,
            ErrorCode.INTERNAL,
        )
    ]
    free += [
        job(status=JobStatus.TIMED_OUT, error=ErrorCode.TIMED_OUT),
        job(status=JobStatus.TIMED_OUT),
        job(status=JobStatus.CANCELLED, error=ErrorCode.CANCELLED),  # never sent
    ]
    async with await store_backend.open() as store:
        await insert(store, *counted, *free)
        counts = await store.usage.quota_counts("g1", "alice", DAY0)
    assert counts.since == len(counted) == 7
    assert counts.fast_since == 6  # all but the relaxed one
    assert counts.moderated_since == 1
    assert counts.active == 1
