"""/shorten: Midjourney's shorter versions of a prompt, with buttons 1–5 that imagine one
(issue 19 item 4). midjourney-proxy `POST /mj/submit/shorten {prompt}`, Legnext
`POST /v1/shorten {prompt}`; hidden where the backend has no shorten (PiAPI, Vtrix).

The answer is public, like Midjourney's own: the shortened prompts listed as a describe's
are (bot/discord/presenter.py), and a click on `n` is an /imagine of prompt n for whoever
clicks, judged by the same rules as a typed one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.policy import Member
from bot.discord.submit import (
    answer_storage_error,
    mark_clicked,
    prompt_limit,
    refuse,
    refused_by_policy,
    start_job,
    start_public_job,
)
from bot.domain import Job, JobStatus, Operation, OperationKind
from bot.engine import EngineError
from bot.speed import SpeedConflictError
from bot.store.base import StoreError
from cogs.imagine import OptionError, clean_prompt

if TYPE_CHECKING:
    from bot.app import MidjourneyBot

_PICK = re.compile(r"^shorten_pick:([1-9])$")


async def imagine_suggestion(
    bot: MidjourneyBot,
    interaction: discord.Interaction[Any],
    parent: Job,
    prompt: str,
    *,
    key: str,
    action: str,
) -> bool:
    """An /imagine of a prompt the provider suggested (a describe or shorten pick), for
    the member who clicked: speed decided like /imagine's, the same prompt check and
    quotas. Returns whether it started (False: refused, answered privately)."""
    member = Member.of(interaction)
    try:
        speed = await bot.policy.decide_speed(member, prompt=prompt, with_suffix=True)
        text = clean_prompt(speed.prompt or "", max_length=prompt_limit(bot))
    except (OptionError, SpeedConflictError) as exc:
        await _say(interaction, str(exc))
        return False
    operation = Operation(OperationKind.IMAGINE, prompt=text, mode=speed.mode)
    reason = await bot.policy.check_click(member, parent) or await bot.policy.check_job(
        member, operation, parent=parent
    )
    if reason is not None:
        await _say(interaction, reason)
        return False
    await mark_clicked(interaction, parent, action)
    try:
        _, attached = await start_job(bot, interaction, operation, idempotency_key=key)
    except EngineError as exc:
        await interaction.followup.send(exc.error.message, ephemeral=True)
        return False
    except StoreError as exc:
        await answer_storage_error(interaction, exc)
        return False
    if not attached:
        await interaction.followup.send("You already started that one.", ephemeral=True)
    return True


async def _say(interaction: discord.Interaction[Any], text: str) -> None:
    """A private answer: the first one, or a follow-up once the click was acknowledged
    (Imagine all starts several jobs from one click)."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await refuse(interaction, text)


class Shorten(commands.Cog):
    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot
        self.bot.follow_ups.register("shorten_pick", self.on_click)

    @app_commands.command(name="shorten", description="Shorter versions of a prompt")
    @app_commands.guild_only()
    @app_commands.allowed_installs(guilds=True, users=False)
    @app_commands.describe(prompt="The prompt to shorten")
    async def shorten(self, interaction: discord.Interaction[Any], prompt: str) -> None:
        try:
            text = clean_prompt(prompt, max_length=prompt_limit(self.bot))
        except OptionError as exc:
            await refuse(interaction, str(exc))
            return
        mode = await self.bot.policy.default_mode(Member.of(interaction))
        operation = Operation(OperationKind.SHORTEN, prompt=text, mode=mode)
        if await refused_by_policy(self.bot, interaction, operation):
            return
        await start_public_job(self.bot, interaction, operation)

    async def on_click(
        self, interaction: discord.Interaction[Any], action: str, job_id: str
    ) -> None:
        parent = await self.bot.engine.get(job_id)
        guild_id = str(interaction.guild_id) if interaction.guild_id else None
        if (
            parent is None
            or parent.guild_id != guild_id
            or parent.operation.kind is not OperationKind.SHORTEN
        ):
            await refuse(interaction, "This button belongs to a job this bot does not know.")
            return
        if parent.status is not JobStatus.COMPLETED:
            await refuse(interaction, "That job has not finished.")
            return
        match = _PICK.match(action)
        prompts = parent.prompts or []
        n = int(match[1]) if match else 0
        if not 1 <= n <= len(prompts):
            await refuse(interaction, "That prompt is not available.")
            return
        key = f"shorten_pick:{parent.id}:{n}:{interaction.user.id}"
        await imagine_suggestion(
            self.bot, interaction, parent, prompts[n - 1], key=key, action=action
        )


async def setup(bot: MidjourneyBot) -> None:
    if bot.provider.capabilities.supports(OperationKind.SHORTEN):
        await bot.add_cog(Shorten(bot))
