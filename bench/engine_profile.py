"""Profile the Engine alone with thousands of jobs on a FakeClock (no HTTP, no SQLite).

A quick tool, not a test: it reports the CPU seconds the engine spends, and optionally the
hottest functions, so that O(n)-per-event work shows up. The provider is an in-memory
simulation (pending 3 s, processing 24 s, progress every 4 s); the store is a dict.

    .venv/bin/python -m bench.engine_profile [--jobs 2000] [--slots 2000] [--push] [--profile]

Scenarios worth running: `--slots 2000` (every job in flight, polling) and `--slots 50`
(a long fair queue: queue positions move on every finish).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import cProfile
import pstats
import time
from typing import Any

from bot.clock import FakeClock
from bot.domain import Job, JobStatus, Operation, OperationKind, ProviderSnapshot
from bot.engine import Engine, EngineSettings, JobEvent
from bot.providers.base import AccountInfo, Capabilities

PENDING_S, PROCESSING_S, STEP_S = 3.0, 24.0, 4.0


class SimProvider:
    name = "sim"
    capabilities = Capabilities(operations=frozenset({OperationKind.IMAGINE}))

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.created: dict[str, float] = {}
        self.requests = 0
        self._n = 0

    def state(self, ref: str) -> ProviderSnapshot:
        age = self.clock.time() - self.created[ref]
        if age < PENDING_S:
            return ProviderSnapshot(ref=ref, status=JobStatus.SUBMITTED, raw_status="pending")
        if age < PENDING_S + PROCESSING_S:
            step = int((age - PENDING_S) // STEP_S)
            progress = min(99, int(100 * step * STEP_S / PROCESSING_S))
            return ProviderSnapshot(
                ref=ref, status=JobStatus.RUNNING, progress=progress, raw_status="processing"
            )
        return ProviderSnapshot(
            ref=ref,
            status=JobStatus.COMPLETED,
            progress=100,
            result_url=f"https://img.example/{ref}.png",
            raw_status="completed",
        )

    async def submit(self, operation: Operation, *, job: Job, parent: Job | None) -> Any:
        self.requests += 1
        self._n += 1
        ref = f"t{self._n}"
        self.created[ref] = self.clock.time()
        return self.state(ref)

    async def fetch(self, job: Job) -> ProviderSnapshot:
        self.requests += 1
        assert job.provider_ref
        return self.state(job.provider_ref)

    async def cancel(self, job: Job) -> None:
        return None

    async def account(self) -> AccountInfo:
        return AccountInfo()

    async def aclose(self) -> None:
        return None


class MemoryJobs:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}

    async def insert(self, job: Job) -> tuple[Job, bool]:
        self.jobs[job.id] = copy.copy(job)
        return job, True

    async def save(self, job: Job) -> None:
        self.jobs[job.id] = copy.copy(job)

    async def get(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        return copy.copy(job) if job else None

    async def get_by_idempotency_key(self, key: str) -> Job | None:
        return None

    async def get_by_provider_ref(self, provider: str, ref: str) -> Job | None:
        return None

    async def list_active(self) -> list[Job]:
        return [copy.copy(j) for j in self.jobs.values() if not j.is_terminal]

    async def list_for_requester(self, *args: Any, **kw: Any) -> list[Job]:
        return []

    async def count_for_requester_since(self, *args: Any, **kw: Any) -> int:
        return 0


async def run(jobs: int, slots: int, push: bool) -> dict[str, float]:
    clock = FakeClock()
    provider = SimProvider(clock)
    settings = EngineSettings(
        max_concurrent_jobs=slots,
        poll_initial_s=3.0,
        poll_max_s=15.0,
        max_parallel_requests=64,
        stall_timeout_s=100_000,
        max_duration_s=100_000,
        **({"push_safety_poll_s": 60.0, "push_mode": True} if push else {}),
    )
    engine = Engine(provider, MemoryJobs(), clock=clock, settings=settings)  # type: ignore[arg-type]
    events = 0

    def count(event: JobEvent) -> None:
        nonlocal events
        events += 1

    engine.subscribe(count)
    await engine.start()
    op = Operation(OperationKind.IMAGINE, prompt="a lighthouse")
    started = time.process_time()
    submitted = [
        await engine.submit(op, requester_id=f"u{i % 97}", idempotency_key=str(i))
        for i in range(jobs)
    ]
    await engine.settle(limit_s=120)
    fake_seconds = 0.0
    pushes = 0
    while engine.active_count and fake_seconds < 100_000:
        clock.advance(1.0)
        fake_seconds += 1.0
        if push:
            # What a webhook would deliver: the state of every submitted job, once a second.
            for ref in list(provider.created):
                if await engine.ingest(provider.state(ref)):
                    pushes += 1
        await engine.settle(limit_s=120)
    cpu = time.process_time() - started
    await engine.stop()
    done = 0
    for j in submitted:
        final = await engine.get(j.id)
        done += 1 if final is not None and final.status is JobStatus.COMPLETED else 0
    return {
        "jobs": float(done),
        "cpu_s": cpu,
        "fake_s": fake_seconds,
        "provider_requests": float(provider.requests),
        "events": float(events),
        "pushes_applied": float(pushes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--slots", type=int, default=2000)
    parser.add_argument("--push", action="store_true", help="feed states through Engine.ingest")
    parser.add_argument("--profile", action="store_true", help="print the hottest functions")
    args = parser.parse_args()
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    result = asyncio.run(run(args.jobs, args.slots, args.push))
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    print(
        f"jobs={int(result['jobs'])} slots={args.slots} push={args.push}: "
        f"engine CPU {result['cpu_s']:.2f}s ({1000 * result['cpu_s'] / args.jobs:.2f} ms/job), "
        f"{int(result['fake_s'])} fake s, provider requests {int(result['provider_requests'])} "
        f"({result['provider_requests'] / args.jobs:.2f}/job), events {int(result['events'])}"
    )


if __name__ == "__main__":
    main()
