"""Video against the fakes over real HTTP on 127.0.0.1, on a FakeClock: LegnextProvider and
MJProxyProvider from an upscale to Animate, the videos (real MP4 bytes through
media.fetch_video), Extend and HD; the set-up faults (no start frame, no video on the
account) read as sentences; and a video too big for the room is never downloaded whole."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot import media
from bot.actions import operation_for
from bot.clock import FakeClock
from bot.domain import Job, JobStatus, Operation, OperationKind, ProviderSnapshot
from bot.providers.base import InvalidRequestError, ProviderError
from bot.providers.legnext import LegnextProvider
from bot.providers.mjproxy import MJProxyProvider
from tests.fakes.legnext import NO_START_FRAME, FakeLegnext
from tests.fakes.mjproxy import FakeMJProxy

KEY = "video-test-key"
POLICY = media.FetchPolicy(allow_private=True)
_ids = itertools.count(1)


def apply(job: Job, snap: ProviderSnapshot) -> None:
    """What the engine does with a snapshot (engine/core.py `_apply`), enough for a chain."""
    job.status, job.provider_ref = snap.status, job.provider_ref or snap.ref
    job.result_url = snap.result_url or job.result_url
    job.tiles = snap.tiles or job.tiles
    job.actions = snap.actions if snap.actions is not None else job.actions
    job.error = snap.error or job.error
    job.provider_data = {**job.provider_data, **snap.data}


async def run(
    provider: Any, clock: FakeClock, op: Operation, parent: Job | None, *, step: float = 30.0
) -> Job:
    job = Job(id=f"job{next(_ids)}", operation=op, provider=provider.name)
    apply(job, await provider.submit(op, job=job, parent=parent))
    for _ in range(40):
        if job.status.is_terminal:
            break
        clock.advance(step)
        apply(job, await provider.fetch(job))
    assert job.status is JobStatus.COMPLETED, job.error
    return job


@pytest.fixture
async def legnext() -> AsyncIterator[tuple[FakeLegnext, LegnextProvider, FakeClock]]:
    clock = FakeClock()
    async with FakeLegnext(api_key=KEY, clock=clock, image_size=64) as fake:
        provider = LegnextProvider(api_key=KEY, base_url=fake.base_url)
        yield fake, provider, clock
        await provider.aclose()


@pytest.fixture
async def mjproxy() -> AsyncIterator[tuple[FakeMJProxy, MJProxyProvider, FakeClock]]:
    clock = FakeClock()
    async with FakeMJProxy(api_secret=KEY, clock=clock, image_size=64) as fake:
        provider = MJProxyProvider(base_url=fake.base_url, api_secret=KEY)
        yield fake, provider, clock
        await provider.aclose()


async def test_legnext_upscale_animate_extend_and_hd(legnext: Any) -> None:
    fake, provider, clock = legnext
    grid = await run(provider, clock, Operation(OperationKind.IMAGINE, prompt="a fox"), None)
    upscaled = await run(provider, clock, operation_for("upscale_subtle", grid), grid, step=5)
    assert "animate_low:1" in [a.name for a in upscaled.actions]

    # While it works, the still it starts from is its preview (Legnext sends none).
    job = Job(id="probe", operation=operation_for("animate_low:1", upscaled), provider="legnext")
    first = await provider.submit(job.operation, job=job, parent=upscaled)
    assert first.preview_url == upscaled.result_url
    started = clock.time()
    video = await run(provider, clock, operation_for("animate_low:1", upscaled), upscaled)
    assert clock.time() - started >= 240  # minutes, as Midjourney takes (on the fake clock)
    create = fake.created("video-diffusion")[-1]
    assert create.body == {
        "jobId": upscaled.provider_ref,
        "imageNo": 0,
        "prompt": "a fox --motion low",
        "videoType": 0,
    }
    assert len(video.videos) == 4
    assert video.result_url is not None and video.result_url.endswith(".png")  # the still
    async with httpx.AsyncClient() as client:
        data = await media.fetch_video(
            video.videos[0].url, client=client, policy=POLICY, max_bytes=1_000_000
        )
        assert media.is_mp4(data) and len(data) == fake.sim.video_bytes
        with pytest.raises(media.TooLargeError):
            await media.fetch_video(
                video.videos[1].url, client=client, policy=POLICY, max_bytes=1000
            )

    extended = await run(provider, clock, operation_for("extend_low:1", video), video)
    [extend] = fake.created("extend-video")
    assert extend.body == {
        "jobId": video.provider_ref,
        "videoNo": 0,
        "prompt": "a fox --motion low",
    }
    assert len(extended.videos) == 1
    await run(provider, clock, operation_for("video_hd:2", video), video)
    [hd] = fake.created("video-upscale")
    assert hd.body == {"jobId": video.provider_ref, "videoNo": 1}


async def test_legnext_video_faults_read_as_sentences(legnext: Any) -> None:
    fake, provider, clock = legnext
    job = Job(id="v1", operation=Operation(OperationKind.VIDEO_FROM_IMAGE), provider="legnext")
    # The provider refuses a start frame that is no link before sending anything.
    bad = Operation(OperationKind.VIDEO_FROM_IMAGE, prompt="waves", image_urls=("nope",))
    with pytest.raises(InvalidRequestError, match="start image"):
        await provider.submit(bad, job=job, parent=None)
    assert fake.created() == []
    # The backend's own refusals: no start frame, and an account without video.
    start = Operation(
        OperationKind.VIDEO_FROM_IMAGE, prompt="waves", image_urls=("https://a.example/s.png",)
    )
    fake.sim.video_enabled = False
    with pytest.raises(ProviderError) as refused:
        await provider.submit(start, job=job, parent=None)
    assert "video generation is not enabled" in refused.value.message
    fake.sim.video_enabled = True
    with pytest.raises(ProviderError) as no_frame:
        await provider.http.request("POST", "/v1/video-diffusion", json_body={"prompt": "waves"})
    assert NO_START_FRAME in no_frame.value.message
    video = await run(provider, clock, start, None)
    assert fake.created("video-diffusion")[-1].body["prompt"].startswith("https://a.example/s.png ")
    assert {v.cover for v in video.videos} == {"https://a.example/s.png"}


async def test_mjproxy_upscale_animate_and_extend(mjproxy: Any) -> None:
    fake, provider, clock = mjproxy
    grid = await run(provider, clock, Operation(OperationKind.IMAGINE, prompt="a fox"), None)
    single = await run(provider, clock, operation_for("pick:1", grid), grid, step=10)
    animate = next(a for a in single.actions if a.name == "animate_low:1")
    video = await run(provider, clock, operation_for("animate_low:1", single), single)
    actions = [r for r in fake.requests if r.path == "/mj/submit/action"]
    assert actions[-1].body["customId"] == animate.raw
    assert animate.raw.startswith("MJ::JOB::animate_low::1::")
    assert len(video.videos) == 4 and all(v.cover for v in video.videos)
    async with httpx.AsyncClient() as client:
        data = await media.fetch_video(
            video.videos[3].url, client=client, policy=POLICY, max_bytes=1_000_000
        )
    assert media.is_mp4(data)

    # In a batch, Extend names the video: /mj/submit/video {action: extend, taskId, index}.
    extended = await run(provider, clock, operation_for("extend_low:1", video), video)
    [extend] = [r for r in fake.requests if r.path == "/mj/submit/video"]
    assert {k: extend.body[k] for k in ("action", "taskId", "index", "motion")} == {
        "action": "extend",
        "taskId": video.provider_ref,
        "index": 0,
        "motion": "low",
    }
    # One video carries its own Extend button, pressed as is.
    again = next(a for a in extended.actions if a.name == "extend_high:1")
    assert again.raw.startswith("MJ::JOB::animate_high_extend::1::")
    await run(provider, clock, operation_for("extend_high:1", extended), extended)
    assert [r for r in fake.requests if r.path == "/mj/submit/action"][-1].body[
        "customId"
    ] == again.raw


async def test_mjproxy_video_from_image_and_its_faults(mjproxy: Any) -> None:
    fake, provider, clock = mjproxy
    start = Operation(
        OperationKind.VIDEO_FROM_IMAGE,
        prompt="waves",
        image_urls=("https://a.example/s.png",),
        batch_size=2,
        motion="high",
    )
    video = await run(provider, clock, start, None)
    assert len(video.videos) == 2
    [sent] = [r for r in fake.requests if r.path == "/mj/submit/video"]
    assert (sent.body["image"], sent.body["batchSize"], sent.body["motion"]) == (
        "https://a.example/s.png",
        2,
        "high",
    )
    fake.enable_video = False
    job = Job(id="v2", operation=start, provider="mjproxy")
    with pytest.raises(ProviderError) as refused:
        await provider.submit(start, job=job, parent=None)
    assert refused.value.provider_text == "视频功能未启用"
    # Without EnableVideo an upscale shows no Animate buttons at all.
    grid = await run(provider, clock, Operation(OperationKind.IMAGINE, prompt="a cat"), None)
    single = await run(provider, clock, operation_for("pick:2", grid), grid, step=10)
    assert not [a for a in single.actions if a.name.startswith("animate")]


async def test_mjproxy_video_in_flight_can_be_cancelled(mjproxy: Any) -> None:
    _, provider, clock = mjproxy
    start = Operation(
        OperationKind.VIDEO_FROM_IMAGE, prompt="waves", image_urls=("https://a.example/s.png",)
    )
    job = Job(id="v9", operation=start, provider="mjproxy")
    apply(job, await provider.submit(start, job=job, parent=None))
    clock.advance(60)  # under way: minutes to go
    apply(job, await provider.fetch(job))
    assert job.status is JobStatus.RUNNING
    await provider.cancel(job)
    apply(job, await provider.fetch(job))
    assert job.status is JobStatus.CANCELLED and job.videos == []
