"""MJProxyProvider against FakeMJProxy over real HTTP on 127.0.0.1, on a FakeClock.

The provider is driven directly (submit, then fetch while the clock moves), the way the
engine drives it; one test runs the real engine and store on top. Assertions look at both
what the provider reports and what the fake received.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from PIL import Image

from bot.actions import ActionInput, operation_for
from bot.clock import FakeClock
from bot.domain import (
    BlendDimension,
    ErrorCode,
    Job,
    JobStatus,
    Operation,
    OperationKind,
    ProviderSnapshot,
    SpeedMode,
)
from bot.engine import Engine, EngineSettings
from bot.providers.base import (
    AuthError,
    InvalidRequestError,
    ModeratedError,
    NotFoundError,
    RateLimitedError,
    SubmitOutcomeUnknownError,
)
from bot.providers.http import ProviderHTTP
from bot.providers.mjproxy import MJProxyProvider, classify_http_error
from bot.store import open_store
from tests.fakes.mjproxy import FakeMJProxy, RequestRecord

SECRET = "mj-secret-for-tests"


async def _no_sleep(delay: float) -> None:
    await asyncio.sleep(0)


def make_provider(
    fake: FakeMJProxy,
    *,
    secret: str | None = SECRET,
    auth_style: str = "mj-api-secret",
    timeout: float = 2.0,
    load_image: bool = False,
) -> MJProxyProvider:
    http = ProviderHTTP(
        fake.base_url,
        headers=MJProxyProvider.auth_headers(secret, auth_style),
        timeout=timeout,
        attempts=3,
        classify=classify_http_error,
        sleep=_no_sleep,
    )

    async def load(url: str) -> bytes:
        async with httpx.AsyncClient() as c:
            reply = await c.get(url)
            reply.raise_for_status()
            return bytes(reply.content)

    return MJProxyProvider(
        base_url=fake.base_url,
        api_secret=secret,
        auth_style=auth_style,
        load_image=load if load_image else None,
        http=http,
    )


@dataclass
class Flow:
    clock: FakeClock
    fake: FakeMJProxy
    provider: MJProxyProvider
    counter: int = 0
    jobs: dict[str, Job] = field(default_factory=dict)

    async def submit(self, op: Operation, parent: Job | None = None) -> Job:
        """Submit `op`; its parent defaults to the job named by `op.parent_job_id`."""
        if parent is None and op.parent_job_id:
            parent = self.jobs[op.parent_job_id]
        self.counter += 1
        job = Job(id=f"job{self.counter:09d}", operation=op, provider="mjproxy")
        self.jobs[job.id] = job
        snap = await self.provider.submit(op, job=job, parent=parent)
        job.provider_ref = snap.ref
        apply(job, snap)
        return job

    async def run(
        self, op: Operation, parent: Job | None = None, *, step: float = 2.0
    ) -> tuple[Job, list[ProviderSnapshot]]:
        """Submit and poll until terminal: the finished job and every snapshot seen."""
        job = await self.submit(op, parent)
        seen: list[ProviderSnapshot] = []
        for _ in range(200):
            if job.status.is_terminal:
                break
            self.clock.advance(step)
            snap = await self.provider.fetch(job)
            seen.append(snap)
            apply(job, snap)
        assert job.status.is_terminal, job
        return job, seen

    def posts(self, path: str) -> list[RequestRecord]:
        return [r for r in self.fake.requests if r.method == "POST" and r.path == path]


def apply(job: Job, snap: ProviderSnapshot) -> None:
    job.status = snap.status
    job.progress = snap.progress if snap.progress is not None else job.progress
    job.result_url = snap.result_url or job.result_url
    job.tiles = snap.tiles or job.tiles
    if snap.actions is not None:
        job.actions = snap.actions
    job.error = snap.error
    job.seed = snap.seed or job.seed
    job.prompts = snap.prompts or job.prompts
    job.queue_position = snap.queue_position
    job.provider_data.update(snap.data)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[FakeMJProxy]:
    async with FakeMJProxy(api_secret=SECRET, clock=clock, image_size=64) as server:
        yield server


@pytest.fixture
async def flow(clock: FakeClock, fake: FakeMJProxy) -> AsyncIterator[Flow]:
    provider = make_provider(fake)
    try:
        yield Flow(clock, fake, provider)
    finally:
        await provider.aclose()


IMAGINE = Operation(
    OperationKind.IMAGINE, prompt="a lighthouse at dusk", aspect_ratio="16:9", mode=SpeedMode.FAST
)


def mask_b64() -> str:
    buf = io.BytesIO()
    Image.new("L", (64, 36), 0).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


async def test_imagine_upscale_custom_zoom_and_vary_region(flow: Flow) -> None:
    grid, seen = await flow.run(IMAGINE)
    assert grid.status is JobStatus.COMPLETED
    running = [s for s in seen if s.status is JobStatus.RUNNING]
    assert {s.progress for s in running} >= {25, 50, 75}
    assert any(s.preview_url for s in running)
    assert grid.result_url and grid.result_url.startswith(flow.fake.base_url)
    assert grid.tiles is not None and len(grid.tiles) == 4
    names = [a.name for a in grid.actions]
    assert names == [
        "pick:1",
        "pick:2",
        "pick:3",
        "pick:4",
        "reroll",
        "vary_grid:1",
        "vary_grid:2",
        "vary_grid:3",
        "vary_grid:4",
    ]
    [imagine] = flow.posts("/mj/submit/imagine")
    assert imagine.body == {
        "prompt": "a lighthouse at dusk --ar 16:9",
        "state": grid.id,
        "accountFilter": {"modes": ["FAST"]},
    }
    assert flow.fake.tasks[grid.provider_ref or ""].state == grid.id

    upscaled, _ = await flow.run(operation_for("pick:1", grid))
    assert upscaled.status is JobStatus.COMPLETED and upscaled.tiles is None
    assert {a.name for a in upscaled.actions} == {
        "upscale_subtle",
        "upscale_creative",
        "vary_subtle",
        "vary_strong",
        "vary_region",
        "zoom_out_2x",
        "zoom_out_1_5x",
        "zoom_custom",
        "make_square",
        "pan_left",
        "pan_right",
        "pan_up",
        "pan_down",
        "animate_low:1",  # issue 18 (tests/integration/test_video_http.py)
        "animate_high:1",
    }
    [u1] = flow.posts("/mj/submit/action")
    assert u1.body is not None and u1.body["customId"].startswith("MJ::JOB::upsample::1::")

    before = len(flow.posts("/mj/submit/action"))
    op = operation_for("zoom_custom", upscaled, ActionInput(zoom_ratio=Decimal("1.7")))
    zoomed, _ = await flow.run(op, upscaled)
    assert zoomed.status is JobStatus.COMPLETED and zoomed.tiles is not None
    zoom_actions = flow.posts("/mj/submit/action")[before:]
    [modal] = flow.posts("/mj/submit/modal")
    assert len(zoom_actions) == 1
    assert zoom_actions[0].body is not None
    assert zoom_actions[0].body["customId"].startswith("MJ::CustomZoom::")
    assert zoom_actions[0].code == 21
    assert modal.body is not None and modal.body["taskId"] == zoom_actions[0].task_id
    assert "--zoom 1.7" in modal.body["prompt"] and modal.code == 1
    assert zoomed.provider_ref == zoom_actions[0].task_id
    assert flow.fake.tasks[zoomed.provider_ref or ""].action == "OUTPAINT"

    op = operation_for(
        "vary_region", upscaled, ActionInput(prompt="a red lighthouse", mask_png_base64=mask_b64())
    )
    varied, _ = await flow.run(op, upscaled)
    assert varied.status is JobStatus.COMPLETED
    region = flow.posts("/mj/submit/action")[-1]
    assert region.body is not None and region.body["customId"].startswith("MJ::Inpaint::")
    inpaint = flow.posts("/mj/submit/modal")[-1]
    assert inpaint.body is not None
    assert inpaint.body["maskBase64"].startswith("data:image/png;base64,")
    assert inpaint.body["prompt"] == "a red lighthouse"
    assert flow.fake.tasks[varied.provider_ref or ""].mask
    assert len(flow.posts("/mj/submit/modal")) == 2


async def test_fixed_zoom_pan_and_upscale_need_no_modal(flow: Flow) -> None:
    grid, _ = await flow.run(IMAGINE)
    upscaled, _ = await flow.run(operation_for("pick:2", grid))
    for action in ("zoom_out_2x", "pan_left", "upscale_creative", "vary_strong", "make_square"):
        job, _ = await flow.run(operation_for(action, upscaled), upscaled)
        assert job.status is JobStatus.COMPLETED, action
    assert flow.posts("/mj/submit/modal") == []
    square = flow.fake.tasks[job.provider_ref or ""]
    assert square.ratio == (1, 1)


async def test_remix_account_sends_v1_through_modal(flow: Flow) -> None:
    grid, _ = await flow.run(IMAGINE)
    flow.fake.remix_mode = True
    varied, _ = await flow.run(operation_for("vary_grid:1", grid, ActionInput(prompt="in snow")))
    assert varied.status is JobStatus.COMPLETED
    [action] = flow.posts("/mj/submit/action")
    [modal] = flow.posts("/mj/submit/modal")
    assert action.code == 21 and action.body is not None and action.body["enableRemix"] is True
    assert modal.body is not None and modal.body["prompt"] == "in snow"
    assert modal.body["taskId"] == action.task_id == varied.provider_ref

    rerolled, _ = await flow.run(operation_for("reroll", grid))
    assert rerolled.status is JobStatus.COMPLETED
    modals = flow.posts("/mj/submit/modal")
    assert len(modals) == 2 and modals[1].body is not None
    assert modals[1].body["prompt"] == "a lighthouse at dusk"  # the parent's own prompt


@pytest.mark.parametrize("style", ["mj-api-secret", "bearer"])
async def test_auth_styles(clock: FakeClock, style: str) -> None:
    async with FakeMJProxy(api_secret=SECRET, auth_style=style, clock=clock) as fake:
        good = make_provider(fake, auth_style=style)
        other = "bearer" if style == "mj-api-secret" else "mj-api-secret"
        wrong_style = make_provider(fake, auth_style=other)
        no_secret = make_provider(fake, secret=None, auth_style=style)
        try:
            job = Job(id="k", operation=IMAGINE, provider="mjproxy")
            snap = await good.submit(IMAGINE, job=job, parent=None)
            assert snap.status is JobStatus.SUBMITTED
            for bad in (wrong_style, no_secret):
                with pytest.raises(AuthError):
                    await bad.submit(IMAGINE, job=job, parent=None)
        finally:
            for p in (good, wrong_style, no_secret):
                await p.aclose()
        assert len(fake.created()) == 1


async def test_queued_submit_reports_queue_position(flow: Flow) -> None:
    flow.fake.max_running = 1
    first = await flow.submit(IMAGINE)
    second = await flow.submit(IMAGINE)
    third = await flow.submit(IMAGINE)
    assert first.queue_position is None
    assert second.queue_position == 1 and third.queue_position == 2
    assert second.status is JobStatus.SUBMITTED
    snap = await flow.provider.fetch(second)
    assert snap.status is JobStatus.SUBMITTED and snap.raw_status == "NOT_START"


async def test_queue_full_is_rate_limited_and_not_retried_inline(flow: Flow) -> None:
    flow.fake.inject("POST", "/mj/submit/imagine", "queue_full")
    with pytest.raises(RateLimitedError) as info:
        await flow.submit(IMAGINE)
    assert info.value.retry_after == 30
    assert len(flow.posts("/mj/submit/imagine")) == 1


async def test_banned_prompt_is_moderated(flow: Flow) -> None:
    op = Operation(OperationKind.IMAGINE, prompt="a banned picture")
    with pytest.raises(ModeratedError) as info:
        await flow.submit(op)
    assert info.value.provider_text is not None and "banned" in info.value.provider_text
    assert info.value.to_job_error().code is ErrorCode.MODERATED
    assert flow.fake.tasks == {}


async def test_validation_error_and_unknown_parent(flow: Flow) -> None:
    grid, _ = await flow.run(IMAGINE)
    op = Operation(
        OperationKind.PROVIDER_ACTION, parent_job_id=grid.id, raw_action="MJ::JOB::nope::1::x"
    )
    with pytest.raises(InvalidRequestError) as info:
        await flow.submit(op, grid)
    assert info.value.provider_text and "not a button" in info.value.provider_text

    flow.fake.vanish(grid.provider_ref or "")
    with pytest.raises(NotFoundError):
        await flow.submit(operation_for("pick:1", grid), grid)
    with pytest.raises(NotFoundError):
        await flow.provider.fetch(grid)


async def test_create_that_times_out_is_never_resent(clock: FakeClock, fake: FakeMJProxy) -> None:
    provider = make_provider(fake, timeout=0.2)
    try:
        fake.inject("POST", "/mj/submit/imagine", "timeout", delay=3)
        job = Job(id="k1", operation=IMAGINE, provider="mjproxy")
        with pytest.raises(SubmitOutcomeUnknownError):
            await provider.submit(IMAGINE, job=job, parent=None)
        assert len([r for r in fake.requests if r.path == "/mj/submit/imagine"]) == 1
        assert len(fake.created("IMAGINE")) == 1  # it exists at the proxy: not sent again
    finally:
        await provider.aclose()


async def test_modal_step_that_times_out_is_never_resent(
    clock: FakeClock, fake: FakeMJProxy
) -> None:
    flow = Flow(clock, fake, make_provider(fake, timeout=0.2))
    try:
        grid, _ = await flow.run(IMAGINE)
        upscaled, _ = await flow.run(operation_for("pick:1", grid))
        fake.inject("POST", "/mj/submit/modal", "timeout", delay=3)
        op = operation_for("zoom_custom", upscaled, ActionInput(zoom_ratio=Decimal("1.25")))
        with pytest.raises(SubmitOutcomeUnknownError):
            await flow.submit(op, upscaled)
        assert len(flow.posts("/mj/submit/modal")) == 1
        assert len([r for r in flow.posts("/mj/submit/action") if r.code == 21]) == 1
    finally:
        await flow.provider.aclose()


async def test_refused_modal_step_cancels_the_modal_task(flow: Flow) -> None:
    grid, _ = await flow.run(IMAGINE)
    upscaled, _ = await flow.run(operation_for("pick:1", grid))
    flow.fake.inject("POST", "/mj/submit/modal", "queue_full")
    op = operation_for("zoom_custom", upscaled, ActionInput(zoom_ratio=Decimal("1.3")))
    with pytest.raises(RateLimitedError):
        await flow.submit(op)
    [action] = [r for r in flow.posts("/mj/submit/action") if r.code == 21]
    assert flow.fake.task_json(action.task_id or "")["status"] == "CANCEL"
    assert len(flow.posts("/mj/submit/modal")) == 1


async def test_5xx_on_create_is_retried_safely(flow: Flow) -> None:
    flow.fake.inject("POST", "/mj/submit/imagine", "503")
    job = await flow.submit(IMAGINE)
    assert job.status is JobStatus.SUBMITTED
    assert [r.status for r in flow.posts("/mj/submit/imagine")] == [503, 200]
    assert len(flow.fake.created()) == 1


async def test_malformed_create_reply_is_outcome_unknown(flow: Flow) -> None:
    flow.fake.inject("POST", "/mj/submit/imagine", "malformed", process=True)
    with pytest.raises(SubmitOutcomeUnknownError):
        await flow.submit(IMAGINE)
    assert len(flow.posts("/mj/submit/imagine")) == 1


async def test_cancel(flow: Flow) -> None:
    job = await flow.submit(IMAGINE)
    await flow.provider.cancel(job)
    snap = await flow.provider.fetch(job)
    assert snap.status is JobStatus.CANCELLED
    assert snap.error is not None and snap.error.code is ErrorCode.CANCELLED


async def test_failure_is_classified(flow: Flow) -> None:
    from tests.fakes.mjproxy import Profile

    flow.fake.profile_for_prompt["stormy"] = Profile(
        outcome="failed", error_message="[Banned prompt detected] moderation"
    )
    job, _ = await flow.run(Operation(OperationKind.IMAGINE, prompt="a stormy sea"))
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.code is ErrorCode.MODERATED
    assert job.actions == []


async def test_seed_describe_and_blend(clock: FakeClock, fake: FakeMJProxy) -> None:
    flow = Flow(clock, fake, make_provider(fake, load_image=True))
    try:
        grid, _ = await flow.run(IMAGINE)
        seed_job = await flow.submit(operation_for("seed", grid), grid)
        assert seed_job.status is JobStatus.COMPLETED and seed_job.seed
        again = await flow.provider.fetch(seed_job)
        assert again.seed == seed_job.seed

        describe = Operation(OperationKind.DESCRIBE, image_urls=tuple(grid.tiles or [])[:1])
        described, _ = await flow.run(describe)
        assert described.prompts is not None and len(described.prompts) == 4
        assert not described.prompts[0].startswith("1")
        assert [a.name for a in described.actions] == [f"provider:describe{n}" for n in range(1, 5)]
        picked, _ = await flow.run(operation_for("provider:describe3", described), described)
        assert picked.status is JobStatus.COMPLETED
        assert flow.posts("/mj/submit/modal")[-1].body == {
            "taskId": picked.provider_ref,
            "prompt": described.prompts[2],
            "state": picked.id,
        }

        blend = Operation(
            OperationKind.BLEND,
            image_urls=tuple((grid.tiles or [])[:3]),
            dimension=BlendDimension.PORTRAIT,
        )
        blended, _ = await flow.run(blend)
        assert blended.status is JobStatus.COMPLETED
        [body] = [r.body for r in flow.posts("/mj/submit/blend")]
        assert body["dimensions"] == "PORTRAIT" and len(body["base64Array"]) == 3
        assert all(u.startswith("data:image/png;base64,") for u in body["base64Array"])
    finally:
        await flow.provider.aclose()


async def test_engine_runs_imagine_and_follow_up(
    clock: FakeClock, fake: FakeMJProxy, tmp_path: Path
) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    engine = Engine(
        make_provider(fake),
        store.jobs,
        clock=clock,
        settings=EngineSettings(
            max_concurrent_jobs=3,
            poll_initial_s=2.0,
            poll_min_s=1.0,
            poll_max_s=6.0,
            stall_timeout_s=120.0,
            max_duration_s=900.0,
            not_found_grace_s=20.0,
            submit_retry_window_s=60.0,
            submit_retry_base_s=1.0,
        ),
    )
    await engine.start()
    try:

        async def finish(job: Job) -> Job:
            for _ in range(300):
                await engine.settle()
                current = await engine.get(job.id)
                assert current is not None
                if current.is_terminal:
                    return current
                clock.advance(1.0)
            raise AssertionError("job did not finish")

        grid = await finish(await engine.submit(IMAGINE, requester_id="u1", idempotency_key="a"))
        assert grid.status is JobStatus.COMPLETED and len(grid.actions) == 9
        upscaled = await finish(
            await engine.submit(
                operation_for("pick:3", grid), requester_id="u1", idempotency_key="b"
            )
        )
        assert upscaled.status is JobStatus.COMPLETED
        zoom = operation_for("zoom_custom", upscaled, ActionInput(zoom_ratio=Decimal("1.7")))
        zoomed = await finish(await engine.submit(zoom, requester_id="u1", idempotency_key="c"))
        assert zoomed.status is JobStatus.COMPLETED, zoomed.error
        [modal] = [r for r in fake.requests if r.path == "/mj/submit/modal"]
        assert modal.body is not None and "--zoom 1.7" in modal.body["prompt"]
    finally:
        await engine.stop()
        await engine.provider.aclose()
        await store.close()
