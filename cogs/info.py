"""/info (Midjourney's: your speed, what is left today, when it resets, jobs running),
the set-up card the bot sends when it joins a server, and the admins' log channel where a
failed job's details go (issue 15 items 2, 5 and 10): members read a sentence on their
job; the code and the service's own words are for `/settings log_channel`.

Joining a server: Discord does not say who invited the bot, so the card goes to the
server's system channel when the bot may write there, else to the owner by DM.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import redaction
from bot.community import GuildSettings, Limits, utc_day_start
from bot.discord.buttons_layout import clip
from bot.discord.policy import Member
from bot.domain import Job, JobStatus

if TYPE_CHECKING:
    from bot.app import MidjourneyBot
    from bot.engine import JobEvent
    from bot.store.base import QuotaCounts

log = logging.getLogger(__name__)
DAY_S = 86400


def _left(limit: int | None, used: int) -> str:
    if limit is None:
        return f"{used} used, no limit"
    return f"{used} of {limit} used, **{max(limit - used, 0)} left**"


def left_today_lines(limits: Limits, counts: QuotaCounts, day_start: float) -> list[str]:
    """What a member has left today, as /info and /usage me show it. Jobs the service or
    the owner's account lost are not counted (store: UNSPENT_JOB_SQL)."""
    at_once = "no limit" if limits.concurrent_jobs is None else str(limits.concurrent_jobs)
    return [
        f"Jobs today: {_left(limits.jobs_per_day, counts.since)}",
        f"Fast/turbo jobs today: {_left(limits.fast_jobs_per_day, counts.fast_since)}",
        f"Running or waiting now: {counts.active} (at once: {at_once})",
        f"The day resets <t:{int(day_start + DAY_S)}:R> (midnight UTC).",
    ]


def _limits_words(limits: Limits) -> str:
    def one(value: int | None, what: str) -> str:
        return f"no limit on {what}" if value is None else f"{value} {what}"

    return ", ".join(
        (
            one(limits.concurrent_jobs, "at once"),
            one(limits.jobs_per_day, "a day"),
            one(limits.fast_jobs_per_day, "fast/turbo a day"),
        )
    )


def setup_card(guild_name: str, settings: GuildSettings) -> str:
    """The first-run card: the defaults now in force and the command that changes each."""
    where = " ".join(f"<#{c}>" for c in settings.allowed_channel_ids) or "every channel"
    who = " ".join(f"<@&{r}>" for r in settings.allowed_role_ids) or "everyone"
    clicks = "anyone" if settings.follow_up_clicks == "anyone" else "the requester"
    modes = ", ".join(settings.allowed_modes)
    return "\n".join(
        [
            f"**Thanks for adding me to {discord.utils.escape_markdown(guild_name)}!**",
            "Every job runs on the owner's image-service account and spends its credits. "
            "Right now:",
            f"• Where: {where} — `/settings channels add` keeps me to some",
            f"• Who: {who} — `/settings roles add`",
            f"• Per member: {_limits_words(settings.limits)} — `/settings limits`",
            f"• Speed: **{settings.default_mode}** by default, allowed {modes} — `/settings modes`",
            f"• Buttons under a job: usable by {clicks} — `/settings clicks`",
            "`/settings show` lists every setting (Manage Server); members start with `/help`.",
        ]
    )


def failure_report(job: Job) -> str:
    """A failed job as the admins' log channel shows it: who, where, the code, the bot's
    sentence and the service's own words (scrubbed of secrets; code-formatted, inert)."""
    error = job.error
    code = error.code.value if error else "unknown"
    head = "⏱️ Timed out" if job.status is JobStatus.TIMED_OUT else "❌ Failed"
    where = f" in <#{job.channel_id}>" if job.channel_id else ""
    lines = [
        f"{head}: job `{job.id}` ({job.operation.kind.value}) by <@{job.requester_id}>{where}"
        f" on {job.account or job.provider} — `{code}`",
    ]
    if error and error.message:
        lines.append(f"Members read: {error.message}")
    if error and error.provider_text:
        words = redaction.scrub(" ".join(error.provider_text.split())).replace("`", "'")
        lines.append(f"The service said: `{clip(words, 1500)}`")
    return clip("\n".join(lines), 2000)


class Info(commands.Cog):
    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot
        self._unsubscribe: Callable[[], None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def cog_load(self) -> None:
        self._unsubscribe = self.bot.engine.subscribe(self._on_job)

    async def cog_unload(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    def _on_job(self, event: JobEvent) -> None:
        job = event.job
        ended = job.status in (JobStatus.FAILED, JobStatus.TIMED_OUT)
        if not ended or event.previous_status is job.status or not job.guild_id:
            return
        task = asyncio.create_task(self._report(job), name=f"log-channel-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report(self, job: Job) -> None:
        try:
            settings = await self.bot.store.guilds.get(str(job.guild_id))
            if not settings.log_channel_id:
                return
            channel = self.bot.get_channel(int(settings.log_channel_id))
            if not isinstance(channel, discord.abc.Messageable):
                channel = await self.bot.fetch_channel(int(settings.log_channel_id))
            assert isinstance(channel, discord.abc.Messageable)
            await channel.send(failure_report(job), allowed_mentions=discord.AllowedMentions.none())
        except Exception as exc:  # a log channel's trouble must never touch the job
            log.warning("job %s: failure not posted to the log channel (%s)", job.id, exc)

    @app_commands.command(name="info", description="Your speed, what is left today and when")
    @app_commands.guild_only()
    async def info(self, interaction: discord.Interaction[Any]) -> None:
        assert interaction.guild_id is not None
        member = Member.of(interaction)
        guild = str(interaction.guild_id)
        now = self.bot.engine.clock.time()
        day_start = utc_day_start(now)
        settings = await self.bot.store.guilds.get(guild)
        counts = await self.bot.store.usage.quota_counts(guild, member.user_id, day_start)
        mode = await self.bot.policy.default_mode(member)
        lines = [
            "**Your info here**",
            f"Speed: **{mode.value}** (change it with `/prefs mode`,"
            " or `--fast`/`--relax` on a prompt)",
            *left_today_lines(settings.limits_for(member.role_ids), counts, day_start),
        ]
        await interaction.response.send_message(
            "\n".join(lines), ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        try:
            settings = await self.bot.store.guilds.get(str(guild.id))
            card = setup_card(guild.name, settings)
            if await self._to_system_channel(guild, card):
                return
            owner = guild.owner or await self.bot.fetch_user(guild.owner_id or 0)
            await owner.send(card, allowed_mentions=discord.AllowedMentions.none())
            log.info("guild %s joined: set-up card sent to its owner", guild.id)
        except (discord.HTTPException, discord.ClientException) as exc:
            log.warning("guild %s joined: set-up card not delivered (%s)", guild.id, exc)

    async def _to_system_channel(self, guild: discord.Guild, card: str) -> bool:
        channel = guild.system_channel
        if channel is None or not channel.permissions_for(guild.me).send_messages:
            return False
        try:
            await channel.send(card, allowed_mentions=discord.AllowedMentions.none())
        except discord.Forbidden:
            return False
        log.info("guild %s joined: set-up card sent to #%s", guild.id, channel.name)
        return True


async def setup(bot: MidjourneyBot) -> None:
    await bot.add_cog(Info(bot))
