"""Provider faults end to end: the real bot, the fake Discord and FakePiAPI misbehaving on
purpose. Each fault asserts what the member sees on the job's own message, and that the
provider got exactly one create (DESIGN.md invariants 1 and 2)."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from tests.e2e.conftest import World
from tests.e2e.test_kill_points import creates_for, is_failure, is_final_grid, poll_until
from tests.fakes.discord.models import InteractionRecord, MessageRecord
from tests.fakes.piapi import Profile

CREATE = "/api/v1/task"
POLL = "/api/v1/task/"
QUICK = Profile(pending_s=1.0, processing_s=4.0, progress_step_s=1.0)
ENV = {"PROVIDER_TIMEOUT_S": "1", "MJ_POLL_MAX_INTERVAL_S": "0.3"}

# fault name → the injections (method, path, kind, times, kw) and the outcome the member sees.
CASES: dict[str, tuple[list[tuple[str, str, str, int | None, dict[str, float]]], str]] = {
    "burst_of_500": (
        [("POST", CREATE, "500", 2, {}), ("GET", POLL, "500", 6, {}), ("GET", POLL, "502", 2, {})],
        "completed",
    ),
    "429_with_retry_after": (
        [
            ("POST", CREATE, "429", 1, {"retry_after": 1}),
            ("GET", POLL, "429", 2, {"retry_after": 1}),
        ],
        "completed",
    ),
    "timeouts": ([("GET", POLL, "timeout", 2, {"delay": 2.5})], "completed"),
    "connection_resets_on_poll": ([("GET", POLL, "reset", 3, {})], "completed"),
    # The create's connection dies: it may have arrived, so the bot must not resend it.
    "connection_reset_on_create": ([("POST", CREATE, "reset", 1, {"process": True})], "failed"),
    "malformed_json_on_poll": ([("GET", POLL, "malformed", 3, {})], "completed"),
    "malformed_json_on_create": ([("POST", CREATE, "malformed", 1, {"process": True})], "failed"),
    "missing_fields": ([("GET", POLL, "missing_fields", 2, {})], "completed"),
    "unknown_fields_everywhere": (
        [("POST", CREATE, "unknown_fields", None, {}), ("GET", POLL, "unknown_fields", None, {})],
        "completed",
    ),
}


async def run_to_end(world: World, prompt: str, *, limit_s: float = 20) -> MessageRecord:
    interaction = await world.discord.slash("imagine", {"prompt": prompt})
    await world.discord.wait_for(lambda: interaction.responded, timeout=10, what="the ack")
    assert interaction.response_type == 5
    return await drive_to_end(world, interaction, limit_s=limit_s)


async def drive_to_end(
    world: World, interaction: InteractionRecord, *, limit_s: float = 20
) -> MessageRecord:
    """Advance the provider's clock until the job's message shows an end (bounded)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + limit_s
    while loop.time() < give_up:
        message = world.discord.messages.get(interaction.original_message_id or 0)
        if message is not None and (is_final_grid(message) or is_failure(message)):
            return message
        world.clock.advance(1.0)
        await asyncio.sleep(0.1)
    logs = world.bots[-1].log()[-4000:]
    raise AssertionError(f"the job never ended visibly\n{logs}")


@pytest.mark.parametrize("fault", sorted(CASES))
async def test_provider_fault_ends_visibly(world: World, fault: str) -> None:
    world.piapi.default_profile = QUICK
    injections, expected = CASES[fault]
    for method, path, kind, times, kw in injections:
        world.piapi.inject(method, path, kind, times=times, **kw)
    await world.start_bot(**ENV)
    prompt = f"weathering {fault.replace('_', ' ')}"
    final = await run_to_end(world, prompt)
    arrived = [r for r in world.piapi.requests if r.method == "POST" and r.path == CREATE]
    if expected == "completed":
        assert is_final_grid(final), final.content
        assert len(creates_for(world, prompt)) == 1
    else:
        assert is_failure(final) and "❌ Failed" in final.content, final.content
        # The reason is spelled out (not just "failed"), and the create was never resent.
        assert len(final.content.split("❌ Failed", 1)[1].strip()) > 10, final.content
        assert len(arrived) == 1
    # Every counted fault was served (the bot really met it).
    assert all(f.remaining is None for f in world.piapi.faults), world.piapi.faults
    world.piapi.faults.clear()
    tasks = len(creates_for(world, prompt))
    print(f"\n{fault}: {expected}; create requests {len(arrived)}, tasks created {tasks}")


async def test_vanished_job_is_failed_as_not_found(world: World) -> None:
    world.piapi.default_profile = QUICK
    bot = await world.start_bot(**ENV)
    prompt = "a job the provider forgets"
    interaction = await world.discord.slash("imagine", {"prompt": prompt})
    await world.discord.wait_for(lambda: interaction.responded, timeout=10)
    await poll_until(lambda: creates_for(world, prompt), what="the create", world=world)
    [create] = creates_for(world, prompt)

    def stored_ref() -> bool:
        with sqlite3.connect(world.tmp / "bot.db") as conn:
            row = conn.execute(
                "SELECT 1 FROM jobs WHERE provider_ref = ?", (create.task_id,)
            ).fetchone()
        return row is not None

    # Killed only once the bot has stored the provider's answer (else the restart would
    # rightly fail it as "interrupted while being sent", which is another test).
    await poll_until(stored_ref, what="the stored provider ref", world=world)
    world.kill(bot)
    world.piapi.vanish(create.task_id)
    # The engine allows a provider 60 s to find a task it just made; move the job's
    # submission back in time instead of waiting that long.
    with sqlite3.connect(world.tmp / "bot.db") as conn:
        conn.execute(
            "UPDATE jobs SET data = json_set(data, '$.submitted_at', "
            "json_extract(data, '$.submitted_at') - 120) WHERE provider_ref = ?",
            (create.task_id,),
        )
    await world.start_bot(**ENV)
    final = await drive_to_end(world, interaction)
    assert "❌ Failed" in final.content, final.content
    assert not final.attachments
    assert len(creates_for(world, prompt)) == 1
    assert any(r.status == 404 for r in world.piapi.requests if r.path.endswith(create.task_id))


async def test_job_stuck_at_one_percentage_times_out_visibly(world: World) -> None:
    world.piapi.default_profile = Profile(pending_s=0.0, processing_s=8.0, progress_step_s=1.0)
    world.piapi.profile_for_prompt["stuck"] = Profile(
        pending_s=0.0, processing_s=8.0, progress_step_s=1.0, stuck_at=50
    )
    await world.start_bot(JOB_STALL_TIMEOUT_S="2", **ENV)
    prompt = "stuck at one percentage"
    interaction = await world.discord.slash("imagine", {"prompt": prompt})
    await world.discord.wait_for(lambda: interaction.responded, timeout=10)
    await poll_until(lambda: creates_for(world, prompt), what="the create", world=world)
    world.clock.advance(30)  # far past its end: the fake holds it at 50 % forever
    message = await world.wait_message(
        lambda m: m.id == interaction.original_message_id and "⏱️ Timed out" in m.content,
        limit_s=15,
        what="the timed-out message",
    )
    seen = " ".join(v.get("content") or "" for v in message.history)
    assert "50%" in seen, seen  # it did show the stuck percentage first
    assert "no progress" in message.content or "did not finish" in message.content, message.content
    assert not message.attachments
    assert len(creates_for(world, prompt)) == 1


async def test_ever_failing_create_ends_as_unavailable(world: World) -> None:
    """A provider answering 503 for the whole retry window: the member hears why."""
    world.piapi.inject("POST", CREATE, "503", times=None)
    await world.start_bot(**ENV)
    interaction = await world.discord.slash("imagine", {"prompt": "a long outage"})
    await world.discord.wait_for(lambda: interaction.responded, timeout=10)
    # Nothing was created: the job waits and retries (not resubmitted work, just refused).
    await poll_until(
        lambda: len([r for r in world.piapi.requests if r.method == "POST"]) >= 2,
        what="a retried create",
        world=world,
    )
    assert creates_for(world, "a long outage") == []
    message = world.discord.messages[interaction.original_message_id or 0]
    assert "a long outage" in message.content
