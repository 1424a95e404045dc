"""Direct messages skip no server rule (issue 13, item 13): the job commands are synced as
guild-only, and a job command that arrives from a DM anyway gets a private refusal and
costs nothing at the provider. The real bot process against the fake Discord and PiAPI."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import World
from tests.fakes.discord import DEFAULT_GUILD_ID
from tests.fakes.discord.models import InteractionRecord

JOB_COMMANDS = ("imagine", "describe", "blend")
CREATE = "/api/v1/task"
DM_SENTENCE = "only in a server, not in direct messages"


async def test_job_commands_are_synced_guild_only(world: World) -> None:
    await world.start_bot()
    for name in JOB_COMMANDS:
        command = world.discord.find_command(name, DEFAULT_GUILD_ID)
        assert command is not None, name
        # contexts [0]: guild only (1 = bot DM, 2 = private channel); installs [0]: guild.
        assert command["contexts"] == [0], (name, command["contexts"])
        assert command["integration_types"] == [0], (name, command["integration_types"])
        assert command["dm_permission"] is False, name


async def dm_slash(world: World, name: str, options: dict[str, Any]) -> InteractionRecord:
    """Dispatch `/name` as Discord does from a DM with the bot: no guild, no member, a DM
    channel and context 1. The fake has no DM channels, so the record (where the fake
    keeps the answer) names a guild channel; the bot sees only the DM payload."""
    fake = world.discord
    guild = fake.resolve_guild(None)
    channel = fake.resolve_channel(None, guild)
    user = fake.resolve_user("tester")
    data = fake._command_interaction_data(
        name, options, guild=guild, channel=channel, user=user, subcommand=None, focused=None
    )
    data.pop("guild_id", None)  # DMs offer only global commands
    iid, token, payload = fake._interaction_payload(
        itype=2, guild=guild, channel=channel, user=user, data=data
    )
    dm_id = fake.snowflake()
    for key in ("guild_id", "guild", "member", "guild_locale"):
        payload.pop(key, None)
    payload.update(
        user=user.payload(),
        channel_id=str(dm_id),
        channel={"id": str(dm_id), "type": 1, "recipients": [user.payload()]},
        context=1,
        authorizing_integration_owners={"0": str(guild.id)},
    )
    record = InteractionRecord(
        id=iid,
        token=token,
        type=2,
        application_id=fake.app_id,
        guild_id=None,
        channel_id=channel.id,
        user_id=user.id,
        data=data,
        payload=payload,
        created_at=fake.now(),
    )
    fake.interactions[iid] = record
    fake._by_token[token] = record
    await fake.gateway.dispatch_interaction(payload, guild.id)
    fake.notify()
    return record


async def test_imagine_from_a_dm_is_refused_privately_and_costs_nothing(world: World) -> None:
    bot = await world.start_bot()
    interaction = await dm_slash(world, "imagine", {"prompt": "a cat --turbo"})
    await world.discord.wait_for(lambda: interaction.responded, timeout=10, what="the answer")
    assert interaction.response_type == 4, (interaction.response_data, bot.log()[-2000:])
    data = interaction.response_data or {}
    assert data.get("flags", 0) & 64, data  # private
    assert DM_SENTENCE in data.get("content", ""), data
    assert not [r for r in world.piapi.requests if r.method == "POST" and r.path == CREATE]
    # And a guild /imagine still works: the refusal is about the DM, not the command.
    ok = await world.discord.slash("imagine", {"prompt": "a cat in a server"})
    await world.discord.wait_for(lambda: ok.responded, timeout=10, what="the guild ack")
    assert ok.response_type == 5, ok.response_data
