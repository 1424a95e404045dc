"""/animate: a short video from an image (Midjourney's `--video`), PROVIDERS.md §8.

    /animate image:<upload> | job:<a job id>  [prompt] [motion low|high] [loop]
             [end_image:<upload>] [batch 1|2|4] [hd]

Registered only where the backend starts a video from an image (Legnext, midjourney-proxy).
Every option is checked before anything is spent: the choices themselves, then the
server's rules, then the uploads' bytes. A job id animates that job's image at the provider
(its upscale, or a single image), so nothing is uploaded again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.attachments import AttachmentError, check_attachment, check_metadata
from bot.discord.policy import Member
from bot.domain import Job, JobStatus, Operation, OperationKind
from bot.interactions.errors import Refusal
from bot.video import video_problem
from cogs.imagine import OptionError, clean_prompt

if TYPE_CHECKING:
    from bot.app import MidjourneyBot

MOTIONS = [app_commands.Choice(name=f"{m} motion", value=m) for m in ("low", "high")]
BATCHES = [app_commands.Choice(name=f"{n} video{'s' if n > 1 else ''}", value=n) for n in (1, 2, 4)]


class Animate(commands.Cog):
    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot

    @app_commands.command(name="animate", description="Make short videos from an image")
    @app_commands.guild_only()
    @app_commands.allowed_installs(guilds=True, users=False)
    @app_commands.describe(
        image="The start image (PNG, JPEG, WEBP or GIF)",
        job="Or the id of one of the bot's finished images (an upscale), as /job history lists it",
        prompt="What should happen in the video (optional)",
        motion="Low motion (default) or high motion",
        loop="End on the start image, for a seamless loop",
        end_image="An image for the video to end on",
        batch="How many videos (default 4)",
        hd="720p instead of 480p (plans that allow it)",
    )
    @app_commands.choices(motion=MOTIONS)
    @app_commands.choices(batch=BATCHES)
    async def animate(
        self,
        interaction: discord.Interaction[Any],
        image: discord.Attachment | None = None,
        job: str | None = None,
        prompt: str | None = None,
        motion: app_commands.Choice[str] | None = None,
        loop: bool | None = None,
        end_image: discord.Attachment | None = None,
        batch: app_commands.Choice[int] | None = None,
        hd: bool | None = None,
    ) -> None:
        guild_id = str(interaction.guild_id) if interaction.guild_id else None
        parent = await self._parent(job, guild_id) if job else None
        problem = self._first_problem(image, job, parent, end_image)
        words: str | None = None
        if problem is None and prompt and prompt.strip():
            try:
                words = clean_prompt(prompt, max_length=self.bot.starter.prompt_limit)
            except OptionError as exc:
                problem = str(exc)
            else:  # banned words and Midjourney's parameters (--motion, --end, …) checked
                settings = await self.bot.policy.settings(guild_id)
                problem = self.bot.policy.check_text(settings, words)
        mode = await self.bot.policy.default_mode(Member.of(interaction))
        operation = Operation(
            OperationKind.VIDEO if parent else OperationKind.VIDEO_FROM_IMAGE,
            prompt=words,
            mode=mode,
            parent_job_id=parent.id if parent else None,
            index=1 if parent else None,
            image_urls=(image.url,) if image is not None else (),
            motion=motion.value if motion else None,
            video_loop=loop or None,
            end_image_url=end_image.url if end_image is not None else None,
            batch_size=batch.value if batch else None,
            hd=hd or None,
        )
        problem = problem or video_problem(operation)
        if problem is not None:
            raise Refusal(problem)
        await self.bot.starter.check(interaction, operation, parent=parent)
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            for upload in (image, end_image):
                if upload is not None:
                    await check_attachment(upload)  # the bytes: a whole, sane image
        except AttachmentError as exc:
            await interaction.edit_original_response(content=f"❌ {exc}")
            return
        await self.bot.starter.start_after_private_ack(interaction, operation, what="Animating")

    async def _parent(self, job_id: str, guild_id: str | None) -> Job | None:
        found = await self.bot.engine.get(job_id.strip())
        return found if found is not None and found.guild_id == guild_id else None

    def _first_problem(
        self,
        image: discord.Attachment | None,
        job_id: str | None,
        parent: Job | None,
        end_image: discord.Attachment | None,
    ) -> str | None:
        """The first thing wrong with the choice of images, in a sentence; None if none."""
        if image is not None and job_id:
            return "Give either an image or a job id, not both."
        if image is None and not job_id:
            return "Attach the start image, or give the id of one of the bot's images."
        if job_id and parent is None:
            return "No job with that id here: /job history lists yours."
        if parent is not None:
            if parent.status is not JobStatus.COMPLETED or parent.is_video:
                return "That job is not a finished image."
            if parent.tiles and len(parent.tiles) > 1:
                return "That job is a grid: pick one image first (U1–U4), then animate it."
        for name, upload in (("image", image), ("end_image", end_image)):
            if upload is not None:
                try:
                    check_metadata(upload)  # before any download: size and type as Discord says
                except AttachmentError as exc:
                    return f"{name}: {exc}"
        return None


async def setup(bot: MidjourneyBot) -> None:
    # Hidden where the backend cannot start a video from an image (Vtrix, PiAPI).
    if bot.provider.capabilities.supports(OperationKind.VIDEO_FROM_IMAGE):
        await bot.add_cog(Animate(bot))
