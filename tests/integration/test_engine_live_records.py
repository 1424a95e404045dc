"""One record per live job (issue 14): however a job ends in the engine — completed,
failed, cancelled, timed out, or dropped because its lease was lost — nothing about it is
left behind: no record, no provider-ref index entry, no timer, no queue place, no slot.

The engine runs against the fake PiAPI over real HTTP on 127.0.0.1 with a SQLite file
(the `h` harness), and two engines on a throwaway PostgreSQL for the lease cases.
"""

from __future__ import annotations

from bot.domain import ErrorCode, JobStatus, Operation, OperationKind, ProviderSnapshot
from bot.engine import Engine
from tests.fakes.piapi import Profile
from tests.integration.conftest import Harness
from tests.integration.test_leases_engine import (
    LEASES,
    Pair,
    pair,
    status_of,
)

__all__ = ["pair"]  # the two-engine fixture of test_leases_engine, used here too


def imagine(prompt: str = "a quiet harbour") -> Operation:
    return Operation(OperationKind.IMAGINE, prompt=prompt)


def assert_nothing_left(engine: Engine, *job_ids: str) -> None:
    """No trace of the jobs in the engine's memory (the whole engine, when it ran only them)."""
    for job_id in job_ids:
        assert job_id not in engine._live
        assert job_id not in engine._timers
        assert job_id not in engine._queue
    assert len(engine._live) == 0 and engine._live.refs == 0
    assert all(account.in_flight == 0 for account in engine.pool.accounts)


async def test_a_completed_job_leaves_no_record(h: Harness) -> None:
    job = await h.engine.submit(imagine(), requester_id="u")
    assert job.id in h.engine._live  # the record exists while it runs
    await h.run_until(lambda: h.engine._live.refs == 1)  # indexed once submitted
    [done] = await h.finish(job)
    assert done.status is JobStatus.COMPLETED
    assert_nothing_left(h.engine, job.id)


async def test_failed_jobs_leave_no_record_before_and_after_submission(h: Harness) -> None:
    h.fake.profile_for_prompt["refused"] = Profile(outcome="failed")
    at_provider = await h.engine.submit(imagine("refused at the end"), requester_id="a")
    [failed] = await h.finish(at_provider)
    assert failed.status is JobStatus.FAILED and failed.provider_ref
    h.fake.inject("POST", "/api/v1/task", "401")
    never_sent = await h.engine.submit(imagine("sent with a refused key"), requester_id="b")
    [refused] = await h.finish(never_sent)
    assert refused.status is JobStatus.FAILED
    assert refused.error is not None and refused.error.code is ErrorCode.AUTH
    assert_nothing_left(h.engine, at_provider.id, never_sent.id)


async def test_a_job_retried_after_refusals_leaves_no_record(h: Harness) -> None:
    h.fake.inject("POST", "/api/v1/task", "503", times=3)
    job = await h.engine.submit(imagine(), requester_id="u")
    await h.engine.settle()
    live = h.engine._live.get(job.id)
    assert live is not None and live.submit_attempts == 1 and live.retry_at > 0
    [done] = await h.finish(job)
    assert done.status is JobStatus.COMPLETED
    assert_nothing_left(h.engine, job.id)


async def test_a_timed_out_job_leaves_no_record(h: Harness) -> None:
    h.fake.profile_for_prompt["stuck"] = Profile(stuck_at=50)
    job = await h.engine.submit(imagine("stuck forever"), requester_id="u")
    [done] = await h.finish(job, max_seconds=900)
    assert done.status is JobStatus.TIMED_OUT
    assert_nothing_left(h.engine, job.id)


async def test_cancelled_jobs_leave_no_record_in_the_queue_or_at_the_provider(
    h: Harness,
) -> None:
    h.fake.profile_for_prompt["slow"] = Profile(pending_s=60)
    running = [
        await h.engine.submit(imagine(f"slow start {n}"), requester_id=f"m{n}") for n in range(3)
    ]
    waiting = await h.engine.submit(imagine("slow start, queued"), requester_id="m3")
    await h.run_until(lambda: h.engine._live.refs == 3)
    assert waiting.id in h.engine._queue  # three slots, three jobs at the provider
    queued_cancel = await h.engine.cancel(waiting.id)
    assert queued_cancel.status is JobStatus.CANCELLED
    await h.engine.settle()  # the freed slot went to nobody: the queue is empty
    for job in running:
        cancelled = await h.engine.cancel(job.id)
        assert cancelled.status is JobStatus.CANCELLED
    await h.engine.settle()
    assert_nothing_left(h.engine, waiting.id, *(j.id for j in running))


async def test_a_push_after_the_end_finds_no_record_and_counts_as_duplicate(
    h: Harness,
) -> None:
    job = await h.engine.submit(imagine(), requester_id="u")
    [done] = await h.finish(job)
    stored = await h.store.jobs.get(job.id)
    assert stored is not None and stored.provider_ref
    late = await h.engine.ingest_outcome(
        ProviderSnapshot(ref=stored.provider_ref, status=JobStatus.RUNNING, progress=50)
    )
    assert late == "duplicate" and done.status is JobStatus.COMPLETED
    assert h.engine.operation_for_ref(stored.provider_ref) is None
    assert_nothing_left(h.engine, job.id)


# --- leases: a job dropped here (another process holds it now) ----------------------------


async def test_a_job_whose_lease_was_taken_over_leaves_no_record(pair: Pair) -> None:
    job = await pair.a.engine.submit(imagine(), requester_id="u")
    await pair.run_until(
        lambda: status_of(pair.a.engine, job.id) is JobStatus.RUNNING, pair.a.engine
    )
    assert pair.a.engine._live.refs == 1
    await pair.expire_leases()
    [claimed] = await pair.b.keeper.tick()
    assert claimed.job.id == job.id and job.id in pair.b.engine._live
    await pair.b.engine.stop()  # B holds the job and leaves it as it is
    # A's next fenced save finds the lease lost: the job is dropped there, entirely.
    await pair.run_until(lambda: job.id not in pair.a.engine._live, pair.a.engine)
    assert pair.a.keeper.lost == 1
    assert_nothing_left(pair.a.engine, job.id)


async def test_a_job_past_its_local_lease_deadline_leaves_no_record(pair: Pair) -> None:
    job = await pair.a.engine.submit(imagine(), requester_id="u")
    await pair.run_until(
        lambda: status_of(pair.a.engine, job.id) is JobStatus.RUNNING, pair.a.engine
    )
    pair.a.monotonic.now += LEASES.lease_s - LEASES.margin_s  # a freeze past the deadline
    pair.clock.advance(10)
    await pair.a.engine.settle()
    assert pair.a.keeper.lost == 1
    assert_nothing_left(pair.a.engine, job.id)
