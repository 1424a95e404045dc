"""Engine + PiAPI provider + SQLite store against the fake PiAPI, over real HTTP on 127.0.0.1.

Everything runs on one FakeClock shared by the engine and the fake provider, so a test
moves a job through its life by advancing time, never by sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.domain import Job
from bot.engine import Engine, EngineSettings, JobEvent
from bot.providers.http import ProviderHTTP
from bot.providers.piapi import PiAPIProvider, classify_http_error
from bot.store import open_store
from bot.store.base import Store
from tests.fakes.piapi import FakePiAPI

API_KEY = "pk-test-secret-key"


def make_provider(base_url: str, *, timeout: float = 1.0) -> PiAPIProvider:
    http = ProviderHTTP(
        base_url,
        headers={"x-api-key": API_KEY},
        timeout=timeout,
        attempts=3,
        backoff=0.01,
        classify=classify_http_error,
    )
    return PiAPIProvider(api_key=API_KEY, base_url=base_url, http=http)


ENGINE_SETTINGS = EngineSettings(
    max_concurrent_jobs=3,
    poll_initial_s=2.0,
    poll_min_s=1.0,
    poll_max_s=6.0,
    stall_timeout_s=120.0,
    max_duration_s=900.0,
    not_found_grace_s=20.0,
    submit_retry_window_s=60.0,
    submit_retry_base_s=1.0,
)


@dataclass
class Harness:
    clock: FakeClock
    fake: FakePiAPI
    store: Store
    db_path: Path
    engine: Engine
    events: list[JobEvent] = field(default_factory=list)

    async def new_engine(self, *, settings: EngineSettings = ENGINE_SETTINGS) -> Engine:
        """A fresh engine on the same store, as after a restart."""
        engine = Engine(
            make_provider(self.fake.base_url), self.store.jobs, clock=self.clock, settings=settings
        )
        engine.subscribe(self.events.append)
        return engine

    async def run_until(
        self, done: Callable[[], bool], *, step: float = 1.0, max_seconds: float = 600.0
    ) -> None:
        """Advance the shared clock step by step until `done()` (bounded by max_seconds)."""
        await self.engine.settle()
        elapsed = 0.0
        while not done():
            if elapsed >= max_seconds:
                raise AssertionError(f"condition not reached after {max_seconds}s of fake time")
            self.clock.advance(step)
            elapsed += step
            await self.engine.settle()

    async def finish(self, *jobs: Job, max_seconds: float = 600.0) -> list[Job]:
        async def states() -> list[Job]:
            return [await self.engine.get(j.id) for j in jobs]  # type: ignore[misc]

        latest: dict[str, Job] = {}

        def all_done() -> bool:
            return all(j.id in latest and latest[j.id].is_terminal for j in jobs)

        def track(event: JobEvent) -> None:
            latest[event.job.id] = event.job

        unsubscribe = self.engine.subscribe(track)
        try:
            for job in await states():
                latest[job.id] = job
            await self.run_until(all_done, max_seconds=max_seconds)
        finally:
            unsubscribe()
        return [latest[j.id] for j in jobs]


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    clock = FakeClock()
    db_path = tmp_path / "jobs.db"
    async with FakePiAPI(api_key=API_KEY, clock=clock, image_size=128) as fake:
        store = await open_store(f"sqlite:///{db_path}")
        h = Harness(clock=clock, fake=fake, store=store, db_path=db_path, engine=None)  # type: ignore[arg-type]
        h.engine = await h.new_engine()
        await h.engine.start()
        try:
            yield h
        finally:
            await h.engine.stop()
            await h.engine.provider.aclose()
            await store.close()
