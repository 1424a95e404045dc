"""/imagine: validate, acknowledge within 3 seconds, hand the job to the engine.

Bad options get an ephemeral answer and cost nothing at the provider; a good prompt
gets a public message that the publisher keeps up to date.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.policy import Member
from bot.discord.submit import (
    answer_if_storage_error,
    optional_str,
    prompt_limit,
    refuse,
    refused_by_policy,
    start_public_job,
)
from bot.domain import Operation, OperationKind, SpeedMode
from bot.speed import SpeedConflictError

if TYPE_CHECKING:
    from bot.app import MidjourneyBot

COMMON_RATIOS = (
    "1:1",
    "16:9",
    "9:16",
    "4:3",
    "3:4",
    "3:2",
    "2:3",
    "21:9",
    "9:21",
    "5:4",
    "4:5",
    "2:1",
)
_RATIO = re.compile(r"^\s*(\d{1,3})\s*:\s*(\d{1,3})\s*$")
# Midjourney accepts roughly 1:14 to 14:1; anything wider is a typo.
MAX_RATIO = 14


class OptionError(ValueError):
    """An option the member typed is unusable; the message tells them why."""


def parse_aspect_ratio(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    match = _RATIO.match(value)
    if not match:
        raise OptionError(f"`{value[:20]}` is not an aspect ratio. Use width:height, like 16:9.")
    width, height = int(match[1]), int(match[2])
    if width == 0 or height == 0 or max(width / height, height / width) > MAX_RATIO:
        raise OptionError(f"Aspect ratio {width}:{height} is out of range (at most {MAX_RATIO}:1).")
    return f"{width}:{height}"


_HAS_AR = re.compile(r"(?:--|—)(?:ar|aspect)\b", re.IGNORECASE)


def clean_prompt(prompt: str, *, max_length: int) -> str:
    text = " ".join(prompt.split())
    if not text:
        raise OptionError("The prompt is empty. Describe what you want to see.")
    if len(text) > max_length:
        raise OptionError(f"The prompt is {len(text)} characters long; the limit is {max_length}.")
    return text


class Imagine(commands.Cog):
    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot

    async def cog_app_command_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        # The store could not save (disk full, file gone): a private answer, never silence
        # or a reply left "thinking".
        await answer_if_storage_error(interaction, error)

    @app_commands.command(name="imagine", description="Create four images from a prompt")
    # Server rules (channels, roles, quotas, speeds) need a server: no DMs, no user installs.
    @app_commands.guild_only()
    @app_commands.allowed_installs(guilds=True, users=False)
    @app_commands.describe(
        prompt="What to draw; Midjourney parameters like --ar 16:9 may follow",
        aspect_ratio="Width:height of the images, e.g. 16:9",
        mode="Speed: relax, fast or turbo",
    )
    @app_commands.choices(
        mode=[app_commands.Choice(name=m.value, value=m.value) for m in SpeedMode],
    )
    async def imagine(
        self,
        interaction: discord.Interaction[Any],
        prompt: str,
        aspect_ratio: str | None = None,
        mode: app_commands.Choice[str] | None = None,
    ) -> None:
        prefs = await self.bot.store.prefs.get(
            optional_str(interaction.guild_id), str(interaction.user.id)
        )
        try:
            # One speed from the option, the prompt's and the suffix's flags, the member's
            # and the server's defaults; the prompt sent keeps no flag (bot/speed.py). The
            # member's /prefs suffix goes on every prompt, like Midjourney's /prefer suffix.
            speed = await self.bot.policy.decide_speed(
                Member.of(interaction),
                option=SpeedMode(mode.value) if mode else None,
                prompt=prompt,
                prefs=prefs,
                with_suffix=True,
            )
            text = clean_prompt(speed.prompt or "", max_length=prompt_limit(self.bot))
            ratio = parse_aspect_ratio(aspect_ratio)
        except (OptionError, SpeedConflictError) as exc:
            await refuse(interaction, str(exc))
            return
        if ratio is None and not _HAS_AR.search(text):
            ratio = prefs.default_aspect_ratio
        operation = Operation(
            OperationKind.IMAGINE, prompt=text, aspect_ratio=ratio, mode=speed.mode
        )
        if await refused_by_policy(self.bot, interaction, operation):
            return
        # Stored first, then acknowledged publicly within the 3-second window, before the
        # provider is asked (bot/discord/submit.py).
        await start_public_job(self.bot, interaction, operation)

    @imagine.autocomplete("aspect_ratio")
    async def _ratio_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        typed = current.strip()
        options = [r for r in COMMON_RATIOS if r.startswith(typed)] or list(COMMON_RATIOS)
        return [app_commands.Choice(name=r, value=r) for r in options[:25]]


async def setup(bot: MidjourneyBot) -> None:
    await bot.add_cog(Imagine(bot))
