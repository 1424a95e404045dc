"""/settings: the server's rules, for members with Manage Server.

Stored per server with defaults underneath (bot/community.py), so a server that never
ran /settings works out of the box. Every change is recorded in the audit log with who
and when; `/settings audit` shows it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.community import MAX_VIDEO_WEIGHT, GuildSettings, Limits
from bot.discord.buttons_layout import clip
from bot.domain import SpeedMode
from bot.interactions.errors import Refusal
from bot.prompt_check import BannedWords, load_default_banned_words

if TYPE_CHECKING:
    from bot.app import MidjourneyBot

MAX_MESSAGE = 2000
MODE_CHOICES = [app_commands.Choice(name=m.value, value=m.value) for m in SpeedMode]
ON_OFF = [app_commands.Choice(name="on", value="on"), app_commands.Choice(name="off", value="off")]
ADD_REMOVE = [
    app_commands.Choice(name="add", value="add"),
    app_commands.Choice(name="remove", value="remove"),
]


def _limit(value: int | None) -> str:
    return "no limit" if value is None else str(value)


def _limits_text(limits: Limits) -> str:
    return (
        f"{_limit(limits.concurrent_jobs)} at once, {_limit(limits.jobs_per_day)} a day, "
        f"{_limit(limits.fast_jobs_per_day)} fast/turbo a day"
    )


def describe_settings(settings: GuildSettings) -> str:
    channels = " ".join(f"<#{c}>" for c in settings.allowed_channel_ids) or "every channel"
    roles = " ".join(f"<@&{r}>" for r in settings.allowed_role_ids) or "everyone"
    clicks = "anyone" if settings.follow_up_clicks == "anyone" else "the requester and moderators"
    lines = [
        "**Server settings**",
        f"Channels: {channels}",
        f"Who may generate: {roles}",
        f"Speed: default **{settings.default_mode}**, allowed {', '.join(settings.allowed_modes)}",
        f"Follow-up buttons usable by: {clicks}",
        f"Limits per member: {_limits_text(settings.limits)}",
    ]
    for role_id, limits in dict(settings.role_limits).items():
        lines.append(f"  <@&{role_id}>: {_limits_text(limits)}")
    lines += [
        "Spoiler flagged results outside NSFW channels: "
        f"**{'on' if settings.spoiler_flagged else 'off'}**",
        "Moderation refusals per member per day before a pause until midnight UTC: "
        f"{settings.moderation_error_budget} (`/settings limits moderation_refusals`)",
        "Log channel for failed jobs' details: "
        + (f"<#{settings.log_channel_id}>" if settings.log_channel_id else "none")
        + " (`/settings log_channel`)",
        f"Videos: **{'on' if settings.video_enabled else 'off'}**, one counts as "
        f"{settings.video_weight} image job(s) in the daily limits",
        f"Banned words added: {', '.join(settings.banned_words_added) or 'none'}",
        f"Default banned words lifted: {', '.join(settings.banned_words_removed) or 'none'}",
    ]
    return clip("\n".join(lines), MAX_MESSAGE)


# The settings' stored names (the audit log keeps them) in the words of /settings' options.
_WORDS = {
    "limits.concurrent_jobs": "at_once",
    "limits.jobs_per_day": "per_day",
    "limits.fast_jobs_per_day": "fast_per_day",
    "concurrent_jobs": "at_once",  # a role's limits: `role_limits <@&1>.concurrent_jobs`
    "jobs_per_day": "per_day",
    "fast_jobs_per_day": "fast_per_day",
    "allowed_channel_ids": "channels",
    "allowed_role_ids": "roles",
    "default_mode": "default speed",
    "allowed_modes": "allowed speeds",
    "follow_up_clicks": "who may click",
    "role_limits": "role limits",
    "spoiler_flagged": "spoiler",
    "banned_words_added": "banned words",
    "banned_words_removed": "lifted default words",
    "moderation_error_budget": "moderation_refusals",
    "log_channel_id": "log channel",
    "video_enabled": "video",
    "video_weight": "video weight",
    "presets": "server presets",
}
_WORD_KEYS = re.compile(
    "|".join(rf"(?<![\w.]){re.escape(k)}(?![\w])" for k in sorted(_WORDS, key=len, reverse=True))
)

_BARE_ID = re.compile(r"(?<![<#&@\d])(\d{15,})(?![\d>])")


def in_words(change: str) -> str:
    """`limits.concurrent_jobs: 3 → 1` as `at_once: 3 → 1` (issue 15 item 8)."""
    text = _WORD_KEYS.sub(lambda m: _WORDS[m.group()], change.replace(">.", "> "))
    text = _BARE_ID.sub(r"<#\1>", text)  # the log channel's id, as the channel
    text = re.sub(r":  → ", ": none → ", re.sub(r" → (?=;|$)", " → none", text))
    return text.replace("→ requester", "→ requester and moderators")


def _reset_limits(role_id: str | None, s: GuildSettings) -> GuildSettings:
    """The role's own limits removed (with a role), or the defaults back."""
    if role_id is None:
        return s.with_changes(limits=Limits())
    role_limits = dict(s.role_limits)
    role_limits.pop(role_id, None)
    return s.with_changes(role_limits=role_limits)


def _set_limits(role_id: str | None, changes: dict[str, Any], s: GuildSettings) -> GuildSettings:
    """`changes` over the role's limits (the server's when it has none) or the server's."""
    if role_id is None:
        return s.with_changes(limits=dataclasses.replace(s.limits, **changes))
    role_limits = dict(s.role_limits)
    role_limits[role_id] = dataclasses.replace(role_limits.get(role_id, s.limits), **changes)
    return s.with_changes(role_limits=role_limits)


def _is_banned(word: str, s: GuildSettings) -> bool:
    """Whether `word` is one of the server's own banned words or a default one (compared
    as the prompt check compares entries)."""
    entry = BannedWords([word]).words
    return word in s.banned_words_added or bool(entry & load_default_banned_words())


def _no_mentions() -> discord.AllowedMentions:
    return discord.AllowedMentions.none()


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class Settings(
    commands.GroupCog,
    group_name="settings",
    group_description="This server's rules (Manage Server)",
):
    channels = app_commands.Group(name="channels", description="Where members may generate")
    roles = app_commands.Group(name="roles", description="Who may generate")
    banned = app_commands.Group(name="banned", description="The server's banned words")

    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        # default_permissions only hides the command; a server can override it per role,
        # so the bot checks Manage Server itself too.
        user = interaction.user
        if not isinstance(user, discord.Member) or not (
            user.guild_permissions.manage_guild or user.guild_permissions.administrator
        ):
            await interaction.response.send_message(
                "Only members with Manage Server can change the server's settings.",
                ephemeral=True,
            )
            return False
        return True

    async def _load(self, interaction: discord.Interaction[Any]) -> GuildSettings:
        assert interaction.guild_id is not None
        return await self.bot.store.guilds.get(str(interaction.guild_id))

    async def _change(
        self,
        interaction: discord.Interaction[Any],
        action: str,
        build: Callable[[GuildSettings], GuildSettings],
    ) -> None:
        """Apply `build` to the server's settings as stored now, in one locked transaction
        with its audit row: two admins changing different settings at once both keep theirs.
        `build` raises Refusal to change nothing and tell the admin why."""
        assert interaction.guild_id is not None
        async with self.bot.store.guilds.edit(
            str(interaction.guild_id),
            str(interaction.user.id),
            action,
            at=self.bot.engine.clock.time(),
        ) as edit:
            edit.settings = build(edit.before)
        change = edit.change
        if not change:
            await interaction.response.send_message(
                "Nothing changed.", ephemeral=True, allowed_mentions=_no_mentions()
            )
            return
        self.bot.policy.remember(edit.settings)
        await interaction.response.send_message(
            f"Saved: {clip(in_words(change), 1800)}",
            ephemeral=True,
            allowed_mentions=_no_mentions(),
        )

    @app_commands.command(name="show", description="Show every setting of this server")
    async def show(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.send_message(
            describe_settings(await self._load(interaction)),
            ephemeral=True,
            allowed_mentions=_no_mentions(),
        )

    @channels.command(name="add", description="Allow generating in a channel (and its threads)")
    @app_commands.describe(channel="A channel members may generate in (its threads too)")
    async def channels_add(
        self, interaction: discord.Interaction[Any], channel: discord.TextChannel
    ) -> None:
        def build(s: GuildSettings) -> GuildSettings:
            ids = tuple(dict.fromkeys([*s.allowed_channel_ids, str(channel.id)]))
            return s.with_changes(allowed_channel_ids=ids)

        await self._change(interaction, "channels add", build)

    @channels.command(name="remove", description="Stop allowing a channel")
    @app_commands.describe(channel="The channel to take off the list")
    async def channels_remove(
        self, interaction: discord.Interaction[Any], channel: discord.TextChannel
    ) -> None:
        def build(s: GuildSettings) -> GuildSettings:
            ids = tuple(c for c in s.allowed_channel_ids if c != str(channel.id))
            return s.with_changes(allowed_channel_ids=ids)

        await self._change(interaction, "channels remove", build)

    @channels.command(name="clear", description="Allow generating in every channel")
    async def channels_clear(self, interaction: discord.Interaction[Any]) -> None:
        await self._change(
            interaction, "channels clear", lambda s: s.with_changes(allowed_channel_ids=())
        )

    @roles.command(name="add", description="Allow a role to generate (then only listed roles may)")
    @app_commands.describe(role="A role whose members may generate")
    async def roles_add(self, interaction: discord.Interaction[Any], role: discord.Role) -> None:
        def build(s: GuildSettings) -> GuildSettings:
            ids = tuple(dict.fromkeys([*s.allowed_role_ids, str(role.id)]))
            return s.with_changes(allowed_role_ids=ids)

        await self._change(interaction, "roles add", build)

    @roles.command(name="remove", description="Stop allowing a role")
    @app_commands.describe(role="The role to take off the list")
    async def roles_remove(self, interaction: discord.Interaction[Any], role: discord.Role) -> None:
        def build(s: GuildSettings) -> GuildSettings:
            ids = tuple(r for r in s.allowed_role_ids if r != str(role.id))
            return s.with_changes(allowed_role_ids=ids)

        await self._change(interaction, "roles remove", build)

    @roles.command(name="clear", description="Allow everyone to generate")
    async def roles_clear(self, interaction: discord.Interaction[Any]) -> None:
        await self._change(
            interaction, "roles clear", lambda s: s.with_changes(allowed_role_ids=())
        )

    @app_commands.command(name="modes", description="Default and allowed speed modes")
    @app_commands.describe(
        default="The speed used when a member does not choose one",
        mode="A speed to allow or forbid",
        allowed="on: members may choose it; off: they may not",
    )
    @app_commands.choices(default=MODE_CHOICES, mode=MODE_CHOICES, allowed=ON_OFF)
    async def modes(
        self,
        interaction: discord.Interaction[Any],
        default: app_commands.Choice[str] | None = None,
        mode: app_commands.Choice[str] | None = None,
        allowed: app_commands.Choice[str] | None = None,
    ) -> None:
        if (mode is None) != (allowed is None):
            raise Refusal("Give both `mode` and `allowed` to allow or forbid a speed.")

        def build(s: GuildSettings) -> GuildSettings:
            modes = list(s.allowed_modes)
            if mode is not None and allowed is not None:
                if allowed.value == "on" and mode.value not in modes:
                    modes.append(mode.value)
                elif allowed.value == "off":
                    modes = [m for m in modes if m != mode.value]
            new_default = default.value if default is not None else s.default_mode
            if not modes:
                raise Refusal("At least one speed must stay allowed.")
            if new_default not in modes:
                raise Refusal(
                    f"The default speed **{new_default}** must be one of the allowed ones "
                    f"({', '.join(modes)})."
                )
            order = [m.value for m in SpeedMode]
            return s.with_changes(
                default_mode=new_default, allowed_modes=tuple(sorted(modes, key=order.index))
            )

        await self._change(interaction, "modes", build)

    @app_commands.command(name="clicks", description="Who may use the buttons under a job")
    @app_commands.describe(who="anyone, or only the member who asked (and moderators)")
    @app_commands.choices(
        who=[
            app_commands.Choice(name="anyone", value="anyone"),
            app_commands.Choice(name="requester and moderators", value="requester"),
        ]
    )
    async def clicks(
        self, interaction: discord.Interaction[Any], who: app_commands.Choice[str]
    ) -> None:
        await self._change(
            interaction, "clicks", lambda s: s.with_changes(follow_up_clicks=who.value)
        )

    @app_commands.command(name="limits", description="Per-member limits (0 = no limit)")
    @app_commands.describe(
        at_once="Jobs a member may have running or waiting at once",
        per_day="Jobs a member may start per day (UTC)",
        fast_per_day="Fast or turbo jobs a member may start per day (UTC)",
        role="Set these limits for members with this role instead (the most generous applies)",
        reset="Remove the role's own limits (with role) or restore the defaults",
        moderation_refusals="Prompts the service's moderation may refuse per member per day"
        " before that member is paused until midnight UTC (default 3)",
    )
    async def limits(
        self,
        interaction: discord.Interaction[Any],
        at_once: app_commands.Range[int, 0, 1000] | None = None,
        per_day: app_commands.Range[int, 0, 100000] | None = None,
        fast_per_day: app_commands.Range[int, 0, 100000] | None = None,
        role: discord.Role | None = None,
        reset: bool = False,
        moderation_refusals: app_commands.Range[int, 1, 100] | None = None,
    ) -> None:
        if moderation_refusals is not None:
            # A server-wide setting: not per role, and not mixed with the limits above.
            others = (at_once, per_day, fast_per_day, role)
            if reset or any(v is not None for v in others):
                raise Refusal("Give `moderation_refusals` on its own: it applies to every member.")
            budget = moderation_refusals
            await self._change(
                interaction, "limits", lambda s: s.with_changes(moderation_error_budget=budget)
            )
            return
        role_id = str(role.id) if role is not None else None
        if reset:
            await self._change(interaction, "limits reset", partial(_reset_limits, role_id))
            return
        changes: dict[str, int | None] = {}
        for name, value in (
            ("concurrent_jobs", at_once),
            ("jobs_per_day", per_day),
            ("fast_jobs_per_day", fast_per_day),
        ):
            if value is not None:
                changes[name] = value or None  # 0 = no limit
        if not changes:
            raise Refusal(
                "Give at least one of `at_once`, `per_day`, `fast_per_day`,"
                " `moderation_refusals` (or `reset`)."
            )
        await self._change(interaction, "limits", partial(_set_limits, role_id, changes))

    @app_commands.command(
        name="spoiler", description="Spoiler flagged results outside NSFW channels"
    )
    @app_commands.choices(state=ON_OFF)
    @app_commands.describe(state="on: results the service flags are posted as spoilers")
    async def spoiler(
        self, interaction: discord.Interaction[Any], state: app_commands.Choice[str]
    ) -> None:
        on = state.value == "on"
        await self._change(interaction, "spoiler", lambda s: s.with_changes(spoiler_flagged=on))

    # Video (issue 18): a small block of its own.
    @app_commands.command(name="video", description="Videos (Animate, /animate) on or off")
    @app_commands.choices(state=ON_OFF)
    @app_commands.describe(
        state="Whether members may make videos",
        weight="How many image jobs one video counts as in the daily limits (default 8)",
    )
    async def video(
        self,
        interaction: discord.Interaction[Any],
        state: app_commands.Choice[str],
        weight: app_commands.Range[int, 1, MAX_VIDEO_WEIGHT] | None = None,
    ) -> None:
        changes: dict[str, Any] = {"video_enabled": state.value == "on"}
        if weight is not None:
            changes["video_weight"] = weight
        await self._change(interaction, "video", lambda s: s.with_changes(**changes))

    @app_commands.command(
        name="log_channel", description="Where the details of failed jobs go, for admins"
    )
    @app_commands.describe(
        channel="A channel for admins (members see only a sentence on their job)",
        clear="Stop posting failures' details",
    )
    async def log_channel(
        self,
        interaction: discord.Interaction[Any],
        channel: discord.TextChannel | None = None,
        clear: bool = False,
    ) -> None:
        if channel is None and not clear:
            raise Refusal("Give a `channel`, or `clear` to stop.")
        value = "" if clear or channel is None else str(channel.id)
        await self._change(
            interaction, "log channel", lambda s: s.with_changes(log_channel_id=value)
        )

    @banned.command(name="add", description="Refuse prompts containing a word or phrase")
    @app_commands.describe(word="A word or phrase; disguised spellings are caught too")
    async def banned_add(self, interaction: discord.Interaction[Any], word: str) -> None:
        word = " ".join(word.lower().split())[:100]
        if not word:
            raise Refusal("Give a word or phrase.")

        def build(s: GuildSettings) -> GuildSettings:
            return s.with_changes(
                banned_words_added=tuple(dict.fromkeys([*s.banned_words_added, word])),
                banned_words_removed=tuple(w for w in s.banned_words_removed if w != word),
            )

        await self._change(interaction, "banned add", build)

    @banned.command(name="remove", description="Allow a word again (yours or a default one)")
    @app_commands.describe(word="The word or phrase to allow again")
    async def banned_remove(self, interaction: discord.Interaction[Any], word: str) -> None:
        word = " ".join(word.lower().split())[:100]
        if not word:
            raise Refusal("Give a word or phrase.")

        def build(s: GuildSettings) -> GuildSettings:
            if not _is_banned(word, s):
                raise Refusal(
                    f"**{clip(word, 100)}** is not on the banned list (neither this server's "
                    "words nor the default ones), so nothing changed. `/settings banned list` "
                    "shows the server's own."
                )
            if word in s.banned_words_added:
                return s.with_changes(
                    banned_words_added=tuple(w for w in s.banned_words_added if w != word)
                )
            return s.with_changes(
                banned_words_removed=tuple(dict.fromkeys([*s.banned_words_removed, word]))
            )

        await self._change(interaction, "banned remove", build)

    @banned.command(name="list", description="The server's own banned words and lifted defaults")
    async def banned_list(self, interaction: discord.Interaction[Any]) -> None:
        s = await self._load(interaction)
        text = (
            f"**Added by this server:** {', '.join(s.banned_words_added) or 'none'}\n"
            f"**Default words lifted:** {', '.join(s.banned_words_removed) or 'none'}\n"
            "A default list of words Midjourney itself refuses applies on top."
        )
        await interaction.response.send_message(clip(text, MAX_MESSAGE), ephemeral=True)

    @app_commands.command(name="audit", description="Recent changes to the settings, who and when")
    async def audit(self, interaction: discord.Interaction[Any]) -> None:
        assert interaction.guild_id is not None
        entries = await self.bot.store.audit.recent(str(interaction.guild_id), limit=15)
        if not entries:
            text = "No settings have been changed yet."
        else:
            text = "\n".join(
                f"<t:{int(e.at)}:f> <@{e.actor_id}> **{e.action}**: {clip(in_words(e.detail), 200)}"
                for e in entries
            )
        await interaction.response.send_message(
            clip(text, MAX_MESSAGE), ephemeral=True, allowed_mentions=_no_mentions()
        )

    # --- provider accounts (issue 16: several accounts, pooled) --------------------------
    # A separate block: the bot's own accounts (MJ_ACCOUNTS_FILE), not this server's rules.

    @app_commands.command(
        name="accounts", description="The bot's provider accounts, and putting one back"
    )
    @app_commands.describe(restore="A set-aside account to put back in the pool (its name)")
    async def accounts(
        self, interaction: discord.Interaction[Any], restore: str | None = None
    ) -> None:
        from bot.accounts.view import describe_pool
        from bot.community import utc_day_start

        pool = self.bot.engine.pool
        await interaction.response.defer(ephemeral=True, thinking=True)
        notice = ""
        if restore is not None:
            account = pool.get(restore.strip())
            if account is None:
                names = ", ".join(a.name for a in pool.accounts)
                notice = f"There is no account named that. The accounts are: {names}.\n"
            elif account.aside is None:
                notice = f"**{account.name}** was not set aside.\n"
            else:
                reason = account.aside.reason
                self.bot.engine.restore_account(account.name)
                await self.bot.store.audit.record(
                    str(interaction.guild_id),
                    str(interaction.user.id),
                    "accounts",
                    f"put account {account.name} back (it was set aside: {reason})",
                    self.bot.engine.clock.time(),
                )
                notice = f"**{account.name}** is back in the pool.\n"
        await self.bot.engine.refresh_accounts(timeout_s=5)  # fresh balances where told
        since = utc_day_start(self.bot.engine.clock.time())
        usage = self.bot.store.usage
        today = {a.name: await usage.account_summary(a.name, since=since) for a in pool.accounts}
        await interaction.edit_original_response(
            content=clip(notice + describe_pool(pool, today), MAX_MESSAGE),
            allowed_mentions=_no_mentions(),
        )


async def setup(bot: MidjourneyBot) -> None:
    await bot.add_cog(Settings(bot))
