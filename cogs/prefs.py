"""/prefs: a member's own preferences in this server (Midjourney's /prefer and /settings,
per person): remix mode, default speed, default aspect ratio, a prompt suffix, the default
model version, draft mode and presets (named parameter sets; admins save server ones)."""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.community import GuildSettings, check_mode
from bot.domain import SpeedMode
from bot.interactions.ids import optional_str
from bot.prompt_check import CURRENT_VERSIONS
from bot.speed import SpeedConflictError, decide_speed, split_speed_flags
from bot.store.base import MemberPrefs
from cogs.imagine import OptionError, parse_aspect_ratio

if TYPE_CHECKING:
    from bot.app import MidjourneyBot

MAX_SUFFIX = 200
MAX_PRESET_NAME = 32
MAX_PRESETS = 20
_PRESET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def preset_problem(name: str, value: str) -> str | None:
    """A preset is parameters only, under a plain name (it is typed in an option)."""
    if not _PRESET_NAME.match(name):
        return "A preset name is letters, digits, - and _ (e.g. cinematic or my-style)."
    if not value.startswith(("--", "—")):
        return 'A preset holds parameters only, like "--sref 1234 --stylize 250".'
    return None


def no_such_preset(key: str, names: list[str], whose: str) -> str:
    """The answer to deleting a preset that was never saved: nothing changes; the names
    there are, when they fit in a line."""
    text = f"There is no {whose}preset named **{key[:MAX_PRESET_NAME]}**, so nothing was deleted."
    if not names:
        return f"{text} There are no {whose}presets yet."
    listed = ", ".join(f"`{n}`" for n in names)
    if len(listed) <= 300:
        return f"{text} The {whose}presets are: {listed}."
    return f"{text} `/prefs preset list` shows them."


def describe_prefs(prefs: MemberPrefs, *, server_mode: str | None = None) -> str:
    remix = "on" if prefs.remix else "off"
    mode = prefs.default_mode or (f"the server's ({server_mode})" if server_mode else "default")
    return (
        f"**Your preferences here**\nRemix mode: **{remix}** — with it on, V1–V4, Vary, pan "
        "and 🔄 first open a prompt box, pre-filled with the prompt, that you can edit.\n"
        f"Default speed: **{mode}**\n"
        f"Default aspect ratio: **{prefs.default_aspect_ratio or '1:1 (Midjourney default)'}**\n"
        f"Prompt suffix: {f'`{prefs.suffix}`' if prefs.suffix else 'none'}\n"
        f"Default version: **{prefs.version or 'V7 (Midjourney default)'}**\n"
        f"Draft mode: **{'on' if prefs.draft else 'off'}**\n"
        f"Presets: {', '.join(f'`{n}`' for n, _ in prefs.presets) or 'none'}"
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

    @app_commands.command(name="version", description="Your default Midjourney version")
    @app_commands.describe(version="Used when a prompt names no --v or --niji (default: V7)")
    @app_commands.choices(
        version=[
            *(app_commands.Choice(name=m.label, value=m.flag) for m in CURRENT_VERSIONS.choices()),
            app_commands.Choice(name="Midjourney's default (V7)", value="default"),
        ]
    )
    async def version(
        self, interaction: discord.Interaction[Any], version: app_commands.Choice[str]
    ) -> None:
        chosen = None if version.value == "default" else version.value
        await self._save(
            interaction, f"Your default version is now **{version.name}**.", version=chosen
        )

    @app_commands.command(name="draft", description="Draft mode for all your /imagine jobs")
    @app_commands.describe(
        state="on: V7 drafts, ten times faster at half the cost; Enhance the best"
    )
    @app_commands.choices(
        state=[
            app_commands.Choice(name="on", value="on"),
            app_commands.Choice(name="off", value="off"),
        ]
    )
    async def draft(
        self, interaction: discord.Interaction[Any], state: app_commands.Choice[str]
    ) -> None:
        await self._save(
            interaction,
            f"Draft mode is now **{state.value}** by default.",
            draft=state.value == "on",
        )

    preset = app_commands.Group(
        name="preset", description="Named parameter sets for /imagine (Midjourney's option set)"
    )

    @preset.command(name="save", description="Save a named set of parameters")
    @app_commands.describe(
        name="A short name, e.g. cinematic",
        value='Parameters, e.g. "--sref 1234 --stylize 250"',
        server="Save it for everyone in this server (Manage Server needed)",
    )
    async def preset_save(
        self,
        interaction: discord.Interaction[Any],
        name: app_commands.Range[str, 1, MAX_PRESET_NAME],
        value: app_commands.Range[str, 1, MAX_SUFFIX],
        server: bool = False,
    ) -> None:
        key, text = name.strip().lower(), " ".join(value.split())
        settings = await self.bot.policy.settings(optional_str(interaction.guild_id))
        # The same prompt check as typed parameters: a preset that would get every prompt
        # using it refused is refused now, once.
        reason = preset_problem(key, text) or self.bot.policy.check_text(settings, f"a test {text}")
        if reason is None:
            reason = _suffix_speed_problem(text, settings)
        if reason is not None:
            await interaction.response.send_message(reason, ephemeral=True)
            return
        if server:
            await self._save_server_preset(interaction, settings, key, text)
            return
        prefs = await self._load(interaction)
        if key not in dict(prefs.presets) and len(prefs.presets) >= MAX_PRESETS:
            await interaction.response.send_message(
                f"You have {MAX_PRESETS} presets already; delete one first.", ephemeral=True
            )
            return
        await self._save(
            interaction,
            f"Preset **{key}** saved: `{text}`. Use it with /imagine preset:{key}.",
            presets=(*((n, v) for n, v in prefs.presets if n != key), (key, text)),
        )

    async def _save_server_preset(
        self,
        interaction: discord.Interaction[Any],
        settings: GuildSettings | None,
        key: str,
        text: str,
    ) -> None:
        perms = interaction.permissions
        if settings is None or not (perms.manage_guild or perms.administrator):
            await interaction.response.send_message(
                "Only members with Manage Server can save server presets; save it as your "
                "own instead.",
                ephemeral=True,
            )
            return
        presets = (*((n, v) for n, v in settings.presets if n != key), (key, text))
        await self.bot.policy.save_settings(settings.with_changes(presets=presets))
        await interaction.response.send_message(
            f"Server preset **{key}** saved: `{text}`. Everyone here can use /imagine "
            f"preset:{key}.",
            ephemeral=True,
        )

    @preset.command(name="delete", description="Delete one of your presets (or a server one)")
    @app_commands.describe(name="The preset's name", server="Delete the server preset")
    async def preset_delete(
        self, interaction: discord.Interaction[Any], name: str, server: bool = False
    ) -> None:
        key = name.strip().lower()
        if server:
            settings = await self.bot.policy.settings(optional_str(interaction.guild_id))
            perms = interaction.permissions
            if settings is None or not (perms.manage_guild or perms.administrator):
                await interaction.response.send_message(
                    "Only members with Manage Server can delete server presets.", ephemeral=True
                )
                return
            if key not in dict(settings.presets):
                await interaction.response.send_message(
                    no_such_preset(key, [n for n, _ in settings.presets], "server "),
                    ephemeral=True,
                    allowed_mentions=discord.AllowedMentions.none(),
                )
                return
            kept = tuple((n, v) for n, v in settings.presets if n != key)
            await self.bot.policy.save_settings(settings.with_changes(presets=kept))
            await interaction.response.send_message(
                f"Server preset **{key}** deleted.", ephemeral=True
            )
            return
        prefs = await self._load(interaction)
        if key not in dict(prefs.presets):
            await interaction.response.send_message(
                no_such_preset(key, [n for n, _ in prefs.presets], ""),
                ephemeral=True,
                allowed_mentions=discord.AllowedMentions.none(),
            )
            return
        kept = tuple((n, v) for n, v in prefs.presets if n != key)
        await self._save(interaction, f"Preset **{key}** deleted.", presets=kept)

    @preset.command(name="list", description="The presets you can use")
    async def preset_list(self, interaction: discord.Interaction[Any]) -> None:
        prefs = await self._load(interaction)
        settings = await self.bot.policy.settings(optional_str(interaction.guild_id))
        lines = [f"• **{n}** (yours): `{v}`" for n, v in prefs.presets]
        if settings is not None:
            lines += [f"• **{n}** (server): `{v}`" for n, v in settings.presets]
        text = "\n".join(lines) or "No presets yet; save one with /prefs preset save."
        await interaction.response.send_message(
            text[:1900], ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )

    @app_commands.command(name="show", description="Show your preferences")
    async def show(self, interaction: discord.Interaction[Any]) -> None:
        prefs = await self._load(interaction)
        settings = await self.bot.policy.settings(optional_str(interaction.guild_id))
        text = describe_prefs(prefs, server_mode=settings.default_mode if settings else None)
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: MidjourneyBot) -> None:
    await bot.add_cog(Prefs(bot))
