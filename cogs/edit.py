"""/edit: Midjourney's editor on a finished image, the same as its ✏️ buttons.

Offered only where the backend edits images (Legnext, Vtrix). The options are checked
(prompt length, canvas, position, scale: bot/edit_canvas.py) before anything is sent,
so a typo costs nothing; the job then gets its own message like any other.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.actions import ActionInput, ActionInputError, operation_for
from bot.discord.policy import Member
from bot.domain import Job, Operation, OperationKind
from bot.edit_canvas import POSITIONS, check_edit_prompt, edit_geometry
from bot.engine import EngineError
from bot.interactions import rules
from bot.interactions.errors import Refusal
from bot.interactions.follow_ups import follow_up_speed
from bot.interactions.ids import optional_str
from bot.speed import SpeedConflictError
from cogs.retexture import UploadError, check_upload, keep_upload

if TYPE_CHECKING:
    from bot.app import MidjourneyBot


class Edit(commands.Cog):
    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot

    @app_commands.command(name="edit", description="Edit one of your images with a new prompt")
    # Server rules (channels, roles, quotas, speeds) need a server: no DMs, no user installs.
    @app_commands.guild_only()
    @app_commands.allowed_installs(guilds=True, users=False)
    @app_commands.describe(
        job="The job id shown under the image (or in /job history); or attach an image",
        upload="Or an image of your own to edit (PNG, JPEG or WEBP, up to 10 MB)",
        image="Which image of a grid: 1–4 (a single image needs none)",
        prompt="What the edited image should show",
        canvas="Canvas: an aspect ratio like 16:9 or pixels like 1536x1024 (default: the image's)",
        position="Where the image sits on the canvas (default: center)",
        scale="The image's size on the canvas, 0.1–1 (default 1: as large as fits)",
    )
    @app_commands.choices(
        position=[app_commands.Choice(name=p, value=p) for p in POSITIONS],
    )
    async def edit(
        self,
        interaction: discord.Interaction[Any],
        prompt: str,
        job: str | None = None,
        image: app_commands.Range[int, 1, 4] | None = None,
        canvas: str | None = None,
        position: app_commands.Choice[str] | None = None,
        scale: str | None = None,
        upload: discord.Attachment | None = None,
    ) -> None:
        if (upload is None) == (not job or not job.strip()):
            raise Refusal("Give either a job id or an image to edit (one of them).")
        if upload is not None:
            await self._edit_upload(interaction, upload, prompt, canvas, position, scale)
            return
        assert job is not None
        await self._edit_job(interaction, job, prompt, image, canvas, position, scale)

    async def _edit_job(
        self,
        interaction: discord.Interaction[Any],
        job: str,
        prompt: str,
        image: int | None,
        canvas: str | None,
        position: app_commands.Choice[str] | None,
        scale: str | None,
    ) -> None:
        found = await self.bot.engine.get(job.strip().lower())
        parent = _finished_job(interaction, found, job)
        try:
            action = _edit_action(parent, image)
            limit = self.bot.starter.prompt_limit
            text = check_edit_prompt(prompt)
            if len(text) > limit:
                raise ActionInputError(
                    f"The prompt is {len(text)} characters long; the limit is {limit}."
                )
            size, placement = edit_geometry(
                canvas or "",
                position.value if position else "",
                scale or "",
                source_aspect=parent.operation.aspect_ratio,
            )
            operation = await follow_up_speed(
                self.bot.policy,
                interaction,
                operation_for(
                    action, parent, ActionInput(prompt=text, canvas=size, placement=placement)
                ),
                parent,
            )
        except (ActionInputError, SpeedConflictError) as exc:
            raise Refusal(str(exc)) from None
        await self.bot.starter.check(interaction, operation, parent=parent)
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            started, _ = await self.bot.starter.start(
                interaction, operation, idempotency_key=f"interaction:{interaction.id}"
            )
        except EngineError as exc:
            await interaction.edit_original_response(content=f"❌ {exc.error.message}")
            return
        await interaction.edit_original_response(
            content=f"Editing; the result will appear in this channel (job `{started.id}`)."
        )

    async def _edit_upload(
        self,
        interaction: discord.Interaction[Any],
        upload: discord.Attachment,
        prompt: str,
        canvas: str | None,
        position: app_commands.Choice[str] | None,
        scale: str | None,
    ) -> None:
        """The editor on a member's own image (issue 19): Legnext /v1/upload-paint, Vtrix
        midjourney_uploadpaint, mj-proxy /mj/submit/edits. Checked, then kept in a message
        of the bot's own (bot/references.py), then sent."""
        if not self.bot.provider.capabilities.supports(OperationKind.UPLOAD_EDIT):
            raise Refusal("This bot's image service cannot edit an uploaded image.")
        source = f"{upload.width}:{upload.height}" if upload.width and upload.height else None
        try:
            text = check_edit_prompt(prompt)
            if len(text) > (limit := self.bot.starter.prompt_limit):
                raise ActionInputError(
                    f"The prompt is {len(text)} characters long; the limit is {limit}."
                )
            size, placement = edit_geometry(
                canvas or "", position.value if position else "", scale or "", source_aspect=source
            )
        except ActionInputError as exc:
            raise Refusal(str(exc)) from None
        if (problem := check_upload(upload)) is not None:
            raise Refusal(problem)
        mode = await self.bot.policy.default_mode(Member.of(interaction))
        operation = Operation(
            OperationKind.UPLOAD_EDIT,
            prompt=text,
            image_urls=(upload.url,),
            canvas=size,
            placement=placement,
            mode=mode,
        )
        await self.bot.starter.check(interaction, operation)
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            url, _ = await keep_upload(self.bot, interaction, upload, "/edit")
            started, _ = await self.bot.starter.start(
                interaction,
                dataclasses.replace(operation, image_urls=(url,)),
                idempotency_key=f"interaction:{interaction.id}",
            )
        except UploadError as exc:
            await interaction.edit_original_response(content=f"❌ {exc}")
            return
        except EngineError as exc:
            await interaction.edit_original_response(content=f"❌ {exc.error.message}")
            return
        await interaction.edit_original_response(
            content=f"Editing; the result will appear in this channel (job `{started.id}`)."
        )


def _finished_job(interaction: discord.Interaction[Any], found: Job | None, typed: str) -> Job:
    """The rules of /edit's job option: a job of this server's, finished (raises Refusal)."""
    text = f"There is no job `{typed.strip()[:20]}` in this server."
    return rules.finished_here(found, optional_str(interaction.guild_id), text=text)


def _edit_action(parent: Job, image: int | None) -> str:
    """The parent's edit action for `image` (a grid's `edit:N`, an upscale's `edit`);
    raises ActionInputError with the sentence to tell the member when there is none."""
    offered = {a.name for a in parent.actions}
    if image is not None and f"edit:{image}" in offered:
        return f"edit:{image}"
    if "edit" in offered and image in (None, 1):
        return "edit"
    if any(name.startswith("edit:") for name in offered):
        raise ActionInputError("That job is a grid: say which image to edit (1–4).")
    raise ActionInputError("That image cannot be edited.")


async def setup(bot: MidjourneyBot) -> None:
    # Not offered at all where the backend cannot edit: a command that always fails is
    # worse than none.
    caps = bot.provider.capabilities
    if caps.supports(OperationKind.EDIT) or caps.supports(OperationKind.UPLOAD_EDIT):
        await bot.add_cog(Edit(bot))
