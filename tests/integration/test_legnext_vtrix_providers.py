"""LegnextProvider and VtrixProvider against their fakes over real HTTP on 127.0.0.1, on a
FakeClock: the whole follow-up chain, what the fake received field by field, each documented
Vtrix error code, HTTP fault mapping; and one run through the engine and its store."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw

from bot.actions import ActionInput, operation_for
from bot.clock import FakeClock
from bot.domain import (
    ErrorCode,
    Job,
    JobStatus,
    Operation,
    OperationKind,
    Placement,
    ProviderSnapshot,
    Size,
    SpeedMode,
)
from bot.engine import Engine
from bot.providers import legnext as legnext_mod
from bot.providers import vtrix as vtrix_mod
from bot.providers.base import (
    AuthError,
    InsufficientCreditError,
    InvalidRequestError,
    ProviderUnavailableError,
    RateLimitedError,
    SubmitOutcomeUnknownError,
)
from bot.providers.http import ProviderHTTP
from bot.providers.legnext import LegnextProvider
from bot.providers.vtrix import VTRIX_ERROR_MESSAGES, VtrixProvider
from bot.store import open_store
from tests.fakes.legnext import VTRIX_ERROR_TEXTS, FakeLegnext, FakeVtrix
from tests.integration.conftest import ENGINE_SETTINGS, Harness

KEY = "lv-test-key"
BACKENDS = ("legnext", "vtrix")


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def make_provider(backend: str, base_url: str, *, timeout: float = 1.0) -> Any:
    mod = legnext_mod if backend == "legnext" else vtrix_mod
    http = ProviderHTTP(
        base_url,
        headers=mod.auth_headers(KEY),
        timeout=timeout,
        attempts=3,
        backoff=0.01,
        classify=mod.classify_http_error,
        sleep=_no_sleep,
    )
    cls = LegnextProvider if backend == "legnext" else VtrixProvider
    return cls(api_key=KEY, base_url=base_url, http=http)


@dataclass
class Env:
    backend: str
    clock: FakeClock
    fake: Any  # FakeLegnext | FakeVtrix
    provider: Any
    counter: int = 0
    jobs: dict[str, Job] = field(default_factory=dict)

    def requests_for(self, op: str) -> list[dict[str, Any]]:
        """The params the fake received for each create of `op` (unwrapped on Vtrix)."""
        bodies = [r.body for r in self.fake.created(op)]
        if self.backend == "vtrix":
            for body in bodies:
                assert body["model"] == f"midjourney_{op}"
            return [b["input"][0]["params"] for b in bodies]
        return bodies

    def apply(self, job: Job, snap: ProviderSnapshot) -> None:
        """What the engine does with a snapshot (bot/engine/core.py `_apply`)."""
        job.provider_ref = job.provider_ref or snap.ref
        job.status = snap.status
        job.progress = snap.progress if snap.progress is not None else job.progress
        job.result_url = snap.result_url or job.result_url
        job.tiles = snap.tiles or job.tiles
        if snap.actions is not None:
            job.actions = snap.actions
        job.cost = snap.cost or job.cost
        job.error = snap.error or job.error
        job.seed = snap.seed or job.seed
        job.prompts = snap.prompts or job.prompts
        job.provider_data = {**job.provider_data, **snap.data}

    async def submit(self, op: Operation, parent: Job | None = None) -> Job:
        self.counter += 1
        job = Job(id=f"bot{self.counter}", operation=op, provider=self.provider.name)
        self.apply(job, await self.provider.submit(op, job=job, parent=parent))
        self.jobs[job.id] = job
        return job

    async def run(self, op: Operation, parent: Job | None = None) -> Job:
        job = await self.submit(op, parent)
        seen: list[int | None] = []
        for _ in range(100):
            if job.status.is_terminal:
                break
            self.clock.advance(2)
            self.apply(job, await self.provider.fetch(job))
            seen.append(job.progress)
        assert job.status.is_terminal, job
        return job

    async def action(self, name: str, parent: Job, given: ActionInput | None = None) -> Job:
        assert name in [a.name for a in parent.actions], (name, [a.name for a in parent.actions])
        return await self.run(operation_for(name, parent, given), parent)


@pytest.fixture(params=BACKENDS)
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    clock = FakeClock()
    fake_cls = FakeLegnext if request.param == "legnext" else FakeVtrix
    async with fake_cls(api_key=KEY, clock=clock, image_size=64) as fake:
        provider = make_provider(request.param, fake.base_url)
        try:
            yield Env(request.param, clock, fake, provider)
        finally:
            await provider.aclose()


@pytest.fixture
async def vtrix_env() -> AsyncIterator[Env]:
    clock = FakeClock()
    async with FakeVtrix(api_key=KEY, clock=clock, image_size=64) as fake:
        provider = make_provider("vtrix", fake.base_url)
        try:
            yield Env("vtrix", clock, fake, provider)
        finally:
            await provider.aclose()


IMAGINE = Operation(
    OperationKind.IMAGINE, prompt="a lighthouse at dusk", aspect_ratio="16:9", mode=SpeedMode.FAST
)


def mask_b64(size: tuple[int, int], box: tuple[int, int, int, int]) -> str:
    image = Image.new("L", size, 0)
    ImageDraw.Draw(image).rectangle(box, fill=255)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


# --- the chain --------------------------------------------------------------------------------


async def test_imagine_pick_upscale_edit(env: Env) -> None:
    grid = await env.run(IMAGINE)
    assert grid.status is JobStatus.COMPLETED and grid.progress == 100
    assert grid.tiles is not None and len(grid.tiles) == 4
    assert all(t.startswith(env.fake.base_url) for t in grid.tiles)
    [sent] = env.requests_for("diffusion")
    assert sent == {"text": "a lighthouse at dusk --ar 16:9 --fast"}
    upstream = grid.provider_data["job_id"]
    assert grid.provider_data["image_count"] == 4
    if env.backend == "legnext":
        assert grid.provider_ref == upstream and grid.result_url
        assert grid.cost is not None and grid.cost.unit == "point" and grid.cost.amount == 20
        assert "reroll" in [a.name for a in grid.actions]
        assert grid.seed and grid.provider_data["available_actions"]["edit"] == [0, 1, 2, 3]
    else:
        assert grid.provider_ref.startswith("task_") and grid.provider_ref != upstream
        assert grid.provider_data["job_ids"] == [upstream] * 4
        assert grid.cost is not None and grid.cost.unit == "usd"
        assert grid.cost.amount == Decimal("0.04")
        assert "reroll" not in [a.name for a in grid.actions]
    async with httpx.AsyncClient() as cdn:
        tile = await cdn.get(grid.tiles[1])
    assert tile.status_code == 200 and tile.headers["content-type"] == "image/png"

    # U2: local, free, no request at all.
    before = len(env.fake.requests)
    pick = await env.action("pick:2", grid)
    assert len(env.fake.requests) == before
    assert pick.status is JobStatus.COMPLETED and pick.result_url == grid.tiles[1]
    assert pick.provider_data == {
        **(
            {"available_actions": grid.provider_data["available_actions"]}
            if env.backend == "legnext"
            else {}
        ),
        "job_id": upstream,
        "image_no": 1,
        "image_count": 1,
        "picked_from": grid.id,
    }
    assert pick.cost is None
    assert "upscale_subtle" in [a.name for a in pick.actions]

    up = await env.action("upscale_subtle", pick)
    assert up.status is JobStatus.COMPLETED
    assert env.requests_for("upscale") == [{"jobId": upstream, "imageNo": 1, "type": 0}]
    assert up.tiles is None and up.result_url and up.provider_data["image_count"] == 1
    assert "upscale_subtle" not in [a.name for a in up.actions]
    up_upstream = up.provider_data["job_id"]
    assert up_upstream != upstream

    given = ActionInput(
        prompt="the lighthouse on the moon",
        canvas=Size(1024, 768),
        placement=Placement(width=512, height=512, x=256, y=128),
    )
    edited = await env.action("edit", up, given)
    assert edited.status is JobStatus.COMPLETED and edited.tiles and len(edited.tiles) == 4
    tile_edit = await env.action("edit:3", grid, given)
    assert tile_edit.status is JobStatus.COMPLETED
    assert env.requests_for("edit") == [
        {
            "jobId": up_upstream,
            "imageNo": 0,
            "canvas": {"width": 1024, "height": 768},
            "imgPos": {"width": 512, "height": 512, "x": 256, "y": 128},
            "remixPrompt": "the lighthouse on the moon",
        },
        {
            "jobId": upstream,
            "imageNo": 2,
            "canvas": {"width": 1024, "height": 768},
            "imgPos": {"width": 512, "height": 512, "x": 256, "y": 128},
            "remixPrompt": "the lighthouse on the moon",
        },
    ]


async def test_every_follow_up_reaches_the_fake(env: Env) -> None:
    grid = await env.run(
        Operation(OperationKind.IMAGINE, prompt="a fox --v 7 --draft", aspect_ratio="1:1")
    )
    up = grid.provider_data["job_id"]
    pick = await env.action("pick:4", grid)
    # Enhance only where its parameters are documented: Legnext, not Vtrix (issue 19).
    assert ("enhance" in [a.name for a in pick.actions]) is (env.backend == "legnext")

    steps: list[tuple[Job, str, ActionInput | None, str, dict[str, Any]]] = [
        (grid, "vary_grid:3", None, "variation", {"jobId": up, "imageNo": 2, "type": 1}),
        (
            grid,
            "vary_grid:1",
            ActionInput(prompt="a wolf --v 7 --draft"),
            "variation",
            {"jobId": up, "imageNo": 0, "type": 1, "remixPrompt": "a wolf --v 7 --draft"},
        ),
        (pick, "vary_subtle", None, "variation", {"jobId": up, "imageNo": 3, "type": 0}),
        (pick, "vary_strong", None, "variation", {"jobId": up, "imageNo": 3, "type": 1}),
        (pick, "zoom_out_2x", None, "outpaint", {"jobId": up, "imageNo": 3, "scale": 2.0}),
        (
            pick,
            "zoom_custom",
            ActionInput(zoom_ratio=Decimal("1.3")),
            "outpaint",
            {"jobId": up, "imageNo": 3, "scale": 1.3},
        ),
        (
            pick,
            "pan_left",
            None,
            "pan",
            {"jobId": up, "imageNo": 3, "direction": 3, "scale": 1.5},
        ),
        (
            pick,
            "pan_down",
            None,
            "pan",
            {"jobId": up, "imageNo": 3, "direction": 0, "scale": 1.5},
        ),
        (pick, "enhance", None, "enhance", {"jobId": up, "imageNo": 3}),
        (
            pick,
            "vary_region",
            ActionInput(prompt="a hat", mask_png_base64=mask_b64((32, 32), (8, 8, 15, 15))),
            "inpaint",
            {
                "jobId": up,
                "imageNo": 3,
                "mask": {
                    "areas": [
                        {
                            "width": 500,
                            "height": 500,
                            "points": [125, 125, 250, 125, 250, 250, 125, 250],
                        }
                    ]
                },
                "remixPrompt": "a hat",
            },
        ),
    ]
    for parent, name, given, op, params in steps:
        if op == "enhance" and env.backend == "vtrix":
            continue
        done = await env.action(name, parent, given)
        assert done.status is JobStatus.COMPLETED, (name, done.error)
        assert env.requests_for(op)[-1] == params, name
        assert len(done.tiles or []) == 4, name

    remix = await env.run(operation_for("remix", grid, ActionInput(prompt="a cat", index=2)), grid)
    assert remix.status is JobStatus.COMPLETED
    assert env.requests_for("remix") == [
        {"jobId": up, "imageNo": 1, "remixPrompt": "a cat", "mode": 0}
    ]


async def test_legnext_only_reroll_describe_seed() -> None:
    clock = FakeClock()
    async with FakeLegnext(api_key=KEY, clock=clock, image_size=32) as fake:
        env = Env("legnext", clock, fake, make_provider("legnext", fake.base_url))
        try:
            grid = await env.run(IMAGINE)
            rerolled = await env.action("reroll", grid)
            assert rerolled.status is JobStatus.COMPLETED
            assert env.requests_for("reroll") == [{"jobId": grid.provider_ref}]

            described = await env.run(
                Operation(OperationKind.DESCRIBE, image_urls=("https://img.example/a.png",))
            )
            assert described.prompts is not None and len(described.prompts) == 4
            assert described.actions == []

            before = len(fake.requests)
            seeded = await env.run(operation_for("seed", grid), grid)
            assert seeded.seed == grid.seed and len(fake.requests) == before
        finally:
            await env.provider.aclose()


# --- failures ---------------------------------------------------------------------------------


EDIT_INPUT = ActionInput(
    prompt="boom", canvas=Size(1024, 1024), placement=Placement(512, 512, 256, 256)
)


@pytest.mark.parametrize("eee", sorted(VTRIX_ERROR_TEXTS))
async def test_each_documented_vtrix_edit_code(vtrix_env: Env, eee: int) -> None:
    env = vtrix_env
    grid = await env.run(IMAGINE)
    env.fake.fail_with_code_for_prompt["FAILME"] = 4_007_000 + eee
    given = ActionInput(
        prompt="FAILME please",
        canvas=Size(1024, 1024),
        placement=Placement(512, 512, 256, 256),
    )
    failed = await env.action("edit:1", grid, given)
    assert failed.status is JobStatus.FAILED and failed.error is not None
    fragment = VTRIX_ERROR_MESSAGES[f"007{eee:03d}"]
    assert failed.error.message == f"Vtrix could not edit the image: {fragment}."
    assert failed.error.provider_text == f"{VTRIX_ERROR_TEXTS[eee]} (code 004007{eee:03d})"
    expected = {98: ErrorCode.GENERATION_FAILED, 99: ErrorCode.UNAVAILABLE}.get(
        eee, ErrorCode.INVALID_REQUEST
    )
    assert failed.error.code is expected


@pytest.mark.parametrize(
    ("style", "as_string"), [("mj", False), ("mj", True), ("generic", False), ("string", False)]
)
async def test_vtrix_error_forms_all_read_well(vtrix_env: Env, style: str, as_string: bool) -> None:
    env = vtrix_env
    env.fake.error_style, env.fake.code_as_string = style, as_string
    env.fake.fail_with_code_for_prompt["nope"] = 4_001_005
    failed = await env.run(Operation(OperationKind.IMAGINE, prompt="nope nope"))
    assert failed.error is not None
    if style == "string":
        assert failed.error.message == "Vtrix could not make this image: Invalid prompt length."
    else:
        assert failed.error.message == (
            "Vtrix could not create the image: invalid prompt length (1–8192 characters)."
        )
        assert failed.error.provider_text == "Invalid prompt length (code 004001005)"


async def test_vtrix_coded_400_on_create(vtrix_env: Env) -> None:
    env = vtrix_env
    grid = await env.run(IMAGINE)
    env.fake.inject("POST", "/model/v1/generation", "400_code", code=4007003)
    with pytest.raises(InvalidRequestError) as caught:
        await env.submit(operation_for("edit:2", grid, EDIT_INPUT), grid)
    assert caught.value.message == (
        "Vtrix could not edit the image: invalid image number (must be 0–3)."
    )
    assert caught.value.provider_text == "Invalid image number (code 004007003)"


async def test_vtrix_balance_exhausted(vtrix_env: Env) -> None:
    vtrix_env.fake.balance_usd = Decimal("0.01")
    with pytest.raises(InsufficientCreditError):
        await vtrix_env.submit(IMAGINE)


async def test_legnext_refusal_and_failure() -> None:
    clock = FakeClock()
    async with FakeLegnext(api_key=KEY, clock=clock, image_size=32) as fake:
        env = Env("legnext", clock, fake, make_provider("legnext", fake.base_url))
        try:
            grid = await env.run(IMAGINE)
            fake.available_actions_override["variation"] = [0]
            # The allow-list was read when the grid finished; a stale offer is refused upstream.
            with pytest.raises(InvalidRequestError) as caught:
                await env.submit(operation_for("vary_grid:2", grid), grid)
            assert "not available" in (caught.value.provider_text or "")
            banned = await env.run(Operation(OperationKind.IMAGINE, prompt="a banned word"))
            assert banned.status is JobStatus.FAILED and banned.error is not None
            assert banned.error.code is ErrorCode.MODERATED
        finally:
            await env.provider.aclose()


def _create_path(env: Env) -> str:
    return "/v1/diffusion" if env.backend == "legnext" else "/model/v1/generation"


async def test_http_401_429_500_mapping(env: Env) -> None:
    path = _create_path(env)
    env.fake.inject("POST", path, "401")
    with pytest.raises(AuthError):
        await env.submit(IMAGINE)

    env.fake.inject("POST", path, "429", retry_after=30)
    with pytest.raises(RateLimitedError) as limited:
        await env.submit(IMAGINE)
    assert limited.value.retry_after == 30
    assert env.fake.created() == []

    env.fake.inject("POST", path, "429", times=None, retry_after=0)
    with pytest.raises(RateLimitedError):
        await env.submit(IMAGINE)
    env.fake.faults.clear()

    env.fake.inject("POST", path, "500", times=None)
    with pytest.raises(ProviderUnavailableError):
        await env.submit(IMAGINE)
    env.fake.faults.clear()
    assert env.fake.created() == []

    # A 500 then success: retried, one job upstream.
    env.fake.inject("POST", path, "500")
    job = await env.submit(IMAGINE)
    assert job.status is JobStatus.SUBMITTED and len(env.fake.created()) == 1

    # Polls ride out a 503 and a malformed body.
    poll_prefix = "/v1/job/" if env.backend == "legnext" else "/model/v1/generation/task/"
    env.fake.inject("GET", poll_prefix, "503")
    env.fake.inject("GET", poll_prefix, "malformed")
    snap = await env.provider.fetch(job)
    assert snap.status is JobStatus.SUBMITTED

    # The connection drops after the request left: never sent twice.
    env.fake.inject("POST", path, "reset", process=True)
    with pytest.raises(SubmitOutcomeUnknownError):
        await env.submit(IMAGINE)
    assert len(env.fake.created()) == 2


async def test_unknown_job_is_not_found(env: Env) -> None:
    job = Job(
        id="x",
        operation=IMAGINE,
        provider=env.backend,
        status=JobStatus.SUBMITTED,
        provider_ref="no-such-job" if env.backend == "legnext" else "task_nope",
    )
    from bot.providers.base import NotFoundError

    with pytest.raises(NotFoundError):
        await env.provider.fetch(job)


# --- through the engine -----------------------------------------------------------------------


@dataclass
class FamilyHarness(Harness):
    backend: str = "legnext"
    provider_factory: Callable[[], Any] | None = None

    async def new_engine(self, *, settings: Any = ENGINE_SETTINGS) -> Engine:
        assert self.provider_factory is not None
        engine = Engine(
            self.provider_factory(), self.store.jobs, clock=self.clock, settings=settings
        )
        engine.subscribe(self.events.append)
        return engine


@pytest.mark.parametrize("backend", BACKENDS)
async def test_engine_runs_the_chain(tmp_path: Path, backend: str) -> None:
    clock = FakeClock()
    fake_cls = FakeLegnext if backend == "legnext" else FakeVtrix
    async with fake_cls(api_key=KEY, clock=clock, image_size=32) as fake:
        store = await open_store(f"sqlite:///{tmp_path / 'jobs.db'}")
        h = FamilyHarness(
            clock=clock,
            fake=fake,
            store=store,
            db_path=tmp_path / "jobs.db",
            engine=None,  # type: ignore[arg-type]
            backend=backend,
            provider_factory=lambda: make_provider(backend, fake.base_url),
        )
        h.engine = await h.new_engine()
        await h.engine.start()
        try:
            job = await h.engine.submit(IMAGINE, requester_id="u1", idempotency_key="i1")
            [grid] = await h.finish(job)
            assert grid.status is JobStatus.COMPLETED and grid.tiles and len(grid.tiles) == 4
            running = [
                e.job.progress
                for e in h.events
                if e.job.id == job.id and e.job.status is JobStatus.RUNNING
            ]
            assert any(p not in (None, 0, 100) for p in running), running

            before = len(fake.requests)
            pick = await h.engine.submit(
                operation_for("pick:3", grid), requester_id="u1", idempotency_key="p3"
            )
            [picked] = await h.finish(pick)
            assert len(fake.requests) == before
            assert picked.status is JobStatus.COMPLETED and picked.result_url == grid.tiles[2]
            assert picked.provider_data["image_no"] == 2

            up = await h.engine.submit(
                operation_for("upscale_creative", picked), requester_id="u1", idempotency_key="u"
            )
            [upscaled] = await h.finish(up)
            assert upscaled.status is JobStatus.COMPLETED, upscaled.error
            body = fake.created("upscale")[0].body
            params = body if backend == "legnext" else body["input"][0]["params"]
            assert params == {
                "jobId": grid.provider_data["job_id"],
                "imageNo": 2,
                "type": 1,
            }
            stored = await store.jobs.get(upscaled.id)
            assert stored is not None and stored.provider_data["image_count"] == 1
        finally:
            await h.engine.stop()
            await h.engine.provider.aclose()
            await store.close()
