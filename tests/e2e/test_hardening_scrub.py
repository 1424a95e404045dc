"""A provider that quotes the bot's key in its error (some gateways do) must not put the
key in the channel (issue 13, item 1): the real bot against the fake Discord and a fake
PiAPI whose failed task's error text carries the very key the request was sent with."""

from __future__ import annotations

import re

from tests.e2e.conftest import PIAPI_KEY, World
from tests.e2e.test_commands import answered, private_text
from tests.e2e.test_faults_provider import QUICK, run_to_end
from tests.e2e.test_secrets_isolation import discord_traffic, leaks
from tests.fakes.piapi import Profile

LEAKY = Profile(
    pending_s=1.0,
    processing_s=1.0,
    outcome="failed",
    error_message=f"Invalid request for api key {PIAPI_KEY}: model not enabled",
    raw_message=f"upstream 400 (x-api-key: {PIAPI_KEY})",
)


async def test_a_provider_error_quoting_the_key_reaches_the_channel_without_it(
    world: World,
) -> None:
    world.piapi.default_profile = QUICK
    world.piapi.profile_for_prompt["leaky gateway"] = LEAKY
    await world.start_bot()
    final = await run_to_end(world, "a leaky gateway at dusk")

    content = final.content
    assert not final.ephemeral
    assert leaks(content) == [], content
    # Still useful: it failed, and the provider's own words, minus the key, are quoted.
    assert "❌ Failed" in content, content
    assert "model not enabled" in content, content
    assert "<redacted>" in content, content

    # /job show re-posts the same job through the same presenter: no key there either.
    history = await world.discord.slash("job history")
    listing = await private_text(world, history, r"leaky gateway")
    job_id = re.search(r"`([0-9a-z]{12})`", listing)[1]  # type: ignore[index]
    show = await answered(world, await world.discord.slash("job show", {"id": job_id}))
    shown = await world.wait_message(
        lambda m: m.id == show.original_message_id and "Failed" in m.content,
        what="/job show's copy",
    )
    assert leaks(shown.content) == [] and "model not enabled" in shown.content, shown.content

    # Nothing the bot sent to Discord, in any request, carries the key.
    assert leaks(discord_traffic(world)) == []
