"""/prefs: a member's own preferences in this server (Midjourney's /prefer and /settings,
per person): remix mode, default speed, default aspect ratio and a prompt suffix."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.community import GuildSettings, check_mode
from bot.discord.submit import answer_if_storage_error, optional_str
from bot.domain import SpeedMode
from bot.speed import SpeedConflictError, decide_speed, split_speed_flags
from bot.store.base import MemberPrefs
from cogs.imagine import OptionError, parse_aspect_ratio

if TYPE_CHECKING:
    from bot.app import MidjourneyBot

MAX_SUFFIX = 200


def describe_prefs(prefs: MemberPrefs, *, server_mode: str | None = None) -> str:
    remix = "on" if prefs.remix else "off"
    mode = prefs.default_mode or (f"the server's ({server_mode})" if server_mode else "default")
    return (
        f"**Your preferences here**\nRemix mode: **{remix}** — with it on, V1–V4, Vary, pan "
        "and 🔄 first open a prompt box, pre-filled with the prompt, that you can edit.\n"
        f"Default speed: **{mode}**\n"
        f"Default aspect ratio: **{prefs.default_aspect_ratio or '1:1 (Midjourney default)'}**\n"
        f"Prompt suffix: {f'`{prefs.suffix}`' if prefs.suffix else 'none'}"
    )


def _suffix_speed_problem(suffix: str, settings: GuildSettings | None) -> str | None:
    """A speed flag in the suffix picks the speed of every job (bot/speed.py): one the
    server does not allow would get every prompt refused, so it is refused now, once."""
    try:
        speed = decide_speed(None, None, None, suffix)
    except SpeedConflictError as exc:
        return str(exc).replace("The prompt", "The suffix")
    flags, _ = split_speed_flags(suffix)
    if not flags or settings is None:
        return None
    refusal = check_mode(settings, speed.mode.value)
    if refusal is None:
        return None
    return f"{refusal.message} Leave --{speed.mode.value} out of the suffix."


class Prefs(commands.GroupCog, group_name="prefs", group_description="Your own preferences"):
    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot
        super().__init__()

    async def cog_app_command_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        # The store could not save (disk full, file gone): a private answer, never silence
        # or a reply left "thinking".
        await answer_if_storage_error(interaction, error)

    async def _load(self, interaction: discord.Interaction[Any]) -> MemberPrefs:
        return await self.bot.store.prefs.get(
            optional_str(interaction.guild_id), str(interaction.user.id)
        )

    async def _save(self, interaction: discord.Interaction[Any], text: str, **changes: Any) -> None:
        prefs = dataclasses.replace(await self._load(interaction), **changes)
        await self.bot.store.prefs.save(prefs)
        await interaction.response.send_message(text, ephemeral=True)

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
        await self._save(
            interaction, f"Remix mode is now **{state.value}**.", remix=state.value == "on"
        )

    @app_commands.command(name="mode", description="Your default speed (the server may limit it)")
    @app_commands.choices(
        mode=[
            *(app_commands.Choice(name=m.value, value=m.value) for m in SpeedMode),
            app_commands.Choice(name="server default", value="server"),
        ]
    )
    async def mode(
        self, interaction: discord.Interaction[Any], mode: app_commands.Choice[str]
    ) -> None:
        chosen = None if mode.value == "server" else mode.value
        settings = await self.bot.policy.settings(optional_str(interaction.guild_id))
        if chosen and settings is not None and chosen not in settings.allowed_modes:
            await interaction.response.send_message(
                f"This server does not allow **{chosen}**; allowed: "
                f"{', '.join(settings.allowed_modes)}.",
                ephemeral=True,
            )
            return
        await self._save(
            interaction, f"Your default speed is now **{mode.name}**.", default_mode=chosen
        )

    @app_commands.command(name="aspect", description="Your default aspect ratio, e.g. 16:9")
    @app_commands.describe(ratio="width:height, or 'none' to use Midjourney's 1:1")
    async def aspect(self, interaction: discord.Interaction[Any], ratio: str) -> None:
        if ratio.strip().lower() in ("none", "off", "reset"):
            await self._save(interaction, "No default aspect ratio.", default_aspect_ratio=None)
            return
        try:
            parsed = parse_aspect_ratio(ratio)
        except OptionError as exc:
            await interaction.response.send_message(str(exc), ephemeral=True)
            return
        await self._save(
            interaction,
            f"Your default aspect ratio is now **{parsed}**.",
            default_aspect_ratio=parsed,
        )

    @app_commands.command(name="suffix", description="Text added to the end of all your prompts")
    @app_commands.describe(text="e.g. --style raw --s 250; 'none' to remove it")
    async def suffix(self, interaction: discord.Interaction[Any], text: str) -> None:
        cleaned = " ".join(text.split())
        if cleaned.lower() in ("none", "off", "reset", ""):
            await self._save(interaction, "Your prompt suffix is removed.", suffix=None)
            return
        if len(cleaned) > MAX_SUFFIX:
            await interaction.response.send_message(
                f"The suffix is {len(cleaned)} characters; at most {MAX_SUFFIX}.", ephemeral=True
            )
            return
        settings = await self.bot.policy.settings(optional_str(interaction.guild_id))
        # A suffix that would get every prompt refused is refused now, once.
        reason = self.bot.policy.check_text(settings, f"a test {cleaned}")
        if reason is None:
            reason = _suffix_speed_problem(cleaned, settings)
        if reason is not None:
            await interaction.response.send_message(reason, ephemeral=True)
            return
        await self._save(interaction, f"Your prompts now end with `{cleaned}`.", suffix=cleaned)

    @app_commands.command(name="show", description="Show your preferences")
    async def show(self, interaction: discord.Interaction[Any]) -> None:
        prefs = await self._load(interaction)
        settings = await self.bot.policy.settings(optional_str(interaction.guild_id))
        text = describe_prefs(prefs, server_mode=settings.default_mode if settings else None)
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: MidjourneyBot) -> None:
    await bot.add_cog(Prefs(bot))
