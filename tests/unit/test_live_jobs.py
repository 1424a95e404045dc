"""The engine's live-job records (bot/engine/live.py): one entry per job, ref index included."""

from __future__ import annotations

from bot.domain import Job, Operation, OperationKind
from bot.engine.live import LiveJobs


def job(job_id: str) -> Job:
    return Job(
        id=job_id, operation=Operation(OperationKind.IMAGINE, prompt="a harbour"), provider="piapi"
    )


def test_removing_a_job_removes_its_record_and_its_ref() -> None:
    live = LiveJobs()
    record = live.add(job("j1"))
    live.index_ref(record, "task-1")
    record.polling = record.unsaved = True
    assert live.by_ref("task-1") is record and "j1" in live and len(live) == 1
    assert live.remove("j1") is record
    assert "j1" not in live and len(live) == 0 and live.refs == 0
    assert live.by_ref("task-1") is None and live.job("j1") is None
    assert live.remove("j1") is None  # a second removal is harmless


def test_a_new_record_starts_clean_after_the_old_one_went() -> None:
    live = LiveJobs()
    old = live.add(job("j1"))
    old.submit_attempts, old.retry_at, old.finishing = 3, 50.0, True
    live.remove("j1")
    fresh = live.add(job("j1"))  # taken up again (a lease won back)
    assert (fresh.submit_attempts, fresh.retry_at, fresh.finishing) == (0, 0.0, False)
    assert fresh.interval is None and fresh.ref is None


def test_a_ref_taken_by_another_job_stays_with_it() -> None:
    live = LiveJobs()
    first, second = live.add(job("j1")), live.add(job("j2"))
    live.index_ref(first, "task-1")
    live.index_ref(second, "task-1")  # the index follows the latest holder
    live.remove("j1")
    assert live.by_ref("task-1") is second and live.refs == 1
    assert [r.job.id for r in live] == ["j2"] and [j.id for j in live.jobs()] == ["j2"]
