"""The webhook inbox on PostgreSQL (issue 17, bot/store/pg_inbox.py), on a fresh database of
the throwaway cluster (tests/pg.py): stores opened on one database stand in for processes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from bot.domain import Job, JobStatus, ProviderSnapshot
from bot.engine.forwarding import Forwarder
from bot.providers.base import PushProvider
from bot.store.pg_inbox import CANCEL, INBOX_CHANNEL, PUSH, InboxItem, PgInbox
from bot.store.postgres import PostgresStore
from tests.integration.test_leases_engine import (
    Pair,
    Process,
    imagine,
    pair,
    status_of,
)
from tests.integration.test_leases_store import a_job, open_pg, rows

__all__ = ["pair"]  # the two-engine fixture of test_leases_engine, used here too


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


async def test_rows_of_ended_jobs_are_not_stored_and_left_ones_are_swept(pg_url: str) -> None:
    a, b = await open_pg(pg_url), await open_pg(pg_url)
    try:
        ended_id, crossed_id = await owned_jobs(a, 2)
        from_b = PgInbox(b.db, b.leases.owner)
        await rows(pg_url, "UPDATE jobs SET status = 'completed' WHERE id = $1", ended_id)
        ended = await from_b.put(ended_id, PUSH, "piapi", "{}")
        assert (ended.stored, ended.ended) == (False, True)
        # A post that crossed its job's end stays until the sweep, once it is a minute old.
        assert (await from_b.put(crossed_id, PUSH, "piapi", "{}")).stored
        await rows(
            pg_url, "UPDATE jobs SET status = 'completed', owner = NULL WHERE id = $1", crossed_id
        )
        assert await from_b.sweep() == 0  # too recent: its owner may still be about to look
        await rows(pg_url, "UPDATE webhook_inbox SET received_at = now() - interval '2 minutes'")
        assert await from_b.sweep() == 1 and await from_b.waiting() == 0
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


# --- the forwarder between two engines (bot/engine/forwarding.py) ------------------------


def forwarder(process: Process, **options: Any) -> Forwarder:
    """Not started: no listener (a lost NOTIFY) and no loop; the test drives `drain`."""
    provider = process.engine.pool.accounts[0].provider
    assert isinstance(provider, PushProvider)
    return Forwarder(
        process.engine,
        process.keeper,
        PgInbox(process.store.db, process.store.leases.owner),
        process.store.jobs,
        provider,
        dead_owners=lambda owners: [],
        **options,
    )


async def running_on_a(pair: Pair) -> tuple[Job, dict[str, Any]]:
    """A job A runs, and a post saying it is at 50 % (which the fake does not say yet, so
    that only the post can have moved the job there)."""
    job = await pair.a.engine.submit(imagine(), requester_id="u")
    await pair.run_until(
        lambda: status_of(pair.a.engine, job.id) is JobStatus.SUBMITTED, pair.a.engine
    )
    [current] = [j for j in pair.a.engine.active_jobs() if j.id == job.id]
    assert current.provider_ref and current.progress != 50
    data = pair.fake.task_json(current.provider_ref)
    data = {
        **data,
        "status": "processing",
        "output": {**(data.get("output") or {}), "progress": 50},
    }
    return current, {"timestamp": int(pair.clock.time()), "data": data}


def parsed(process: Process, body: dict[str, Any]) -> ProviderSnapshot:
    provider = process.engine.pool.accounts[0].provider
    assert isinstance(provider, PushProvider)
    snapshot = provider.parse_push(body)
    assert snapshot is not None
    return snapshot


async def test_a_post_for_a_live_owner_waits_in_the_inbox_until_its_owner_s_periodic_look(
    pair: Pair,
) -> None:
    job, body = await running_on_a(pair)
    fa, fb = forwarder(pair.a), forwarder(pair.b)
    snapshot = parsed(pair.b, body)
    assert await pair.b.engine.ingest_outcome(snapshot) == "unknown_job"  # not B's job
    assert await fb.push(body, snapshot) == "forwarded"
    assert await pair.rows("SELECT job_id, kind FROM webhook_inbox") == [(job.id, "push")]
    assert await fb.drain() == 0  # B holds nothing: the row stays for A
    # A's NOTIFY was lost (no listener): its periodic look applies the post, once.
    assert await fa.drain() == 1 and await fa.drain() == 0
    [now] = [j for j in pair.a.engine.active_jobs() if j.id == job.id]
    assert (now.status, now.progress) == (JobStatus.RUNNING, 50)
    assert await pair.rows("SELECT count(*) FROM webhook_inbox") == [(0,)]


async def test_a_post_for_a_lapsed_job_is_taken_over_and_applied_at_once(pair: Pair) -> None:
    job, body = await running_on_a(pair)
    await pair.a.engine.stop()  # A dies: nothing renews its lease
    await pair.expire_leases()
    fb = forwarder(pair.b)
    assert await fb.push(body, parsed(pair.b, body)) == "forwarded"
    assert pair.b.engine.holds(job.id) and pair.b.keeper.takeovers == 1
    [now] = [j for j in pair.b.engine.active_jobs() if j.id == job.id]
    assert now.progress == 50  # only the post says 50 (the resumed job's poll may not)
    [(owner, epoch)] = await pair.rows("SELECT owner, lease_epoch FROM jobs")
    assert (owner, epoch) == (pair.b.store.leases.owner, 2)
    assert await pair.rows("SELECT count(*) FROM webhook_inbox") == [(0,)]


async def test_a_cancel_for_another_owner_s_job_is_applied_there_and_answered(
    pair: Pair,
) -> None:
    """Both forwarders listening: B's cancel wakes A by NOTIFY, A cancels at the provider
    and answers on the answer channel, which ends B's wait."""
    job, _ = await running_on_a(pair)
    fa, fb = forwarder(pair.a), forwarder(pair.b, cancel_wait_s=10.0)
    await fa.start(pair.a.store.leases.listen_to)
    await fb.start(pair.b.store.leases.listen_to)
    try:
        result = await asyncio.wait_for(fb.cancel(job.id), 15)
    finally:
        await fa.stop()
        await fb.stop()
    assert result.status is JobStatus.CANCELLED
    assert await pair.rows("SELECT status FROM jobs") == [("cancelled",)]
    assert await pair.rows("SELECT count(*) FROM webhook_inbox") == [(0,)]
    assert any(r.method == "DELETE" for r in pair.fake.requests)  # asked at the provider by A
    assert not pair.b.engine.holds(job.id)  # B never ran it
