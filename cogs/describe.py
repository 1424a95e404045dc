"""/describe: four prompts that could have made an image; buttons 1-4 imagine one of them.

The image is checked before the provider sees it: an attachment's size and type from
Discord's own description (nothing downloaded when that already fails), then its bytes.
Checking the bytes takes longer than Discord's 3-second window, so the command is
acknowledged first with a private "thinking" reply, which also carries any error; the
job itself gets a public message of its own.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord
import httpx
from discord import app_commands
from discord.ext import commands

from bot.aiohttp_transport import AiohttpTransport
from bot.discord.attachments import (
    AttachmentError,
    CheckedImage,
    check_attachment,
    check_image_url,
    check_metadata,
)
from bot.discord.policy import Member
from bot.discord.submit import (
    answer_storage_error,
    mark_clicked,
    prompt_limit,
    refuse,
    refused_by_policy,
    start_after_private_ack,
    start_job,
)
from bot.domain import JobStatus, Operation, OperationKind
from bot.engine import EngineError
from bot.media import FetchPolicy
from bot.speed import SpeedConflictError
from bot.store.base import StoreError
from cogs.imagine import OptionError, clean_prompt
from cogs.shorten import imagine_suggestion

if TYPE_CHECKING:
    from bot.app import MidjourneyBot

_PICK = re.compile(r"^describe_pick:(\d{1,2})$")


class Describe(commands.Cog):
    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot
        self._http = httpx.AsyncClient(follow_redirects=False, transport=AiohttpTransport())
        self._policy = FetchPolicy(allow_private=bot.settings.media_allow_private_hosts)

    async def cog_load(self) -> None:
        self.bot.follow_ups.register("describe_pick", self.on_click)
        self.bot.follow_ups.register("describe_reroll", self.on_click)
        self.bot.follow_ups.register("describe_all", self.on_imagine_all)

    async def cog_unload(self) -> None:
        await self._http.aclose()

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
            await refuse(interaction, problem)
            return
        mode = await self.bot.policy.default_mode(Member.of(interaction))
        probe = Operation(OperationKind.DESCRIBE, image_urls=(link or "attachment",), mode=mode)
        if await refused_by_policy(self.bot, interaction, probe):
            return

        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            checked: CheckedImage
            if image is not None:
                checked = await check_attachment(image)
            else:
                checked = await check_image_url(link, client=self._http, policy=self._policy)
        except AttachmentError as exc:
            await interaction.edit_original_response(content=f"❌ {exc}")
            return
        # The speed decided now and carried by the job: judged by the rules, counted in the
        # fast quota and sent (a job without one ran at the account's default, uncounted).
        mode = await self.bot.policy.default_mode(Member.of(interaction))
        operation = Operation(OperationKind.DESCRIBE, image_urls=(checked.url,), mode=mode)
        await start_after_private_ack(
            self.bot, interaction, operation, what="Describing your image"
        )

    async def on_click(
        self, interaction: discord.Interaction[Any], action: str, job_id: str
    ) -> None:
        """Buttons under a finished describe: `describe_pick:n` imagines prompt n,
        `describe_reroll` describes the same image again. Credited to whoever clicks."""
        parent = await self.bot.engine.get(job_id)
        guild_id = str(interaction.guild_id) if interaction.guild_id else None
        if (
            parent is None
            or parent.guild_id != guild_id
            or parent.operation.kind is not OperationKind.DESCRIBE
        ):
            await refuse(interaction, "This button belongs to a job this bot does not know.")
            return
        if parent.status is not JobStatus.COMPLETED:
            await refuse(interaction, "That job has not finished.")
            return
        user_id = interaction.user.id
        member = Member.of(interaction)
        if action == "describe_reroll":
            operation = Operation(
                OperationKind.DESCRIBE,
                image_urls=parent.operation.image_urls,
                mode=await self.bot.policy.default_mode(member),
            )
            key = f"describe_reroll:{parent.id}:{user_id}"
        else:
            match = _PICK.match(action)
            prompts = parent.prompts or []
            n = int(match[1]) if match else 0
            if not 1 <= n <= len(prompts):
                await refuse(interaction, "That prompt is not available.")
                return
            try:
                # An /imagine of the provider's words: its speed decided like /imagine's,
                # any speed flag in those words included (bot/speed.py).
                speed = await self.bot.policy.decide_speed(
                    member, prompt=prompts[n - 1], with_suffix=True
                )
                text = clean_prompt(speed.prompt or "", max_length=prompt_limit(self.bot))
            except (OptionError, SpeedConflictError) as exc:
                await refuse(interaction, str(exc))
                return
            operation = Operation(OperationKind.IMAGINE, prompt=text, mode=speed.mode)
            key = f"describe_pick:{parent.id}:{n}:{user_id}"

        if await refused_by_policy(self.bot, interaction, operation, parent=parent):
            return
        await mark_clicked(interaction, parent, action)
        try:
            _, attached = await start_job(self.bot, interaction, operation, idempotency_key=key)
        except EngineError as exc:
            await interaction.followup.send(exc.error.message, ephemeral=True)
            return
        except StoreError as exc:
            await answer_storage_error(interaction, exc)
            return
        if not attached:
            await interaction.followup.send("You already started that one.", ephemeral=True)

    async def on_imagine_all(
        self, interaction: discord.Interaction[Any], action: str, job_id: str
    ) -> None:
        """🎉 Imagine all: one /imagine per suggested prompt, as Midjourney's button does,
        each judged (prompt check, quotas) like a single pick; the first refusal stops it."""
        parent = await self.bot.engine.get(job_id)
        guild_id = str(interaction.guild_id) if interaction.guild_id else None
        if (
            parent is None
            or parent.guild_id != guild_id
            or parent.operation.kind is not OperationKind.DESCRIBE
            or parent.status is not JobStatus.COMPLETED
            or not parent.prompts
        ):
            await refuse(interaction, "This button belongs to a job this bot does not know.")
            return
        user_id = interaction.user.id
        for n, prompt in enumerate(parent.prompts[:4], start=1):
            key = f"describe_pick:{parent.id}:{n}:{user_id}"  # the same job as a click on n
            started = await imagine_suggestion(
                self.bot, interaction, parent, prompt, key=key, action=action
            )
            if not started:
                return


async def setup(bot: MidjourneyBot) -> None:
    # Hidden where the backend cannot describe (e.g. Vtrix): no command that always fails.
    if bot.provider.capabilities.supports(OperationKind.DESCRIBE):
        await bot.add_cog(Describe(bot))
