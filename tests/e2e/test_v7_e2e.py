"""Midjourney V7 prompting end to end (issue 19 items 1, 3, 6): the real bot against the
fake Discord and the fake Legnext.

- a V6-only parameter refused on V7 (the default) and a V7-only one refused on V6, each
  privately and before anything is posted or sent;
- draft mode: /imagine draft:True sends --draft; the draft grid offers Enhance per image
  (and U2, free, offers it too), which sends /v1/enhance with the draft job's id and the
  image's index;
- presets: an admin saves a server preset, a member uses it with /imagine preset:…, and
  presets go through the same prompt check as typed parameters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.conftest import World, button_ids, buttons_of, open_world
from tests.e2e.test_backends import click_for_message, run
from tests.e2e.test_community import private_text, slash
from tests.fakes.images import single_png


@pytest.fixture
async def legnext(tmp_path: Path) -> AsyncIterator[World]:
    async with open_world(tmp_path, "legnext") as world:
        await world.start_bot()
        yield world


def texts(world: World) -> list[str]:
    return [str(r.body.get("text")) for r in world.fake.created("diffusion")]


async def test_v6_only_refused_on_v7_and_the_reverse(legnext: World) -> None:
    world = legnext
    # --cref on V7 (the default): the member learns to use --oref instead.
    refused = await slash(
        world, "imagine", {"prompt": "a knight --cref https://example.com/k.png --cw 50"}
    )
    text = private_text(refused)
    assert "--cref" in text and "V6" in text and "--oref" in text and "default" in text, text
    # The reverse: an omni-reference (V7 only) attached to a --v 6.1 prompt.
    refused = await world.discord.slash(
        "imagine",
        {"prompt": "a knight --v 6.1"},
        attachments={"omni_reference": ("knight.png", single_png("k", (64, 64)))},
    )
    await world.discord.wait_for(lambda: refused.responded, timeout=10, what="the refusal")
    text = private_text(refused)
    assert "--oref" in text and "only with Midjourney V7" in text and "V6.1" in text, text
    # A V7 draft on --v 6 too.
    text = private_text(await slash(world, "imagine", {"prompt": "a knight --v 6", "draft": True}))
    assert "--draft" in text and "V7" in text, text
    # Nothing was sent to the provider, and no reference message was posted.
    assert world.fake.created() == []
    assert not any("Reference images" in (m.content or "") for m in world.channel_messages())


async def test_draft_grid_then_enhance_on_legnext(legnext: World) -> None:
    world = legnext
    interaction = await slash(world, "imagine", {"prompt": "a lighthouse", "draft": True})
    assert interaction.response_type == 5
    await run(world)
    grid = await world.wait_message(
        lambda m: m.id == interaction.original_message_id and "U2" in button_ids(m),
        what="the draft grid",
    )
    [diffusion] = world.fake.created("diffusion")
    assert diffusion.body["text"].startswith("a lighthouse --draft"), diffusion.body
    draft_job = str(diffusion.task_id)

    # The draft grid offers Enhance per image, in its own row.
    enhance_row = ["Enhance 1", "Enhance 2", "Enhance 3", "Enhance 4"]
    assert enhance_row in buttons_of(grid), buttons_of(grid)
    # Enhance re-renders the draft at full quality: a new job with its own follow-ups.
    enhanced = await click_for_message(world, grid, "Enhance 3", has="U1")
    [enhance] = world.fake.created("enhance")
    assert enhance.body == {"jobId": draft_job, "imageNo": 2}
    assert enhanced.attachments
    # An enhanced image is no draft any more: no Enhance under it.
    assert not any(label.startswith("Enhance") for label in button_ids(enhanced))

    # The same from a picked image: U2 is the bot's own (free), then ✨ Enhance.
    creates = len(world.fake.created())
    single = await click_for_message(world, grid, "U2", has="Enhance")
    assert len(world.fake.created()) == creates
    await click_for_message(world, single, "Enhance", has="U1")
    assert world.fake.created("enhance")[1].body == {"jobId": draft_job, "imageNo": 1}


async def test_server_preset_used_by_a_member(legnext: World) -> None:
    world = legnext
    # Members cannot save server presets; admins can. Presets pass the prompt check first.
    refused = await slash(
        world,
        "prefs preset save",
        {"name": "cine", "value": "--ar 21:9 --stylize 250", "server": True},
        user="tester",
    )
    assert "Manage Server" in private_text(refused)
    bad = await slash(
        world,
        "prefs preset save",
        {"name": "cine", "value": "--cref https://example.com/a.png"},
        user="admin",
    )
    assert "--cref" in private_text(bad) and "V6" in private_text(bad)
    saved = await slash(
        world,
        "prefs preset save",
        {"name": "Cine", "value": "--ar 21:9 --stylize 250", "server": True},
        user="admin",
    )
    assert "Server preset **cine** saved" in private_text(saved)

    listed = await slash(world, "prefs preset list", user="tester")
    assert "cine" in private_text(listed) and "server" in private_text(listed)
    unknown = await slash(world, "imagine", {"prompt": "a castle", "preset": "nope"})
    assert "no preset named" in private_text(unknown) and "`cine`" in private_text(unknown)

    used = await slash(world, "imagine", {"prompt": "a castle", "preset": "cine"}, user="tester")
    assert used.response_type == 5
    await run(world, rounds=4)
    await world.discord.wait_for(lambda: texts(world) != [], timeout=10, what="the create")
    assert texts(world) == ["a castle --ar 21:9 --stylize 250 --fast"]

    # A member's own preset of the same name wins over the server's.
    mine = await slash(world, "prefs preset save", {"name": "cine", "value": "--s 50"})
    assert "Preset **cine** saved" in private_text(mine)
    await slash(world, "imagine", {"prompt": "a tower", "preset": "cine"})
    await run(world, rounds=2)
    await world.discord.wait_for(lambda: len(texts(world)) == 2, timeout=10, what="create 2")
    assert texts(world)[1] == "a tower --s 50 --fast"
