"""Invariants of the whole command surface, read off the real bot at the fake Discord.

Every module in `cogs/` is an extension (bot/app.py `cog_modules`): adding a file adds
its commands. This holds each one to that: it loads in the real bot process, and every
command its cogs define reaches Discord, except where its `setup` hides it because the
backend cannot serve it (PiAPI here: no video from an image, no editor, no retexture,
no shorten; those cogs are loaded on the backends that have them by
tests/e2e/test_video_e2e.py, test_retexture_e2e.py and test_shorten_e2e.py).
"""

from __future__ import annotations

import importlib

from discord.ext import commands

from bot.app import cog_modules
from tests.e2e.conftest import World
from tests.fakes.discord import DEFAULT_GUILD_ID

# Cogs whose setup adds them only where the backend can serve them (see each `setup`).
HIDDEN_ON_PIAPI = {"cogs.animate", "cogs.edit", "cogs.retexture", "cogs.shorten"}


def commands_defined_by(module_name: str) -> set[str]:
    """Top-level slash command names of every Cog class the module defines."""
    module = importlib.import_module(module_name)
    names: set[str] = set()
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, commands.Cog):
            if value.__module__ != module_name:
                continue  # imported from elsewhere
            if issubclass(value, commands.GroupCog):
                names.add(value.__cog_group_name__)  # /job show: the group is the command
            else:
                names |= {c.name for c in value.__cog_app_commands__}
    return names


def test_every_cog_module_defines_commands() -> None:
    modules = cog_modules()
    assert "cogs.imagine" in modules and len(modules) >= 10, modules
    for name in modules:
        assert commands_defined_by(name), f"{name} defines no slash command"


async def test_every_cog_loads_and_its_commands_reach_discord(world: World) -> None:
    bot = await world.start_bot()
    for module in cog_modules():
        for command in commands_defined_by(module):
            synced = world.discord.find_command(command, DEFAULT_GUILD_ID)
            if module in HIDDEN_ON_PIAPI:
                assert synced is None, f"/{command} ({module}) offered on PiAPI"
            else:
                assert synced is not None, (f"/{command} ({module}) not synced", bot.log()[-3000:])
    log = bot.log()
    assert "Traceback" not in log, log[-3000:]
    assert "ExtensionFailed" not in log, log[-3000:]
