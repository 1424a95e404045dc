"""Forms for follow-ups that need input, remix mode and /prefs, end to end: the real bot
process, the fake Discord (modals answered with type 9, submitted as type 5) and the
fake PiAPI."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
from PIL import Image

from tests.e2e.conftest import World, button_ids
from tests.e2e.test_imagine import imagine_to_grid
from tests.fakes.discord.interactions import iter_components
from tests.fakes.discord.models import InteractionRecord, MessageRecord, Upload

EPHEMERAL = 64
SUCCESS_STYLE = 3  # green: used with remix
PRIMARY_STYLE = 1  # blue: used


def modal_fields(record: InteractionRecord) -> dict[str, dict[str, Any]]:
    assert record.modal is not None
    return {
        c["custom_id"]: c
        for c in iter_components(record.modal.get("components", []))
        if "custom_id" in c
    }


async def open_form(world: World, message: MessageRecord, label: str) -> InteractionRecord:
    click = await world.discord.click(message.id, button_ids(message)[label])
    await world.discord.wait_for(lambda: click.responded, timeout=5, what=f"{label}'s form")
    assert click.response_type == 9, (label, click.response_type, click.response_data)
    return click


async def submit(
    world: World, form: InteractionRecord, values: dict[str, Any]
) -> InteractionRecord:
    record = await world.discord.submit_modal(form, values)
    await world.discord.wait_for(lambda: record.responded, timeout=10, what="the submit's answer")
    return record


def assert_ephemeral_error(record: InteractionRecord, *words: str) -> None:
    assert record.response_type == 4, record.response_type
    data = record.response_data or {}
    assert data.get("flags", 0) & EPHEMERAL
    for word in words:
        assert word in data.get("content", ""), data


async def run_jobs(world: World, rounds: int = 12) -> None:
    for _ in range(rounds):
        await world.advance_piapi(3, settle=0.3)


async def upscale_of(world: World, grid: MessageRecord) -> MessageRecord:
    before = {m.id for m in world.channel_messages()}
    click = await world.discord.click(grid.id, button_ids(grid)["U1"])
    await world.discord.wait_for(lambda: click.responded, timeout=5)
    await run_jobs(world)
    return await world.wait_message(
        lambda m: m.id not in before and bool(m.attachments) and "Custom Zoom" in button_ids(m),
        what="the upscale's final message",
    )


async def slash_prefs(world: World, sub: str, options: dict[str, str] | None = None) -> str:
    record = await world.discord.slash(f"prefs {sub}", options or {})
    await world.discord.wait_for(lambda: record.responded, timeout=5, what=f"/prefs {sub}")
    data = record.response_data or {}
    assert record.response_type == 4 and data.get("flags", 0) & EPHEMERAL, data
    return str(data.get("content", ""))


async def test_custom_zoom_and_vary_region_through_their_forms(world: World) -> None:
    await world.start_bot()
    grid = await imagine_to_grid(world, "a castle on a cliff")
    upscaled = await upscale_of(world, grid)
    [upscale_task] = world.piapi.created("upscale")

    # Custom Zoom: the form is pre-filled with the prompt of the grid the upscale came from.
    form = await open_form(world, upscaled, "Custom Zoom")
    fields = modal_fields(form)
    assert fields["prompt"].get("value") == "a castle on a cliff"
    assert {"prompt", "zoom_ratio"} <= fields.keys()
    assert len(form.modal["title"]) <= 45  # type: ignore[index]

    # Out of range: an ephemeral answer, nothing at the provider.
    bad = await submit(world, form, {"prompt": "a castle", "zoom_ratio": "5"})
    assert_ephemeral_error(bad, "zoom ratio", "1.0", "2.0")
    await world.advance_piapi(1, settle=0.5)
    assert world.piapi.created("outpaint") == []

    form = await open_form(world, upscaled, "Custom Zoom")
    done = await submit(world, form, {"prompt": "a castle in fog", "zoom_ratio": "1.7"})
    assert done.response_type == 7  # the parent's buttons updated, no message of its own
    await world.discord.wait_for(
        lambda: len(world.piapi.created("outpaint")) == 1, timeout=10, what="the outpaint"
    )
    [outpaint] = world.piapi.created("outpaint")
    assert outpaint.json["input"]["zoom_ratio"] == "1.7"
    assert outpaint.json["input"]["prompt"] == "a castle in fog"
    assert outpaint.json["input"]["origin_task_id"] == upscale_task.task_id
    zoom_button = world.discord.messages[upscaled.id].component(button_ids(upscaled)["Custom Zoom"])
    assert zoom_button is not None and zoom_button["style"] == PRIMARY_STYLE

    # Vary (Region) with a preset: a black-and-white mask the size of the upscaled image.
    form = await open_form(world, upscaled, "Vary (Region)")
    assert form.modal is not None and len(form.modal["components"]) <= 5
    bad = await submit(world, form, {"prompt": "a dragon"})  # neither region nor mask
    assert_ephemeral_error(bad, "region")
    form = await open_form(world, upscaled, "Vary (Region)")
    await submit(world, form, {"prompt": "a dragon on the tower", "region": ["center"]})
    await world.discord.wait_for(
        lambda: len(world.piapi.created("inpaint")) == 1, timeout=15, what="the inpaint"
    )
    [inpaint] = world.piapi.created("inpaint")
    region_button = world.discord.messages[upscaled.id].component(
        button_ids(upscaled)["Vary (Region)"]
    )
    assert region_button is not None and region_button["style"] == PRIMARY_STYLE
    sent = inpaint.json["input"]
    assert sent["prompt"] == "a dragon on the tower"
    assert sent["origin_task_id"] == upscale_task.task_id
    source_url = world.piapi.task_json(upscale_task.task_id)["output"]["image_url"]
    async with httpx.AsyncClient() as client:
        source = Image.open(io.BytesIO((await client.get(source_url)).content))
    mask = Image.open(io.BytesIO(base64.b64decode(sent["mask"], validate=True)))
    assert mask.format == "PNG"
    assert mask.size == source.size
    histogram = mask.convert("L").histogram()
    assert {v for v, n in enumerate(histogram) if n} == {0, 255}  # black and white only
    width, height = mask.size
    assert mask.convert("L").getpixel((width // 2, height // 2)) == 255  # centre: repaint
    assert mask.convert("L").getpixel((0, 0)) == 0  # corner: keep

    # …or with a link to a mask painted at another size: resized to the source, thresholded.
    painted = Image.new("RGBA", (64, 32), (0, 0, 0, 0))
    painted.paste((255, 255, 255, 255), (32, 0, 64, 32))  # the right half, painted white
    buffer = io.BytesIO()
    painted.save(buffer, format="PNG")
    link = world.discord.add_attachment(upscaled.channel_id, Upload("mask.png", buffer.getvalue()))
    form = await open_form(world, upscaled, "Vary (Region)")
    await submit(world, form, {"mask_url": link.url(world.discord.base_url)})
    await world.discord.wait_for(
        lambda: len(world.piapi.created("inpaint")) == 2, timeout=15, what="the 2nd inpaint"
    )
    sent = world.piapi.created("inpaint")[1].json["input"]
    mask = Image.open(io.BytesIO(base64.b64decode(sent["mask"], validate=True))).convert("L")
    assert mask.size == source.size
    assert mask.getpixel((width - 1, height // 2)) == 255
    assert mask.getpixel((0, height // 2)) == 0
    assert sent["prompt"] == "a castle on a cliff"  # the pre-filled prompt, unchanged

    # The follow-ups get their own finished messages.
    before = len([m for m in world.channel_messages() if m.attachments])
    await run_jobs(world)
    await world.discord.wait_for(
        lambda: len([m for m in world.channel_messages() if m.attachments]) >= before + 3,
        timeout=15,
        what="the zoom and the region variations to finish",
    )


async def test_remix_mode_opens_a_prompt_form_and_survives_a_restart(world: World) -> None:
    bot = await world.start_bot()
    assert "Remix mode: **off**" in await slash_prefs(world, "show")
    assert "now **on**" in await slash_prefs(world, "remix", {"state": "on"})
    assert "Remix mode: **on**" in await slash_prefs(world, "show")

    grid = await imagine_to_grid(world, "a quiet harbour")
    form = await open_form(world, grid, "V2")
    fields = modal_fields(form)
    assert list(fields) == ["prompt"]
    assert fields["prompt"].get("value") == "a quiet harbour"
    assert world.piapi.created("variation") == []  # nothing starts before the form is sent

    await submit(world, form, {"prompt": "a quiet harbour at night"})
    await world.discord.wait_for(
        lambda: len(world.piapi.created("variation")) == 1, timeout=10, what="the variation"
    )
    [variation] = world.piapi.created("variation")
    assert variation.json["input"]["prompt"] == "a quiet harbour at night"
    assert variation.json["input"]["index"] == "2"
    v2 = world.discord.messages[grid.id].component(button_ids(grid)["V2"])
    assert v2 is not None and v2["style"] == SUCCESS_STYLE

    # Preferences live in the store: a killed bot comes back with remix still on, and a
    # form opened before the restart is still handled after it (routed by its custom id).
    form = await open_form(world, grid, "V3")
    world.kill(bot)
    await world.start_bot()
    assert "Remix mode: **on**" in await slash_prefs(world, "show")
    await submit(world, form, {"prompt": "a stormy harbour"})
    await world.discord.wait_for(
        lambda: len(world.piapi.created("variation")) == 2, timeout=10, what="the 2nd variation"
    )
    second = world.piapi.created("variation")[1]
    assert second.json["input"]["prompt"] == "a stormy harbour"
    assert second.json["input"]["index"] == "3"
    form = await open_form(world, grid, "V1")
    assert modal_fields(form)["prompt"].get("value") == "a quiet harbour"
    assert "now **off**" in await slash_prefs(world, "remix", {"state": "off"})
    # With remix off, a plain V4 starts at once, no form.
    click = await world.discord.click(grid.id, button_ids(grid)["V4"])
    await world.discord.wait_for(lambda: click.responded, timeout=5)
    assert click.response_type == 7
    await world.discord.wait_for(
        lambda: len(world.piapi.created("variation")) == 3, timeout=10, what="V4's variation"
    )
    assert world.piapi.created("variation")[2].json["input"]["index"] == "4"
