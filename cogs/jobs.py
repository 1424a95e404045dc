"""/job show | cancel | history: a member's jobs in this server.

Jobs are looked up only within the server they were made in; a job from elsewhere is
answered exactly like one that does not exist, so ids reveal nothing across servers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
from typing import TYPE_CHECKING, Any, cast

import discord
from discord import app_commands
from discord.ext import commands
from discord.utils import escape_markdown, escape_mentions

from bot import redaction
from bot.discord.buttons_layout import clip
from bot.discord.presenter import render, to_discord_embed
from bot.discord.spoilers import spoiler_name, spoilered
from bot.discord.views import job_view
from bot.domain import ErrorCode, Job, JobError, JobStatus, Operation, OperationKind
from bot.engine import Engine, EngineError, JobEvent
from bot.interactions import rules
from bot.interactions.buttons import JobItem, item_template, services
from bot.interactions.errors import Refusal, answer_refusal
from bot.interactions.ids import optional_str
from bot.references import with_fresh_references

if TYPE_CHECKING:
    from bot.app import MidjourneyBot

log = logging.getLogger(__name__)

PAGE_SIZE = 10
SEED_WAIT_S = 14 * 60.0  # an interaction's reply can be edited for 15 minutes
EXCERPT_LIMIT = 60
PROVIDER_TEXT_LIMIT = 200
NO_IMAGE = (
    "\n-# The image is no longer available: the image service's link has expired and the"
    " job's first message (or its upload) is gone. The buttons still work."
)
# Midjourney's words for each kind of job, as its buttons name them.
_KIND_WORDS = {
    OperationKind.IMAGINE: "Imagine",
    OperationKind.UPSCALE: "Upscale",
    OperationKind.VARIATION: "Vary",
    OperationKind.REROLL: "Reroll",
    OperationKind.OUTPAINT: "Zoom Out",
    OperationKind.PAN: "Pan",
    OperationKind.INPAINT: "Vary (Region)",
    OperationKind.DESCRIBE: "Describe",
    OperationKind.BLEND: "Blend",
    OperationKind.SEED: "Seed",
}
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
        self._tasks: set[asyncio.Task[None]] = set()
        super().__init__()

    async def cog_load(self) -> None:
        # 🌱 answers privately, as Midjourney's seed does, instead of a public job message.
        self.bot.add_dynamic_items(SeedButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(SeedButton)

    async def start_seed(
        self, interaction: discord.Interaction[Any], parent: Job, operation: Operation
    ) -> None:
        """Ask the service for `parent`'s seed; the private reply says it once known."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            # No delivery hint: this job has no public message, at a restart neither.
            job = await self.bot.engine.submit(
                operation,
                requester_id=str(interaction.user.id),
                guild_id=str(interaction.guild_id),
                channel_id=str(interaction.channel_id),
                idempotency_key=f"click:{parent.id}:seed:{interaction.user.id}",
            )
        except EngineError as exc:
            await interaction.edit_original_response(content=exc.error.message)
            return
        task = asyncio.create_task(self._answer_seed(interaction, job.id, parent.id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_seed(
        self, interaction: discord.Interaction[Any], job_id: str, parent_id: str
    ) -> None:
        """Edit the private reply once the seed job ends (within the token's 15 minutes)."""
        ended = await _wait_for_end(self.bot.engine, job_id, SEED_WAIT_S)
        if ended is None:
            text = "The image service has not answered yet; try 🌱 again later."
        elif ended.status is JobStatus.COMPLETED and ended.seed:
            text = _seed_text(parent_id, ended.seed)
        else:
            reason = ended.error.message if ended.error else "The seed could not be read."
            text = f"No seed: {reason}"
        try:
            await interaction.edit_original_response(content=text)
        except discord.HTTPException as exc:
            log.info("job %s: the seed's private answer was not delivered (%s)", job_id, exc)

    async def _job_here(self, interaction: discord.Interaction[Any], job_id: str) -> Job:
        """The job if it belongs to this server; otherwise raises Refusal "no such job"."""
        key = job_id.strip().lower()
        job = await self.bot.engine.get(key) if key else None
        shown = clip(key.replace("`", ""), 20) or "?"  # a code span: no markdown, no pings
        text = f"There is no job `{shown}` in this server."
        if refusal := rules.unknown_job(job, optional_str(interaction.guild_id), text=text):
            raise Refusal(refusal)
        assert job is not None
        return job

    @app_commands.command(name="show", description="Post one of the jobs again, with its buttons")
    @app_commands.rename(job_id="id")
    @app_commands.describe(job_id="The job's id, as /job history lists it")
    async def show(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        job = await self._job_here(interaction, job_id)
        await interaction.response.defer(thinking=True)
        # Reference images' links re-signed, so the prompt shown has working ones (issue 19).
        job = await with_fresh_references(self.bot.references, job)
        rendered = render(
            job,
            now=self.bot.engine.clock.time(),
            follow_up_window=self.bot.provider.capabilities.follow_up_window,
            extra_actions=self.bot.starter.bot_actions(job),
        )
        files: list[discord.File] = []
        if job.is_video and job.videos:  # the MP4s again, fitted as the first delivery was
            spoiler = await spoilered(self.bot.policy, job, interaction.channel)
            rendered, files = await self.bot.publisher.video_message(
                job, rendered, interaction.filesize_limit, spoiler=spoiler
            )
        elif rendered.image is not None and rendered.image.kind == "result":
            fitted = await self.bot.publisher.fitted_result(job, interaction.filesize_limit)
            data = (fitted.data, fitted.filename) if fitted is not None else None
            # The service's links expire within days; the first message's upload does not.
            data = data or await self._original_upload(job, interaction.filesize_limit)
            if data is not None:
                # The first delivery's rule, for the channel this copy is shown in.
                spoiler = await spoilered(self.bot.policy, job, interaction.channel)
                filename = spoiler_name(data[1], spoiler)
                files = [discord.File(io.BytesIO(data[0]), filename=filename)]
                rendered = rendered.with_attachment(filename)
            else:
                rendered = dataclasses.replace(rendered, content=rendered.content + NO_IMAGE)
        # Buttons are keyed by job id (persistent), so they work on this copy as well.
        await interaction.edit_original_response(
            content=rendered.content,
            embed=to_discord_embed(rendered.embed) if rendered.embed else None,
            attachments=files,
            view=job_view(rendered.buttons, job.id),
            allowed_mentions=discord.AllowedMentions.none(),  # a re-post pings nobody
        )

    async def _original_upload(self, job: Job, limit: int) -> tuple[bytes, str] | None:
        """The image the bot uploaded with the job's own message, read back from Discord
        (None when that message or its attachment is gone, or it is over `limit`)."""
        delivery = await self.bot.store.deliveries.get(job.id)
        if delivery is None or not delivery.message_id:
            return None
        try:
            channel = self.bot.get_channel(int(delivery.channel_id))
            if not isinstance(channel, discord.abc.Messageable):
                channel = await self.bot.fetch_channel(int(delivery.channel_id))
            assert isinstance(channel, discord.abc.Messageable)
            message = await channel.fetch_message(int(delivery.message_id))
            images = [a for a in message.attachments if a.size <= limit and a.width]
            if not images:
                return None
            return await images[0].read(), images[0].filename
        except (discord.HTTPException, AssertionError, ValueError) as exc:
            log.info("job %s: its first message's image could not be read (%s)", job.id, exc)
            return None

    @app_commands.command(name="cancel", description="Cancel one of your jobs that has not started")
    @app_commands.rename(job_id="id")
    @app_commands.describe(job_id="The job's id, as /job history lists it")
    async def cancel(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        job = await self._job_here(interaction, job_id)
        is_owner = job.requester_id == str(interaction.user.id)
        if not (is_owner or interaction.permissions.manage_messages):
            raise Refusal(
                "Only the member who started this job, or someone who may manage messages "
                "here, can cancel it."
            )
        if job.is_terminal:
            raise Refusal(f"Job `{job.id}` has already ended ({_status_text(job)}).")
        # Cancelling may ask the provider: acknowledge first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            result = await self.bot.cancel_job(job.id)  # wherever it runs (issue 17)
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
        user_id, guild_id = str(interaction.user.id), str(interaction.guild_id)
        total = await self.bot.store.jobs.count_for_requester_since(user_id, 0.0, guild_id=guild_id)
        if total == 0:
            raise Refusal("You have no jobs in this server yet. Try `/imagine`.")
        pages = -(-total // PAGE_SIZE)
        if page > pages:
            raise Refusal(f"There are only {pages} page(s) of jobs.")
        embed = await self._history_page(user_id, guild_id, page, pages, total)
        view = HistoryPages(self, user_id, guild_id, page, pages, total)
        await interaction.response.send_message(embed=embed, view=view, ephemeral=True)

    async def _history_page(
        self, user_id: str, guild_id: str, page: int, pages: int, total: int
    ) -> discord.Embed:
        found = await self.bot.store.jobs.list_for_requester(
            user_id, guild_id=guild_id, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
        lines = []
        for job in found:
            delivery = await self.bot.store.deliveries.get(job.id)
            link = None
            if delivery is not None and delivery.message_id:
                link = (
                    f"https://discord.com/channels/{guild_id}/"
                    f"{delivery.channel_id}/{delivery.message_id}"
                )
            lines.append(_history_line(job, link))
        embed = discord.Embed(title="Your jobs in this server", description="\n".join(lines))
        footer = f"Page {page} of {pages} · {total} job(s) · /job show id:<id> posts one again"
        embed.set_footer(text=footer)
        return embed


class SeedButton(JobItem, template=item_template("seed")):
    """🌱 under an image: its seed, privately (asked of the service when not known yet)."""

    operation: Operation | None = None

    async def judge(self, interaction: discord.Interaction[Any]) -> None:
        refusal = rules.unknown_job(self.job, optional_str(interaction.guild_id))
        if refusal is not None:
            raise Refusal(refusal)
        assert self.job is not None
        if self.job.seed:  # known already: no need to ask the service
            return
        if (refusal := rules.not_finished(self.job)) is not None:
            raise Refusal(refusal)
        operation = Operation(OperationKind.SEED, parent_job_id=self.job.id)
        await services(interaction).starter.check(interaction, operation, parent=self.job)
        self.operation = operation

    async def act(self, interaction: discord.Interaction[Any]) -> None:
        assert self.job is not None  # judged
        if self.operation is None:
            assert self.job.seed is not None
            await answer_refusal(interaction, _seed_text(self.job.id, self.job.seed))
            return
        jobs = cast(Jobs, interaction.client.get_cog(Jobs.__cog_name__))
        await jobs.start_seed(interaction, self.job, self.operation)


class HistoryPages(discord.ui.View):
    """◀ ▶ under /job history: the member's own private list, turned in place."""

    def __init__(
        self, cog: Jobs, user_id: str, guild_id: str, page: int, pages: int, total: int
    ) -> None:
        super().__init__(timeout=600)
        self.cog, self.user_id, self.guild_id = cog, user_id, guild_id
        self.page, self.pages, self.total = page, pages, total
        self._set_buttons()

    def _set_buttons(self) -> None:
        self.older.disabled = self.page >= self.pages
        self.newer.disabled = self.page <= 1

    async def _turn(self, interaction: discord.Interaction[Any], step: int) -> None:
        self.page = max(1, min(self.pages, self.page + step))
        self._set_buttons()
        embed = await self.cog._history_page(
            self.user_id, self.guild_id, self.page, self.pages, self.total
        )
        await interaction.response.edit_message(embed=embed, view=self)

    @discord.ui.button(emoji="◀️", style=discord.ButtonStyle.secondary)
    async def newer(self, interaction: discord.Interaction[Any], _: discord.ui.Button[Any]) -> None:
        await self._turn(interaction, -1)

    @discord.ui.button(emoji="▶️", style=discord.ButtonStyle.secondary)
    async def older(self, interaction: discord.Interaction[Any], _: discord.ui.Button[Any]) -> None:
        await self._turn(interaction, +1)


def _seed_text(job_id: str, seed: str) -> str:
    safe = clip(seed.replace("`", ""), 40)
    return f"🌱 Seed: `{safe}` (job `{job_id}`). Add `--seed {safe}` to a prompt to start from it."


async def _wait_for_end(engine: Engine, job_id: str, limit_s: float) -> Job | None:
    """The job once it has ended, or None after `limit_s`."""
    done: asyncio.Future[Job] = asyncio.get_running_loop().create_future()

    def on_event(event: JobEvent) -> None:
        if event.job.id == job_id and event.job.is_terminal and not done.done():
            done.set_result(event.job)

    unsubscribe = engine.subscribe(on_event)
    try:
        current = await engine.get(job_id)
        if current is not None and current.is_terminal:
            return current
        return await asyncio.wait_for(done, timeout=limit_s)
    except TimeoutError:
        return None
    finally:
        unsubscribe()


def _status_text(job: Job) -> str:
    if job.status is JobStatus.RUNNING and job.progress is not None:
        return f"running {job.progress}%"
    return job.status.value.replace("_", " ")


def _history_line(job: Job, link: str | None = None) -> str:
    op = job.operation
    what = _KIND_WORDS.get(op.kind, op.kind.value.replace("_", " ").title())
    if op.kind is OperationKind.OUTPAINT and op.zoom_ratio == 1:
        what = "Make Square"
    if op.prompt:
        prompt = clip(" ".join(op.prompt.split()), EXCERPT_LIMIT)
        what += f": {escape_mentions(escape_markdown(prompt))}"
    elif op.index is not None:
        what += f" #{op.index}"
    icon = _STATUS_ICON.get(job.status, "")
    # <t:…:R> is rendered by each member's client as "5 minutes ago", in their language.
    age = f"<t:{int(job.created_at)}:R>" if job.created_at > 0 else ""
    line = f"`{job.id}` {icon} {_status_text(job)} · {what} · {age}".rstrip(" ·")
    return f"{line} · [message](<{link}>)" if link else line


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
