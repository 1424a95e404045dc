"""/usage: what a member has used today and this month, and (Manage Server) the server's
totals, its top members, a 30-day chart and the provider account's remaining credit.

Costs are what the provider reported per job (credits/points or USD), kept per unit:
the bot never converts between them.
"""

from __future__ import annotations

import asyncio
import io
import logging
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.community import utc_day_start, utc_month_start
from bot.discord.buttons_layout import clip
from bot.providers.base import ProviderError
from bot.usage_chart import render_daily_chart
from cogs.info import left_today_lines

if TYPE_CHECKING:
    from bot.accounts.pool import Account
    from bot.app import MidjourneyBot
    from bot.providers.base import AccountInfo
    from bot.store.base import UsageSummary, VideoCounts

log = logging.getLogger(__name__)

CHART_DAYS = 30
UNIT_NAMES = {"usd": "USD", "point": "credits"}


def usd_per_credit(info: AccountInfo | None) -> Decimal | None:
    """What one credit is worth, where the service says: PiAPI's account read gives the
    balance both in credits and as `equivalent_in_usd` (issue 15 item 9)."""
    if info is None or not info.credits or info.credits <= 0:
        return None
    try:
        usd = Decimal(str(info.raw.get("equivalent_in_usd")))
    except (InvalidOperation, ValueError):
        return None
    return usd / info.credits if usd.is_finite() and usd > 0 else None


def money(amount: Decimal, rate: Decimal | None) -> str:
    """` (≈ $0.26)` beside an amount of credits, when their worth is known."""
    if rate is None:
        return ""
    usd = amount * rate
    if usd >= 1 or usd == 0:
        return f" (≈ ${usd.quantize(Decimal('0.01')):,f})"
    return f" (≈ ${usd.quantize(Decimal('0.0001')).normalize():,f})"  # a job's few cents


def format_costs(costs: dict[str, Decimal], rate: Decimal | None = None) -> str:
    parts = []
    for unit, amount in sorted(costs.items()):
        if unit == "usd":
            parts.append(f"${amount.quantize(Decimal('0.01'))}")
        else:
            worth = money(amount, rate) if unit == "point" else ""
            parts.append(f"{amount.normalize():,f} {UNIT_NAMES.get(unit, unit)}{worth}")
    return " + ".join(parts) or "nothing reported"


def summary_line(summary: UsageSummary, rate: Decimal | None = None) -> str:
    return (
        f"{summary.jobs} job(s), {summary.completed} completed, {summary.fast} fast/turbo; "
        f"cost {format_costs(summary.costs, rate)}"
    )


def videos_line(today: VideoCounts, month: VideoCounts, weight: int) -> str:
    """Videos apart from the image jobs (issue 18): they weigh more in the daily limits."""
    if not today.asked and not month.asked:
        return ""
    return (
        f"\nVideos: {today.asked} today, {month.asked} this month; each counts as "
        f"{weight} image job(s) in the daily limits."
    )


class Usage(commands.GroupCog, group_name="usage", group_description="What has been used"):
    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="me", description="Your own jobs and costs today and this month")
    @app_commands.guild_only()
    async def me(self, interaction: discord.Interaction[Any]) -> None:
        assert interaction.guild_id is not None
        guild, user = str(interaction.guild_id), str(interaction.user.id)
        now = self.bot.engine.clock.time()
        usage = self.bot.store.usage
        today = await usage.member_summary(guild, user, since=utc_day_start(now))
        month = await usage.member_summary(guild, user, since=utc_month_start(now))
        videos_today = await usage.video_counts(guild, user, utc_day_start(now))
        videos_month = await usage.video_counts(guild, user, utc_month_start(now))
        settings = await self.bot.store.guilds.get(guild)
        roles = (
            [str(r.id) for r in interaction.user.roles]
            if isinstance(interaction.user, discord.Member)
            else []
        )
        limits = settings.limits_for(roles)
        # What is left today, counted as the quotas count (the owner's failures are free).
        day_start = utc_day_start(now)
        counts = await usage.quota_counts(guild, user, day_start)
        left = "\n".join(left_today_lines(limits, counts, day_start))
        text = (
            f"**Your usage here**\nToday: {summary_line(today, self._rate())}\n"
            f"This month: {summary_line(month, self._rate())}\n{left}"
        )
        text += videos_line(videos_today, videos_month, settings.video_weight)
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(name="server", description="The server's usage and costs (Manage Server)")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    async def server(self, interaction: discord.Interaction[Any]) -> None:
        user = interaction.user
        if not (
            isinstance(user, discord.Member)
            and (user.guild_permissions.manage_guild or user.guild_permissions.administrator)
        ):
            await interaction.response.send_message(
                "Only members with Manage Server can see the server's usage.", ephemeral=True
            )
            return
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild = str(interaction.guild_id)
        now = self.bot.engine.clock.time()
        usage = self.bot.store.usage
        month_start = utc_month_start(now)
        today = await usage.guild_summary(guild, since=utc_day_start(now))
        month = await usage.guild_summary(guild, since=month_start)
        top = await usage.top_members(guild, since=month_start, limit=10)
        chart_since = utc_day_start(now) - (CHART_DAYS - 1) * 86400
        days = await usage.daily_totals(guild, since=chart_since, days=CHART_DAYS)
        unit = next(iter(sorted(month.costs)), "jobs") if month.costs else "jobs"
        png = await asyncio.to_thread(
            render_daily_chart, days, title=f"Last {CHART_DAYS} days", unit=unit
        )
        account = await self._account_line()  # first: it reads what a credit is worth
        rate = self._rate()
        lines = [
            "**Server usage**",
            f"Today: {summary_line(today, rate)}",
            f"This month: {summary_line(month, rate)}",
        ]
        if top:
            lines.append("**Top members this month**")
            lines += [
                f"{i}. <@{uid}> — {summary_line(s, rate)}" for i, (uid, s) in enumerate(top, 1)
            ]
        lines.append(account)
        await interaction.edit_original_response(
            content=clip("\n".join(lines), 2000),
            attachments=[discord.File(io.BytesIO(png), filename="usage.png")],
            allowed_mentions=discord.AllowedMentions.none(),
        )

    def _rate(self) -> Decimal | None:
        """A credit's worth in USD from the accounts' last balance read, where told."""
        rates = {usd_per_credit(a.balance) for a in self.bot.engine.pool.accounts} - {None}
        return next(iter(rates)) if len(rates) == 1 else None  # two prices: say none

    async def _account_line(self) -> str:
        pool = self.bot.engine.pool
        if len(pool.accounts) > 1:
            # Several accounts (MJ_ACCOUNTS_FILE): each one's credit, read now where told.
            await self.bot.engine.refresh_accounts(timeout_s=10)
            parts = [f"{a.name} {_balance_of(a)}" for a in pool.accounts]
            return "Provider accounts: " + "; ".join(parts) + " (see /settings accounts)."
        try:
            account = await asyncio.wait_for(self.bot.provider.account(), timeout=10)
        except (ProviderError, TimeoutError) as exc:
            log.info("account info unavailable: %s", exc)
            return "Provider account: not available right now."
        if account.credits is None:
            return "Provider account: this image service does not report its balance."
        unit = UNIT_NAMES.get(account.credits_unit or "", account.credits_unit or "")
        if len(pool.accounts) == 1:
            pool.accounts[0].balance = account  # the freshest read, for the worth of a credit
        worth = money(account.credits, usd_per_credit(account))
        return f"Provider account: **{account.credits.normalize():,f} {unit}** left{worth}."


def _balance_of(account: Account) -> str:
    info = account.balance
    state = "" if account.available else " (set aside)"
    if info is None or info.credits is None:
        return "balance not reported" + state
    unit = UNIT_NAMES.get(info.credits_unit or "", info.credits_unit or "")
    worth = money(info.credits, usd_per_credit(info))
    return f"**{info.credits.normalize():,f} {unit}**{worth} left{state}"


async def setup(bot: MidjourneyBot) -> None:
    await bot.add_cog(Usage(bot))
