"""The webhook inbox on PostgreSQL (issue 17, bot/store/pg_inbox.py), on a fresh database of
the throwaway cluster (tests/pg.py): stores opened on one database stand in for processes."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from bot.domain import JobStatus
from bot.store.pg_inbox import CANCEL, INBOX_CHANNEL, PUSH, InboxItem, PgInbox
from bot.store.postgres import PostgresStore
from tests.integration.test_leases_store import a_job, open_pg, rows


async def owned_jobs(store: PostgresStore, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        job = a_job(JobStatus.RUNNING)
        await store.jobs.insert(job)  # created owned by `store`'s process
        ids.append(job.id)
    return ids


async def test_a_post_for_another_owner_s_job_is_stored_and_that_owner_woken(pg_url: str) -> None:
    a, b = await open_pg(pg_url), await open_pg(pg_url)
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(pg_url)
    await listener.add_listener(INBOX_CHANNEL, lambda *args: heard.put_nowait(args[3]))
    try:
        [job_id] = await owned_jobs(a, 1)
        from_b = PgInbox(b.db, b.leases.owner)
        placed = await from_b.put(job_id, PUSH, "piapi", json.dumps({"data": {"n": 1}}))
        assert (placed.stored, placed.owner, placed.live) == (True, a.leases.owner, True)
        assert await asyncio.wait_for(heard.get(), 5) == a.leases.owner
        # B holds no lease on it: B's reader takes nothing; A's takes the row, once.
        assert await from_b.take([job_id]) == []
        mine = PgInbox(a.db, a.leases.owner)
        [item] = await mine.take([job_id])
        assert (item.job_id, item.kind, item.provider) == (job_id, PUSH, "piapi")
        assert json.loads(item.payload) == {"data": {"n": 1}}
        assert await mine.take([job_id]) == [] and await mine.waiting() == 0
        # A post for a job whose live lease is the poster's own is not stored (it applies it).
        own = await mine.put(job_id, PUSH, "piapi", "{}")
        assert (own.stored, own.live) == (False, True) and await mine.waiting() == 0
        unknown = await from_b.put("no-such-job", PUSH, "piapi", "{}")
        assert (unknown.stored, unknown.owner) == (False, None)
    finally:
        await listener.close()
        await a.close()
        await b.close()


async def test_a_lapsed_job_s_row_waits_for_whoever_claims_it(pg_url: str) -> None:
    a, b = await open_pg(pg_url), await open_pg(pg_url)
    try:
        [job_id] = await owned_jobs(a, 1)
        await rows(pg_url, "UPDATE jobs SET lease_expires_at = now() - interval '1 second'")
        from_b = PgInbox(b.db, b.leases.owner)
        placed = await from_b.put(job_id, CANCEL, "", "{}")
        assert (placed.stored, placed.owner, placed.live) == (True, a.leases.owner, False)
        # The old owner, whose lease lapsed, may not take it; the one that claims it does.
        assert await PgInbox(a.db, a.leases.owner).take([job_id]) == []
        [claimed] = await b.leases.claim()
        assert claimed.job.id == job_id
        [item] = await from_b.take(b.leases.held())
        assert (item.job_id, item.kind) == (job_id, CANCEL)
    finally:
        await a.close()
        await b.close()


async def test_two_readers_at_once_take_every_row_exactly_once_in_order(pg_url: str) -> None:
    """The owner's listener and its periodic look (or two processes' readers racing after a
    hand-over) read at the same time: each row goes to one of them, none is lost."""
    a, b = await open_pg(pg_url), await open_pg(pg_url)
    a_again = await open_pg(pg_url)  # a second pool: the two readers truly overlap
    try:
        ids = await owned_jobs(a, 8)
        poster = PgInbox(b.db, b.leases.owner)
        posted = 0
        for n in range(10):
            for job_id in ids:
                await poster.put(job_id, PUSH, "piapi", json.dumps({"job": job_id, "n": n}))
                posted += 1
        readers = [PgInbox(a.db, a.leases.owner), PgInbox(a_again.db, a.leases.owner)]

        async def read_all(inbox: PgInbox) -> list[InboxItem]:
            got: list[InboxItem] = []
            while batch := await inbox.take(ids, limit=3):
                assert [i.id for i in batch] == sorted(i.id for i in batch)
                got += batch
            return got

        first, second = await asyncio.gather(*(read_all(r) for r in readers))
        taken = [i.id for i in first + second]
        assert first and second, "both readers took rows (they ran at the same time)"
        assert len(taken) == len(set(taken)) == posted  # each row exactly once
        assert await readers[0].waiting() == 0
        # Within one job, the rows come out in the order they were posted.
        for job_id in ids:
            mine = sorted((i for i in first + second if i.job_id == job_id), key=lambda i: i.id)
            assert [json.loads(i.payload)["n"] for i in mine] == list(range(10))
    finally:
        await a.close()
        await a_again.close()
        await b.close()
