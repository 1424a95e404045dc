"""/job show | cancel | history: a member's jobs in this server.

Jobs are looked up only within the server they were made in; a job from elsewhere is
answered exactly like one that does not exist, so ids reveal nothing across servers.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands
from discord.utils import escape_markdown, escape_mentions

from bot import redaction
from bot.discord.buttons_layout import clip
from bot.discord.presenter import render, to_discord_embed
from bot.discord.spoilers import spoiler_name, spoilered
from bot.discord.submit import bot_actions, refuse
from bot.discord.views import job_view
from bot.domain import ErrorCode, Job, JobError, JobStatus
from bot.engine import EngineError
from bot.references import with_fresh_references

if TYPE_CHECKING:
    from bot.app import MidjourneyBot

log = logging.getLogger(__name__)

PAGE_SIZE = 10
EXCERPT_LIMIT = 60
PROVIDER_TEXT_LIMIT = 200
_STATUS_ICON = {
    JobStatus.QUEUED: "⏳",
    JobStatus.SUBMITTED: "⏳",
    JobStatus.RUNNING: "🎨",
    JobStatus.COMPLETED: "✅",
    JobStatus.FAILED: "❌",
    JobStatus.CANCELLED: "🚫",
    JobStatus.TIMED_OUT: "⏱️",
}


@app_commands.guild_only()
class Jobs(commands.GroupCog, group_name="job", group_description="Your jobs in this server"):
    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot
        super().__init__()

    async def _job_here(self, interaction: discord.Interaction[Any], job_id: str) -> Job | None:
        """The job if it belongs to this server; otherwise answers "no such job" itself."""
        key = job_id.strip().lower()
        job = await self.bot.engine.get(key) if key else None
        if job is None or job.guild_id != str(interaction.guild_id):
            shown = clip(key.replace("`", ""), 20) or "?"  # a code span: no markdown, no pings
            await refuse(interaction, f"There is no job `{shown}` in this server.")
            return None
        return job

    @app_commands.command(name="show", description="Post one of the jobs again, with its buttons")
    @app_commands.rename(job_id="id")
    @app_commands.describe(job_id="The job's id, as /job history lists it")
    async def show(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        job = await self._job_here(interaction, job_id)
        if job is None:
            return
        await interaction.response.defer(thinking=True)
        # Reference images' links re-signed, so the prompt shown has working ones (issue 19).
        job = await with_fresh_references(self.bot.references, job)
        rendered = render(
            job,
            now=self.bot.engine.clock.time(),
            follow_up_window=self.bot.provider.capabilities.follow_up_window,
            extra_actions=bot_actions(self.bot, job),
        )
        files: list[discord.File] = []
        if job.is_video and job.videos:  # the MP4s again, fitted as the first delivery was
            spoiler = await spoilered(self.bot.policy, job, interaction.channel)
            rendered, files = await self.bot.publisher.video_message(
                job, rendered, interaction.filesize_limit, spoiler=spoiler
            )
        elif rendered.image is not None and rendered.image.kind == "result":
            fitted = await self.bot.publisher.fitted_result(job, interaction.filesize_limit)
            if fitted is not None:
                # The first delivery's rule, for the channel this copy is shown in.
                spoiler = await spoilered(self.bot.policy, job, interaction.channel)
                filename = spoiler_name(fitted.filename, spoiler)
                files = [discord.File(io.BytesIO(fitted.data), filename=filename)]
                rendered = rendered.with_attachment(filename)
        # Buttons are keyed by job id (persistent), so they work on this copy as well.
        await interaction.edit_original_response(
            content=rendered.content,
            embed=to_discord_embed(rendered.embed) if rendered.embed else None,
            attachments=files,
            view=job_view(rendered.buttons, job.id),
            allowed_mentions=discord.AllowedMentions.none(),  # a re-post pings nobody
        )

    @app_commands.command(name="cancel", description="Cancel one of your jobs that has not started")
    @app_commands.rename(job_id="id")
    @app_commands.describe(job_id="The job's id, as /job history lists it")
    async def cancel(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        job = await self._job_here(interaction, job_id)
        if job is None:
            return
        is_owner = job.requester_id == str(interaction.user.id)
        if not (is_owner or interaction.permissions.manage_messages):
            await refuse(
                interaction,
                "Only the member who started this job, or someone who may manage messages "
                "here, can cancel it.",
            )
            return
        if job.is_terminal:
            await refuse(interaction, f"Job `{job.id}` has already ended ({_status_text(job)}).")
            return
        # Cancelling may ask the provider: acknowledge first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            result = await self.bot.engine.cancel(job.id)
        except EngineError as exc:
            await interaction.edit_original_response(content=_cancel_refusal(exc.error))
            return
        if result.status is JobStatus.CANCELLED:
            text = f"Job `{job.id}` is cancelled."
            if not is_owner and job.guild_id:
                # A moderator stopping someone else's job is an admin action: on record.
                await self.bot.store.audit.record(
                    job.guild_id,
                    str(interaction.user.id),
                    "job cancel",
                    f"cancelled job {job.id} of <@{job.requester_id}>",
                    self.bot.engine.clock.time(),
                )
        else:
            text = f"Job `{job.id}` had already ended ({_status_text(result)})."
        await interaction.edit_original_response(content=text)

    @app_commands.command(name="history", description="Your recent jobs in this server")
    @app_commands.describe(page="Page number (10 jobs a page, newest first)")
    async def history(
        self,
        interaction: discord.Interaction[Any],
        page: app_commands.Range[int, 1, 10_000] = 1,
    ) -> None:
        jobs = self.bot.store.jobs
        user_id = str(interaction.user.id)
        guild_id = str(interaction.guild_id)
        total = await jobs.count_for_requester_since(user_id, 0.0, guild_id=guild_id)
        if total == 0:
            await refuse(interaction, "You have no jobs in this server yet. Try `/imagine`.")
            return
        pages = -(-total // PAGE_SIZE)
        if page > pages:
            await refuse(interaction, f"There are only {pages} page(s) of jobs.")
            return
        found = await jobs.list_for_requester(
            user_id, guild_id=guild_id, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
        embed = discord.Embed(
            title="Your jobs in this server",
            description="\n".join(_history_line(job) for job in found),
        )
        footer = f"Page {page} of {pages} · {total} job(s) · /job show id:<id> posts one again"
        if page < pages:
            footer += f" · /job history page:{page + 1} for older ones"
        embed.set_footer(text=footer)
        await interaction.response.send_message(embed=embed, ephemeral=True)


def _status_text(job: Job) -> str:
    if job.status is JobStatus.RUNNING and job.progress is not None:
        return f"running {job.progress}%"
    return job.status.value.replace("_", " ")


def _history_line(job: Job) -> str:
    op = job.operation
    what = op.kind.value
    if op.prompt:
        prompt = clip(" ".join(op.prompt.split()), EXCERPT_LIMIT)
        what += f": {escape_mentions(escape_markdown(prompt))}"
    elif op.index is not None:
        what += f" #{op.index}"
    icon = _STATUS_ICON.get(job.status, "")
    # <t:…:R> is rendered by each member's client as "5 minutes ago", in their language.
    age = f"<t:{int(job.created_at)}:R>" if job.created_at > 0 else ""
    return f"`{job.id}` {icon} {_status_text(job)} · {what} · {age}".rstrip(" ·")


def _cancel_refusal(error: JobError) -> str:
    if error.provider_text:
        # The provider's own words may quote the bot's key: scrubbed before clipping.
        said = redaction.scrub(error.provider_text)
        quoted = clip(" ".join(said.split()), PROVIDER_TEXT_LIMIT)
        return (
            "The image service would not cancel it; it has probably started already "
            f"(only jobs still waiting can be cancelled).\n> {escape_markdown(quoted)}"
        )
    if error.code is ErrorCode.UNSUPPORTED:
        return "This image service cannot cancel jobs."
    return redaction.scrub(error.message)


async def setup(bot: MidjourneyBot) -> None:
    await bot.add_cog(Jobs(bot))
