"""`/job show` applies the first delivery's spoiler rule, for the channel it is shown in
(issue 13, item 3): the real bot, the fake Discord (one NSFW channel) and the fake PiAPI."""

from __future__ import annotations

import re

from tests.e2e.conftest import World
from tests.e2e.test_commands import private_text
from tests.e2e.test_community import QUICK, admin, slash
from tests.fakes.discord.models import MessageRecord

PROMPT = "a moon red as blood"  # "blood" is a default word; the server lifts it below


async def _grid(world: World, message_id: int | None, what: str) -> MessageRecord:
    return await world.wait_message(lambda m: m.id == message_id and bool(m.attachments), what=what)


async def _shown_in(world: World, job_id: str, channel: str) -> str:
    """The attachment's file name of `/job show id` posted in `channel`."""
    show = await slash(world, "job show", {"id": job_id}, channel=channel)
    assert show.response_type == 5, show.response_data
    message = await _grid(world, show.original_message_id, f"/job show in {channel}")
    assert not message.ephemeral and len(message.attachments) == 1
    return message.attachments[0].filename


async def test_job_show_spoilers_by_the_channel_it_is_shown_in(world: World) -> None:
    world.piapi.default_profile = QUICK
    await world.start_bot()
    await admin(world, "settings banned remove", {"word": "blood"})
    started = {}
    for channel in ("general", "nsfw-art"):
        record = await slash(world, "imagine", {"prompt": PROMPT}, channel=channel)
        assert record.response_type == 5, record.response_data
        started[channel] = record.original_message_id
    await world.advance_piapi(10, settle=0.5)
    await world.advance_piapi(10, settle=0.5)
    first = {
        c: (await _grid(world, i, f"{c}'s grid")).attachments[0].filename
        for c, i in started.items()
    }
    assert first["general"].startswith("SPOILER_") and not first["nsfw-art"].startswith("SPOILER_")

    history = await world.discord.slash("job history")
    listing = await private_text(world, history, re.escape(PROMPT))
    ids = re.findall(r"`([0-9a-z]{12})`", listing)
    assert len(ids) == 2, listing
    for job_id in ids:
        # Shown in an ordinary channel: spoilered, wherever the job was made (the job from
        # the NSFW channel too); shown in the NSFW channel: not.
        assert _spoiler(await _shown_in(world, job_id, "general")), job_id
        assert not _spoiler(await _shown_in(world, job_id, "nsfw-art")), job_id


async def test_job_show_of_an_unflagged_prompt_is_not_spoilered(world: World) -> None:
    world.piapi.default_profile = QUICK
    await world.start_bot()
    record = await slash(world, "imagine", {"prompt": "a quiet harbour"}, channel="general")
    await world.advance_piapi(10, settle=0.5)
    await world.advance_piapi(10, settle=0.5)
    grid = await _grid(world, record.original_message_id, "the grid")
    assert not _spoiler(grid.attachments[0].filename)
    history = await world.discord.slash("job history")
    listing = await private_text(world, history, "a quiet harbour")
    job_id = re.search(r"`([0-9a-z]{12})`", listing)[1]  # type: ignore[index]
    assert not _spoiler(await _shown_in(world, job_id, "general"))


def _spoiler(filename: str) -> bool:
    return filename.startswith("SPOILER_")
