"""Speed flags in the prompt obey the server's speed rules (issue 13, item 2), end to end:
the real bot against the fake Discord, the fake PiAPI (and Legnext), a real SQLite file.

With relax the default and turbo off, `a cat --turbo` is refused like `mode:turbo`; an
allowed flag becomes the job's one speed (sent as the provider takes it, the prompt
without the flag) and counts in the fast quota; remix forms and /prefs suffix likewise."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.e2e.conftest import World, button_ids, buttons_of, open_world
from tests.e2e.test_commands import DESCRIBE_ROWS, advance_until, png
from tests.e2e.test_community import admin, private_text, slash
from tests.e2e.test_imagine import imagine_to_grid
from tests.fakes.discord.models import MessageRecord

TURBO_OFF = "is not allowed on this server"


async def relax_server(world: World, *, fast: bool) -> None:
    """Relax by default; turbo off, fast on or off."""
    await admin(world, "settings modes", {"default": "relax", "mode": "turbo", "allowed": "off"})
    if not fast:
        await admin(world, "settings modes", {"mode": "fast", "allowed": "off"})


def stored_modes(db: Path) -> dict[str, str | None]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT json_extract(data, '$.operation.prompt'), mode FROM jobs")
        return {str(prompt): mode for prompt, mode in rows}


async def test_a_speed_flag_in_the_prompt_is_judged_like_the_option(
    world: World, tmp_path: Path
) -> None:
    await world.start_bot()
    await relax_server(world, fast=True)
    for options in ({"prompt": "a cat", "mode": "turbo"}, {"prompt": "a cat --turbo"}):
        refused = await slash(world, "imagine", options)
        assert TURBO_OFF in private_text(refused), options
    refused = await slash(world, "imagine", {"prompt": "a cat —turbo"})  # a phone's dash
    assert TURBO_OFF in private_text(refused)
    # Two speeds at once: the member is asked to choose, privately.
    refused = await slash(world, "imagine", {"prompt": "a cat --relax", "mode": "fast"})
    assert "choose one speed" in private_text(refused)
    assert world.piapi.created() == []

    ok = await slash(world, "imagine", {"prompt": "a fast cat --FAST --s 250"})
    assert ok.response_type == 5, ok.response_data
    await world.discord.wait_for(lambda: len(world.piapi.created()) == 1, timeout=10)
    [create] = world.piapi.created()
    sent = create.json["input"]
    # The flag became the job's speed, sent as PiAPI takes it; the prompt keeps no flag.
    assert sent["process_mode"] == "fast", sent
    assert sent["prompt"] == "a fast cat --s 250", sent
    assert stored_modes(tmp_path / "bot.db")["a fast cat --s 250"] == "fast"


async def test_a_fast_flag_counts_in_the_fast_quota(world: World) -> None:
    await world.start_bot()
    await relax_server(world, fast=True)
    await admin(world, "settings limits", {"fast_per_day": 1})
    first = await slash(world, "imagine", {"prompt": "one --fast"})
    assert first.response_type == 5, first.response_data
    await world.discord.wait_for(lambda: len(world.piapi.created()) == 1, timeout=10)
    refused = await slash(world, "imagine", {"prompt": "two --fast"})
    assert "fast or turbo job(s) a day" in private_text(refused)
    # Relax (the default here) is still open.
    ok = await slash(world, "imagine", {"prompt": "three"})
    assert ok.response_type == 5, ok.response_data
    await world.discord.wait_for(lambda: len(world.piapi.created()) == 2, timeout=10)
    assert world.piapi.created()[1].json["input"]["process_mode"] == "relax"
    usage = private_text(await slash(world, "usage me"))
    assert "Today: 2 job(s), 0 completed, 1 fast/turbo" in usage, usage


async def test_a_remix_form_and_the_suffix_obey_the_speed_rules(world: World) -> None:
    await world.start_bot()
    await relax_server(world, fast=False)
    assert "on" in private_text(await slash(world, "prefs remix", {"state": "on"}))
    grid = await imagine_to_grid(world, "a quiet harbour")
    assert world.piapi.created()[0].json["input"]["process_mode"] == "relax"
    form = await world.discord.click(grid.id, button_ids(grid)["V1"])
    await world.discord.wait_for(lambda: form.responded, timeout=5)
    assert form.response_type == 9  # the remix form
    submitted = await world.discord.submit_modal(form, {"prompt": "a harbour at night --fast"})
    await world.discord.wait_for(lambda: submitted.responded, timeout=5)
    assert "**fast** speed is not allowed" in private_text(submitted)
    await world.advance_piapi(1, settle=0.3)
    assert world.piapi.created("variation") == []
    # A suffix that would make every job turbo is refused when saved.
    refused = await slash(world, "prefs suffix", {"text": "--s 250 --turbo"})
    assert TURBO_OFF in private_text(refused)


async def test_an_allowed_speed_in_the_suffix_is_the_jobs_speed(world: World) -> None:
    await world.start_bot()
    await relax_server(world, fast=True)
    saved = await slash(world, "prefs suffix", {"text": "--fast --s 50"})
    assert "now end with" in private_text(saved)
    ok = await slash(world, "imagine", {"prompt": "a dog"})
    assert ok.response_type == 5, ok.response_data
    await world.discord.wait_for(lambda: len(world.piapi.created()) == 1, timeout=10)
    sent = world.piapi.created()[0].json["input"]
    assert (sent["prompt"], sent["process_mode"]) == ("a dog --s 50", "fast"), sent
    # The prompt's own flag beats the suffix's, as at Midjourney.
    ok = await slash(world, "imagine", {"prompt": "a slow dog --relax"})
    await world.discord.wait_for(lambda: len(world.piapi.created()) == 2, timeout=10)
    sent = world.piapi.created()[1].json["input"]
    assert (sent["prompt"], sent["process_mode"]) == ("a slow dog --s 50", "relax"), sent


async def test_legnext_gets_no_forbidden_flag_in_its_text(tmp_path: Path) -> None:
    async with open_world(tmp_path, "legnext") as world:
        await world.start_bot()
        await relax_server(world, fast=False)
        refused = await slash(world, "imagine", {"prompt": "a cat --turbo"})
        assert TURBO_OFF in private_text(refused)
        ok = await slash(world, "imagine", {"prompt": "a cat"})
        assert ok.response_type == 5, ok.response_data
        await world.discord.wait_for(lambda: len(world.fake.created()) == 1, timeout=10)
        [create] = world.fake.created()
        assert create.body["text"] == "a cat --relax", create.body


async def test_describe_its_picks_and_blend_run_at_the_decided_speed(world: World) -> None:
    """Jobs without a typed prompt carry the decided speed too: on a relax-only server,
    /describe, a describe pick and /blend ask the provider for relax (before, they sent
    no speed at all and ran at the account's default, uncounted)."""
    await world.start_bot()
    await relax_server(world, fast=False)
    described = await world.discord.slash("describe", attachments={"image": png("speedy")})
    await world.discord.wait_for(lambda: world.piapi.created("describe"), timeout=10)
    assert world.piapi.created("describe")[0].json["input"]["process_mode"] == "relax"

    def finished() -> MessageRecord | None:
        return next((m for m in world.channel_messages() if buttons_of(m) == DESCRIBE_ROWS), None)

    await advance_until(world, lambda: finished() is not None, what="the describe result")
    message = finished()
    assert message is not None and described.responded
    click = await world.discord.click(message.id, button_ids(message)["1"])
    await world.discord.wait_for(lambda: click.responded, timeout=10)
    await world.discord.wait_for(lambda: world.piapi.created("imagine"), timeout=10)
    assert world.piapi.created("imagine")[0].json["input"]["process_mode"] == "relax"

    blend = await world.discord.slash(
        "blend", attachments={"image1": png("left"), "image2": png("right")}
    )
    await world.discord.wait_for(lambda: world.piapi.created("blend"), timeout=10)
    assert blend.responded
    assert world.piapi.created("blend")[0].json["input"]["process_mode"] == "relax"
