"""Provider faults and restarts: every job ends in the right state, none is sent twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from bot.domain import ErrorCode, Job, JobStatus, Operation, OperationKind
from tests.fakes.piapi import Profile
from tests.integration.conftest import API_KEY, Harness

ROOT = Path(__file__).resolve().parents[2]


def imagine(prompt: str = "a quiet harbour") -> Operation:
    return Operation(OperationKind.IMAGINE, prompt=prompt)


def n_creates(h: Harness) -> int:
    return len(h.fake.created())


async def test_429_on_create_is_retried_after_retry_after(h: Harness) -> None:
    h.fake.inject("POST", "/api/v1/task", "429", retry_after=1)
    [done] = await h.finish(await h.engine.submit(imagine(), requester_id="u"))
    assert done.status is JobStatus.COMPLETED
    assert n_creates(h) == 1


async def test_long_429_on_create_requeues_the_job(h: Harness) -> None:
    h.fake.inject("POST", "/api/v1/task", "429", times=3, retry_after=30)
    [done] = await h.finish(await h.engine.submit(imagine(), requester_id="u"))
    assert done.status is JobStatus.COMPLETED
    assert n_creates(h) == 1


async def test_bursts_of_500_on_create_and_poll(h: Harness) -> None:
    h.fake.inject("POST", "/api/v1/task", "500", times=2)
    h.fake.inject("GET", "/api/v1/task/", "500", times=5)
    h.fake.inject("GET", "/api/v1/task/", "502", times=2)
    [done] = await h.finish(await h.engine.submit(imagine(), requester_id="u"))
    assert done.status is JobStatus.COMPLETED
    assert n_creates(h) == 1


async def test_create_that_keeps_failing_ends_as_unavailable(h: Harness) -> None:
    h.fake.inject("POST", "/api/v1/task", "503", times=1000)
    [done] = await h.finish(await h.engine.submit(imagine(), requester_id="u"))
    assert done.status is JobStatus.FAILED
    assert done.error is not None and done.error.code is ErrorCode.UNAVAILABLE
    assert n_creates(h) == 0


async def test_poll_timeouts_resets_and_garbage_are_survived(h: Harness) -> None:
    h.fake.inject("GET", "/api/v1/task/", "timeout", times=2, delay=3)
    h.fake.inject("GET", "/api/v1/task/", "reset", times=2)
    h.fake.inject("GET", "/api/v1/task/", "malformed", times=2)
    h.fake.inject("GET", "/api/v1/task/", "missing_fields", times=1)
    h.fake.inject("GET", "/api/v1/task/", "unknown_fields", times=2)
    [done] = await h.finish(await h.engine.submit(imagine(), requester_id="u"))
    assert done.status is JobStatus.COMPLETED
    assert done.result_url
    assert n_creates(h) == 1


async def test_create_without_answer_is_not_resent(h: Harness) -> None:
    h.fake.inject("POST", "/api/v1/task", "timeout", delay=3)
    [done] = await h.finish(await h.engine.submit(imagine(), requester_id="u"))
    assert done.status is JobStatus.FAILED
    assert done.error is not None and done.error.code is ErrorCode.SUBMIT_INTERRUPTED
    create_posts = [r for r in h.fake.requests if r.method == "POST" and r.path == "/api/v1/task"]
    assert len(create_posts) == 1


async def test_bad_key_fails_with_auth_reason(h: Harness) -> None:
    h.fake.inject("POST", "/api/v1/task", "401")
    [done] = await h.finish(await h.engine.submit(imagine(), requester_id="u"))
    assert done.status is JobStatus.FAILED
    assert done.error is not None and done.error.code is ErrorCode.AUTH
    assert API_KEY not in (done.error.message + (done.error.provider_text or ""))


async def test_vanished_job_fails_as_not_found(h: Harness) -> None:
    job = await h.engine.submit(imagine(), requester_id="u")
    await h.run_until(lambda: n_creates(h) == 1)
    h.fake.vanish(h.fake.created()[0].task_id)
    [done] = await h.finish(job)
    assert done.status is JobStatus.FAILED
    assert done.error is not None and done.error.code is ErrorCode.NOT_FOUND


async def test_job_stuck_at_one_percentage_times_out(h: Harness) -> None:
    h.fake.profile_for_prompt["stuck"] = Profile(stuck_at=93)
    [done] = await h.finish(
        await h.engine.submit(imagine("stuck forever"), requester_id="u"), max_seconds=900
    )
    assert done.status is JobStatus.TIMED_OUT
    assert done.error is not None and "no progress" in done.error.message
    assert done.progress == 93


async def _ref_of(h: Harness, job: Job) -> str:
    stored = await h.store.jobs.get(job.id)
    assert stored is not None and stored.provider_ref
    return stored.provider_ref


async def test_restarted_engine_resumes_without_resubmitting(h: Harness) -> None:
    jobs = [await h.engine.submit(imagine(f"picture {n}"), requester_id=f"m{n}") for n in range(3)]
    await h.run_until(lambda: n_creates(h) == 3)
    h.clock.advance(8)
    await h.engine.settle()
    refs = [await _ref_of(h, j) for j in jobs]

    await h.engine.stop()  # the old engine is gone; only the SQLite file remains
    await h.engine.provider.aclose()
    h.engine = await h.new_engine()
    await h.engine.start()
    done = await h.finish(*jobs)

    assert [j.status for j in done] == [JobStatus.COMPLETED] * 3
    assert [j.provider_ref for j in done] == refs
    assert n_creates(h) == 3


async def test_restart_during_submission_does_not_resend(h: Harness) -> None:
    # As if the process died after marking the job as being sent, before storing the answer.
    job = await h.engine.submit(imagine(), requester_id="u")
    await h.engine.stop()
    stored = await h.store.jobs.get(job.id)
    assert stored is not None
    stored.status = JobStatus.QUEUED
    stored.provider_ref = None
    stored.submit_started_at = h.clock.time()
    await h.store.jobs.save(stored)
    before = n_creates(h)

    h.engine = await h.new_engine()
    await h.engine.start()
    done = await h.engine.get(job.id)
    assert done is not None and done.status is JobStatus.FAILED
    assert done.error is not None and done.error.code is ErrorCode.SUBMIT_INTERRUPTED
    assert n_creates(h) == before


KILLED_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from bot.clock import SystemClock
    from bot.domain import Operation, OperationKind
    from bot.engine import Engine, EngineSettings
    from bot.store import open_store
    from tests.integration.conftest import make_provider

    class ShiftedClock(SystemClock):
        # Real time, shifted to the parent's fake clock so both agree on job ages.
        def __init__(self, now):
            self.offset = now - time.time()

        def time(self):
            return time.time() + self.offset

    async def main(base_url, db, count, now):
        store = await open_store("sqlite:///" + db)
        engine = Engine(make_provider(base_url), store.jobs, clock=ShiftedClock(now),
                        settings=EngineSettings(poll_initial_s=0.05))
        await engine.start()
        jobs = [await engine.submit(Operation(OperationKind.IMAGINE, prompt=f"child {n}"),
                                    requester_id="child") for n in range(count)]
        while True:
            states = [await store.jobs.get(j.id) for j in jobs]
            if all(s.provider_ref for s in states):
                print("SUBMITTED", flush=True)
                await asyncio.sleep(3600)
            await asyncio.sleep(0.02)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
    """
)


async def test_engine_process_killed_with_sigkill_then_resumed(h: Harness) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(  # noqa: ASYNC220 - a child we kill -9 on purpose
        [
            sys.executable,
            "-c",
            KILLED_CHILD,
            h.fake.base_url,
            str(h.db_path),
            "2",
            str(h.clock.time()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        line = await _read_line(proc, limit_s=30)
        assert line.strip() == "SUBMITTED", line + (proc.stderr.read() if proc.stderr else "")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert n_creates(h) == 2

    await h.engine.stop()
    h.engine = await h.new_engine()
    await h.engine.start()
    active = await h.store.jobs.list_active()
    assert len(active) == 2
    done = await h.finish(*active)
    assert all(j.status is JobStatus.COMPLETED for j in done)
    assert n_creates(h) == 2


async def _read_line(proc: subprocess.Popen[str], limit_s: float) -> str:
    assert proc.stdout is not None
    return await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), limit_s)
