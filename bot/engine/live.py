"""The engine's record of each job in flight: one entry per job, and nothing else per job.

A job the engine works on has exactly one `LiveJob` in `LiveJobs`, holding the Job and
everything the engine keeps about it while it runs (poll pace, a delayed resubmission,
what is in flight for it). Ending or dropping a job removes that one entry, index
included, so nothing about a finished job can be left behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bot.domain import Job


@dataclass(slots=True)
class LiveJob:
    job: Job
    # Seconds between polls, adapted to the provider's pace (None: not polled yet).
    interval: float | None = None
    retry_at: float = 0.0  # a refused submission is not sent again before this
    submit_attempts: int = 0  # submissions refused for transient reasons so far
    ref: str | None = None  # the provider ref it is indexed under
    submitting: bool = False  # its submission is being sent
    polling: bool = False  # a poll is in flight
    finishing: bool = False  # being ended (stops a second observation ending it too)
    unsaved: bool = False  # its latest progress is in memory only


class LiveJobs:
    """Every non-terminal job, by id, with an index by provider ref."""

    def __init__(self) -> None:
        self._by_id: dict[str, LiveJob] = {}
        self._by_ref: dict[str, str] = {}  # provider ref -> job id

    def add(self, job: Job) -> LiveJob:
        live = self._by_id[job.id] = LiveJob(job)
        return live

    def index_ref(self, live: LiveJob, ref: str) -> None:
        """Find the job by `ref` from now on (its submission was accepted)."""
        live.ref = ref
        self._by_ref[ref] = live.job.id

    def remove(self, job_id: str) -> LiveJob | None:
        """Forget the job and its ref; the removed record, or None if it was not live."""
        live = self._by_id.pop(job_id, None)
        if live is not None and live.ref and self._by_ref.get(live.ref) == job_id:
            del self._by_ref[live.ref]
        return live

    def get(self, job_id: str) -> LiveJob | None:
        return self._by_id.get(job_id)

    def job(self, job_id: str) -> Job | None:
        live = self._by_id.get(job_id)
        return live.job if live is not None else None

    def by_ref(self, ref: str) -> LiveJob | None:
        job_id = self._by_ref.get(ref)
        return self._by_id.get(job_id) if job_id is not None else None

    def jobs(self) -> list[Job]:
        return [live.job for live in self._by_id.values()]

    @property
    def refs(self) -> int:
        """How many refs are indexed (tests: none may outlive its job)."""
        return len(self._by_ref)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._by_id

    def __iter__(self) -> Iterator[LiveJob]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)
