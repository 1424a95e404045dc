"""/shorten: Midjourney's shorter versions of a prompt, with buttons 1–5 that imagine one
(issue 19 item 4). midjourney-proxy `POST /mj/submit/shorten {prompt}`, Legnext
`POST /v1/shorten {prompt}`; hidden where the backend has no shorten (PiAPI, Vtrix).

The answer is public, like Midjourney's own: the shortened prompts listed as a describe's
are (bot/discord/presenter.py), and a click on `n` is an /imagine of prompt n for whoever
clicks, judged by the same rules as a typed one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.policy import Member
from bot.domain import Job, Operation, OperationKind
from bot.interactions import rules
from bot.interactions.buttons import JobItem, item_template, services
from bot.interactions.errors import Refusal
from bot.interactions.ids import optional_str
from bot.interactions.recolour import mark_clicked
from bot.interactions.starter import JobStarter
from bot.speed import SpeedConflictError
from cogs.imagine import OptionError, clean_prompt

if TYPE_CHECKING:
    from bot.app import MidjourneyBot


async def judge_suggestion(
    starter: JobStarter, interaction: discord.Interaction[Any], parent: Job, prompt: str
) -> Operation:
    """An /imagine of a prompt the provider suggested (a describe or shorten pick), for
    the member who clicked: speed decided like /imagine's, the same prompt check and
    quotas. Raises Refusal with the member's sentence."""
    member = Member.of(interaction)
    try:
        speed = await starter.policy.decide_speed(member, prompt=prompt, with_suffix=True)
        text = clean_prompt(speed.prompt or "", max_length=starter.prompt_limit)
    except (OptionError, SpeedConflictError) as exc:
        raise Refusal(str(exc)) from None
    operation = Operation(OperationKind.IMAGINE, prompt=text, mode=speed.mode)
    await starter.check(interaction, operation, parent=parent)
    return operation


async def start_suggestion(
    starter: JobStarter,
    interaction: discord.Interaction[Any],
    operation: Operation,
    *,
    key: str,
    action: str,
    job_id: str,
) -> bool:
    """A judged pick: its button turns blue, its job gets its own message. Returns
    whether the job runs (False: the engine or the store refused, told privately)."""
    await mark_clicked(interaction, action, job_id)
    return await starter.start_follow_up(interaction, operation, key=key)


class ShortenButton(JobItem, template=item_template("shorten_pick:[1-9]")):
    """`shorten_pick:n` under a finished /shorten: an /imagine of prompt n for whoever
    clicks, judged by the same rules as a typed one."""

    operation: Operation | None = None

    async def judge(self, interaction: discord.Interaction[Any]) -> None:
        guild_id = optional_str(interaction.guild_id)
        job = rules.finished_here(self.job, guild_id, kind=OperationKind.SHORTEN)
        parsed = self.parsed
        n = parsed.index if parsed is not None else None
        prompts = job.prompts or []
        if n is None or not 1 <= n <= len(prompts):
            raise Refusal("That prompt is not available.")
        starter = services(interaction).starter
        self.operation = await judge_suggestion(starter, interaction, job, prompts[n - 1])

    async def act(self, interaction: discord.Interaction[Any]) -> None:
        assert self.job is not None and self.operation is not None  # judged
        parsed = self.parsed
        assert parsed is not None and parsed.index is not None
        key = f"shorten_pick:{self.job.id}:{parsed.index}:{interaction.user.id}"
        await start_suggestion(
            services(interaction).starter,
            interaction,
            self.operation,
            key=key,
            action=self.action,
            job_id=self.job.id,
        )


class Shorten(commands.Cog):
    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot

    @app_commands.command(name="shorten", description="Shorter versions of a prompt")
    @app_commands.guild_only()
    @app_commands.allowed_installs(guilds=True, users=False)
    @app_commands.describe(prompt="The prompt to shorten")
    async def shorten(self, interaction: discord.Interaction[Any], prompt: str) -> None:
        try:
            text = clean_prompt(prompt, max_length=self.bot.starter.prompt_limit)
        except OptionError as exc:
            raise Refusal(str(exc)) from None
        mode = await self.bot.policy.default_mode(Member.of(interaction))
        operation = Operation(OperationKind.SHORTEN, prompt=text, mode=mode)
        await self.bot.starter.check(interaction, operation)
        await self.bot.starter.start_public(interaction, operation)


async def setup(bot: MidjourneyBot) -> None:
    # The picks answer whatever the backend (they start an /imagine): those under shortens
    # from before a switch to a backend without /shorten keep working.
    bot.add_dynamic_items(ShortenButton)
    if bot.provider.capabilities.supports(OperationKind.SHORTEN):
        await bot.add_cog(Shorten(bot))


async def teardown(bot: MidjourneyBot) -> None:
    bot.remove_dynamic_items(ShortenButton)
