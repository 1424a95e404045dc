"""Video end to end (issue 18): the real bot (`python -m bot`) against the fake Discord and the
fake Legnext / midjourney-proxy, on the fake clock (a video takes minutes there too).

Upscale → Animate (Low motion) → the request with the right ids → the final message with
the MP4s uploaded → Extend (Low motion) on the first video → the extend request; /animate
from an uploaded image; a video larger than the upload limit; no Animate on Vtrix or PiAPI;
a restart mid-video."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.e2e.conftest import World, button_ids, open_world
from tests.e2e.test_push import free_port
from tests.fakes.discord import DEFAULT_GUILD_ID
from tests.fakes.discord.models import MessageRecord
from tests.fakes.videos import is_mp4


async def run(world: World, rounds: int = 14, step: float = 25.0) -> None:
    """Minutes of provider time, in steps the bot polls between."""
    for _ in range(rounds):
        await world.advance_piapi(step, settle=0.25)


def ids_by_action(message: MessageRecord) -> dict[str, str]:
    """neutral action → custom_id (labels repeat per video, the custom ids never do)."""
    result: dict[str, str] = {}
    for row in message.components:
        for button in row.get("components", []):
            cid = str(button["custom_id"])
            result[cid.split(":", 1)[1].rsplit(":", 1)[0]] = cid
    return result


def labels(message: MessageRecord) -> list[str]:
    return [
        str(b.get("label") or (b.get("emoji") or {}).get("name"))
        for row in message.components
        for b in row.get("components", [])
    ]


def mp4s(world: World, message: MessageRecord) -> list[Any]:
    return [
        world.discord.attachments[int(a["id"])]
        for a in message.payload(world.discord.base_url)["attachments"]
        if a["filename"].endswith(".mp4")
    ]


async def click(world: World, message: MessageRecord, custom_id: str, *, has: str) -> MessageRecord:
    """Click; the follow-up's own finished message (one carrying action `has`)."""
    before = {m.id for m in world.channel_messages()}
    pressed = await world.discord.click(message.id, custom_id)
    await world.discord.wait_for(lambda: pressed.responded, timeout=5, what=custom_id)
    assert pressed.response_type == 7, (pressed.response_type, pressed.response_data)
    await run(world)
    return await world.wait_message(
        lambda m: m.id not in before and bool(m.attachments) and has in ids_by_action(m),
        what=f"the message after {custom_id}",
        limit_s=45,  # four downloads and uploads; bounded, generous on a loaded machine
    )


async def upscaled(world: World, prompt: str) -> MessageRecord:
    """/imagine → U1 → Upscale (Subtle) (mj-proxy: U1 is the upscale): an upscaled image."""
    interaction = await world.discord.slash("imagine", {"prompt": prompt})
    await world.discord.wait_for(lambda: interaction.responded, timeout=5, what="the ack")
    await run(world, rounds=6, step=6.0)
    grid = await world.wait_message(
        lambda m: m.id == interaction.original_message_id and "U1" in button_ids(m),
        what="the grid",
    )
    single = await click(world, grid, button_ids(grid)["U1"], has="vary_subtle")
    if "upscale_subtle" in ids_by_action(single) and world.env["MJ_PROVIDER"] == "legnext":
        single = await click(
            world, single, ids_by_action(single)["upscale_subtle"], has="vary_subtle"
        )
    return single


@pytest.mark.parametrize("backend", ["legnext", "mjproxy"])
async def test_upscale_animate_then_extend_the_first_video(backend: str, tmp_path: Path) -> None:
    async with open_world(tmp_path, backend) as world:
        await world.start_bot()
        image = await upscaled(world, "a red fox in snow")
        assert {"Animate (Low motion)", "Animate (High motion)"} <= set(labels(image))

        video = await click(world, image, ids_by_action(image)["animate_low:1"], has="extend_low:1")
        if backend == "legnext":
            [up] = world.fake.created("upscale")
            [animate] = world.fake.created("video-diffusion")
            assert animate.body["jobId"] == up.task_id  # the upscale's own upstream job
            assert animate.body["imageNo"] == 0
            assert animate.body["prompt"] == "a red fox in snow --motion low"
        else:
            pressed = [r for r in world.fake.requests if r.path == "/mj/submit/action"][-1]
            image_task = world.fake.tasks[pressed.body["taskId"]]
            assert pressed.body["customId"] == (
                f"MJ::JOB::animate_low::1::{image_task.job_hash}::SOLO"
            )
        # Four MP4s uploaded, played inline by Discord (video/mp4, from the .mp4 name).
        files = mp4s(world, video)
        assert len(files) == 4
        assert all(f.content_type == "video/mp4" and is_mp4(f.data) for f in files)
        assert "Animate (Low motion)" in video.content
        rows = [labels(video)[i : i + (3 if backend == "legnext" else 2)] for i in range(0, 12, 3)]
        assert labels(video)[:2] == ["Extend (Low motion)", "Extend (High motion)"]
        assert ("HD" in labels(video)) is (backend == "legnext")
        assert rows

        await click(world, video, ids_by_action(video)["extend_low:1"], has="extend_low:1")
        if backend == "legnext":
            [extend] = world.fake.created("extend-video")
            [animate] = world.fake.created("video-diffusion")
            assert extend.body["jobId"] == animate.task_id  # the video job, not the image
            assert extend.body["videoNo"] == 0
        else:
            [extend] = [r for r in world.fake.requests if r.path == "/mj/submit/video"]
            assert extend.body["action"] == "extend"
            assert extend.body["index"] == 0
            assert world.fake.tasks[extend.body["taskId"]].result == "video"


@pytest.mark.parametrize("backend", ["vtrix", "piapi"])
async def test_no_animate_where_the_backend_has_no_video(backend: str, tmp_path: Path) -> None:
    async with open_world(tmp_path, backend) as world:
        await world.start_bot()
        interaction = await world.discord.slash("imagine", {"prompt": "a quiet harbour"})
        await world.discord.wait_for(lambda: interaction.responded, timeout=5, what="ack")
        await run(world, rounds=6, step=6.0)
        grid = await world.wait_message(
            lambda m: m.id == interaction.original_message_id and "U1" in button_ids(m),
            what="the grid",
        )
        single = await click(world, grid, button_ids(grid)["U1"], has="vary_subtle")
        assert not [name for name in labels(single) if name.startswith("Animate")]
        assert world.discord.find_command("animate", DEFAULT_GUILD_ID) is None


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (40, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("backend", ["legnext", "mjproxy"])
async def test_animate_an_uploaded_image(backend: str, tmp_path: Path) -> None:
    async with open_world(tmp_path, backend) as world:
        await world.start_bot()
        assert world.discord.find_command("animate", DEFAULT_GUILD_ID) is not None
        # A mistake is explained privately and sends nothing.
        bad = await world.discord.slash(
            "animate",
            {"prompt": "waves", "loop": True},
            attachments={"image": ("start.png", _png()), "end_image": ("end.png", _png())},
        )
        await world.discord.wait_for(lambda: bad.responded, timeout=5)
        assert "loop or an end image" in str((bad.response_data or {}).get("content"))
        assert not world.fake.tasks  # nothing reached the backend

        ok = await world.discord.slash(
            "animate",
            {"prompt": "waves rolling in", "motion": "high", "batch": 2},
            attachments={"image": ("start.png", _png())},
        )
        await world.discord.wait_for(lambda: ok.responded, timeout=5)
        await run(world)
        video = await world.wait_message(
            lambda m: not m.ephemeral and len(mp4s(world, m)) == 2, what="the two videos"
        )
        record = [a for a in world.discord.attachments.values() if a.filename == "start.png"][-1]
        start_url = record.url(world.discord.base_url)
        if backend == "legnext":
            [sent] = world.fake.created("video-diffusion")
            prompt = sent.body["prompt"]
            assert prompt.startswith(start_url.split("?")[0])
            assert prompt.endswith("waves rolling in --motion high --bs 2")
        else:
            [sent] = [r for r in world.fake.requests if r.path == "/mj/submit/video"]
            assert sent.body["image"].split("?")[0] == start_url.split("?")[0]
            assert (sent.body["motion"], sent.body["batchSize"]) == ("high", 2)
        assert "waves rolling in" in video.content


async def test_a_video_larger_than_the_upload_limit_is_linked(tmp_path: Path) -> None:
    async with open_world(tmp_path, "legnext") as world:
        limit = 300_000
        world.discord.set_upload_limit(limit)
        world.fake.sim.video_bytes = 120_000  # two fit, the other two do not
        await world.start_bot()
        image = await upscaled(world, "a lighthouse in fog")
        video = await click(world, image, ids_by_action(image)["animate_low:1"], has="extend_low:1")
        assert len(mp4s(world, video)) == 2
        assert sum(a.size for a in video.attachments) <= limit
        assert "Video 3: [MP4](<" in video.content and "Video 4: [MP4](<" in video.content
        stills = [a for a in video.attachments if a.filename.endswith("_still.png")]
        assert len(stills) == 2

        world.fake.sim.video_bytes = 400_000  # a single video over the limit
        extended = await click(
            world, video, ids_by_action(video)["extend_low:2"], has="extend_low:1"
        )
        assert mp4s(world, extended) == []
        assert "Video 1: [MP4](<" in extended.content
        [still] = extended.attachments
        assert still.filename.endswith("_1_still.png") and still.content_type == "image/png"


async def test_a_restart_mid_video_delivers_it_once(tmp_path: Path) -> None:
    async with open_world(tmp_path, "legnext") as world:
        bot = await world.start_bot()
        image = await upscaled(world, "a kite over dunes")
        before = {m.id for m in world.channel_messages()}
        pressed = await world.discord.click(image.id, ids_by_action(image)["animate_high:1"])
        await world.discord.wait_for(lambda: pressed.responded, timeout=5, what="animate")
        await run(world, rounds=4)  # under way: about 100 s of its ~260
        assert world.fake.running_task_count() == 1
        world.kill(bot)
        await run(world, rounds=10)  # it finishes while the bot is down
        await world.start_bot()
        video = await world.wait_message(
            lambda m: m.id not in before and len(mp4s(world, m)) == 4,
            what="the video after the restart",
            limit_s=30,
        )
        assert len(world.fake.created("video-diffusion")) == 1  # never sent twice
        await run(world, rounds=2)
        finals = [m for m in world.channel_messages() if len(mp4s(world, m)) == 4]
        assert [m.id for m in finals] == [video.id]
        # /job show posts it again, MP4s and working buttons.
        job_id = ids_by_action(video)["extend_low:1"].rsplit(":", 1)[1]
        shown = await world.discord.slash("job show", {"id": job_id})
        await world.discord.wait_for(lambda: shown.responded, timeout=10)
        copy = await world.wait_message(
            lambda m: m.id == shown.original_message_id and len(mp4s(world, m)) == 4,
            what="the re-posted video",
        )
        assert ids_by_action(copy)["extend_low:1"] == ids_by_action(video)["extend_low:1"]


async def _answer(world: World, name: str, options: dict[str, Any], **kw: Any) -> str:
    record = await world.discord.slash(name, options, **kw)
    await world.discord.wait_for(lambda: record.responded, timeout=10, what=f"/{name}")
    return str((record.response_data or {}).get("content", ""))


async def test_servers_turn_video_off_and_a_video_weighs_more(tmp_path: Path) -> None:
    async with open_world(tmp_path, "legnext") as world:
        await world.start_bot()
        image = await upscaled(world, "a paper boat")
        saved = await _answer(world, "settings video", {"state": "off"}, user="admin")
        assert "Saved" in saved, saved

        # Off: the button and /animate are refused privately, and nothing is sent.
        pressed = await world.discord.click(image.id, ids_by_action(image)["animate_low:1"])
        await world.discord.wait_for(lambda: pressed.responded, timeout=5, what="the refusal")
        assert "Videos are turned off" in str((pressed.response_data or {}).get("content"))
        refused = await _answer(
            world, "animate", {"prompt": "waves"}, attachments={"image": ("s.png", _png())}
        )
        assert "Videos are turned off" in refused, refused
        assert world.fake.created("video-diffusion") == []

        # On, a video counting as 5 jobs, and a day's limit that leaves room for one video.
        usage = await _answer(world, "usage me", {})
        jobs = int(re.search(r"Today: (\d+) job", usage)[1])  # type: ignore[index]
        await _answer(world, "settings video", {"state": "on", "weight": 5}, user="admin")
        await _answer(world, "settings limits", {"per_day": jobs + 5}, user="admin")
        await click(world, image, ids_by_action(image)["animate_low:1"], has="extend_low:1")
        assert len(world.fake.created("video-diffusion")) == 1
        again = await world.discord.click(image.id, ids_by_action(image)["animate_high:1"])
        await world.discord.wait_for(lambda: again.responded, timeout=5, what="the refusal")
        text = str((again.response_data or {}).get("content"))
        assert "a video counts as 5 image jobs" in text, text
        assert len(world.fake.created("video-diffusion")) == 1
        # /usage shows the videos apart.
        usage = await _answer(world, "usage me", {})
        assert "Videos: 1 today, 1 this month; each counts as 5 image job(s)" in usage, usage


async def test_video_completes_on_webhooks_in_push_mode(tmp_path: Path) -> None:
    """Legnext's callback carries the video job like any job: no polling needed."""
    async with open_world(tmp_path, "legnext") as world:
        port = free_port()
        await world.start_bot(
            WEBHOOK_LISTEN=f"127.0.0.1:{port}", WEBHOOK_PUBLIC_URL=f"http://127.0.0.1:{port}"
        )

        async def pushed(rounds: int, step: float) -> None:
            for _ in range(rounds):
                world.clock.advance(step)
                await world.fake.webhooks.check()
                await asyncio.sleep(0.25)

        interaction = await world.discord.slash("imagine", {"prompt": "a glass whale"})
        await world.discord.wait_for(lambda: interaction.responded, timeout=5, what="ack")
        await world.discord.wait_for(lambda: bool(world.fake.created()), timeout=10)
        await pushed(8, 5.0)
        grid = await world.wait_message(
            lambda m: m.id == interaction.original_message_id and "U1" in button_ids(m),
            what="the grid",
        )
        before = {m.id for m in world.channel_messages()}
        pressed = await world.discord.click(grid.id, button_ids(grid)["U1"])
        await world.discord.wait_for(lambda: pressed.responded, timeout=5)
        single = await world.wait_message(
            lambda m: m.id not in before and "animate_low:1" in ids_by_action(m),
            what="the picked image",
        )
        before = {m.id for m in world.channel_messages()}
        pressed = await world.discord.click(single.id, ids_by_action(single)["animate_low:1"])
        await world.discord.wait_for(
            lambda: bool(world.fake.created("video-diffusion")), timeout=10
        )
        [animate] = world.fake.created("video-diffusion")
        assert str(animate.body["callback"]).startswith(f"http://127.0.0.1:{port}/webhook/")
        reads_before = len([r for r in world.fake.requests if r.method == "GET"])
        await pushed(12, 25.0)
        video = await world.wait_message(
            lambda m: m.id not in before and len(mp4s(world, m)) == 4, what="the pushed video"
        )
        assert "extend_low:1" in ids_by_action(video)
        reads = len([r for r in world.fake.requests if r.method == "GET"]) - reads_before
        assert reads <= 1, reads  # the callback did the work
