"""Secrets never leave the bot (DESIGN.md invariant 5), and one server's jobs stay in it.

The session runs every kind of interaction (a command, buttons, a form, /describe, /job
history and show, a failure) with DEBUG logging, then scans every log line
and every request the bot sent to Discord for the bot token, the provider key and the
webhook secret (WEBHOOK_SECRET is set; push mode itself stays off here).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.discord.buttons_layout import parse_custom_id
from tests.e2e.conftest import BOT_TOKEN, PIAPI_KEY, World, button_ids, open_world
from tests.e2e.test_commands import answered, png, private_text
from tests.e2e.test_faults_provider import QUICK, drive_to_end
from tests.e2e.test_modals import open_form, submit, upscale_of
from tests.fakes.discord import FakeGuild, default_guild
from tests.fakes.discord.interactions import InteractionRefused

SECOND_GUILD_ID = 1_100_000_000_000_009_001
# Loaded by the bot when bot/config.py knows WEBHOOK_SECRET (ignored by older configs).
WEBHOOK_SECRET = "whsec-e2e-0123456789abcdef"


def leaks(text: str) -> list[str]:
    found = []
    secrets = (
        ("bot token", BOT_TOKEN),
        ("provider key", PIAPI_KEY),
        ("webhook secret", WEBHOOK_SECRET),
    )
    for name, secret in secrets:
        # The whole secret, and any long-enough piece of it (a truncated echo leaks too).
        pieces = {secret, secret[:12], secret[-12:]}
        found += [name for piece in pieces if piece in text]
    return found


def discord_traffic(world: World) -> str:
    return "\n".join(
        repr((r.method, r.path, r.query, r.json, r.payload_json, [f.__dict__ for f in r.files]))
        for r in world.discord.requests
    )


async def test_a_full_session_leaks_no_secret(world: World) -> None:
    world.piapi.default_profile = QUICK
    await world.start_bot(LOG_LEVEL="DEBUG", WEBHOOK_SECRET=WEBHOOK_SECRET)
    from tests.e2e.test_imagine import imagine_to_grid

    grid = await imagine_to_grid(world, "a lighthouse keeper's secret")
    upscaled = await upscale_of(world, grid)
    form = await open_form(world, upscaled, "Custom Zoom")
    await submit(world, form, {"prompt": "a wider view", "zoom_ratio": "1.5"})
    await world.discord.wait_for(lambda: world.piapi.created("outpaint"), timeout=10)
    described = await world.discord.slash("describe", attachments={"image": png("secret")})
    await answered(world, described)
    history = await world.discord.slash("job history")
    job_id = parse_custom_id(button_ids(grid)["U1"])[1]  # type: ignore[index]
    await private_text(world, history, job_id)
    show = await world.discord.slash("job show", {"id": job_id})
    await answered(world, show)
    # A failure: the provider refuses a banned prompt, with its own words.
    banned = await world.discord.slash("imagine", {"prompt": "a banned thing"})
    await answered(world, banned)
    final = await drive_to_end(world, banned)
    assert "❌ Failed" in final.content, final.content
    for _ in range(10):
        world.clock.advance(2)
        await world.advance_piapi(0, settle=0.1)

    logs = "\n".join(b.log() for b in world.bots)
    traffic = discord_traffic(world)
    n_lines, n_requests = len(logs.splitlines()), len(world.discord.requests)
    print(f"\nsecret scan: {n_lines} log lines, {n_requests} Discord requests")
    assert n_lines > 50 and n_requests > 20  # the scan looked at a real session
    assert "DEBUG" in logs
    assert leaks(logs) == [], "a secret in the bot's log"
    assert leaks(traffic) == [], "a secret sent to Discord"
    # Nor in what the provider got beyond its own auth header (redacted by the fake).
    provider_traffic = repr([(r.path, r.query, r.json) for r in world.piapi.requests])
    assert leaks(provider_traffic) == []


def _add_second_guild(world: World) -> FakeGuild:
    guild = default_guild(
        world.discord.users, world.discord.bot_user, guild_id=SECOND_GUILD_ID, name="Other Guild"
    )
    world.discord.guilds.append(guild)
    return guild


async def test_jobs_are_confined_to_their_guild_and_cancel_to_owner_or_moderators(
    tmp_path: Path,
) -> None:
    async with open_world(tmp_path) as world:
        second = _add_second_guild(world)
        guild_ids = f"{world.discord.guilds[0].id},{second.id}"
        await world.start_bot(DISCORD_GUILD_IDS=guild_ids)
        await world.discord.wait_for(
            lambda: world.discord.find_command("job", second.id) is not None,
            timeout=10,
            what="commands in the second guild",
        )
        interaction = await world.discord.slash("imagine", {"prompt": "a job at home"})
        await answered(world, interaction)
        await world.discord.wait_for(lambda: world.piapi.created("imagine"), timeout=10)
        history = await world.discord.slash("job history")
        listing = await private_text(world, history, r"a job at home")
        job_id = re.search(r"`([0-9a-z]{12})`", listing)[1]  # type: ignore[index]

        # From the other server the job does not exist, for its owner too.
        for name in ("job show", "job cancel"):
            elsewhere = await world.discord.slash(name, {"id": job_id}, guild=second)
            await private_text(world, elsewhere, r"no job")
        elsewhere = await world.discord.slash("job history", guild=second)
        await private_text(world, elsewhere, r"no jobs")
        assert not any(r.method == "DELETE" for r in world.piapi.requests)

        # At home: another member may not cancel it; a moderator may.
        other = await world.discord.slash("job cancel", {"id": job_id}, user="other")
        await private_text(world, other, r"only the member who started")
        assert not any(r.method == "DELETE" for r in world.piapi.requests)
        moderator = await world.discord.slash("job cancel", {"id": job_id}, user="admin")
        await private_text(world, moderator, r"is cancelled")
        assert any(r.method == "DELETE" for r in world.piapi.requests)
        # Nothing posted in the second guild's channels.
        second_channels = {c.id for c in second.channels}
        assert not [m for m in world.channel_messages() if m.channel_id in second_channels]


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("settings show", {}),
        ("settings channels add", {"channel": "art"}),
        ("settings limits", {"per_day": 1}),
        ("usage server", {}),
    ],
)
async def test_admin_commands_are_refused_without_manage_server(
    world: World, command: str, options: dict[str, object]
) -> None:
    await world.start_bot()
    try:
        # Discord itself refuses commands whose default permissions the member lacks…
        record = await world.discord.slash(command, options, user="tester")
    except InteractionRefused:
        pass
    else:  # …and where it cannot (a subcommand's own permission), the bot refuses.
        await private_text(world, record, r"Manage Server")
    record = await world.discord.slash(command, options, user="admin")  # Manage Server
    await answered(world, record)
    text = str(record.response_data)
    assert "Only members with Manage Server" not in text, text
