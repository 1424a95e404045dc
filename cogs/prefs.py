"""/prefs: a member's own preferences in this server (Midjourney's /prefer remix)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.store.base import MemberPrefs

if TYPE_CHECKING:
    from bot.app import MidjourneyBot


def describe_prefs(prefs: MemberPrefs) -> str:
    remix = "on" if prefs.remix else "off"
    return (
        f"**Your preferences here**\nRemix mode: **{remix}** — with it on, V1–V4, Vary, pan "
        "and 🔄 first open a prompt box, pre-filled with the prompt, that you can edit."
    )


class Prefs(commands.GroupCog, group_name="prefs", group_description="Your own preferences"):
    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot
        super().__init__()

    async def _load(self, interaction: discord.Interaction[Any]) -> MemberPrefs:
        guild_id = str(interaction.guild_id) if interaction.guild_id else None
        return await self.bot.store.prefs.get(guild_id, str(interaction.user.id))

    @app_commands.command(name="remix", description="Edit the prompt before variations and rerolls")
    @app_commands.describe(state="on: a prompt box opens first; off: the buttons start at once")
    @app_commands.choices(
        state=[
            app_commands.Choice(name="on", value="on"),
            app_commands.Choice(name="off", value="off"),
        ]
    )
    async def remix(
        self, interaction: discord.Interaction[Any], state: app_commands.Choice[str]
    ) -> None:
        prefs = dataclasses.replace(await self._load(interaction), remix=state.value == "on")
        await self.bot.store.prefs.save(prefs)
        await interaction.response.send_message(
            f"Remix mode is now **{state.value}**.", ephemeral=True
        )

    @app_commands.command(name="show", description="Show your preferences")
    async def show(self, interaction: discord.Interaction[Any]) -> None:
        prefs = await self._load(interaction)
        await interaction.response.send_message(describe_prefs(prefs), ephemeral=True)


async def setup(bot: MidjourneyBot) -> None:
    await bot.add_cog(Prefs(bot))
