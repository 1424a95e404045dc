"""One account limit and one members' queue for every process on PostgreSQL (issue 17,
bot/store/pg_queue.py), on a fresh database of the throwaway cluster (tests/pg.py): three
stores opened on one database stand in for three processes.

- the order in which slots are granted across members is exactly `FairQueue`'s for the
  same submissions, finishes, re-queues and cancels; the positions shown are its positions;
- dispatchers running at once in three "processes" never have more jobs in flight than
  the account's limit.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping

from bot.domain import Job, JobStatus
from bot.engine.fair_queue import FairQueue
from bot.store.pg_queue import Place
from bot.store.postgres import PostgresStore
from tests.integration.test_leases_engine import Pair, imagine, pair, status_of
from tests.integration.test_leases_store import a_job, open_pg, rows

__all__ = ["pair"]  # the two-engine fixture, used here too

ACCOUNT = "default"


def place_at(limit: int) -> Place:
    def place(job: Job, used: Mapping[str, int]) -> str | None:
        return ACCOUNT if used[ACCOUNT] < limit else None

    return place


class Twin:
    """The same life run on the shared queue (three stores) and on one FairQueue."""

    def __init__(self, stores: list[PostgresStore], limit: int) -> None:
        self.stores, self.limit = stores, limit
        self.fair = FairQueue()
        self.fair_in_flight: set[str] = set()
        self.jobs: dict[str, tuple[Job, PostgresStore]] = {}
        self.granted: list[str] = []  # by the database, in order
        self.popped: list[str] = []  # by FairQueue, in order
        self.members: dict[str, str] = {}

    async def pump(self, store: PostgresStore) -> None:
        grants = await store.leases.queue.dispatch({ACCOUNT: self.limit}, place_at(self.limit))
        self.granted.extend(g.job_id for g in grants)
        while len(self.fair_in_flight) < self.limit and (job_id := self.fair.pop()) is not None:
            self.fair_in_flight.add(job_id)
            self.popped.append(job_id)

    async def submit(self, member: str, process: int) -> str:
        store = self.stores[process % len(self.stores)]
        job = a_job()
        job.requester_id = member
        await store.jobs.insert(job)
        self.jobs[job.id] = (job, store)
        self.members[job.id] = member
        self.fair.push(job.id, member)
        await self.pump(store)
        return job.id

    async def end(self, job_id: str, status: JobStatus = JobStatus.COMPLETED) -> None:
        job, store = self.jobs[job_id]
        job.status = status
        await store.jobs.save(job)
        self.fair_in_flight.discard(job_id)
        self.fair.remove(job_id)
        await self.pump(store)

    async def requeue(self, job_id: str) -> None:
        """A refused submission: the job goes back to the front of its member's lane."""
        _, store = self.jobs[job_id]
        assert await store.leases.queue.requeue(job_id, 0.0)
        self.fair_in_flight.discard(job_id)
        self.fair.push(job_id, self.members[job_id], front=True)
        await self.pump(store)

    def in_flight(self) -> list[str]:
        return [j for j in self.granted if j in self.fair_in_flight]

    async def shown_positions(self) -> dict[str, int]:
        shown: dict[str, int] = {}
        for store in self.stores:
            shown.update(await store.leases.queue.positions())
        return shown

    def by_member(self, ids: list[str]) -> list[str]:
        return [self.members[j] for j in ids]


async def open_three(url: str, limit: int) -> list[PostgresStore]:
    stores = [await open_pg(url) for _ in range(3)]
    await stores[0].leases.queue.register_accounts({ACCOUNT: limit})
    return stores


async def test_slots_are_granted_in_fair_queue_order_across_processes(pg_url: str) -> None:
    stores = await open_three(pg_url, limit=2)
    twin = Twin(stores, limit=2)
    try:
        burst = ["ann", "ann", "ann", "bob", "ann", "cat", "bob", "ann", "cat", "bob", "dan"]
        for n, member in enumerate(burst):
            await twin.submit(member, n)
        assert twin.granted == twin.popped
        assert await twin.shown_positions() == twin.fair.positions()
        # Finishing the oldest in flight frees one slot at a time; new members join on the way.
        late = iter([("eve", 0), ("ann", 1), ("eve", 2), ("fay", 1)])
        step = 0
        while twin.fair or twin.in_flight():
            step += 1
            if step == 3:  # a refused submission: back to the front of its member's lane
                await twin.requeue(twin.in_flight()[0])
            elif step == 5:  # a member cancels a waiting job
                waiting = twin.fair.order()[1]
                await twin.end(waiting, JobStatus.CANCELLED)
            else:
                await twin.end(twin.in_flight()[0])
            if step % 2 == 0 and (joiner := next(late, None)) is not None:
                await twin.submit(*joiner)
            assert twin.granted == twin.popped, f"step {step}"
            assert await twin.shown_positions() == twin.fair.positions(), f"step {step}"
        print("\norder of grants by member:", " ".join(twin.by_member(twin.granted)))
        # Every job once, the re-queued one twice, the cancelled one never.
        assert len(twin.granted) == len(burst) + 4 + 1 - 1
        assert await rows(pg_url, "SELECT count(*) FROM jobs WHERE slot_account IS NOT NULL") == [
            (0,)
        ]
    finally:
        for store in stores:
            await store.close()


async def test_concurrent_dispatchers_never_exceed_the_account_limit(pg_url: str) -> None:
    limit, members, jobs_count = 3, ("ann", "bob", "cat", "dan"), 36
    stores = await open_three(pg_url, limit)
    rng = random.Random(17)
    owned: dict[str, tuple[Job, PostgresStore]] = {}
    for n in range(jobs_count):
        store = stores[rng.randrange(3)]
        job = a_job()
        job.requester_id = members[n % len(members)]
        await store.jobs.insert(job)
        owned[job.id] = (job, store)
    sending = 0  # jobs between "sent to the provider" and their terminal save
    peak = 0
    started: list[str] = []
    done: set[str] = set()

    async def run_job(job: Job, store: PostgresStore) -> None:
        nonlocal sending, peak
        sending += 1
        peak = max(peak, sending)
        await asyncio.sleep(rng.uniform(0, 0.02))  # the provider works
        sending -= 1  # the provider is done before the bot saves the end
        job.status = JobStatus.COMPLETED
        await store.jobs.save(job)
        done.add(job.id)

    async def process(store: PostgresStore) -> None:
        work: set[asyncio.Task[None]] = set()
        while len(done) < jobs_count:
            await store.leases.queue.dispatch({ACCOUNT: limit}, place_at(limit))
            for job_id in await store.leases.queue.granted():
                if job_id not in started:
                    started.append(job_id)
                    job, owner = owned[job_id]
                    assert owner is store  # only the job's own process sends it
                    work.add(asyncio.create_task(run_job(job, store)))
            await asyncio.sleep(0.002)  # the periodic dispatch (NOTIFY wakes it sooner)
        await asyncio.gather(*work)

    try:
        await asyncio.wait_for(asyncio.gather(*(process(s) for s in stores)), timeout=60)
        dispatches = sum(s.leases.queue.dispatches for s in stores)
        print(
            f"\n{jobs_count} jobs, limit {limit}: at most {peak} in flight, {dispatches} dispatches"
        )
        assert peak == limit  # reached, never passed
        assert sorted(started) == sorted(owned) and len(set(started)) == jobs_count
        assert await rows(pg_url, "SELECT DISTINCT status FROM jobs") == [("completed",)]
    finally:
        for store in stores:
            await store.close()


async def test_a_grant_wakes_the_job_s_own_process_by_notify(pg_url: str) -> None:
    stores = await open_three(pg_url, limit=1)
    try:
        woken = asyncio.Event()
        await stores[1].leases.queue.listen(woken.set)
        job = a_job()
        job.requester_id = "ann"
        await stores[1].jobs.insert(job)
        grants = await stores[0].leases.queue.dispatch({ACCOUNT: 1}, place_at(1))
        assert [(g.job_id, g.owner) for g in grants] == [(job.id, stores[1].leases.owner)]
        await asyncio.wait_for(woken.wait(), timeout=5)
        assert await stores[1].leases.queue.granted() == {job.id: ACCOUNT}
        assert await stores[0].leases.queue.granted() == {}
    finally:
        for store in stores:
            await store.close()


async def test_a_refused_submission_gives_its_slot_back_and_waits_its_delay(pair: Pair) -> None:
    """Two engines (tests/integration/test_leases_engine.py's pair) on the fake PiAPI: a 429
    puts the job back at the front of its member's lane without its slot, not granted
    again before its Retry-After has passed on the database's clock, then sent once."""
    pair.fake.inject("POST", "/api/v1/task", "429", retry_after=30)
    job = await pair.a.engine.submit(imagine(), requester_id="ann")
    queued = "SELECT slot_account, queued_front, not_before > now() FROM jobs"
    for _ in range(200):  # bounded: the re-queue is written by a task of its own
        await pair.a.engine.settle()
        if await pair.rows(queued) == [(None, True, True)]:
            break
    assert await pair.rows(queued) == [(None, True, True)]
    for _ in range(35):  # the engine's own retry timer fires; the database says not yet
        pair.clock.advance(1.0)
        await pair.a.engine.settle()
        await pair.b.engine.settle()
    assert pair.fake.created() == [] and status_of(pair.a.engine, job.id) is JobStatus.QUEUED
    await pair.rows("UPDATE jobs SET not_before = now()")  # its Retry-After has passed
    ended: list[Job] = []
    pair.a.engine.subscribe(lambda e: ended.append(e.job) if e.job.is_terminal else None)
    await pair.run_until(lambda: bool(ended), pair.a.engine, pair.b.engine)
    assert ended[0].status is JobStatus.COMPLETED
    assert len(pair.fake.created()) == 1
    assert await pair.rows("SELECT slot_account FROM jobs") == [(None,)]
