"""The server's rules, checked before anything is spent: who may generate where, which
speed, how much, which prompts, and who may click whose buttons.

Every entry point (commands, buttons, forms) asks `Policy` first and answers a refusal
privately, before acknowledging publicly and before the engine sees the job. The rules
themselves are pure (bot/community.py, bot/prompt_check.py); this module only gathers
what they need: the server's settings, the member's roles and permissions, and their
usage so far from the store.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import discord

from bot.clock import Clock
from bot.community import (
    FAST_MODES,
    VIDEO_OFF,
    GuildSettings,
    check_mode,
    check_quota,
    may_click,
    may_generate,
    utc_day_start,
)
from bot.domain import Job, Operation, OperationKind, SpeedMode
from bot.prompt_check import BannedWords, check_prompt
from bot.speed import SpeedDecision, decide_speed, split_speed_flags
from bot.store.base import MemberPrefs, Store, VideoCounts

log = logging.getLogger(__name__)

# Operations whose prompt the member typed (a follow-up's unchanged prompt was checked
# when the parent was asked for).
_PROMPTED = frozenset(
    {
        OperationKind.IMAGINE,
        OperationKind.VARIATION,
        OperationKind.REROLL,
        OperationKind.INPAINT,
        OperationKind.OUTPAINT,
        OperationKind.PAN,
        OperationKind.REMIX,
        OperationKind.EDIT,
        OperationKind.SHORTEN,
        OperationKind.RETEXTURE,
        OperationKind.UPLOAD_EDIT,
    }
)
# Settings change only through /settings in this process (save_settings refreshes them);
# the time limit bounds how stale they get if another process shares the database.
SETTINGS_TTL_S = 30.0
DM_REFUSAL = (
    "Images can be made only in a server, not in direct messages: "
    "use the bot in a server you share with it."
)


@dataclass(frozen=True, slots=True)
class Member:
    """What the rules need to know about the person asking, read from an interaction."""

    user_id: str
    guild_id: str | None
    channel_id: str | None
    parent_channel_id: str | None  # a thread's channel: threads follow their channel's rules
    role_ids: tuple[str, ...]
    is_manager: bool  # Manage Server
    is_moderator: bool  # Manage Messages or Manage Server

    @classmethod
    def of(cls, interaction: discord.Interaction[Any]) -> Member:
        user = interaction.user
        roles: tuple[str, ...] = ()
        manager = moderator = False
        if isinstance(user, discord.Member):
            roles = tuple(str(r.id) for r in user.roles)
            perms = user.guild_permissions
            manager = perms.manage_guild or perms.administrator
            moderator = manager or perms.manage_messages
        channel = interaction.channel
        parent = getattr(channel, "parent_id", None) if channel is not None else None
        return cls(
            user_id=str(user.id),
            guild_id=str(interaction.guild_id) if interaction.guild_id else None,
            channel_id=str(interaction.channel_id) if interaction.channel_id else None,
            parent_channel_id=str(parent) if parent else None,
            role_ids=roles,
            is_manager=manager,
            is_moderator=moderator,
        )


class Policy:
    def __init__(self, store: Store, clock: Clock, *, max_prompt_length: int) -> None:
        self._store = store
        self._clock = clock
        self._max_prompt = max_prompt_length
        self._settings: dict[str, tuple[float, GuildSettings]] = {}
        # Compiled banned-word matchers per (additions, removals): building one is the
        # only costly step, and a server's list changes rarely.
        self._banned: OrderedDict[tuple[tuple[str, ...], tuple[str, ...]], BannedWords] = (
            OrderedDict()
        )

    async def settings(self, guild_id: str | None) -> GuildSettings | None:
        """The server's settings, read at most every SETTINGS_TTL_S: they are asked for
        before every job, and change only through /settings (which calls `forget`)."""
        if guild_id is None:
            return None  # direct messages: no server, no server rules
        now = self._clock.time()
        cached = self._settings.get(guild_id)
        if cached is not None and now - cached[0] < SETTINGS_TTL_S:
            return cached[1]
        settings = await self._store.guilds.get(guild_id)
        self._settings[guild_id] = (now, settings)
        if len(self._settings) > 10_000:
            self._settings.clear()
        return settings

    async def save_settings(self, settings: GuildSettings) -> None:
        await self._store.guilds.save(settings)
        self.remember(settings)

    def remember(self, settings: GuildSettings) -> None:
        """Settings just saved (`store.guilds.edit` in /settings): served without a read."""
        self._settings[settings.guild_id] = (self._clock.time(), settings)

    def banned_words(self, settings: GuildSettings | None) -> BannedWords:
        key = (
            (tuple(settings.banned_words_added), tuple(settings.banned_words_removed))
            if settings is not None
            else ((), ())
        )
        matcher = self._banned.get(key)
        if matcher is None:
            matcher = BannedWords.build(extra=key[0], removed=key[1])
            self._banned[key] = matcher
            while len(self._banned) > 64:
                self._banned.popitem(last=False)
        return matcher

    def is_flagged(self, prompt: str) -> bool:
        """Whether `prompt` holds a word of the shipped default list (one the server
        allowed, since the prompt passed its checks): results get spoilered for it."""
        return self.banned_words(None).find(prompt) is not None

    def check_text(self, settings: GuildSettings | None, prompt: str) -> str | None:
        """Banned words, Midjourney parameters and length: the reason, or None."""
        problem = check_prompt(
            prompt, banned=self.banned_words(settings), max_length=self._max_prompt
        )
        return problem.message if problem is not None else None

    async def default_mode(self, member: Member, prefs: MemberPrefs | None = None) -> SpeedMode:
        """The member's own default (from `prefs` when the caller has read them), else the
        server's."""
        return (await self.decide_speed(member, prefs=prefs)).mode

    async def decide_speed(
        self,
        member: Member,
        *,
        option: SpeedMode | None = None,
        prompt: str | None = None,
        prefs: MemberPrefs | None = None,
        with_suffix: bool = False,
        parent: Job | None = None,
    ) -> SpeedDecision:
        """The job's one speed and the prompt to send (bot/speed.py), from the option, the
        prompt's flags, the member's suffix (`with_suffix`) and preference, the parent's
        speed for a follow-up, and the server's default. Raises SpeedConflictError.

        A follow-up runs at its parent's speed unless its text says otherwise; the
        member's preference is for new jobs (and is not read for follow-ups)."""
        if parent is None and prefs is None:
            prefs = await self._store.prefs.get(member.guild_id, member.user_id)
        settings = await self.settings(member.guild_id)
        return decide_speed(
            option,
            prefs.default_mode if prefs is not None else None,
            settings.default_mode if settings is not None else None,
            prompt,
            suffix=prefs.suffix if with_suffix and prefs is not None else None,
            inherited=parent.operation.mode if parent is not None else None,
            keep_flag=parent is not None,
        )

    async def check_job(
        self, member: Member, operation: Operation, *, parent: Job | None = None
    ) -> str | None:
        """Why `member` may not start `operation` now, or None when they may."""
        settings = await self.settings(member.guild_id)
        if settings is None:
            # The commands are guild-only when synced; one that arrives anyway from a DM
            # would escape every channel, role, quota and speed rule.
            return DM_REFUSAL
        refusal = may_generate(
            settings,
            channel_id=member.channel_id,
            parent_channel_id=member.parent_channel_id,
            role_ids=member.role_ids,
            is_manager=member.is_manager,
        )
        if refusal is not None:
            return refusal.message
        if operation.kind.is_video and not settings.video_enabled:
            return VIDEO_OFF
        mode = (operation.mode or await self.default_mode(member)).value
        # The entry points decide the speed once (decide_speed) and strip the prompt's
        # flags; a flag that still reaches here is judged too, never waved through.
        flagged, _ = split_speed_flags(operation.prompt)
        for speed in dict.fromkeys([mode, *(s.value for s in flagged)]):
            if (refusal := check_mode(settings, speed)) is not None:
                return refusal.message
        if any(s.value in FAST_MODES for s in flagged):
            mode = next(s.value for s in flagged if s.value in FAST_MODES)
        prompt_changed = parent is None or operation.prompt != parent.operation.prompt
        if (
            operation.kind in _PROMPTED
            and operation.prompt
            and prompt_changed
            and (reason := self.check_text(settings, operation.prompt)) is not None
        ):
            return reason
        return await self._check_usage(settings, member, mode, video=operation.kind.is_video)

    async def _check_usage(
        self, settings: GuildSettings, member: Member, mode: str, *, video: bool = False
    ) -> str | None:
        assert member.guild_id is not None
        now = self._clock.time()
        day_start = utc_day_start(now)
        counts = await self._store.usage.quota_counts(member.guild_id, member.user_id, day_start)
        failures = counts.moderated_since
        if failures >= settings.moderation_error_budget:
            return (
                f"{failures} of your prompts were refused by the image service's moderation "
                "today; to protect the server's account you can generate again "
                f"<t:{int(day_start + 86400)}:R>."
            )
        limits = settings.limits_for(member.role_ids)
        videos = VideoCounts()
        daily = limits.jobs_per_day is not None or limits.fast_jobs_per_day is not None
        if daily and settings.video_weight != 1:  # a video weighs more than one image job
            videos = await self._store.usage.video_counts(
                member.guild_id, member.user_id, day_start
            )
        refusal = check_quota(
            limits,
            active_jobs=counts.active,
            jobs_today=counts.since,
            fast_jobs_today=counts.fast_since,
            mode=mode,
            now=now,
            day_start=day_start,
            videos_today=videos.spent,
            fast_videos_today=videos.fast_spent,
            video_weight=settings.video_weight,
            is_video=video,
        )
        return refusal.message if refusal is not None else None

    async def check_click(self, member: Member, parent: Job) -> str | None:
        """Whether `member` may use the buttons under `parent` (the server may keep them to
        the requester and moderators)."""
        settings = await self.settings(member.guild_id)
        if settings is None:
            return DM_REFUSAL
        refusal = may_click(
            settings,
            clicker_id=member.user_id,
            requester_id=parent.requester_id,
            is_moderator=member.is_moderator,
        )
        return refusal.message if refusal is not None else None
