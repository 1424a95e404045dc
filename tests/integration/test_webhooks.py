"""Push mode: the webhook receiver over real HTTP on 127.0.0.1, with the real engine, the
real PiAPI provider and a real SQLite store, fed by the fake PiAPI's own webhook posts.

Everything runs on one FakeClock: the fake posts a task's changes when the clock moves
(`fake.webhooks.check()` makes that immediate), and the engine's safety polls come due only
when the test advances far enough.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.clock import FakeClock
from bot.domain import Job, JobStatus, Operation, OperationKind, SpeedMode
from bot.engine import Engine, EngineSettings, JobEvent
from bot.metrics import Metrics
from bot.providers.http import ProviderHTTP
from bot.providers.piapi import PiAPIProvider, classify_http_error
from bot.store import open_store
from bot.store.base import Store
from bot.web import GatewayWatch, WebhookAuth, WebServer, register_engine_gauges
from tests.fakes.piapi import FakePiAPI, Profile

API_KEY = "pk-test-secret-key"
SECRET = "whsec-test-0123456789"
TOKEN = "tok-0123456789abcdef"
SAFETY_POLL_S = 60.0
IMAGINE = Operation(OperationKind.IMAGINE, prompt="a lighthouse", mode=SpeedMode.FAST)

PUSH_SETTINGS = EngineSettings(
    max_concurrent_jobs=3,
    poll_initial_s=2.0,
    poll_min_s=1.0,
    poll_max_s=6.0,
    stall_timeout_s=600.0,
    max_duration_s=3600.0,
    push_mode=True,
    push_safety_poll_s=SAFETY_POLL_S,
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PushHarness:
    clock: FakeClock
    fake: FakePiAPI
    store: Store
    engine: Engine
    server: WebServer
    metrics: Metrics
    gateway: GatewayWatch
    session: aiohttp.ClientSession
    base: str
    events: list[JobEvent] = field(default_factory=list)

    @property
    def hook_url(self) -> str:
        return f"{self.base}/webhook/piapi/{TOKEN}"

    def gets(self) -> int:
        return sum(1 for r in self.fake.requests if r.method == "GET")

    def events_of(self, job: Job) -> list[Job]:
        return [e.job for e in self.events if e.job.id == job.id]

    async def post(
        self, body: Any, *, url: str | None = None, secret: str | None = SECRET, raw: bytes = b""
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["x-webhook-secret"] = secret
        data = raw or json.dumps(body).encode()
        async with self.session.post(url or self.hook_url, data=data, headers=headers) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text

    async def advance(self, seconds: float) -> None:
        """Move time on, let the fake post what changed, let the engine finish its work."""
        self.clock.advance(seconds)
        await self.fake.webhooks.check()
        await self.engine.settle()

    async def submitted(self) -> Job:
        job = await self.engine.submit(IMAGINE, requester_id="u1")
        await self.engine.settle()
        current = await self.engine.get(job.id)
        assert current is not None and current.status is JobStatus.SUBMITTED, current
        return current

    async def job(self, job: Job) -> Job:
        current = await self.engine.get(job.id)
        assert current is not None
        return current

    def body_now(self, job: Job) -> dict[str, Any]:
        """The webhook body the fake would post for this job at this moment."""
        assert job.provider_ref
        return {"timestamp": int(self.clock.time()), "data": self.fake.task_json(job.provider_ref)}


@pytest.fixture
async def ph(tmp_path: Path) -> AsyncIterator[PushHarness]:
    clock = FakeClock()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with FakePiAPI(api_key=API_KEY, clock=clock, image_size=64) as fake:
        # pending 3 s, then 25/50/75 % every 6 s, completed at 27 s
        fake.default_profile = Profile(pending_s=3.0, processing_s=24.0, progress_step_s=6.0)
        http = ProviderHTTP(
            fake.base_url,
            headers={"x-api-key": API_KEY},
            timeout=2.0,
            attempts=2,
            backoff=0.01,
            classify=classify_http_error,
        )
        provider = PiAPIProvider(
            api_key=API_KEY,
            base_url=fake.base_url,
            http=http,
            webhook_endpoint=f"{base}/webhook/piapi/{TOKEN}",
            webhook_secret=SECRET,
        )
        store = await open_store(f"sqlite:///{tmp_path / 'jobs.db'}")
        metrics = Metrics()
        engine = Engine(provider, store.jobs, clock=clock, settings=PUSH_SETTINGS, metrics=metrics)
        register_engine_gauges(metrics, engine)
        gateway = GatewayWatch(clock)
        gateway.up()
        server = WebServer(
            "127.0.0.1",
            port,
            engine=engine,
            metrics=metrics,
            provider=provider,
            auth=WebhookAuth(provider="piapi", token=TOKEN, header_secret=SECRET),
            gateway=gateway,
            serve_metrics=True,
        )
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        h = PushHarness(clock, fake, store, engine, server, metrics, gateway, session, base)
        engine.subscribe(h.events.append)
        await engine.start()
        await server.start()
        try:
            yield h
        finally:
            await session.close()
            await server.stop()
            await engine.stop()
            await provider.aclose()
            await store.close()


def webhook_count(h: PushHarness, outcome: str) -> float:
    return h.metrics.webhooks.value(provider="piapi", outcome=outcome)


# --- the happy path --------------------------------------------------------------------------


async def test_webhooks_carry_a_job_to_its_grid_without_polling(ph: PushHarness) -> None:
    job = await ph.submitted()
    [create] = ph.fake.created("imagine")
    assert create.json["config"]["webhook_config"] == {"endpoint": ph.hook_url, "secret": SECRET}

    for _ in range(30):
        await ph.advance(1.0)
    done = await ph.job(job)

    assert done.status is JobStatus.COMPLETED and done.result_url and done.tiles
    assert ph.gets() == 0, "no poll was needed: the webhooks said it all"
    seen = ph.events_of(job)
    assert [j.progress for j in seen if j.status is JobStatus.RUNNING] == [0, 25, 50, 75]
    assert seen[-1].status is JobStatus.COMPLETED
    assert all(d.status == 200 for d in ph.fake.webhooks.deliveries)
    assert webhook_count(ph, "accepted") == len(ph.fake.webhooks.deliveries) == 5


async def test_a_valid_post_advances_the_job_and_emits_the_change(ph: PushHarness) -> None:
    ph.fake.webhooks.drop_all = True  # posted by hand below; the fake stays quiet
    job = await ph.submitted()
    ph.clock.advance(9.0)  # processing, 25 %
    before = len(ph.events_of(job))

    status, reply = await ph.post(ph.body_now(job))

    assert (status, reply["outcome"]) == (200, "accepted")
    current = await ph.job(job)
    assert current.status is JobStatus.RUNNING and current.progress == 25
    assert current.preview_url
    events = ph.events_of(job)[before:]
    assert [(e.status, e.progress) for e in events] == [(JobStatus.RUNNING, 25)]
    stored = await ph.store.jobs.get(job.id)
    assert stored is not None and stored.progress == 25


# --- refusals that change nothing ------------------------------------------------------------


async def _assert_unchanged(ph: PushHarness, job: Job, events_before: int) -> None:
    current = await ph.job(job)
    assert current.status is JobStatus.SUBMITTED and current.progress is None
    assert len(ph.events_of(job)) == events_before
    stored = await ph.store.jobs.get(job.id)
    assert stored is not None and stored.status is JobStatus.SUBMITTED


async def test_a_forged_secret_is_refused_and_changes_nothing(ph: PushHarness) -> None:
    ph.fake.webhooks.drop_all = True
    job = await ph.submitted()
    ph.clock.advance(9.0)
    before = len(ph.events_of(job))
    body = ph.body_now(job)

    assert (await ph.post(body, secret="whsec-forged"))[0] == 401
    assert (await ph.post(body, secret=None))[0] == 401
    assert (await ph.post(body, secret=SECRET[:-1]))[0] == 401

    await _assert_unchanged(ph, job, before)
    assert webhook_count(ph, "forbidden") == 3


async def test_a_wrong_path_token_is_refused_and_changes_nothing(ph: PushHarness) -> None:
    ph.fake.webhooks.drop_all = True
    job = await ph.submitted()
    ph.clock.advance(9.0)
    before = len(ph.events_of(job))
    body = ph.body_now(job)

    assert (await ph.post(body, url=f"{ph.base}/webhook/piapi/not-the-token"))[0] == 404
    assert (await ph.post(body, url=f"{ph.base}/webhook/mjproxy/{TOKEN}"))[0] == 404
    assert (await ph.post(body, url=f"{ph.base}/webhook/piapi"))[0] == 404

    await _assert_unchanged(ph, job, before)


async def test_an_oversized_body_is_refused_and_changes_nothing(ph: PushHarness) -> None:
    ph.fake.webhooks.drop_all = True
    job = await ph.submitted()
    ph.clock.advance(9.0)
    before = len(ph.events_of(job))
    body = ph.body_now(job)
    body["padding"] = "x" * (2 * 1024 * 1024)

    status, _ = await ph.post(body)

    assert status == 413
    await _assert_unchanged(ph, job, before)
    assert webhook_count(ph, "too_large") == 1


async def test_malformed_json_is_refused_with_400(ph: PushHarness) -> None:
    job = await ph.submitted()
    before = len(ph.events_of(job))
    assert (await ph.post(None, raw=b"{not json"))[0] == 400
    assert (await ph.post({"hello": "world"}))[0] == 400
    await _assert_unchanged(ph, job, before)
    assert webhook_count(ph, "malformed") == 2


async def test_a_duplicate_post_changes_nothing(ph: PushHarness) -> None:
    ph.fake.webhooks.drop_all = True
    job = await ph.submitted()
    ph.clock.advance(9.0)
    body = ph.body_now(job)

    first = await ph.post(body)
    events_after_first = len(ph.events_of(job))
    second = await ph.post(body)

    assert first == (200, {"ok": True, "outcome": "accepted"})
    assert second == (200, {"ok": True, "outcome": "duplicate"})
    assert len(ph.events_of(job)) == events_after_first
    assert webhook_count(ph, "duplicate") == 1


async def test_the_fakes_duplicated_deliveries_are_absorbed(ph: PushHarness) -> None:
    ph.fake.webhooks.duplicate = True
    job = await ph.submitted()
    for _ in range(30):
        await ph.advance(1.0)

    done = await ph.job(job)
    assert done.status is JobStatus.COMPLETED
    assert len(ph.fake.webhooks.deliveries) == 10
    statuses = [e.status for e in ph.events_of(job)]
    assert statuses.count(JobStatus.COMPLETED) == 1
    progress = [e.progress for e in ph.events_of(job) if e.status is JobStatus.RUNNING]
    assert progress == [0, 25, 50, 75], "each state shown once"
    assert webhook_count(ph, "accepted") == 5
    assert webhook_count(ph, "duplicate") == 5


async def test_an_out_of_order_post_changes_nothing(ph: PushHarness) -> None:
    ph.fake.webhooks.drop_all = True
    job = await ph.submitted()
    ph.clock.advance(9.0)  # 25 %
    older = ph.body_now(job)
    ph.clock.advance(6.0)  # 50 %
    newer = ph.body_now(job)

    assert (await ph.post(newer))[1]["outcome"] == "accepted"
    events = len(ph.events_of(job))
    assert (await ph.post(older))[1]["outcome"] == "stale"

    current = await ph.job(job)
    assert current.progress == 50
    assert len(ph.events_of(job)) == events
    stored = await ph.store.jobs.get(job.id)
    assert stored is not None and stored.progress == 50


async def test_the_fakes_reordered_deliveries_never_move_a_job_backwards(
    ph: PushHarness,
) -> None:
    ph.fake.webhooks.reorder = True
    job = await ph.submitted()
    for _ in range(30):
        await ph.advance(1.0)

    done = await ph.job(job)
    assert done.status is JobStatus.COMPLETED
    assert any(d.late for d in ph.fake.webhooks.deliveries)
    progress = [e.progress for e in ph.events_of(job) if e.status is JobStatus.RUNNING]
    assert progress == sorted(progress), progress
    statuses = [e.status for e in ph.events_of(job)]
    assert statuses.count(JobStatus.COMPLETED) == 1
    assert webhook_count(ph, "stale") + webhook_count(ph, "duplicate") >= 1


async def test_a_post_for_an_unknown_job_is_answered_200_and_ignored(ph: PushHarness) -> None:
    ph.fake.webhooks.drop_all = True
    job = await ph.submitted()
    ph.clock.advance(9.0)
    body = ph.body_now(job)
    body["data"] = {**body["data"], "task_id": "00000000-0000-0000-0000-000000000000"}
    before = len(ph.events_of(job))

    status, reply = await ph.post(body)

    assert (status, reply["outcome"]) == (200, "unknown_job")
    await _assert_unchanged(ph, job, before)
    assert webhook_count(ph, "unknown_job") == 1


async def test_a_post_after_the_job_ended_changes_nothing(ph: PushHarness) -> None:
    ph.fake.webhooks.drop_all = True
    job = await ph.submitted()
    ph.clock.advance(9.0)
    running = ph.body_now(job)
    ph.clock.advance(30.0)
    assert (await ph.post(ph.body_now(job)))[1]["outcome"] == "accepted"
    done = await ph.job(job)
    assert done.status is JobStatus.COMPLETED
    events = len(ph.events_of(job))

    assert (await ph.post(running))[1]["outcome"] == "duplicate"
    assert (await ph.job(job)).status is JobStatus.COMPLETED
    assert len(ph.events_of(job)) == events


async def test_a_piapi_account_notice_is_acknowledged(ph: PushHarness) -> None:
    notice = {"type": "mj_penalty_triggered", "time": 1, "message": "m", "detail": {}}
    assert (await ph.post(notice))[0] == 200
    assert webhook_count(ph, "ignored") == 1


# --- the safety net --------------------------------------------------------------------------


async def test_lost_webhooks_still_complete_the_job_by_the_safety_poll(ph: PushHarness) -> None:
    ph.fake.webhooks.drop_all = True
    job = await ph.submitted()

    for _ in range(59):
        await ph.advance(1.0)
    assert ph.gets() == 0, "no poll before the safety interval"
    assert (await ph.job(job)).status is JobStatus.SUBMITTED

    await ph.advance(1.0)
    done = await ph.job(job)
    assert done.status is JobStatus.COMPLETED and done.result_url
    assert ph.gets() == 1
    assert len(ph.fake.webhooks.deliveries) == 5 and all(
        d.dropped for d in ph.fake.webhooks.deliveries
    )


async def test_a_lost_final_webhook_is_caught_by_the_safety_poll(ph: PushHarness) -> None:
    ph.fake.webhooks.drop = lambda task_id, payload: payload["data"]["status"] == "completed"
    job = await ph.submitted()
    for _ in range(30):
        await ph.advance(1.0)
    assert (await ph.job(job)).progress == 75  # every step but the last arrived
    # The safety poll comes 60 s after the last push (at 21 s).
    for _ in range(60):
        await ph.advance(1.0)
    done = await ph.job(job)
    assert done.status is JobStatus.COMPLETED
    assert ph.gets() == 1


async def test_a_poll_and_a_push_together_finish_the_job_once(ph: PushHarness) -> None:
    ph.fake.webhooks.drop_all = True
    job = await ph.submitted()
    ph.clock.advance(SAFETY_POLL_S)  # the safety poll is due and the task has completed
    final = ph.body_now(job)
    # Let the scheduler start the poll, then post the same news while it is out.
    status, reply = await ph.post(final)
    await ph.engine.settle()

    assert status == 200 and reply["outcome"] in ("accepted", "duplicate")
    statuses = [e.status for e in ph.events_of(job)]
    assert statuses.count(JobStatus.COMPLETED) == 1, statuses
    assert (await ph.job(job)).status is JobStatus.COMPLETED


# --- the other backends: notifyHook (mj-proxy) and callback (Legnext, Vtrix) ----------------


def _other_backend(name: str, clock: FakeClock, hook: str) -> tuple[Any, Any]:
    """(fake, provider factory taking the fake) for a backend whose callbacks carry no secret."""
    if name == "mjproxy":
        from bot.providers.mjproxy import MJProxyProvider
        from tests.fakes.mjproxy import FakeMJProxy

        return FakeMJProxy(api_secret="s", clock=clock, image_size=64), lambda f: MJProxyProvider(
            base_url=f.base_url, api_secret="s", notify_hook=hook
        )
    if name == "legnext":
        from bot.providers.legnext import LegnextProvider
        from tests.fakes.legnext import FakeLegnext

        return FakeLegnext(api_key="k", clock=clock, image_size=64), lambda f: LegnextProvider(
            api_key="k", base_url=f.base_url, callback=hook
        )
    from bot.providers.vtrix import VtrixProvider
    from tests.fakes.legnext import FakeVtrix

    return FakeVtrix(api_key="k", clock=clock, image_size=64), lambda f: VtrixProvider(
        api_key="k", base_url=f.base_url, callback=hook
    )


@pytest.mark.parametrize("backend", ["mjproxy", "legnext", "vtrix"])
async def test_callbacks_of_the_other_backends_complete_jobs_without_polling(
    tmp_path: Path, backend: str
) -> None:
    clock = FakeClock()
    port = free_port()
    hook = f"http://127.0.0.1:{port}/webhook/{backend}/{TOKEN}"
    fake, make = _other_backend(backend, clock, hook)
    async with fake:
        provider = make(fake)
        store = await open_store(f"sqlite:///{tmp_path / 'jobs.db'}")
        metrics = Metrics()
        engine = Engine(provider, store.jobs, clock=clock, settings=PUSH_SETTINGS, metrics=metrics)
        server = WebServer(
            "127.0.0.1",
            port,
            engine=engine,
            metrics=metrics,
            provider=provider,
            auth=WebhookAuth(provider=backend, token=TOKEN),
        )
        events: list[JobEvent] = []
        engine.subscribe(events.append)
        await engine.start()
        await server.start()
        try:
            job = await engine.submit(IMAGINE, requester_id="u1")
            await engine.settle()
            for _ in range(45):
                clock.advance(1.0)
                await fake.webhooks.check()
                await engine.settle()
            done = await engine.get(job.id)
            assert done is not None and done.status is JobStatus.COMPLETED, done
            assert done.tiles or done.result_url
            assert done.actions, "follow-ups are named from the pushed result"
            gets = [r for r in fake.requests if r.method == "GET" and "/cdn/" not in r.path]
            assert gets == [], [r.path for r in gets]
            assert fake.webhooks.deliveries and all(
                d.status == 200 for d in fake.webhooks.deliveries
            )
            accepted = metrics.webhooks.value(provider=backend, outcome="accepted")
            assert accepted >= 2
            running = [e.job.progress for e in events if e.job.status is JobStatus.RUNNING]
            assert running == sorted(running)
        finally:
            await server.stop()
            await engine.stop()
            await provider.aclose()
            await store.close()
