"""Issue 19's provider requests over real HTTP against the fakes: shorten, retexture and
editing an uploaded image on Legnext, Vtrix and midjourney-proxy, and the failures the
fakes answer as the providers document them (a shorten of an empty prompt refused before
sending, a draft enhanced twice, a server without uploads, an account without shorten)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.domain import JobStatus, Operation, OperationKind, Placement, Size
from bot.providers.base import InvalidRequestError, ProviderError, UnsupportedOperationError
from tests.fakes.legnext import ALREADY_ENHANCED, FakeLegnext, FakeVtrix
from tests.fakes.mjproxy import FakeMJProxy
from tests.integration.test_legnext_vtrix_providers import KEY, Env, make_provider
from tests.integration.test_mjproxy_provider import SECRET, Flow
from tests.integration.test_mjproxy_provider import make_provider as make_mjproxy

IMG = "https://cdn.example/photo.png"
RETEXTURE = Operation(OperationKind.RETEXTURE, prompt="made of glass", image_urls=(IMG,))
UPLOAD_EDIT = Operation(
    OperationKind.UPLOAD_EDIT,
    prompt="a bigger room",
    image_urls=(IMG,),
    canvas=Size(1024, 576),
    placement=Placement(576, 576, 0, 0),
)
SHORTEN = Operation(OperationKind.SHORTEN, prompt="a very old stone lighthouse in a storm")


@pytest.fixture(params=["legnext", "vtrix"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    clock = FakeClock()
    fake_cls = FakeLegnext if request.param == "legnext" else FakeVtrix
    async with fake_cls(api_key=KEY, clock=clock, image_size=64) as fake:
        provider = make_provider(request.param, fake.base_url)
        try:
            yield Env(request.param, clock, fake, provider)
        finally:
            await provider.aclose()


def params_of(env: Env, op: str) -> dict[str, Any]:
    [record] = env.fake.created(op)
    body = record.body
    return dict(body["input"][0]["params"]) if env.backend == "vtrix" else dict(body)


async def test_retexture_and_upload_edit_reach_the_fake(env: Env) -> None:
    done = await env.run(RETEXTURE)
    assert done.status is JobStatus.COMPLETED and len(done.tiles or []) == 4
    assert params_of(env, "retexture") == {"imgUrl": IMG, "remixPrompt": "made of glass"}

    edited = await env.run(UPLOAD_EDIT)
    assert edited.status is JobStatus.COMPLETED
    op = "upload-paint" if env.backend == "legnext" else "uploadpaint"
    if env.backend == "vtrix":
        assert env.fake.created(op)[0].body["model"] == "midjourney_uploadpaint"
    sent = params_of(env, op)
    assert sent["canvas"] == {"width": 1024, "height": 576}
    assert sent["imgPos"] == {"width": 576, "height": 576, "x": 0, "y": 0}
    assert sent["remixPrompt"] == "a bigger room" and sent["imgUrl"] == IMG
    [area] = sent["mask"]["areas"]
    assert 500 <= area["width"] <= 4096 and 500 <= area["height"] <= 4096


async def test_bad_uploaded_requests_are_refused_before_sending(env: Env) -> None:
    from dataclasses import replace

    for op, needle in (
        (replace(RETEXTURE, prompt=" "), "needs a prompt"),
        (replace(RETEXTURE, image_urls=()), "needs an image"),
        (replace(RETEXTURE, image_urls=("https://x/" + "a" * 1100,)), "at most 1024"),
        (replace(UPLOAD_EDIT, placement=Placement(576, 576, 600, 0)), "does not fit"),
    ):
        with pytest.raises(InvalidRequestError, match=needle):
            await env.submit(op)
    assert env.fake.created() == []


async def test_shorten_on_legnext_and_not_on_vtrix(env: Env) -> None:
    if env.backend == "vtrix":
        with pytest.raises(UnsupportedOperationError):
            await env.submit(SHORTEN)
        return
    done = await env.run(SHORTEN)
    assert params_of(env, "shorten") == {"prompt": SHORTEN.prompt}
    assert done.prompts is not None and len(done.prompts) == 5
    assert done.prompts[0] == "a very old stone lighthouse in a"
    with pytest.raises(InvalidRequestError, match="needs a prompt"):
        await env.submit(Operation(OperationKind.SHORTEN, prompt="  "))


async def test_a_draft_enhanced_twice_is_refused_by_legnext() -> None:
    clock = FakeClock()
    async with FakeLegnext(api_key=KEY, clock=clock, image_size=64) as fake:
        provider = make_provider("legnext", fake.base_url)
        env = Env("legnext", clock, fake, provider)
        try:
            grid = await env.run(Operation(OperationKind.IMAGINE, prompt="a fox --v 7 --draft"))
            pick = await env.action("pick:2", grid)
            first = await env.action("enhance", pick)
            assert first.status is JobStatus.COMPLETED
            with pytest.raises(ProviderError) as refused:
                await env.action("enhance", pick)
            expected = ALREADY_ENHANCED.format(n=1, job=grid.provider_ref)
            assert expected in (refused.value.provider_text or refused.value.message)
            assert len(fake.created("enhance")) == 1
        finally:
            await provider.aclose()


@pytest.fixture
async def flow() -> AsyncIterator[Flow]:
    clock = FakeClock()
    async with FakeMJProxy(api_secret=SECRET, clock=clock, image_size=64) as fake:
        provider = make_mjproxy(fake)
        try:
            yield Flow(clock, fake, provider)
        finally:
            await provider.aclose()


async def test_mjproxy_shorten_retexture_and_edits(flow: Flow) -> None:
    shortened, _ = await flow.run(SHORTEN)
    [post] = flow.posts("/mj/submit/shorten")
    assert post.body["prompt"] == SHORTEN.prompt and post.body["state"]
    assert shortened.prompts is not None and len(shortened.prompts) == 5
    assert shortened.actions == []  # PromptAnalyzer buttons: the bot offers its own picks

    retextured, _ = await flow.run(RETEXTURE)
    [post] = flow.posts("/mj/submit/retexture")
    assert (post.body["prompt"], post.body["image"]) == ("made of glass", IMG)
    assert retextured.status is JobStatus.COMPLETED and "pick:1" in [
        a.name for a in retextured.actions
    ]
    await flow.run(UPLOAD_EDIT)
    [post] = flow.posts("/mj/submit/edits")
    assert set(post.body) >= {"prompt", "image"} and "canvas" not in post.body


async def test_mjproxy_refusals_read_as_sentences(flow: Flow) -> None:
    flow.fake.enable_upload = False
    with pytest.raises(ProviderError) as refused:
        await flow.submit(RETEXTURE)
    assert "禁止上传" in (refused.value.provider_text or "")
    flow.fake.enable_shorten = False
    with pytest.raises(ProviderError) as no_account:
        await flow.submit(SHORTEN)
    assert "{" not in no_account.value.message


async def test_mjproxy_enhance_presses_the_drafts_button_once(flow: Flow) -> None:
    from bot.actions import operation_for

    grid, _ = await flow.run(Operation(OperationKind.IMAGINE, prompt="a fox --v 7 --draft"))
    single, _ = await flow.run(operation_for("pick:3", grid), grid)
    assert "enhance" in [a.name for a in single.actions]
    enhanced, _ = await flow.run(operation_for("enhance", single), single)
    assert enhanced.status is JobStatus.COMPLETED
    post = flow.posts("/mj/submit/action")[-1]
    assert post.body["taskId"] == single.provider_ref
    assert post.body["customId"].startswith("MJ::JOB::enhance::1::")
    with pytest.raises(ProviderError) as refused:
        await flow.submit(operation_for("enhance", single), single)
    assert "already been enhanced" in (refused.value.provider_text or refused.value.message)
    # A grid that is no draft offers no Enhance on its images.
    plain, _ = await flow.run(Operation(OperationKind.IMAGINE, prompt="a fox --v 7"))
    picked, _ = await flow.run(operation_for("pick:1", plain), plain)
    assert "enhance" not in [a.name for a in picked.actions]
