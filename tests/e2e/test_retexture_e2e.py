"""Retexture and the editor on an uploaded image, end to end (issue 19 item 5): the real
bot against the fake Discord and the fake Legnext, which fetches the image it is given
(`fetch_images`): /retexture sends POST /v1/retexture {imgUrl, remixPrompt} and /edit with
an attachment POST /v1/upload-paint {imgUrl, canvas, imgPos, mask, remixPrompt}, the URL
being the bot's own copy of the upload. Bad input is answered privately and sends nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.conftest import World, open_world
from tests.e2e.test_backends import run
from tests.e2e.test_community import private_text, slash
from tests.fakes.images import single_png


@pytest.fixture
async def legnext(tmp_path: Path) -> AsyncIterator[World]:
    async with open_world(tmp_path, "legnext") as world:
        world.fake.fetch_images = True
        await world.start_bot()
        yield world


def kept_url(world: World, what: str) -> str:
    [message] = [m for m in world.channel_messages() if what in (m.content or "")]
    [attachment] = message.attachments
    assert attachment.filename == f"mjref-{message.id}-0.png"
    return attachment.url(world.discord.base_url).split("?")[0]


async def test_retexture_an_uploaded_image(legnext: World) -> None:
    world = legnext
    photo = ("photo.png", single_png("photo", (96, 64)))
    empty = await world.discord.slash("retexture", {"prompt": " "}, attachments={"image": photo})
    await world.discord.wait_for(lambda: empty.responded, timeout=10, what="the refusal")
    assert "needs a prompt" in private_text(empty)
    text_file = ("notes.txt", b"not an image")
    bad = await world.discord.slash(
        "retexture", {"prompt": "made of glass"}, attachments={"image": text_file}
    )
    await world.discord.wait_for(lambda: bad.responded, timeout=10, what="the refusal")
    assert "not an image" in private_text(bad)
    assert world.fake.created() == []

    done = await world.discord.slash(
        "retexture", {"prompt": "made of glass"}, attachments={"image": photo}
    )
    await world.discord.wait_for(lambda: done.responded, timeout=10, what="/retexture")
    assert done.response_type == 5
    await run(world)
    grid = await world.wait_message(
        lambda m: m.id == done.original_message_id and len(m.components) > 1,
        what="the retexture grid",
    )
    [record] = world.fake.created("retexture")
    assert set(record.body) == {"imgUrl", "remixPrompt"}
    assert record.body["remixPrompt"] == "made of glass"
    assert record.body["imgUrl"].split("?")[0] == kept_url(world, "/retexture")
    job = world.fake.sim.jobs[record.task_id]
    assert job.status(world.fake.now) == "completed"  # the fake fetched the image: 200
    assert grid.attachments and "made of glass" in grid.content


async def test_edit_an_uploaded_image(legnext: World) -> None:
    world = legnext
    photo = ("room.png", single_png("room", (64, 64)))
    both = await world.discord.slash(
        "edit", {"prompt": "a bigger room", "job": "abc"}, attachments={"upload": photo}
    )
    await world.discord.wait_for(lambda: both.responded, timeout=10, what="the refusal")
    assert "either a job id or an image" in private_text(both)

    started = await world.discord.slash(
        "edit",
        {"prompt": "a bigger room", "canvas": "16:9", "position": "left"},
        attachments={"upload": photo},
    )
    await world.discord.wait_for(lambda: started.responded, timeout=10, what="/edit")
    await world.discord.wait_for(
        lambda: (
            "Editing" in str((started.response_data or {}).get("content", ""))
            or any("Editing" in str(m.content) for m in world.discord.messages.values())
        ),
        timeout=10,
        what="the private answer",
    )
    await run(world)
    await world.discord.wait_for(
        lambda: len(world.fake.created("upload-paint")) == 1, timeout=10, what="upload-paint"
    )
    [record] = world.fake.created("upload-paint")
    body = record.body
    assert body["remixPrompt"] == "a bigger room"
    assert body["imgUrl"].split("?")[0] == kept_url(world, "/edit")
    canvas, pos = body["canvas"], body["imgPos"]
    assert canvas["width"] * 9 == canvas["height"] * 16  # 16:9
    assert (pos["x"], pos["width"], pos["height"]) == (0, canvas["height"], canvas["height"])
    assert body["mask"]["areas"][0]["points"][:2] == [0, 0]
    await world.wait_message(
        lambda m: "a bigger room" in (m.content or "") and bool(m.attachments),
        what="the edited grid",
    )


async def test_an_image_the_provider_cannot_fetch_fails_the_job_with_a_reason(
    legnext: World,
) -> None:
    world = legnext
    # An image prompt typed as a link that answers 404 (an expired Discord URL pasted in).
    dead = f"{world.discord.base_url}/attachments/1/2/gone.png?ex=1&is=1&hm=0"
    done = await slash(world, "imagine", {"prompt": f"{dead} a fox in the snow"})
    assert done.response_type == 5
    await run(world)
    failed = await world.wait_message(
        lambda m: m.id == done.original_message_id and "Invalid link" in (m.content or ""),
        what="the failed job's reason",
    )
    [record] = world.fake.created("diffusion")
    assert world.fake.sim.jobs[record.task_id].status(world.fake.now) == "failed"
    assert "Could not fetch the image" in failed.content
    assert "Traceback" not in failed.content and "{" not in failed.content
