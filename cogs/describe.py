"""/describe: four prompts that could have made an image; buttons 1-4 imagine one of them.

The image is checked before the provider sees it: an attachment's size and type from
Discord's own description (nothing downloaded when that already fails), then its bytes.
Checking the bytes takes longer than Discord's 3-second window, so the command is
acknowledged first with a private "thinking" reply, which also carries any error; the
job itself gets a public message of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.attachments import (
    AttachmentError,
    CheckedImage,
    check_attachment,
    check_image_url,
    check_metadata,
)
from bot.discord.policy import Member
from bot.domain import Job, Operation, OperationKind
from bot.interactions import rules
from bot.interactions.buttons import JobItem, item_template, services
from bot.interactions.errors import Refusal
from bot.interactions.ids import optional_str
from bot.media import FetchPolicy
from cogs.shorten import judge_suggestion, start_suggestion

if TYPE_CHECKING:
    from bot.app import MidjourneyBot


class Describe(commands.Cog):
    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot
        self._policy = FetchPolicy(allow_private=bot.settings.media_allow_private_hosts)

    @app_commands.command(name="describe", description="Get four prompts that fit an image")
    # Server rules (channels, roles, quotas, speeds) need a server: no DMs, no user installs.
    @app_commands.guild_only()
    @app_commands.allowed_installs(guilds=True, users=False)
    @app_commands.describe(
        image="The image to describe (PNG, JPEG, WEBP or GIF)",
        url="Or a link to the image",
    )
    async def describe(
        self,
        interaction: discord.Interaction[Any],
        image: discord.Attachment | None = None,
        url: str | None = None,
    ) -> None:
        link = url.strip() if url else ""
        problem: str | None = None
        if image is not None and link:
            problem = "Give either an image or a link, not both."
        elif image is None and not link:
            problem = "Attach an image or give a link to one."
        elif image is not None:
            try:
                check_metadata(image)  # before any download: size and type as Discord says
            except AttachmentError as exc:
                problem = str(exc)
        if problem is not None:
            raise Refusal(problem)
        mode = await self.bot.policy.default_mode(Member.of(interaction))
        probe = Operation(OperationKind.DESCRIBE, image_urls=(link or "attachment",), mode=mode)
        await self.bot.starter.check(interaction, probe)

        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            checked: CheckedImage
            if image is not None:
                checked = await check_attachment(image)
            else:
                checked = await check_image_url(
                    link, client=self.bot.media_fetcher.client, policy=self._policy
                )
        except AttachmentError as exc:
            await interaction.edit_original_response(content=f"❌ {exc}")
            return
        # The speed decided now and carried by the job: judged by the rules, counted in the
        # fast quota and sent (a job without one ran at the account's default, uncounted).
        mode = await self.bot.policy.default_mode(Member.of(interaction))
        operation = Operation(OperationKind.DESCRIBE, image_urls=(checked.url,), mode=mode)
        await self.bot.starter.start_after_private_ack(
            interaction, operation, what="Describing your image"
        )


class DescribeButton(JobItem, template=item_template(r"describe_pick:[1-9]|describe_reroll")):
    """Buttons under a finished describe: `describe_pick:n` imagines prompt n,
    `describe_reroll` describes the same image again. Credited to whoever clicks."""

    operation: Operation | None = None
    key = ""  # one job per member and button: a double click is one

    async def judge(self, interaction: discord.Interaction[Any]) -> None:
        parent = _finished_describe(interaction, self.job)
        starter = services(interaction).starter
        parsed = self.parsed
        if parsed is not None and parsed.family == "describe_reroll":
            mode = await starter.policy.default_mode(Member.of(interaction))
            operation = Operation(
                OperationKind.DESCRIBE, image_urls=parent.operation.image_urls, mode=mode
            )
            key = f"describe_reroll:{parent.id}:{interaction.user.id}"
            if not starter.capabilities.supports(OperationKind.DESCRIBE):
                # A button from before a switch to a backend without /describe.
                raise Refusal("The image service this server uses cannot describe images.")
            await starter.check(interaction, operation, parent=parent)
        else:
            n = parsed.index if parsed is not None else None
            prompts = parent.prompts or []
            if n is None or not 1 <= n <= len(prompts):
                raise Refusal("That prompt is not available.")
            # An /imagine of the provider's words: its speed decided like /imagine's, any
            # speed flag in those words included, and the same prompt check and quotas.
            operation = await judge_suggestion(starter, interaction, parent, prompts[n - 1])
            key = f"describe_pick:{parent.id}:{n}:{interaction.user.id}"
        self.operation, self.key = operation, key

    async def act(self, interaction: discord.Interaction[Any]) -> None:
        assert self.job is not None and self.operation is not None  # judged
        await start_suggestion(
            services(interaction).starter,
            interaction,
            self.operation,
            key=self.key,
            action=self.action,
            job_id=self.job.id,
        )


class ImagineAllButton(JobItem, template=item_template("describe_all")):
    """🎉 Imagine all: one /imagine per suggested prompt, as Midjourney's button does,
    each judged (prompt check, quotas) like a single pick; the first refusal stops it."""

    async def judge(self, interaction: discord.Interaction[Any]) -> None:
        parent = _finished_describe(interaction, self.job)
        if not parent.prompts:
            raise Refusal(rules.UNKNOWN_BUTTON)

    async def act(self, interaction: discord.Interaction[Any]) -> None:
        assert self.job is not None and self.job.prompts  # judged
        starter = services(interaction).starter
        user_id = interaction.user.id
        for n, prompt in enumerate(self.job.prompts[:4], start=1):
            operation = await judge_suggestion(starter, interaction, self.job, prompt)
            key = f"describe_pick:{self.job.id}:{n}:{user_id}"  # the same job as a click on n
            if not await start_suggestion(
                starter, interaction, operation, key=key, action=self.action, job_id=self.job.id
            ):
                return


def _finished_describe(interaction: discord.Interaction[Any], parent: Job | None) -> Job:
    """The rules of describe's buttons: a describe of this server's, finished."""
    guild_id = optional_str(interaction.guild_id)
    return rules.finished_here(parent, guild_id, kind=OperationKind.DESCRIBE)


async def setup(bot: MidjourneyBot) -> None:
    # The buttons answer whatever the backend: those under describes from before a switch
    # to a backend without /describe still get a private answer, never "interaction failed".
    bot.add_dynamic_items(DescribeButton, ImagineAllButton)
    # Hidden where the backend cannot describe (e.g. Vtrix): no command that always fails.
    if bot.provider.capabilities.supports(OperationKind.DESCRIBE):
        await bot.add_cog(Describe(bot))


async def teardown(bot: MidjourneyBot) -> None:
    bot.remove_dynamic_items(DescribeButton, ImagineAllButton)
