"""/help: what the bot does and how to use each command, privately.

Commands this page has no example for (added by other cogs later) are still listed,
with their own description, so the page never hides a command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.buttons_layout import clip

if TYPE_CHECKING:
    from bot.app import MidjourneyBot

MAX_FIELD_VALUE = 1024

INTRO = (
    "I make images with Midjourney, using this server's own image-service account. "
    "Each job gets a message that fills in as the image is made; the buttons under "
    "a finished image start follow-ups, just like Midjourney's own bot."
)

# (command, how to use it, an example); the order is the order of the page.
GUIDE: tuple[tuple[str, str, str], ...] = (
    (
        "imagine",
        "Four images from a prompt. Midjourney parameters may follow the prompt.",
        "/imagine prompt: a lighthouse at dusk --ar 16:9",
    ),
    (
        "describe",
        "Four prompts that fit an image (attach it, or give a link). "
        "Buttons 1-4 imagine a prompt; 🔄 describes the image again.",
        "/describe image: photo.png",
    ),
    (
        "blend",
        "Blend 2 to 5 images into new ones; square, portrait or landscape.",
        "/blend image1: cat.png image2: hat.png dimension: portrait",
    ),
    (
        "edit",
        "Midjourney's editor: a new prompt on one image, on a canvas of any shape, the image "
        "placed where you say. The ✏️ buttons under an image do the same through a form.",
        "/edit job: 7k2m9q4x1bcd image: 2 prompt: the same scene at night canvas: 16:9",
    ),
    (
        "job",
        "`/job show` posts a job again with working buttons; `/job cancel` stops one "
        "that has not started; `/job history` lists your jobs here.",
        "/job show id: 7k2m9q4x1bcd",
    ),
    (
        "prefs",
        "Your own defaults: speed (mode), aspect ratio, version, a suffix for every prompt. "
        "It is what Midjourney calls `/settings` (here `/settings` is the server's rules, "
        "for admins).",
        "/prefs mode: relax",
    ),
    (
        "info",
        "Your speed, the jobs and fast jobs you have left today, and when the day resets.",
        "/info",
    ),
    ("help", "This page.", "/help"),
)

# The Midjourney parameters members reach for first, each with what it does.
PARAMETERS = (
    "`--ar 16:9` aspect ratio (width:height) · `--no trees` leave something out\n"
    "`--stylize 250` (`--s`) how strongly Midjourney's style applies, 0-1000\n"
    "`--chaos 30` (`--c`) how different the four images are, 0-100\n"
    "`--seed 1234` repeat a result · `--v 7` / `--niji 6` the model version\n"
    "`--fast` `--relax` `--turbo` the speed of this one job · `--raw` less styling\n"
    "`--sref <link>` borrow an image's style · `--iw 2` how much an image prompt weighs"
)

BUTTONS = (
    "**U1-U4** upscale one image · **V1-V4** vary one image · **🔄** run the prompt again\n"
    "Upscaled images offer Upscale, Vary, Zoom Out and ⬅️ ➡️ ⬆️ ⬇️ pan buttons."
)


SlashCommand = app_commands.Command[Any, ..., Any] | app_commands.Group


def help_embed(commands_available: Sequence[SlashCommand]) -> discord.Embed:
    """The help page; `commands_available` are the bot's top-level slash commands."""
    embed = discord.Embed(title="Midjourney bot", description=INTRO, colour=0x5865F2)
    names = {c.name for c in commands_available}
    for name, text, example in GUIDE:
        if name in names:
            embed.add_field(
                name=f"/{name}", value=clip(f"{text}\n`{example}`", MAX_FIELD_VALUE), inline=False
            )
    covered = {name for name, _, _ in GUIDE}
    others = [
        f"`/{c.name}` — {c.description}"
        for c in sorted(commands_available, key=lambda c: c.name)
        if c.name not in covered
    ]
    if others:
        embed.add_field(
            name="More commands", value=clip("\n".join(others), MAX_FIELD_VALUE), inline=False
        )
    embed.add_field(name="Parameters (after the prompt)", value=PARAMETERS, inline=False)
    embed.add_field(name="Buttons", value=BUTTONS, inline=False)
    embed.set_footer(text="Errors and this page are only shown to you.")
    return embed


class Help(commands.Cog):
    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot

    @app_commands.command(name="help", description="What this bot does and how to use it")
    async def help(self, interaction: discord.Interaction[Any]) -> None:
        found = self.bot.tree.get_commands(type=discord.AppCommandType.chat_input)
        embed = help_embed([c for c in found if not isinstance(c, app_commands.ContextMenu)])
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: MidjourneyBot) -> None:
    await bot.add_cog(Help(bot))
