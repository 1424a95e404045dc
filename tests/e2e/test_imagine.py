"""/imagine and its buttons, end to end: the real bot process, the fake Discord, the fake PiAPI."""

from __future__ import annotations

import re

from tests.e2e.conftest import BOT_TOKEN, PIAPI_KEY, World, button_ids, buttons_of
from tests.fakes.discord.models import MessageRecord

# Midjourney's two rows, and the bot's own 🌱 Seed below them (PiAPI serves seed tasks).
GRID_ROWS = [["U1", "U2", "U3", "U4", "🔄"], ["V1", "V2", "V3", "V4"], ["Seed"]]


def is_final_grid(m: MessageRecord) -> bool:
    return bool(m.attachments) and buttons_of(m) == GRID_ROWS


async def imagine_to_grid(world: World, prompt: str, *, user: str = "tester") -> MessageRecord:
    interaction = await world.discord.slash("imagine", {"prompt": prompt}, user=user)
    await world.discord.wait_for(
        lambda: interaction.responded, timeout=5, what="the acknowledgement"
    )
    assert interaction.response_type == 5  # deferred: public "thinking" message at once
    for _ in range(12):
        await world.advance_piapi(3, settle=0.3)
    return await world.wait_message(
        lambda m: m.id == interaction.original_message_id and is_final_grid(m),
        what="the final grid",
    )


async def test_imagine_shows_progress_then_the_grid_with_buttons(world: World) -> None:
    await world.start_bot()
    interaction = await world.discord.slash(
        "imagine", {"prompt": "a lighthouse at dusk", "aspect_ratio": "16:9", "mode": "fast"}
    )
    await world.discord.wait_for(
        lambda: interaction.responded, timeout=5, what="the acknowledgement"
    )
    assert interaction.response_type == 5
    message_id = interaction.original_message_id
    assert message_id is not None

    seen_percentages: set[int] = set()
    saw_preview = False
    for _ in range(12):
        await world.advance_piapi(3, settle=0.5)
        message = world.discord.messages[message_id]
        for version in [*message.history, message.payload(world.discord.base_url)]:
            seen_percentages |= {
                int(p) for p in re.findall(r"(\d{1,3})%", version.get("content") or "")
            }
            for embed in version.get("embeds") or []:
                if (embed.get("image") or {}).get("url", "").startswith(world.piapi.base_url):
                    saw_preview = True

    final = await world.wait_message(
        lambda m: m.id == message_id and is_final_grid(m), what="the final grid"
    )
    progress = seen_percentages - {0, 100}
    assert len(progress) >= 2, seen_percentages
    assert saw_preview, "an intermediate image was shown while running"
    assert "a lighthouse at dusk" in final.content
    [attachment] = final.attachments
    assert attachment.filename.endswith((".png", ".jpg", ".webp"))
    assert attachment.data[:8] == b"\x89PNG\r\n\x1a\n" or attachment.size > 0
    assert all(len(cid) <= 100 for cid in final.custom_ids)
    [create] = world.piapi.created("imagine")
    assert create.json["input"]["aspect_ratio"] == "16:9"
    assert create.json["input"]["process_mode"] == "fast"

    # No secret in what Discord received or in the bot's log.
    sent = repr([r.body for r in world.discord.requests]) + world.bots[0].log()
    assert BOT_TOKEN not in sent and PIAPI_KEY not in sent


async def test_u2_starts_an_upscale_with_its_own_message_and_buttons(world: World) -> None:
    await world.start_bot()
    grid = await imagine_to_grid(world, "a red fox in snow")
    before = {m.id for m in world.channel_messages()}

    click = await world.discord.click(grid.id, button_ids(grid)["U2"])
    await world.discord.wait_for(
        lambda: click.responded, timeout=5, what="the click acknowledgement"
    )
    # Midjourney turns the used button blue.
    refreshed = world.discord.messages[grid.id]
    u2 = refreshed.component(button_ids(grid)["U2"])
    assert u2 is not None and u2["style"] == 1

    for _ in range(12):
        await world.advance_piapi(3, settle=0.3)
    upscaled = await world.wait_message(
        lambda m: (
            m.id not in before and bool(m.attachments) and "Upscale (Subtle)" in button_ids(m)
        ),
        what="the upscale's own final message",
    )
    labels = button_ids(upscaled)
    for expected in (
        "Upscale (Subtle)",
        "Upscale (Creative)",
        "Vary (Subtle)",
        "Vary (Strong)",
        "Zoom Out 2x",
        "Zoom Out 1.5x",
        "⬅️",
        "➡️",
        "⬆️",
        "⬇️",
    ):
        assert expected in labels, (expected, labels)
    [upscale] = world.piapi.created("upscale")
    [imagine] = world.piapi.created("imagine")
    assert upscale.json["input"] == {"origin_task_id": imagine.task_id, "index": "2"}


async def test_double_click_starts_one_job(world: World) -> None:
    await world.start_bot()
    grid = await imagine_to_grid(world, "two clicks")
    v1 = button_ids(grid)["V1"]
    first = await world.discord.click(grid.id, v1)
    await world.discord.wait_for(lambda: first.responded, timeout=5)
    second = await world.discord.click(grid.id, v1)
    await world.discord.wait_for(lambda: second.responded, timeout=5)
    await world.advance_piapi(1, settle=1.0)
    assert len(world.piapi.created("variation")) == 1


async def test_bad_options_get_an_ephemeral_answer_and_no_provider_call(world: World) -> None:
    await world.start_bot(MJ_MAX_PROMPT_LENGTH="1000")
    cases = [
        {"prompt": "   "},
        {"prompt": "x" * 1001},
        {"prompt": "a cat", "aspect_ratio": "wide"},
        {"prompt": "a cat", "aspect_ratio": "1:0"},
    ]
    for options in cases:
        interaction = await world.discord.slash("imagine", options)
        await world.discord.wait_for(lambda i=interaction: i.responded, timeout=5)
        assert interaction.response_type == 4, options
        assert interaction.response_data is not None
        assert interaction.response_data.get("flags", 0) & 64, options  # ephemeral
        assert interaction.response_data.get("content"), options
    await world.advance_piapi(1, settle=0.3)
    assert world.piapi.created() == []


async def test_banned_prompt_shows_the_reason_and_no_buttons(world: World) -> None:
    await world.start_bot()
    interaction = await world.discord.slash("imagine", {"prompt": "a banned thing"})
    await world.discord.wait_for(lambda: interaction.responded, timeout=5)
    for _ in range(3):
        await world.advance_piapi(3, settle=0.3)
    final = await world.wait_message(
        lambda m: (
            m.id == interaction.original_message_id
            and "banned" in m.content.lower()
            and "❌" in m.content
        ),
        what="the failure message",
    )
    assert final.components == [] or buttons_of(final) == []
    assert "Banned prompt detected" in final.content


async def test_killed_bot_restarts_and_finishes_the_same_message(world: World) -> None:
    bot = await world.start_bot()
    interaction = await world.discord.slash("imagine", {"prompt": "a phoenix rising"})
    await world.discord.wait_for(lambda: interaction.responded, timeout=5)
    await world.discord.wait_for(lambda: len(world.piapi.created()) == 1, timeout=10)
    await world.advance_piapi(9, settle=0.5)
    world.kill(bot)

    for _ in range(10):
        await world.advance_piapi(3)
    await world.start_bot()
    final = await world.wait_message(
        lambda m: m.id == interaction.original_message_id and is_final_grid(m),
        limit_s=20,
        what="the final grid on the original message after the restart",
    )
    assert final.attachments
    assert len(world.piapi.created()) == 1
    finals = [m for m in world.channel_messages() if is_final_grid(m)]
    assert len(finals) == 1


async def test_zoom_out_and_pan_on_an_upscale_send_the_right_follow_ups(world: World) -> None:
    await world.start_bot()
    grid = await imagine_to_grid(world, "a mountain village")
    before = {m.id for m in world.channel_messages()}
    await world.discord.click(grid.id, button_ids(grid)["U3"])
    for _ in range(12):
        await world.advance_piapi(3, settle=0.2)
    upscaled = await world.wait_message(
        lambda m: m.id not in before and bool(m.attachments) and "Zoom Out 2x" in button_ids(m),
        what="the upscale's final message",
    )
    [upscale] = world.piapi.created("upscale")

    zoom = await world.discord.click(upscaled.id, button_ids(upscaled)["Zoom Out 2x"])
    await world.discord.wait_for(lambda: zoom.responded, timeout=5)
    pan = await world.discord.click(upscaled.id, button_ids(upscaled)["⬅️"])
    await world.discord.wait_for(lambda: pan.responded, timeout=5)
    await world.discord.wait_for(
        lambda: world.piapi.created("outpaint") and world.piapi.created("pan"), timeout=10
    )
    [outpaint] = world.piapi.created("outpaint")
    [pan_request] = world.piapi.created("pan")
    assert outpaint.json["input"]["origin_task_id"] == upscale.task_id
    assert outpaint.json["input"]["zoom_ratio"] == "2"
    assert pan_request.json["input"]["origin_task_id"] == upscale.task_id
    assert pan_request.json["input"]["direction"] == "left"
    assert pan_request.json["input"]["prompt"] == "a mountain village"


async def test_seed_button_answers_with_the_jobs_seed(world: World) -> None:
    await world.start_bot()
    grid = await imagine_to_grid(world, "a seeded garden")
    click = await world.discord.click(grid.id, button_ids(grid)["Seed"])
    await world.discord.wait_for(lambda: click.responded, timeout=5)
    for _ in range(3):
        await world.advance_piapi(1, settle=0.2)
    seeded = await world.wait_message(
        lambda m: "Seed:" in m.content and m.id != grid.id, what="the seed message"
    )
    [seed_task] = world.piapi.created("seed")
    [imagine] = world.piapi.created("imagine")
    assert seed_task.json["input"] == {"origin_task_id": imagine.task_id}
    expected = world.piapi.task_json(seed_task.task_id)["output"]["seed"]
    assert str(expected) in seeded.content


async def test_follow_ups_past_the_providers_window_are_disabled(world: World) -> None:
    await world.start_bot(FOLLOW_UP_WINDOW_S="1")  # PiAPI's is about 3 hours
    interaction = await world.discord.slash("imagine", {"prompt": "an old photograph"})
    await world.discord.wait_for(lambda: interaction.responded, timeout=5)
    for _ in range(12):
        await world.advance_piapi(3, settle=0.2)
    final = await world.wait_message(
        lambda m: m.id == interaction.original_message_id and bool(m.attachments),
        what="the final grid",
    )
    buttons = [b for row in final.components for b in row["components"]]
    assert buttons and all(b.get("disabled") for b in buttons)
