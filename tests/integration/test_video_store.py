"""The stores count a member's video jobs apart (issue 18), on SQLite and PostgreSQL alike:
what the quotas weigh and /usage shows."""

from __future__ import annotations

from bot.domain import ErrorCode, JobStatus, OperationKind, SpeedMode
from bot.store.base import VideoCounts
from tests.integration.test_community_store import DAY0, insert, job
from tests.pg import StoreBackend


async def test_video_counts_per_member_and_day(store_backend: StoreBackend) -> None:
    store = await store_backend.open()
    async with store:
        await insert(
            store,
            job(kind=OperationKind.VIDEO),
            job(kind=OperationKind.VIDEO_FROM_IMAGE, mode=SpeedMode.RELAX),
            job(kind=OperationKind.VIDEO_EXTEND),
            job(kind=OperationKind.VIDEO_UPSCALE, status=JobStatus.TIMED_OUT),  # not spent
            job(
                kind=OperationKind.VIDEO,
                status=JobStatus.FAILED,
                error=ErrorCode.MODERATED,  # the member's prompt: spent
            ),
            job(kind=OperationKind.IMAGINE),  # not a video
            job(kind=OperationKind.VIDEO, user="bob"),  # someone else
            job(kind=OperationKind.VIDEO, at=DAY0 - 3600),  # yesterday
        )
        counts = await store.usage.video_counts("g1", "alice", DAY0)
        assert counts == VideoCounts(asked=5, spent=4, fast_spent=3)
        assert await store.usage.video_counts("g1", "carol", DAY0) == VideoCounts()
        assert (await store.usage.video_counts("g1", "alice", DAY0 - 86400)).asked == 6
