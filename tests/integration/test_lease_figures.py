"""The lease figures (issue 17) in /metrics and /healthz: two engines on one real
PostgreSQL database (the `pair` of test_leases_engine), each served by its own real web
server on 127.0.0.1, read over HTTP as a scraper and a health check would.

Engine B takes over engine A's expired lease (1 takeover on B); A's next fenced write
matches nothing, so A drops the job (1 lost lease on A).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from bot.clock import FakeClock
from bot.domain import JobStatus
from bot.engine import Engine
from bot.metrics import Metrics
from bot.providers.piapi import PiAPIProvider
from bot.store import open_store
from bot.web import WebServer, register_engine_gauges, shards_run
from tests.integration.conftest import API_KEY, ENGINE_SETTINGS
from tests.integration.test_leases_engine import Pair, imagine, pair, status_of

__all__ = ["pair"]  # the fixture, shared with the engine lease tests


@asynccontextmanager
async def served(engine: Engine, shards: list[int] | None) -> AsyncIterator[str]:
    """A /metrics + /healthz server over `engine`; yields its base URL."""
    metrics = Metrics()
    register_engine_gauges(metrics, engine)
    server = WebServer(
        "127.0.0.1", 0, engine=engine, metrics=metrics, serve_metrics=True, shards=shards
    )
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.bound_port}"
    finally:
        await server.stop()


async def health(base: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/healthz") as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def figures(base: str) -> dict[str, str]:
    """The lease samples of /metrics, by name."""
    async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    samples = dict(line.split(" ", 1) for line in text.splitlines() if line[:1] != "#")
    names = ("mjbot_leases_held", "mjbot_lease_takeovers_total", "mjbot_leases_lost_total")
    return {name: samples[name] for name in names}


async def test_a_takeover_and_a_lost_lease_show_in_metrics_and_healthz(pair: Pair) -> None:
    async with served(pair.a.engine, [0]) as a_url, served(pair.b.engine, [1, 2]) as b_url:
        job = await pair.a.engine.submit(imagine(), requester_id="u")
        await pair.run_until(
            lambda: status_of(pair.a.engine, job.id) is JobStatus.RUNNING, pair.a.engine
        )
        a_health = await health(a_url)
        assert (a_health["shards"], a_health["jobs_held"], a_health["leases_held"]) == ([0], 1, 1)
        assert await figures(b_url) == {
            "mjbot_leases_held": "0",
            "mjbot_lease_takeovers_total": "0",
            "mjbot_leases_lost_total": "0",
        }

        await pair.expire_leases()
        [claimed] = await pair.b.keeper.tick()
        assert claimed.job.id == job.id
        b_health = await health(b_url)
        assert (b_health["shards"], b_health["jobs_held"], b_health["leases_held"]) == (
            [1, 2],
            1,
            1,
        )
        assert await figures(b_url) == {
            "mjbot_leases_held": "1",
            "mjbot_lease_takeovers_total": "1",
            "mjbot_leases_lost_total": "0",
        }

        # A does not know yet; its next stored change is fenced out and it drops the job.
        await pair.run_until(
            lambda: job.id not in {j.id for j in pair.a.engine.active_jobs()}, pair.a.engine
        )
        assert await figures(a_url) == {
            "mjbot_leases_held": "0",
            "mjbot_lease_takeovers_total": "0",
            "mjbot_leases_lost_total": "1",
        }
        a_health = await health(a_url)
        assert (a_health["jobs_held"], a_health["leases_held"]) == (0, 0)


def test_the_shards_shown_are_the_ids_given_else_all_of_the_count_else_none() -> None:
    assert shards_run([3, 1], 4) == [1, 3]
    assert shards_run([], 3) == [0, 1, 2]
    assert shards_run([], None) is None


async def test_without_leases_or_shards_healthz_says_null_and_metrics_zero(
    tmp_path: Path,
) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    provider = PiAPIProvider(api_key=API_KEY, base_url="http://127.0.0.1:9")  # never called
    engine = Engine(provider, store.jobs, clock=FakeClock(), settings=ENGINE_SETTINGS)
    await engine.start()
    try:
        async with served(engine, None) as url:
            body = await health(url)
            assert (body["shards"], body["jobs_held"], body["leases_held"]) == (None, 0, None)
            assert set((await figures(url)).values()) == {"0"}
    finally:
        await engine.stop()
        await provider.aclose()
        await store.close()
