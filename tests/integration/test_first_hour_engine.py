"""Issue 15 item 1 against the engine's default retry schedule: a provider that refuses
every submission is retried 5, 10, 20, 30, 30… s apart, the job carries a 'retrying'
note from the first refusal on, and it is given up at the two-minute window's end."""

from __future__ import annotations

import itertools

from bot.domain import ErrorCode, JobStatus, Operation, OperationKind
from bot.engine import EngineSettings
from tests.integration.conftest import Harness

CREATE = "/api/v1/task"


async def test_a_refused_submission_is_retried_then_given_up_within_two_minutes(
    h: Harness,
) -> None:
    await h.engine.stop()
    h.engine = await h.new_engine(settings=EngineSettings())  # the shipped schedule
    await h.engine.start()
    h.fake.inject("POST", CREATE, "503", times=None)
    start = h.clock.time()
    job = await h.engine.submit(
        Operation(kind=OperationKind.IMAGINE, prompt="an outage"), requester_id="u1"
    )
    [ended] = await h.finish(job, max_seconds=300)

    assert ended.status is JobStatus.FAILED
    assert ended.error is not None and ended.error.code is ErrorCode.UNAVAILABLE
    assert "did not answer for 2 minutes; nothing was charged" in ended.error.message
    assert ended.finished_at is not None and 110 <= ended.finished_at - start <= 125
    # Attempts (each ProviderHTTP call may try a few times inline): the gaps grow, capped.
    calls = sorted({round(r.at - start) for r in h.fake.requests if r.method == "POST"})
    assert calls[:4] == [0, 5, 15, 35], calls
    assert all(b - a <= 30 for a, b in itertools.pairwise(calls)), calls
    assert h.fake.created() == []  # nothing was made, so nothing can be charged

    notes = [e.job for e in h.events if e.job.id == job.id and not e.job.is_terminal]
    retrying = [j for j in notes if j.error is not None]
    assert retrying and retrying[0].status is JobStatus.QUEUED
    assert retrying[0].error is not None
    assert retrying[0].error.message == "The image service isn't answering; retrying."
