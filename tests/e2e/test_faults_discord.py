"""Discord faults end to end, beyond tests/e2e/test_delivery.py (which covers 429 on edits,
the expired token 50027, the deleted message 10008, 40005/413 uploads and RESUME after op 7
and a dropped socket): 5xx on edits and on the final upload, a 429 on the final upload, an
injected 10008 on the token edit, and INVALID_SESSION mid-job. Every job still ends visibly,
with one final message and one create at the provider."""

from __future__ import annotations

import contextlib

from tests.e2e.conftest import World
from tests.e2e.test_faults_provider import QUICK, drive_to_end
from tests.e2e.test_kill_points import creates_for, is_final_grid, poll_until
from tests.fakes.discord.models import InteractionRecord

WEBHOOK_ORIGINAL = r"^/webhooks/\d+/[^/]+/messages/@original$"


async def start_job(world: World, prompt: str) -> InteractionRecord:
    interaction = await world.discord.slash("imagine", {"prompt": prompt})
    await world.discord.wait_for(lambda: interaction.responded, timeout=10, what="the ack")
    await poll_until(lambda: creates_for(world, prompt), what="the create", world=world)
    return interaction


def finals_for(world: World, prompt: str) -> int:
    return sum(1 for m in world.channel_messages() if prompt in m.content and is_final_grid(m))


async def test_500s_on_progress_and_final_edits_still_deliver_once(world: World) -> None:
    world.piapi.default_profile = QUICK
    await world.start_bot()
    prompt = "through discord's bad minute"
    # A 500 on a progress edit (discord.py retries it), then a 502 on the final one.
    first = world.discord.inject("PATCH", WEBHOOK_ORIGINAL, 500, times=1)
    interaction = await start_job(world, prompt)
    world.clock.advance(2)
    await world.discord.wait_for(lambda: first.hits >= 1, timeout=10, what="the 500")
    world.discord.inject("PATCH", WEBHOOK_ORIGINAL, 502, times=1)
    final = await drive_to_end(world, interaction, limit_s=30)
    assert is_final_grid(final)
    assert finals_for(world, prompt) == 1
    assert world.discord.requests_matching("PATCH", WEBHOOK_ORIGINAL, status=500)
    assert world.discord.requests_matching("PATCH", WEBHOOK_ORIGINAL, status=502)
    assert len(creates_for(world, prompt)) == 1


async def test_429_on_the_final_upload_is_waited_out(world: World) -> None:
    world.piapi.default_profile = QUICK
    await world.start_bot()
    prompt = "a rate limited upload"
    interaction = await start_job(world, prompt)
    # Every edit from here is refused twice with a real Retry-After, the final one included.
    world.discord.inject("PATCH", WEBHOOK_ORIGINAL, 429, retry_after=0.5, times=4)
    final = await drive_to_end(world, interaction, limit_s=30)
    assert is_final_grid(final) and final.attachments
    assert len(world.discord.requests_matching("PATCH", WEBHOOK_ORIGINAL, status=429)) == 4
    assert finals_for(world, prompt) == 1


async def test_unknown_message_on_the_token_edit_gets_a_new_message(world: World) -> None:
    """Discord answers 10008 for the command's own message (deleted behind the bot's back
    without a MESSAGE_DELETE event): the result still arrives, in one new message."""
    world.piapi.default_profile = QUICK
    await world.start_bot()
    prompt = "a message lost in the void"
    interaction = await start_job(world, prompt)
    world.discord.inject(
        "PATCH", WEBHOOK_ORIGINAL, 404, code=10008, message="Unknown Message", times=None
    )
    world.discord.inject(
        "PATCH",
        r"^/channels/\d+/messages/\d+$",
        404,
        code=10008,
        message="Unknown Message",
        times=None,
    )
    for _ in range(60):  # the provider's clock moves on until the result shows somewhere
        if finals_for(world, prompt):
            break
        world.clock.advance(1)
        with contextlib.suppress(TimeoutError):
            await world.discord.wait_for(lambda: finals_for(world, prompt), timeout=0.25)
    final = await world.wait_message(
        lambda m: prompt in m.content and is_final_grid(m), limit_s=15, what="a new final message"
    )
    assert final.id != interaction.original_message_id
    assert finals_for(world, prompt) == 1
    assert world.discord.requests_matching("PATCH", WEBHOOK_ORIGINAL, status=404)


async def test_invalid_session_mid_job_reidentifies_and_finishes(world: World) -> None:
    world.piapi.default_profile = QUICK
    await world.start_bot()
    prompt = "a session that is forgotten"
    interaction = await start_job(world, prompt)
    world.clock.advance(2)
    identifies = world.discord.gateway.identifies
    assert await world.discord.send_invalid_session(resumable=False) == 1
    await world.discord.wait_for(
        lambda: world.discord.gateway.identifies > identifies, timeout=20, what="a new IDENTIFY"
    )
    final = await drive_to_end(world, interaction, limit_s=30)
    assert is_final_grid(final)
    assert finals_for(world, prompt) == 1
    # The new session takes commands again.
    await world.discord.wait_ready()
    again = await start_job(world, "after the new session")
    assert is_final_grid(await drive_to_end(world, again))
    assert len(creates_for(world, prompt)) == 1
