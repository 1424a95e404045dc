"""The lease API of the PostgreSQL store (issue 17), on a fresh database of the throwaway
cluster (tests/pg.py): two stores opened on one database stand in for two processes."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from bot.domain import Job, JobStatus, Operation, OperationKind, new_job_id
from bot.store import open_store
from bot.store.base import Delivery, JobLeases, LeaseLostError
from bot.store.postgres import PostgresStore, dead_on_this_host


class Clock:
    """The monotonic clock the local deadlines are measured on, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def open_pg(url: str, clock: Clock | None = None) -> PostgresStore:
    store = await open_store(url)
    assert isinstance(store, PostgresStore)
    if clock is not None:
        store.leases._now = clock
    store.leases.enable(30.0, 5.0)
    return store


def a_job(status: JobStatus = JobStatus.QUEUED) -> Job:
    return Job(
        id=new_job_id(),
        operation=Operation(OperationKind.IMAGINE, prompt="a lighthouse"),
        provider="piapi",
        status=status,
        created_at=1.0,
        updated_at=1.0,
        last_change_at=1.0,
    )


async def rows(url: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def test_a_new_job_is_created_owned_and_only_its_owner_writes_it(pg_url: str) -> None:
    a, b = await open_pg(pg_url), await open_pg(pg_url)
    try:
        assert isinstance(a.leases, JobLeases)
        job = a_job()
        await a.jobs.insert(job)
        [(owner, epoch, live)] = await rows(
            pg_url, "SELECT owner, lease_epoch, lease_expires_at > now() FROM jobs"
        )
        assert (owner, epoch, live) == (a.leases.owner, 1, True)
        assert a.leases.holds(job.id) and not b.leases.holds(job.id)
        job.progress = 40
        await a.jobs.save(job)
        with pytest.raises(LeaseLostError):
            await b.jobs.save(job)  # B holds no lease on it: refused before any SQL
        assert await b.leases.claim() == []  # the lease is live: nothing to take
    finally:
        await a.close()
        await b.close()


async def test_an_expired_lease_is_taken_over_and_the_old_owner_s_writes_match_nothing(
    pg_url: str,
) -> None:
    clock = Clock()
    a, b = await open_pg(pg_url, clock), await open_pg(pg_url)
    try:
        job = a_job(JobStatus.RUNNING)
        await a.jobs.insert(job)
        await rows(pg_url, "UPDATE jobs SET lease_expires_at = now() - interval '1 second'")
        [claimed] = await b.leases.claim()
        assert (claimed.job.id, claimed.epoch, claimed.previous_owner) == (
            job.id,
            2,
            a.leases.owner,
        )
        # A's local deadline has not passed (it does not know), but its write is fenced.
        assert a.leases.holds(job.id)
        job.progress = 99
        with pytest.raises(LeaseLostError):
            await a.jobs.save(job)
        assert not a.leases.holds(job.id)  # dropped here at once
        [(data_progress, owner)] = await rows(
            pg_url, "SELECT data::json ->> 'progress', owner FROM jobs"
        )
        assert data_progress is None and owner == b.leases.owner
        claimed.job.progress = 50
        await b.jobs.save(claimed.job)
    finally:
        await a.close()
        await b.close()


async def test_renew_keeps_every_lease_in_one_statement_and_reports_the_lost(
    pg_url: str,
) -> None:
    clock = Clock()
    a, b = await open_pg(pg_url, clock), await open_pg(pg_url)
    try:
        jobs = [a_job(JobStatus.RUNNING) for _ in range(3)]
        for job in jobs:
            await a.jobs.insert(job)
        clock.now += 20  # 5 s before the local deadline
        before = await rows(pg_url, "SELECT id, lease_expires_at FROM jobs ORDER BY id")
        await asyncio.sleep(0.01)
        assert await a.leases.renew() == []
        after = await rows(pg_url, "SELECT id, lease_expires_at FROM jobs ORDER BY id")
        assert all(new[1] > old[1] for old, new in zip(before, after, strict=True))  # type: ignore[operator]
        clock.now += 20  # past the old deadline, within the renewed one
        assert all(a.leases.holds(j.id) for j in jobs)
        # One lapses (an admin's clock jump, a freeze) and B takes it.
        await rows(
            pg_url,
            "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
            jobs[0].id,
        )
        [taken] = await b.leases.claim()
        assert taken.job.id == jobs[0].id
        assert await a.leases.renew() == [jobs[0].id]
        assert sorted(a.leases.held()) == sorted(j.id for j in jobs[1:])
    finally:
        await a.close()
        await b.close()


async def test_the_local_deadline_falls_before_the_lease_and_drops_the_job(pg_url: str) -> None:
    clock = Clock()
    a = await open_pg(pg_url, clock)
    try:
        job = a_job(JobStatus.RUNNING)
        await a.jobs.insert(job)
        clock.now += 24.9
        assert a.leases.holds(job.id) and a.leases.expired() == []
        clock.now += 0.2  # 25.1 s: the 5 s margin before the 30 s lease
        assert not a.leases.holds(job.id)
        assert a.leases.expired() == [job.id]
        assert a.leases.held() == []
        [(live,)] = await rows(pg_url, "SELECT lease_expires_at > now() FROM jobs")
        assert live is True  # the database still counts it as A's: A stopped first
    finally:
        await a.close()


async def test_release_hands_every_job_over_with_a_notify(pg_url: str) -> None:
    a, b = await open_pg(pg_url), await open_pg(pg_url)
    woken = asyncio.Event()
    try:
        await b.leases.listen(woken.set)
        jobs = [a_job(JobStatus.SUBMITTED) for _ in range(2)]
        for job in jobs:
            await a.jobs.insert(job)
        assert await a.leases.release() == 2
        await asyncio.wait_for(woken.wait(), timeout=5)
        claimed = await b.leases.claim()
        assert [c.job.id for c in claimed] == [j.id for j in jobs]
        assert all(c.previous_owner is None and c.epoch == 2 for c in claimed)
        with pytest.raises(LeaseLostError):
            await a.jobs.save(jobs[0])
    finally:
        await a.close()
        await b.close()


async def test_a_final_delivery_is_fenced_and_written_once(pg_url: str) -> None:
    a, b = await open_pg(pg_url), await open_pg(pg_url)
    try:
        job = a_job(JobStatus.COMPLETED)
        await a.jobs.insert(job)
        delivery = Delivery(job.id, "42", 1024, message_id="7", created_at=9e9, updated_at=1)
        assert await a.deliveries.claim(delivery)
        await rows(pg_url, "UPDATE jobs SET lease_expires_at = now() - interval '1 second'")
        # A completed job whose final is not delivered is claimed for its delivery.
        [taken] = await b.leases.claim()
        assert taken.job.id == job.id and taken.job.status is JobStatus.COMPLETED
        delivery.final_delivered_at = 5.0
        assert await a.leases.deliver_final(delivery) is False
        assert await rows(pg_url, "SELECT final_delivered_at FROM deliveries") == [(None,)]
        assert await b.leases.deliver_final(delivery) is True
        assert await rows(
            pg_url,
            "SELECT final_delivered_at, owner FROM jobs JOIN deliveries d ON d.job_id = jobs.id",
        ) == [(5.0, None)]
        await rows(pg_url, "UPDATE jobs SET lease_expires_at = NULL")
        assert await b.leases.claim() == []  # delivered: nobody claims it again
    finally:
        await a.close()
        await b.close()


async def test_claim_skips_rows_another_claim_has_locked(pg_url: str) -> None:
    a, b = await open_pg(pg_url), await open_pg(pg_url)
    try:
        jobs = [a_job(JobStatus.RUNNING) for _ in range(20)]
        for job in jobs:
            await a.jobs.insert(job)
        await a.leases.release()
        first, second = await asyncio.gather(a.leases.claim(), b.leases.claim())
        ids_a = {c.job.id for c in first}
        ids_b = {c.job.id for c in second}
        assert not ids_a & ids_b and ids_a | ids_b == {j.id for j in jobs}
    finally:
        await a.close()
        await b.close()


def test_a_dead_owner_on_this_host_is_recognised_and_a_live_one_is_not() -> None:
    import os
    import socket
    import subprocess
    import sys

    host = socket.gethostname()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    owners = [
        f"{host}:{gone.pid}:abcd",
        f"{host}:{os.getpid()}:abcd",
        f"elsewhere:{gone.pid}:abcd",
    ]
    assert dead_on_this_host(owners) == [owners[0]]
