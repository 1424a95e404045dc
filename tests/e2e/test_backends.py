"""Every backend end to end: the real bot against the fake Discord and that backend's fake.

For each: /imagine → live progress → the final grid with its buttons → U1 → an upscale →
one follow-up that needs input, checked field by field where it lands. Vtrix and Legnext
address single images (jobId + imageNo), so U1 is done by the bot itself and Edit is
offered; midjourney-proxy goes through its two-step MODAL flow for Custom Zoom. A backend
without an operation does not offer its command or button.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.providers.vtrix import describe_vtrix_error
from tests.e2e.conftest import World, button_ids, buttons_of, open_world
from tests.e2e.test_modals import modal_fields, open_form, submit
from tests.fakes.discord import DEFAULT_GUILD_ID
from tests.fakes.discord.models import MessageRecord

PICK_ROW = ["U1", "U2", "U3", "U4"]
VARY_ROW = ["V1", "V2", "V3", "V4"]
EDIT_ROW = ["1", "2", "3", "4"]  # ✏️ 1 … ✏️ 4
GRID_ROWS = {
    "legnext": [[*PICK_ROW, "🔄"], VARY_ROW, EDIT_ROW, ["Seed"]],
    "vtrix": [PICK_ROW, VARY_ROW, EDIT_ROW],  # no reroll or seed model on Vtrix
    "mjproxy": [[*PICK_ROW, "🔄"], VARY_ROW, ["Seed"]],
}
EDIT_CODES = [
    4007001,
    4007002,
    4007003,
    4007004,
    4007005,
    4007006,
    4007007,
    4007008,
    4007098,
    4007099,
]


@pytest.fixture
async def legnext(tmp_path: Path) -> AsyncIterator[World]:
    async with open_world(tmp_path, "legnext") as world:
        yield world


@pytest.fixture
async def vtrix(tmp_path: Path) -> AsyncIterator[World]:
    async with open_world(tmp_path, "vtrix") as world:
        yield world


@pytest.fixture
async def mjproxy(tmp_path: Path) -> AsyncIterator[World]:
    async with open_world(tmp_path, "mjproxy") as world:
        yield world


def versions(world: World, message_id: int) -> list[dict[str, Any]]:
    message = world.discord.messages[message_id]
    return [*message.history, message.payload(world.discord.base_url)]


async def run(world: World, rounds: int = 12, step: float = 3.0) -> None:
    for _ in range(rounds):
        await world.advance_piapi(step, settle=0.3)


async def imagine_live(world: World, backend: str, prompt: str) -> MessageRecord:
    """/imagine, watched as it fills in: at least two progress figures, then the grid."""
    interaction = await world.discord.slash("imagine", {"prompt": prompt})
    await world.discord.wait_for(lambda: interaction.responded, timeout=5, what="the ack")
    assert interaction.response_type == 5
    message_id = interaction.original_message_id
    assert message_id is not None
    await run(world)
    grid = await world.wait_message(
        lambda m: m.id == message_id and bool(m.attachments) and len(m.components) > 1,
        what=f"the {backend} grid",
    )
    seen = {
        int(p)
        for version in versions(world, message_id)
        for p in re.findall(r"(\d{1,3})%", version.get("content") or "")
    }
    assert len(seen - {0, 100}) >= 2, seen
    assert buttons_of(grid) == GRID_ROWS[backend], buttons_of(grid)
    assert prompt in grid.content
    return grid


async def click_for_message(
    world: World, message: MessageRecord, label: str, *, has: str
) -> MessageRecord:
    """Click `label`; the follow-up's own finished message (one with a `has` button)."""
    before = {m.id for m in world.channel_messages()}
    click = await world.discord.click(message.id, button_ids(message)[label])
    await world.discord.wait_for(lambda: click.responded, timeout=5, what=label)
    assert click.response_type == 7, (click.response_type, click.response_data)
    await run(world)
    return await world.wait_message(
        lambda m: m.id not in before and bool(m.attachments) and has in button_ids(m),
        what=f"the message of {label}",
    )


def edit_params(world: World, backend: str, record: Any) -> dict[str, Any]:
    body = record.body
    if backend == "vtrix":
        assert body["model"] == "midjourney_edit"
        return dict(body["input"][0]["params"])
    return dict(body)


def upstream_id(world: World, record: Any) -> str:
    """The upstream Midjourney job id of the task a create record made."""
    return str(world.fake.tasks[record.task_id].job_id)


@pytest.mark.parametrize("backend", ["legnext", "vtrix"])
async def test_imagine_pick_upscale_and_edit(backend: str, tmp_path: Path) -> None:
    async with open_world(tmp_path, backend) as world:
        await world.start_bot()
        grid = await imagine_live(world, backend, "a lighthouse on a rock")
        [imagine] = world.fake.created("diffusion")

        # U1: the bot shows tile 1 itself; nothing is sent (or paid for).
        creates = len(world.fake.created())
        single = await click_for_message(world, grid, "U1", has="Upscale (Subtle)")
        assert len(world.fake.created()) == creates
        assert {"Vary (Subtle)", "Vary (Strong)", "Vary (Region)", "Edit", "Custom Zoom"} <= set(
            button_ids(single)
        )

        upscaled = await click_for_message(world, single, "Upscale (Subtle)", has="Edit")
        [upscale] = world.fake.created("upscale")
        params = upscale.body if backend == "legnext" else upscale.body["input"][0]["params"]
        assert params["jobId"] == upstream_id(world, imagine)
        assert (params["imageNo"], params["type"]) == (0, 0)
        assert "Upscale (Subtle)" not in button_ids(upscaled)

        # Edit through its form: each field lands where Midjourney's editor expects it.
        form = await open_form(world, upscaled, "Edit")
        fields = modal_fields(form)
        assert fields["prompt"].get("value") == "a lighthouse on a rock"
        assert {"canvas", "position", "scale", "mask_url"} <= fields.keys()
        done = await submit(
            world,
            form,
            {
                "prompt": "the lighthouse at night",
                "canvas": "16:9",
                "position": ["left"],
                "scale": "0.5",
            },
        )
        assert done.response_type == 7
        await world.discord.wait_for(lambda: world.fake.created("edit"), timeout=10)
        [edit] = world.fake.created("edit")
        sent = edit_params(world, backend, edit)
        assert sent["jobId"] == upstream_id(world, upscale)
        assert sent["imageNo"] == 0
        assert sent["canvas"] == {"width": 1024, "height": 576}
        assert sent["imgPos"] == {"width": 288, "height": 288, "x": 0, "y": 144}
        assert sent["remixPrompt"] == "the lighthouse at night"
        await run(world)
        edited = await world.wait_message(
            lambda m: (
                "the lighthouse at night" in m.content
                and bool(m.attachments)
                and "U1" in button_ids(m)
            ),
            what="the edit's grid",
        )
        # ✏️ 2 on the edit's grid edits its tile 2 directly (jobId + imageNo 1).
        form = await open_form(world, edited, "2")
        await submit(world, form, {"prompt": "tile two at dawn"})
        await world.discord.wait_for(lambda: len(world.fake.created("edit")) == 2, timeout=10)
        sent = edit_params(world, backend, world.fake.created("edit")[1])
        assert (sent["jobId"], sent["imageNo"]) == (upstream_id(world, edit), 1)
        assert sent["canvas"] == {"width": 1024, "height": 1024}  # the image's own shape

        # /edit does the same from a command; a mistake is explained and sends nothing.
        job_id = button_ids(edited)["U1"].rsplit(":", 1)[1]
        bad = await world.discord.slash(
            "edit", {"job": job_id, "image": 3, "prompt": "x", "scale": "7"}
        )
        await world.discord.wait_for(lambda: bad.responded, timeout=5)
        assert "scale" in str((bad.response_data or {}).get("content", ""))
        ok = await world.discord.slash(
            "edit",
            {"job": job_id, "image": 3, "prompt": "tile three", "canvas": "2:3", "position": "top"},
        )
        await world.discord.wait_for(lambda: len(world.fake.created("edit")) == 3, timeout=10)
        assert ok.response_type == 5
        sent = edit_params(world, backend, world.fake.created("edit")[2])
        assert (sent["jobId"], sent["imageNo"]) == (upstream_id(world, edit), 2)
        assert sent["canvas"] == {"width": 683, "height": 1024}
        assert sent["imgPos"] == {"width": 683, "height": 683, "x": 0, "y": 0}
        assert sent["remixPrompt"] == "tile three"

        # What Vtrix cannot do is not offered: no /describe, /blend, 🔄 or 🌱.
        commands = {
            n: world.discord.find_command(n, DEFAULT_GUILD_ID)
            for n in ("describe", "blend", "edit")
        }
        assert commands["edit"] is not None
        if backend == "vtrix":
            assert commands["describe"] is None and commands["blend"] is None
        else:
            assert commands["describe"] is not None


async def test_each_vtrix_edit_error_code_reads_as_its_message(vtrix: World) -> None:
    world = vtrix
    await world.start_bot()
    # Ten edits at once: lift the per-member limit of jobs at once (3 by default).
    limits = await world.discord.slash("settings limits", {"at_once": 0}, user="admin")
    await world.discord.wait_for(lambda: limits.responded, timeout=5)
    grid = await imagine_live(world, "vtrix", "a paper crane")
    single = await click_for_message(world, grid, "U2", has="Edit")
    for code in EDIT_CODES:
        world.fake.fail_with_code_for_prompt[f"case{code}"] = code
    for code in EDIT_CODES:
        form = await open_form(world, single, "Edit")
        await submit(world, form, {"prompt": f"a crane case{code}", "canvas": "1:1"})
    # Three run at once (MJ_MAX_CONCURRENT_JOBS); the rest wait their turn in the bot.
    for _ in range(60):
        await world.advance_piapi(3, settle=0.3)
        if (
            len(world.fake.created("edit")) == len(EDIT_CODES)
            and not world.fake.running_task_count()
        ):
            break
    assert len(world.fake.created("edit")) == len(EDIT_CODES)
    for code in EDIT_CODES:
        expected = describe_vtrix_error(code, "").message
        message = await world.wait_message(
            lambda m, code=code: f"case{code}" in m.content and "❌" in m.content,
            what=f"the failure of code {code}",
        )
        shown = message.content.replace("\\", "")  # markdown escapes aside
        assert expected in shown, (code, expected, message.content)


async def test_mjproxy_upscale_and_custom_zoom_through_the_modal_step(mjproxy: World) -> None:
    world = mjproxy
    await world.start_bot()
    grid = await imagine_live(world, "mjproxy", "a glass whale")
    upscaled = await click_for_message(world, grid, "U1", has="Custom Zoom")
    [upscale] = world.fake.created("UPSCALE")
    assert upscale.body["customId"].startswith("MJ::JOB::upsample::1::")

    form = await open_form(world, upscaled, "Custom Zoom")
    await submit(world, form, {"prompt": "a glass whale in the sky", "zoom_ratio": "1.7"})
    await world.discord.wait_for(lambda: world.fake.modals(), timeout=10, what="the modal step")
    [opened] = world.fake.created("MODAL")
    assert opened.body["customId"].startswith("MJ::CustomZoom::")
    assert opened.body["taskId"] == upscale.task_id
    [modal] = world.fake.modals()
    assert modal.body["taskId"] == opened.task_id
    assert modal.body["prompt"].endswith("--zoom 1.7")
    assert "a glass whale in the sky" in modal.body["prompt"]
    await run(world)
    await world.wait_message(
        lambda m: "a glass whale in the sky" in m.content and bool(m.attachments),
        what="the zoomed grid",
    )
    # The proxy does not run Midjourney's editor on its own jobs: no ✏️. /edit is there
    # for an uploaded image only (/mj/submit/edits, issue 19).
    edit = world.discord.find_command("edit", DEFAULT_GUILD_ID)
    assert edit is not None and "upload" in {o["name"] for o in edit.get("options", [])}
    assert not any(label in EDIT_ROW for row in buttons_of(grid) for label in row)


async def test_piapi_offers_no_edit(world: World) -> None:
    await world.start_bot()
    assert world.discord.find_command("edit", DEFAULT_GUILD_ID) is None
    assert world.discord.find_command("describe", DEFAULT_GUILD_ID) is not None
