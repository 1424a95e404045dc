"""Two engines on one PostgreSQL database (issue 17), each with its own store as two
processes would have, against the fake PiAPI over real HTTP on 127.0.0.1.

The engines and the fake share a FakeClock; the leases' local deadlines run on a clock the
test moves; the lease keepers' own rounds are driven by the test (`keeper.tick()`), their
background loop set far apart so that it never runs during a test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import asyncpg
import pytest

from bot.clock import FakeClock
from bot.domain import ErrorCode, Job, JobStatus, Operation, OperationKind, new_job_id
from bot.engine import Engine, EngineError, JobEvent
from bot.engine.leases import LeaseKeeper, LeaseSettings, leases_of
from bot.store import open_store
from bot.store.postgres import PostgresStore
from tests.fakes.piapi import FakePiAPI
from tests.integration.conftest import API_KEY, ENGINE_SETTINGS, make_provider

# The background rounds never come within a test; deadlines move with `Monotonic`.
LEASES = LeaseSettings(lease_s=3600.0, renew_s=1200.0, margin_s=600.0, scan_s=1200.0)


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Process:
    """One bot process: its own store (pool), its own engine, its own lease clock."""

    store: PostgresStore
    engine: Engine
    monotonic: Monotonic
    events: list[JobEvent] = field(default_factory=list)

    @property
    def keeper(self) -> LeaseKeeper:
        assert self.engine.keeper is not None
        return self.engine.keeper


@dataclass
class Pair:
    clock: FakeClock
    fake: FakePiAPI
    url: str
    a: Process
    b: Process

    async def run_until(self, done: Callable[[], bool], *engines: Engine) -> None:
        for _ in range(600):
            for engine in engines:
                await engine.settle()
            if done():
                return
            self.clock.advance(1.0)
        raise AssertionError("condition not reached after 600 s of fake time")

    async def rows(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(self.url)
        try:
            return [tuple(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    async def expire_leases(self) -> None:
        """What 30 s without renewals does in the database (the owner died or froze)."""
        await self.rows("UPDATE jobs SET lease_expires_at = now() - interval '1 second'")


async def start_process(url: str, fake: FakePiAPI, clock: FakeClock) -> Process:
    store = await open_store(url)
    assert isinstance(store, PostgresStore)
    monotonic = Monotonic()
    store.leases._now = monotonic  # the local deadlines, on the test's clock
    engine = Engine(
        make_provider(fake.base_url),
        store.jobs,
        clock=clock,
        settings=ENGINE_SETTINGS,
        leases=leases_of(store),
        lease_settings=LEASES,
    )
    process = Process(store, engine, monotonic)
    engine.subscribe(process.events.append)
    await engine.start()
    return process


async def stop_process(process: Process) -> None:
    await process.engine.stop()
    await process.engine.provider.aclose()
    await process.store.close()


@pytest.fixture
async def pair(pg_url: str) -> AsyncIterator[Pair]:
    clock = FakeClock()
    async with FakePiAPI(api_key=API_KEY, clock=clock, image_size=128) as fake:
        a = await start_process(pg_url, fake, clock)
        b = await start_process(pg_url, fake, clock)
        try:
            yield Pair(clock, fake, pg_url, a, b)
        finally:
            await stop_process(a)
            await stop_process(b)


def imagine(prompt: str = "a quiet harbour") -> Operation:
    return Operation(OperationKind.IMAGINE, prompt=prompt)


def status_of(engine: Engine, job_id: str) -> JobStatus | None:
    job = next((j for j in engine.active_jobs() if j.id == job_id), None)
    return job.status if job is not None else None


async def test_a_job_is_created_owned_by_the_engine_that_took_it(pair: Pair) -> None:
    job = await pair.a.engine.submit(imagine(), requester_id="u")
    [(owner, epoch)] = await pair.rows("SELECT owner, lease_epoch FROM jobs")
    assert (owner, epoch) == (pair.a.store.leases.owner, 1)
    assert pair.a.engine.holds(job.id) and not pair.b.engine.holds(job.id)
    assert await pair.b.keeper.tick() == []  # a live lease: B takes nothing


async def test_an_expired_job_is_taken_over_and_finished_once_by_the_other_engine(
    pair: Pair,
) -> None:
    job = await pair.a.engine.submit(imagine(), requester_id="u")
    await pair.run_until(
        lambda: status_of(pair.a.engine, job.id) is JobStatus.RUNNING, pair.a.engine
    )
    await pair.a.engine.stop()  # A dies: nothing renews its lease
    await pair.expire_leases()
    [claimed] = await pair.b.keeper.tick()
    assert claimed.job.id == job.id and claimed.previous_owner == pair.a.store.leases.owner
    assert pair.b.keeper.takeovers == 1
    ended: list[Job] = []
    pair.b.engine.subscribe(lambda e: ended.append(e.job) if e.job.is_terminal else None)
    await pair.run_until(lambda: bool(ended), pair.b.engine)
    assert ended[0].status is JobStatus.COMPLETED
    assert len(pair.fake.created()) == 1  # never submitted twice
    [(status, owner, epoch)] = await pair.rows("SELECT status, owner, lease_epoch FROM jobs")
    assert (status, owner, epoch) == ("completed", pair.b.store.leases.owner, 2)


async def test_a_job_caught_mid_submission_fails_as_interrupted_and_is_never_sent(
    pair: Pair,
) -> None:
    # A marked the job as being sent, then died before storing the answer.
    job = Job(
        id=new_job_id(),
        operation=imagine(),
        provider="piapi",
        requester_id="u",
        created_at=pair.clock.time(),
        updated_at=pair.clock.time(),
        last_change_at=pair.clock.time(),
        submit_started_at=pair.clock.time(),
    )
    await pair.a.store.jobs.insert(job)
    await pair.expire_leases()
    await pair.b.keeper.tick()
    await pair.b.engine.settle()
    [(status, error)] = await pair.rows("SELECT status, error_code FROM jobs")
    assert (status, error) == ("failed", ErrorCode.SUBMIT_INTERRUPTED.value)
    assert pair.fake.created() == []


async def test_an_engine_whose_job_was_taken_over_drops_it_without_writing(
    pair: Pair,
) -> None:
    job = await pair.a.engine.submit(imagine(), requester_id="u")
    await pair.run_until(
        lambda: status_of(pair.a.engine, job.id) is JobStatus.RUNNING, pair.a.engine
    )
    await pair.expire_leases()
    [claimed] = await pair.b.keeper.tick()
    await pair.b.engine.stop()  # B holds the job and, here, leaves it as it is
    stored_by_b = await pair.rows("SELECT data FROM jobs")
    seen = len(pair.a.events)
    # A does not know yet (its deadline is far off); its next save is fenced out.
    await pair.run_until(
        lambda: job.id not in {j.id for j in pair.a.engine.active_jobs()}, pair.a.engine
    )
    assert pair.a.keeper.lost == 1 and not pair.a.engine.holds(job.id)
    # Progress alone stays in memory; the first change it had to store found the lease lost,
    # and no status change was shown after it.
    assert all(e.job.status is JobStatus.RUNNING for e in pair.a.events[seen:])
    assert await pair.rows("SELECT data FROM jobs") == stored_by_b  # nothing written
    assert claimed.epoch == 2


async def test_the_local_deadline_stops_an_engine_before_its_lease_expires(pair: Pair) -> None:
    job = await pair.a.engine.submit(imagine(), requester_id="u")
    await pair.run_until(
        lambda: status_of(pair.a.engine, job.id) is JobStatus.RUNNING, pair.a.engine
    )
    # A froze past its local deadline (lease - margin); the database lease is still live.
    pair.a.monotonic.now += LEASES.lease_s - LEASES.margin_s
    polls = len([r for r in pair.fake.requests if r.method == "GET"])
    pair.clock.advance(10)
    await pair.a.engine.settle()
    assert job.id not in {j.id for j in pair.a.engine.active_jobs()}
    assert len([r for r in pair.fake.requests if r.method == "GET"]) == polls  # no more polls
    [(live,)] = await pair.rows("SELECT lease_expires_at > now() FROM jobs")
    assert live is True  # it stopped first; the lease then lapses and B may take the job


async def test_a_released_job_is_taken_at_once_by_the_other_engine(pair: Pair) -> None:
    job = await pair.a.engine.submit(imagine(), requester_id="u")
    await pair.run_until(
        lambda: status_of(pair.a.engine, job.id) is JobStatus.RUNNING, pair.a.engine
    )
    await pair.a.engine.stop()
    await pair.a.engine.release_leases()
    # B's keeper is woken by A's NOTIFY and claims it at once, without waiting for a scan.
    for _ in range(500):
        if status_of(pair.b.engine, job.id) is JobStatus.RUNNING:
            break
        await asyncio.sleep(0.01)
    assert status_of(pair.b.engine, job.id) is JobStatus.RUNNING
    assert pair.b.keeper.takeovers == 1
    [(owner, epoch)] = await pair.rows("SELECT owner, lease_epoch FROM jobs")
    assert (owner, epoch) == (pair.b.store.leases.owner, 2)


async def test_on_sqlite_the_engine_keeps_no_leases(tmp_path: object) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/bot.db")
    try:
        assert leases_of(store) is None
        engine = Engine(make_provider("http://127.0.0.1:9"), store.jobs, clock=FakeClock())
        assert engine.keeper is None and engine.holds("any job")
    finally:
        await store.close()


async def test_cancel_of_a_job_another_engine_runs_is_refused_with_a_reason(pair: Pair) -> None:
    job = await pair.a.engine.submit(imagine(), requester_id="u")
    await pair.run_until(
        lambda: status_of(pair.a.engine, job.id) is JobStatus.RUNNING, pair.a.engine
    )
    with pytest.raises(EngineError, match="another of the bot's processes"):
        await pair.b.engine.cancel(job.id)
    assert status_of(pair.a.engine, job.id) is JobStatus.RUNNING  # untouched
    [(status,)] = await pair.rows("SELECT status FROM jobs")
    assert status == "running"
