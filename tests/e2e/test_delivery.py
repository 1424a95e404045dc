"""How the live message reaches Discord when Discord misbehaves: the 15-minute token,
deleted messages, upload limits and rate limits. Also measures edits per job."""

from __future__ import annotations

from itertools import pairwise

from tests.e2e.conftest import World
from tests.e2e.test_imagine import is_final_grid
from tests.fakes.discord.models import MessageRecord

WEBHOOK_ORIGINAL = r"^/webhooks/\d+/[^/]+/messages/@original$"
CHANNEL_MESSAGE = r"^/channels/\d+/messages/\d+$"


async def _run_job(world: World, prompt: str) -> int:
    interaction = await world.discord.slash("imagine", {"prompt": prompt})
    await world.discord.wait_for(lambda: interaction.responded, timeout=5)
    assert interaction.original_message_id is not None
    return interaction.original_message_id


async def _advance_to_end(world: World) -> None:
    for _ in range(12):
        await world.advance_piapi(3, settle=0.3)


async def test_job_outliving_the_token_is_finished_by_channel_edit(world: World) -> None:
    await world.start_bot()
    message_id = await _run_job(world, "a slow sunrise")
    await world.advance_piapi(9, settle=0.5)
    world.discord.advance(901)  # the interaction token is now dead (15 minutes)
    await _advance_to_end(world)
    final = await world.wait_message(
        lambda m: m.id == message_id and is_final_grid(m), what="the final grid by channel edit"
    )
    assert final.attachments
    dead = world.discord.requests_matching("PATCH", WEBHOOK_ORIGINAL, status=401)
    assert dead and all(r.code == 50027 for r in dead)
    by_channel = world.discord.requests_matching("PATCH", CHANNEL_MESSAGE, status=200)
    assert by_channel, "the bot's own channel edit took over"
    assert all(r.auth for r in by_channel)


async def test_deleted_message_gets_a_new_one_for_the_result(world: World) -> None:
    await world.start_bot()
    message_id = await _run_job(world, "a vanishing act")
    await world.advance_piapi(9, settle=0.5)
    await world.discord.delete_message(message_id)
    await _advance_to_end(world)
    final = await world.wait_message(
        lambda m: m.id != message_id and not m.deleted and is_final_grid(m),
        what="a new message with the final grid",
    )
    assert "a vanishing act" in final.content
    assert len([m for m in world.channel_messages() if is_final_grid(m)]) == 1


async def test_result_is_fitted_to_the_upload_limit(world: World) -> None:
    world.piapi.image_size, world.piapi.grain = 1024, True  # ~2.5 MB PNG grids
    limit = 400_000
    world.discord.set_upload_limit(limit)  # what the interaction reports, and what is enforced
    await world.start_bot()
    message_id = await _run_job(world, "a detailed city at night")
    await _advance_to_end(world)
    final = await world.wait_message(
        lambda m: m.id == message_id and is_final_grid(m), what="the fitted final grid"
    )
    [attachment] = final.attachments
    assert 0 < attachment.size <= limit
    assert "[Full-size original](<" + world.piapi.base_url in final.content  # a smaller copy
    assert world.discord.requests_matching("PATCH", WEBHOOK_ORIGINAL, status=413) == []


async def test_upload_refused_as_too_large_is_shrunk_and_retried(world: World) -> None:
    world.piapi.image_size, world.piapi.grain = 1024, True  # ~2.5 MB PNG grids
    await world.start_bot()
    message_id = await _run_job(world, "a stormy sea")  # the interaction reports 10 MiB
    world.discord.set_upload_limit(1_500_000)  # but Discord refuses more than this
    await _advance_to_end(world)
    final = await world.wait_message(
        lambda m: m.id == message_id and is_final_grid(m), what="the final grid after a 413"
    )
    assert world.discord.requests_matching("PATCH", WEBHOOK_ORIGINAL, status=413)
    assert final.attachments[0].size <= 1_500_000


async def test_rate_limited_edits_are_retried_and_delivered(world: World) -> None:
    await world.start_bot()
    message_id = await _run_job(world, "patience")
    world.discord.inject("PATCH", WEBHOOK_ORIGINAL, 429, retry_after=0.3, times=3)
    await _advance_to_end(world)
    await world.wait_message(lambda m: m.id == message_id and is_final_grid(m), what="final grid")
    assert len(world.discord.requests_matching("PATCH", WEBHOOK_ORIGINAL, status=429)) == 3


def _edit_times(world: World, message: MessageRecord) -> list[float]:
    patches = world.discord.requests_matching("PATCH", WEBHOOK_ORIGINAL) + [
        r
        for r in world.discord.requests_matching("PATCH", CHANNEL_MESSAGE)
        if r.path.endswith(f"/{message.id}")
    ]
    return sorted(r.at for r in patches if r.status == 200)


async def test_edits_are_coalesced_to_one_per_visible_change(world: World) -> None:
    await world.start_bot()
    message_id = await _run_job(world, "count the edits")
    await _advance_to_end(world)
    final = await world.wait_message(lambda m: m.id == message_id and is_final_grid(m), what="grid")
    versions = [*final.history, final.payload(world.discord.base_url)]
    contents = [v.get("content") for v in versions]
    # No edit repeats what the message already showed.
    repeats = sum(
        1
        for a, b in pairwise(versions)
        if a.get("content") == b.get("content")
        and a.get("embeds") == b.get("embeds")
        and a.get("components") == b.get("components")
        and not b.get("attachments")
    )
    assert repeats == 0, contents
    times = _edit_times(world, final)
    gaps = [b - a for a, b in pairwise(times)]
    print(f"\nedits for one job: {len(times)}; smallest gap between edits: {min(gaps):.3f}s")
    # Distinct visible states of a job: waiting, 0/25/50/75 %, completed (+ preview changes).
    assert len(times) <= 8


async def test_gateway_reconnects_mid_job_lose_nothing(world: World) -> None:
    await world.start_bot()
    message_id = await _run_job(world, "through the storm")
    await world.advance_piapi(9, settle=0.3)
    await world.discord.send_reconnect()  # op 7: the bot closes and RESUMEs
    await world.advance_piapi(6, settle=0.3)
    await world.discord.drop_gateway()  # the socket dies without a close frame
    await _advance_to_end(world)
    await world.wait_message(lambda m: m.id == message_id and is_final_grid(m), what="final grid")
    # The session still takes commands after both reconnects.
    second = await _run_job(world, "after the storm")
    await _advance_to_end(world)
    await world.wait_message(lambda m: m.id == second and is_final_grid(m), what="second grid")
    assert len(world.piapi.created("imagine")) == 2
    assert world.discord.gateway.identifies == 1  # both reconnects resumed the session
