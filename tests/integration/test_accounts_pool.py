"""Several provider accounts, pooled: the real engine, the real providers and a real SQLite
file against two fake provider instances on two ports, over real HTTP on 127.0.0.1.

Every fake runs on the engine's FakeClock, so jobs move only when the test advances time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.accounts import Account, AccountPool, AsideKind, PoolSettings
from bot.actions import operation_for
from bot.clock import FakeClock
from bot.domain import ErrorCode, Job, JobStatus, Operation, OperationKind, SpeedMode
from bot.engine import Engine, EngineError, JobEvent
from bot.metrics import Metrics
from bot.providers import legnext as legnext_mod
from bot.providers.http import ProviderHTTP
from bot.providers.legnext import LegnextProvider
from bot.providers.mjproxy import MJProxyProvider
from bot.providers.mjproxy import classify_http_error as mjproxy_classify
from bot.store import open_store
from bot.store.base import Store
from tests.fakes import images
from tests.fakes.legnext import FakeLegnext
from tests.fakes.mjproxy import FakeMJProxy
from tests.fakes.piapi import Profile
from tests.integration.conftest import ENGINE_SETTINGS

KEYS = {"a": "lg-key-account-a", "b": "lg-key-account-b"}


def imagine(prompt: str = "a lighthouse at dusk") -> Operation:
    return Operation(OperationKind.IMAGINE, prompt=prompt, mode=SpeedMode.FAST)


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def legnext(fake: FakeLegnext, key: str) -> LegnextProvider:
    http = ProviderHTTP(
        fake.base_url,
        headers=legnext_mod.auth_headers(key),
        timeout=1.0,
        attempts=1,
        classify=legnext_mod.classify_http_error,
        sleep=_no_sleep,
    )
    return LegnextProvider(api_key=key, base_url=fake.base_url, http=http)


@dataclass
class PoolWorld:
    clock: FakeClock
    fakes: dict[str, Any]
    store: Store
    pool: AccountPool
    engine: Engine
    metrics: Metrics
    latest: dict[str, Job] = field(default_factory=dict)

    def track(self, event: JobEvent) -> None:
        self.latest[event.job.id] = event.job

    async def run_until(self, done: Callable[[], bool], *, max_seconds: float = 300) -> None:
        await self.engine.settle()
        elapsed = 0.0
        while not done():
            assert elapsed < max_seconds, "condition not reached in fake time"
            self.clock.advance(1.0)
            elapsed += 1.0
            await self.engine.settle()

    async def finish(self, *jobs: Job) -> list[Job]:
        await self.run_until(lambda: all(self.latest[j.id].is_terminal for j in jobs))
        return [self.latest[j.id] for j in jobs]

    async def submit(self, op: Operation, member: str = "m1") -> Job:
        job = await self.engine.submit(op, requester_id=member, guild_id="g1")
        self.latest.setdefault(job.id, job)
        await self.engine.settle()
        return job

    def creates(self, name: str, op: str | None = None) -> int:
        return len(self.fakes[name].created(op))


async def open_pool(
    tmp_path: Path,
    accounts: list[tuple[str, Any, Any, int, int]],
    *,
    settings: PoolSettings | None = None,
) -> PoolWorld:
    """`accounts`: (name, fake, provider, limit, weight) each; the fakes already started."""
    clock = accounts[0][1].clock
    store = await open_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    pool = AccountPool(
        [Account(n, p, limit=lim, weight=w) for n, _f, p, lim, w in accounts], settings=settings
    )
    metrics = Metrics()
    engine = Engine(pool, store.jobs, clock=clock, settings=ENGINE_SETTINGS, metrics=metrics)
    world = PoolWorld(clock, {n: f for n, f, *_ in accounts}, store, pool, engine, metrics)
    engine.subscribe(world.track)
    await engine.start()
    return world


async def close_pool(world: PoolWorld) -> None:
    await world.engine.stop()
    await world.pool.aclose()
    await world.store.close()


TwoFactory = Callable[..., Awaitable[PoolWorld]]


@pytest.fixture
async def make_two(tmp_path: Path) -> AsyncIterator[TwoFactory]:
    """Two Legnext accounts, each its own fake on its own port: a and b."""
    opened: list[tuple[PoolWorld, list[FakeLegnext]]] = []

    async def make(
        limits: tuple[int, int] = (2, 4),
        weights: tuple[int, int] = (1, 1),
        settings: PoolSettings | None = None,
        modes: tuple[frozenset[SpeedMode] | None, ...] = (None, None),
    ) -> PoolWorld:
        clock = FakeClock()
        fakes = [FakeLegnext(api_key=KEYS[n], clock=clock, image_size=32) for n in "ab"]
        for fake in fakes:
            await fake.start()
        world = await open_pool(
            tmp_path,
            [
                (n, f, legnext(f, KEYS[n]), limit, weight)
                for n, f, limit, weight in zip("ab", fakes, limits, weights, strict=True)
            ],
            settings=settings,
        )
        for account, served in zip(world.pool.accounts, modes, strict=True):
            account.modes = served
        opened.append((world, fakes))
        return world

    try:
        yield make
    finally:
        for world, fakes in opened:
            await close_pool(world)
            for fake in fakes:
                await fake.stop()


@pytest.fixture
async def two(make_two: TwoFactory) -> PoolWorld:
    return await make_two()


# --- routing ------------------------------------------------------------------------------


async def test_new_jobs_go_to_the_least_loaded_account_relative_to_its_limit(
    two: PoolWorld,
) -> None:
    jobs = [await two.submit(imagine(f"harbour {i}"), member=f"m{i}") for i in range(7)]
    # a 0/2 vs b 0/4: tie, file order -> a; then b (0 < .5), b (.25 < .5), a (.5 = .5, order),
    # then a is full and b takes two more; the seventh waits in the bot for a free slot.
    assert [two.latest[j.id].account for j in jobs[:6]] == ["a", "b", "b", "a", "b", "b"]
    assert (two.creates("a"), two.creates("b")) == (2, 4)
    assert two.engine.queue_length == 1 and two.engine.queue_position(jobs[6].id) == 1
    assert two.metrics.account_in_flight.value(account="a") == 2
    assert two.metrics.account_in_flight.value(account="b") == 4

    done = await two.finish(*jobs)
    assert all(j.status is JobStatus.COMPLETED for j in done)
    assert two.creates("a") + two.creates("b") == 7  # one create per job, no more
    stored = await two.store.jobs.get(jobs[0].id)
    assert stored is not None and stored.account == "a"  # the column survives a restart


async def test_ties_go_to_the_heavier_account(make_two: TwoFactory) -> None:
    two = await make_two(limits=(3, 3), weights=(1, 3))
    first = await two.submit(imagine())
    second = await two.submit(imagine("second"), member="m2")
    assert two.latest[first.id].account == "b"  # equal load, weight 3 over 1
    assert two.latest[second.id].account == "a"  # b at 1/3 now, a at 0/3


async def test_a_follow_up_goes_to_its_parents_account_while_the_other_is_idle(
    two: PoolWorld,
) -> None:
    grid = await two.submit(imagine())
    (grid,) = await two.finish(grid)
    assert grid.account == "a"
    busy = await two.submit(imagine("keeps a busy"), member="m2")
    assert two.latest[busy.id].account == "a"  # tie at 0 -> a; now a 1/2, b 0/4 idle

    reroll = await two.submit(operation_for("reroll", grid), member="m3")
    assert two.latest[reroll.id].account == "a"
    assert (two.creates("a", "reroll"), two.creates("b")) == (1, 0)
    (reroll_done,) = await two.finish(reroll)
    assert reroll_done.status is JobStatus.COMPLETED and reroll_done.account == "a"

    # With a full, the follow-up waits for a's slot rather than going to idle b.
    a, b = two.pool.get("a"), two.pool.get("b")
    assert a is not None and b is not None
    fillers: list[Job] = []
    while a.in_flight < a.limit:  # least-loaded routing fills both; at most 6 slots
        assert len(fillers) < 6
        fillers.append(await two.submit(imagine(f"f{len(fillers)}"), member=f"f{len(fillers)}"))
    assert b.in_flight < b.limit  # b still has room
    again = await two.submit(operation_for("reroll", grid), member="m4")
    assert two.latest[again.id].status is JobStatus.QUEUED
    assert two.engine.queue_position(again.id) == 1
    await two.finish(*fillers, again)
    assert two.latest[again.id].account == "a" and two.creates("b", "reroll") == 0


# --- failover -----------------------------------------------------------------------------


async def test_insufficient_balance_sets_the_account_aside_and_new_jobs_flow_to_the_other(
    two: PoolWorld,
) -> None:
    two.fakes["a"].balance_points = 20  # one imagine's worth
    grid = await two.submit(imagine())
    (grid,) = await two.finish(grid)
    assert grid.account == "a"

    jobs = [await two.submit(imagine(f"p{i}"), member=f"m{i}") for i in range(4)]
    # a answered the first of these HTTP 402 "insufficient balance": set aside, and that
    # job went to b with everything after it.
    a = two.pool.get("a")
    assert a is not None and a.aside is not None and a.aside.kind is AsideKind.BALANCE
    assert a.aside.provider_text == "insufficient balance"
    refused = [r for r in two.fakes["a"].requests if r.status == 402]
    assert len(refused) == 1 and refused[0].task_id is None  # nothing was created there
    assert [two.latest[j.id].account for j in jobs] == ["b", "b", "b", "b"]

    done = await two.finish(*jobs)
    assert all(j.status is JobStatus.COMPLETED for j in done)
    # Exactly one create per job: the grid at a, the four at b.
    assert (two.creates("a"), two.creates("b")) == (1, 4)
    assert len({j.provider_ref for j in done}) == 4
    assert two.metrics.account_available.value(account="a") == 0

    # A follow-up of the grid made at a is answered at once, naming why.
    with pytest.raises(EngineError) as refused_follow_up:
        await two.engine.submit(operation_for("reroll", grid), requester_id="m1")
    message = refused_follow_up.value.error.message
    assert "(a) is set aside: it is out of credit" in message
    assert two.creates("a") == 1 and two.creates("b") == 4


async def test_an_account_out_of_credit_returns_when_its_balance_reads_positive(
    make_two: TwoFactory,
) -> None:
    two = await make_two(settings=PoolSettings(balance_probe_s=120.0))
    fa = two.fakes["a"]
    fa.balance_points = 0
    first = await two.submit(imagine())
    assert two.latest[first.id].account == "b"  # a refused it (402); b took it
    a = two.pool.get("a")
    assert a is not None and a.aside is not None and a.aside.kind is AsideKind.BALANCE

    await two.run_until(lambda: two.clock.time() - a.aside.since > 130)  # type: ignore[union-attr]
    assert a.aside is not None  # probed: GET /account/balance still reads 0
    balance_reads = [r for r in fa.requests if r.path == "/account/balance"]
    assert len(balance_reads) == 1

    fa.balance_points = 1000  # topped up
    await two.run_until(lambda: a.aside is None, max_seconds=200)
    assert a.balance is not None and a.balance.credits is not None and a.balance.credits > 0
    await two.finish(first)
    back = await two.submit(imagine("after top-up"), member="m2")
    assert two.latest[back.id].account == "a"  # least loaded again (0/2 vs 0/4, order)


async def test_a_storm_of_429s_cools_the_account_down_and_it_returns_after(
    make_two: TwoFactory,
) -> None:
    two = await make_two(settings=PoolSettings(storm_errors=3, storm_window_s=60, cooldown_s=30))
    fa = two.fakes["a"]
    fault = fa.inject("POST", "/v1/", "429", times=None, retry_after=1)
    jobs = [await two.submit(imagine(f"s{i}"), member=f"m{i}") for i in range(3)]
    await two.run_until(lambda: two.pool.get("a").aside is not None, max_seconds=30)  # type: ignore[union-attr]
    a = two.pool.get("a")
    assert a is not None and a.aside is not None and a.aside.kind is AsideKind.STORM
    aside_at = a.aside.since
    done = await two.finish(*jobs)
    assert all(j.status is JobStatus.COMPLETED and j.account == "b" for j in done)
    assert two.creates("a") == 0 and two.creates("b") == 3

    fa.faults.remove(fault)  # the service recovers
    await two.run_until(lambda: a.aside is None, max_seconds=60)
    assert two.clock.time() - aside_at >= 30  # not before its cool-down
    probe = [r for r in fa.requests if r.path == "/account/balance"]
    assert probe, "the account was probed before it came back"
    back = await two.submit(imagine("after the storm"), member="m9")
    assert two.latest[back.id].account == "a" and two.creates("a") == 1


async def test_a_submission_with_unknown_outcome_is_not_sent_to_another_account(
    two: PoolWorld,
) -> None:
    # The create reaches a and is processed, but its answer never comes back in time.
    two.fakes["a"].inject("POST", "/v1/diffusion", "timeout", delay=3.0, process=True)
    job = await two.engine.submit(imagine(), requester_id="m1")
    two.latest[job.id] = job
    await two.run_until(lambda: two.latest[job.id].is_terminal, max_seconds=5)
    await asyncio.sleep(0)
    failed = two.latest[job.id]
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.code is ErrorCode.SUBMIT_INTERRUPTED
    assert failed.account == "a" and two.creates("b") == 0
    assert two.pool.get("a").aside is None  # type: ignore[union-attr]  # not the account's fault


# --- a mixed pool -------------------------------------------------------------------------


async def test_a_mixed_pool_offers_what_one_account_serves_and_routes_it_there(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    grid = images.grid_png("blend-source", (64, 64))

    async def load(url: str) -> bytes:
        return grid

    async with (
        FakeLegnext(api_key=KEYS["a"], clock=clock, image_size=32) as fl,
        FakeMJProxy(api_secret="mp-secret", clock=clock, image_size=32) as fm,
    ):
        http = ProviderHTTP(
            fm.base_url,
            headers=MJProxyProvider.auth_headers("mp-secret", "mj-api-secret"),
            timeout=1.0,
            attempts=1,
            classify=mjproxy_classify,
            sleep=_no_sleep,
        )
        proxy = MJProxyProvider(
            base_url=fm.base_url, api_secret="mp-secret", load_image=load, http=http
        )
        world = await open_pool(
            tmp_path,
            [("lg", fl, legnext(fl, KEYS["a"]), 3, 1), ("mp", fm, proxy, 3, 1)],
        )
        try:
            caps = world.engine.provider.capabilities
            # Blend: only midjourney-proxy; Edit: only Legnext. The pool offers both.
            assert not fl_supports(world, "lg", OperationKind.BLEND)
            assert not fl_supports(world, "mp", OperationKind.EDIT)
            assert caps.supports(OperationKind.BLEND) and caps.supports(OperationKind.EDIT)

            blend = Operation(
                OperationKind.BLEND,
                image_urls=("https://img.example/1.png", "https://img.example/2.png"),
            )
            job = await world.submit(blend)
            assert world.latest[job.id].account == "mp"  # lg is idle and first, but cannot
            (done,) = await world.finish(job)
            assert done.status is JobStatus.COMPLETED
            assert len(fl.created()) == 0 and len(fm.created()) == 1

            plain = await world.submit(imagine(), member="m2")
            assert world.latest[plain.id].account == "lg"  # both serve it: least loaded
        finally:
            await close_pool(world)


def fl_supports(world: PoolWorld, name: str, kind: OperationKind) -> bool:
    account = world.pool.get(name)
    assert account is not None
    return account.capabilities.supports(kind)


# --- restarts, bans, metrics ----------------------------------------------------------------


async def test_after_a_restart_each_job_is_watched_at_its_own_account(
    make_two: TwoFactory, tmp_path: Path
) -> None:
    two = await make_two()
    jobs = [await two.submit(imagine(f"r{i}"), member=f"m{i}") for i in range(2)]
    assert [two.latest[j.id].account for j in jobs] == ["a", "b"]
    await two.engine.stop()

    # A new engine and new providers on the same store, as after a restart.
    fa, fb = two.fakes["a"], two.fakes["b"]
    pool = AccountPool(
        [Account("a", legnext(fa, KEYS["a"]), limit=2), Account("b", legnext(fb, KEYS["b"]), 4)]
    )
    engine = Engine(pool, two.store.jobs, clock=two.clock, settings=ENGINE_SETTINGS)
    engine.subscribe(two.track)
    two.engine, old_pool, two.pool = engine, two.pool, pool
    await old_pool.aclose()
    await engine.start()
    assert (pool.get("a").in_flight, pool.get("b").in_flight) == (1, 1)  # type: ignore[union-attr]
    done = await two.finish(*jobs)
    assert all(j.status is JobStatus.COMPLETED for j in done)
    for name, job in zip("ab", done, strict=True):
        polls = [r for r in two.fakes[name].requests if r.path == f"/v1/job/{job.provider_ref}"]
        assert polls, f"job at {name} was not polled there"
    assert two.creates("a") == 1 and two.creates("b") == 1  # nothing was sent again


async def test_a_restricted_account_is_set_aside_and_probed_after_its_long_cool_down(
    make_two: TwoFactory,
) -> None:
    two = await make_two(settings=PoolSettings(banned_cooldown_s=600.0))
    fa = two.fakes["a"]
    fa.restricted = True  # HTTP 403 "account restricted"
    job = await two.submit(imagine())
    a = two.pool.get("a")
    assert a is not None and a.aside is not None and a.aside.kind is AsideKind.BANNED
    assert two.latest[job.id].account == "b"
    await two.finish(job)

    await two.run_until(lambda: two.clock.time() - a.aside.since >= 300)  # type: ignore[union-attr]
    assert a.aside is not None and not [r for r in fa.requests if r.path == "/account/balance"]
    fa.restricted = False
    await two.run_until(lambda: a.aside is None, max_seconds=400)
    assert two.metrics.account_available.value(account="a") == 1


async def test_requests_are_counted_per_account(two: PoolWorld) -> None:
    jobs = [await two.submit(imagine(f"c{i}"), member=f"m{i}") for i in range(3)]
    await two.finish(*jobs)
    requests = two.metrics.account_requests
    assert requests.value(account="a", method="submit", outcome="ok") == 1
    assert requests.value(account="b", method="submit", outcome="ok") == 2
    assert requests.value(account="a", method="fetch", outcome="ok") >= 1
    text = two.metrics.render()
    assert 'mjbot_account_in_flight{account="a"} 0' in text
    assert 'mjbot_account_limit{account="b"} 4' in text


async def test_a_key_refused_at_start_sets_the_account_aside_before_any_job(
    make_two: TwoFactory,
) -> None:
    two = await make_two()
    two.fakes["a"].api_key = "rotated-away"  # the service no longer knows a's key
    await two.engine.refresh_accounts(timeout_s=1)
    a = two.pool.get("a")
    assert a is not None and a.aside is not None and a.aside.kind is AsideKind.AUTH
    assert a.aside.until is None  # never probed: an admin puts it back
    job = await two.submit(imagine())
    assert two.latest[job.id].account == "b"
    assert not [r for r in two.fakes["a"].requests if r.method == "POST"]
    await two.finish(job)
    assert two.engine.pool.next_probe_at() is None
    two.fakes["a"].api_key = KEYS["a"]
    two.engine.restore_account("a")
    again = await two.submit(imagine("again"), member="m2")
    assert two.latest[again.id].account == "a"


async def test_an_empty_legnext_balance_read_at_start_sets_the_account_aside(
    make_two: TwoFactory,
) -> None:
    two = await make_two()
    two.fakes["a"].balance_points = 0
    await two.engine.refresh_accounts(timeout_s=1)
    a = two.pool.get("a")
    assert a is not None and a.aside is not None and a.aside.kind is AsideKind.BALANCE
    job = await two.submit(imagine())
    assert two.latest[job.id].account == "b"
    assert not [r for r in two.fakes["a"].requests if r.method == "POST"]  # no 402 needed
    two.fakes["a"].balance_points = 500
    await two.engine.refresh_accounts(timeout_s=1)  # e.g. /settings accounts
    assert a.aside is None


async def test_queue_positions_count_only_jobs_waiting_for_the_same_accounts(
    make_two: TwoFactory,
) -> None:
    # a serves fast only, b relax only, one job at a time each.
    fast, relax = frozenset({SpeedMode.FAST}), frozenset({SpeedMode.RELAX})
    two = await make_two(limits=(1, 1), modes=(fast, relax))
    slow = Operation(OperationKind.IMAGINE, prompt="slow", mode=SpeedMode.RELAX)
    two.fakes["a"].profile_for_prompt["f0"] = Profile(pending_s=1.0, processing_s=200.0)
    running = [await two.submit(imagine("f0"), "m1"), await two.submit(slow, "m2")]
    assert [two.latest[j.id].account for j in running] == ["a", "b"]
    waiting_fast = await two.submit(imagine("f1"), "m3")
    waiting_relax = await two.submit(slow, "m4")
    # Each is first in the line of its own account, whatever the members' turn order.
    assert two.engine.queue_position(waiting_fast.id) == 1
    assert two.engine.queue_position(waiting_relax.id) == 1
    assert two.latest[waiting_relax.id].queue_position == 1

    # b frees first: the relax job goes although the fast one is ahead in the round-robin.
    await two.finish(running[1])
    assert two.latest[running[0].id].status is JobStatus.RUNNING  # a is still busy
    assert two.latest[waiting_relax.id].account == "b"
    assert two.latest[waiting_fast.id].status is JobStatus.QUEUED
    assert two.engine.queue_position(waiting_fast.id) == 1
    assert two.creates("b") == 2 and two.creates("a") == 1
    done = await two.finish(*running, waiting_fast, waiting_relax)
    assert [j.account for j in done] == ["a", "b", "a", "b"]


async def test_a_proxy_with_no_midjourney_account_left_is_cooled_down(tmp_path: Path) -> None:
    clock = FakeClock()
    async with (
        FakeMJProxy(api_secret="mp-secret", clock=clock, image_size=32) as fm,
        FakeLegnext(api_key=KEYS["a"], clock=clock, image_size=32) as fl,
    ):
        http = ProviderHTTP(
            fm.base_url,
            headers=MJProxyProvider.auth_headers("mp-secret", "mj-api-secret"),
            timeout=1.0,
            attempts=1,
            classify=mjproxy_classify,
            sleep=_no_sleep,
        )
        proxy = MJProxyProvider(base_url=fm.base_url, api_secret="mp-secret", http=http)
        world = await open_pool(
            tmp_path,
            [("mp", fm, proxy, 3, 1), ("lg", fl, legnext(fl, KEYS["a"]), 3, 1)],
            settings=PoolSettings(cooldown_s=45),
        )
        try:
            fm.accounts_available = False  # code 3 "无可用的账号实例"
            job = await world.submit(imagine())
            mp = world.pool.get("mp")
            assert mp is not None and mp.aside is not None and mp.aside.kind is AsideKind.BUSY
            assert world.latest[job.id].account == "lg"  # mp was first in the file
            (done,) = await world.finish(job)
            assert done.status is JobStatus.COMPLETED
            assert (len(fm.created()), len(fl.created())) == (0, 1)

            fm.accounts_available = True
            await world.run_until(lambda: mp.aside is None, max_seconds=60)
            again = await world.submit(imagine("again"), member="m2")
            assert world.latest[again.id].account == "mp"
        finally:
            await close_pool(world)
