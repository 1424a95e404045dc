"""/retexture: a new look for a member's own image, its shapes kept (issue 19 item 5).
Legnext `POST /v1/retexture {imgUrl, remixPrompt}`, Vtrix `midjourney_retexture`,
midjourney-proxy `POST /mj/submit/retexture {prompt, image}`; hidden elsewhere.

The upload is checked (size, type, real image bytes) and kept in a message of the bot's
own before it is sent, so the provider gets a link that the bot can re-sign later
(bot/references.py). `keep_upload` is shared with /edit's image option.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import media
from bot.actions import ActionInputError
from bot.discord.attachments import AttachmentError, check_metadata, format_size
from bot.discord.policy import Member
from bot.domain import Operation, OperationKind
from bot.edit_canvas import check_edit_prompt
from bot.engine import EngineError
from bot.interactions.errors import Refusal, answer_refusal
from bot.store.base import StoreError

if TYPE_CHECKING:
    from bot.app import MidjourneyBot

UPLOAD_MAX_BYTES = 10 * 1024 * 1024  # Legnext's limit for imgUrl (PROVIDERS.md §8.2)
NOT_SAVED = (
    "I can't save anything right now, so nothing was started and nothing was charged. "
    "Please try again in a few minutes."
)


class UploadError(ValueError):
    """An unusable upload; the message is for the member."""


async def keep_upload(
    bot: MidjourneyBot, interaction: discord.Interaction[Any], image: discord.Attachment, what: str
) -> tuple[str, media.ImageInfo]:
    """The upload's bytes checked, then kept in a message of the bot's own: its URL (one
    the provider can fetch now, and the bot can re-sign later) and the image's size."""
    try:
        data = await image.read()
    except discord.HTTPException:
        raise UploadError("Could not download your image from Discord; try again.") from None
    if len(data) > UPLOAD_MAX_BYTES:
        raise UploadError(f"Your image is {format_size(len(data))}; the limit is 10 MB.")
    try:
        info = await asyncio.to_thread(media.inspect_image, data)
    except media.MediaError as exc:
        raise UploadError(exc.message) from None
    try:
        [url] = await bot.references.keep(
            interaction.channel_id or 0,
            f"📎 The image for a {what} by <@{interaction.user.id}>",
            [(image.filename, data)],
        )
    except discord.HTTPException:
        raise UploadError(
            "I could not keep your image in this channel (can I attach files here?). "
            "Nothing was started."
        ) from None
    return url, info


def check_upload(image: discord.Attachment) -> str | None:
    """Refuse by Discord's own description of the file, before any download."""
    try:
        check_metadata(image, max_bytes=UPLOAD_MAX_BYTES)
    except AttachmentError as exc:
        return str(exc)
    return None


class Retexture(commands.Cog):
    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot

    @app_commands.command(name="retexture", description="A new look for your image, shapes kept")
    @app_commands.guild_only()
    @app_commands.allowed_installs(guilds=True, users=False)
    @app_commands.describe(
        image="Your image (PNG, JPEG or WEBP, up to 10 MB)", prompt="The new look"
    )
    async def retexture(
        self, interaction: discord.Interaction[Any], image: discord.Attachment, prompt: str
    ) -> None:
        try:
            if not prompt.strip():
                raise ActionInputError("Retexture needs a prompt: describe the new look.")
            text = check_edit_prompt(prompt)
            if len(text) > (limit := self.bot.starter.prompt_limit):
                raise ActionInputError(
                    f"The prompt is {len(text)} characters long; the limit is {limit}."
                )
        except ActionInputError as exc:
            raise Refusal(str(exc)) from None
        if (problem := check_upload(image)) is not None:
            raise Refusal(problem)
        mode = await self.bot.policy.default_mode(Member.of(interaction))
        probe = Operation(OperationKind.RETEXTURE, prompt=text, image_urls=(image.url,), mode=mode)
        await self.bot.starter.check(interaction, probe)
        # Public, like /imagine: the job's own message is this reply.
        response = await interaction.response.defer(thinking=True)
        try:
            url, _ = await keep_upload(self.bot, interaction, image, "/retexture")
            await self.bot.starter.start(
                interaction,
                Operation(OperationKind.RETEXTURE, prompt=text, image_urls=(url,), mode=mode),
                idempotency_key=f"interaction:{interaction.id}",
                message_id=response.message_id if response else None,
                use_token=True,
            )
        except UploadError as exc:
            await answer_refusal(interaction, str(exc))  # the public "thinking" reply goes
        except EngineError as exc:
            await interaction.edit_original_response(content=f"❌ {exc.error.message}")
        except StoreError:
            await interaction.edit_original_response(content=f"❌ {NOT_SAVED}")


async def setup(bot: MidjourneyBot) -> None:
    if bot.provider.capabilities.supports(OperationKind.RETEXTURE):
        await bot.add_cog(Retexture(bot))
