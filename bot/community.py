"""A community server's rules: its settings and the pure checks that use them.

Settings are layered: the built-in defaults below, under what the server stored with
/settings, under per-role limit overrides. A server that never ran /settings gets the
defaults and works out of the box.

The checks (`may_generate`, `check_mode`, `check_quota`, `may_click`) are pure: the
caller gathers the member's roles and usage, the check answers with a `Refusal` (whose
message is a sentence for an ephemeral reply) or None. Nothing here knows Discord's
library; mentions are written as `<#id>`, `<@&id>` and `<@id>` text.
"""

from __future__ import annotations

import calendar
import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from bot.prompt_check import BannedWords

__all__ = [
    "CLICKS_ANYONE",
    "CLICKS_REQUESTER",
    "DAY_SECONDS",
    "FAST_MODES",
    "MODES",
    "GuildSettings",
    "Limits",
    "Refusal",
    "RoleLimits",
    "SettingsEdit",
    "check_mode",
    "check_quota",
    "describe_change",
    "may_click",
    "may_generate",
    "utc_day_start",
    "utc_month_start",
]

DAY_SECONDS = 86400
MODES = ("relax", "fast", "turbo")
# Modes that spend the account's fast hours, counted by `Limits.fast_jobs_per_day`.
FAST_MODES = frozenset({"fast", "turbo"})
CLICKS_ANYONE = "anyone"
CLICKS_REQUESTER = "requester"  # the member who asked, and moderators


# --- time -------------------------------------------------------------------------------


DEFAULT_VIDEO_WEIGHT = 8
MAX_VIDEO_WEIGHT = 100
VIDEO_OFF = "Videos are turned off on this server (an admin can turn them on in /settings video)."


def utc_day_start(now: float) -> float:
    """The last UTC midnight at or before `now` (Unix seconds have no leap seconds)."""
    return float(now - now % DAY_SECONDS)


def utc_month_start(now: float) -> float:
    """Midnight UTC on the first day of `now`'s month."""
    day = datetime.fromtimestamp(now, UTC)
    return float(calendar.timegm((day.year, day.month, 1, 0, 0, 0)))


# --- limits -----------------------------------------------------------------------------


def _limit_value(value: Any, default: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return default  # unreadable stored data: the default, not a crash
    return value


@dataclass(frozen=True)
class Limits:
    """How much one member may use. None means unlimited.

    concurrent_jobs    jobs running or waiting at once
    jobs_per_day       jobs started per UTC day, any mode
    fast_jobs_per_day  fast or turbo jobs started per UTC day
    """

    concurrent_jobs: int | None = 3
    jobs_per_day: int | None = 100
    fast_jobs_per_day: int | None = 25

    def to_data(self) -> dict[str, int | None]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Limits:
        """Unknown keys are ignored, missing or unreadable ones take the default."""
        defaults = cls()
        values: dict[str, int | None] = {}
        for f in dataclasses.fields(cls):
            default = getattr(defaults, f.name)
            values[f.name] = _limit_value(data.get(f.name, default), default)
        return cls(**values)

    def most_generous(self, other: Limits) -> Limits:
        """Per field, the larger allowance; None (unlimited) beats any number."""

        def pick(a: int | None, b: int | None) -> int | None:
            return None if a is None or b is None else max(a, b)

        return Limits(
            **{
                f.name: pick(getattr(self, f.name), getattr(other, f.name))
                for f in dataclasses.fields(self)
            }
        )


class RoleLimits(Mapping[str, Limits]):
    """Role id → `Limits`: an immutable, hashable mapping (so `GuildSettings` stays frozen
    and hashable). Build a changed copy with `dict(settings.role_limits)` and pass the dict
    to `GuildSettings.with_changes(role_limits=...)`, which converts it back."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Limits] | Iterable[tuple[str, Limits]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: dict[str, Limits] = {
            str(k): v if isinstance(v, Limits) else Limits.from_data(v)
            for k, v in sorted(pairs, key=lambda pair: str(pair[0]))
        }

    def __getitem__(self, role_id: str) -> Limits:
        return self._items[role_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"RoleLimits({self._items!r})"


# --- the settings -----------------------------------------------------------------------


def _ids(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        return ()
    return tuple(dict.fromkeys(str(v) for v in value))


def _words(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        return ()
    return tuple(dict.fromkeys(str(v) for v in value if str(v).strip()))


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        return ()
    found = {
        str(item[0]).strip().lower(): str(item[1])
        for item in value
        if isinstance(item, (list, tuple)) and len(item) == 2 and str(item[0]).strip()
    }
    return tuple(found.items())


@dataclass(frozen=True)
class GuildSettings:
    """One server's settings; every field has a default, so a new server needs none.

    guild_id                 the server
    allowed_channel_ids      channels (and their threads) where members may generate;
                             empty: everywhere
    allowed_role_ids         roles that may generate; empty: everyone. Members with
                             Manage Server always may.
    default_mode             speed when a member picks none (relax | fast | turbo)
    allowed_modes            speeds members may pick
    follow_up_clicks         "anyone", or "requester": only the member who asked and
                             moderators may use a job's buttons
    limits                   per-member limits for everyone
    role_limits              role id → limits replacing `limits` for that role's members
                             (a `RoleLimits`; pass any mapping, it is converted)
    spoiler_flagged          spoiler results the provider flags, outside NSFW channels
    banned_words_added       the server's own banned words and phrases
    banned_words_removed     default banned words the server lifted
    moderation_error_budget  prompts the provider's moderation may refuse per member per
                             UTC day before that member is paused until the next day
    presets                  server presets: (name, parameters) pairs for /imagine
    video_enabled            members may make videos (Animate, Extend, HD, /animate)
    video_weight             how many image jobs one video job counts as in the daily
                             limits (Midjourney bills a video like about eight)

    Stored as JSON (`to_data`); `from_data` ignores unknown keys and defaults missing
    ones, so a new field needs no migration. The constructor normalises sequences to
    tuples and mappings to `RoleLimits`, so `with_changes` accepts lists and dicts.
    """

    guild_id: str
    allowed_channel_ids: tuple[str, ...] = ()
    allowed_role_ids: tuple[str, ...] = ()
    default_mode: str = "fast"
    allowed_modes: tuple[str, ...] = MODES
    follow_up_clicks: str = CLICKS_ANYONE
    limits: Limits = field(default_factory=Limits)
    role_limits: Mapping[str, Limits] = field(default_factory=RoleLimits)
    spoiler_flagged: bool = True
    banned_words_added: tuple[str, ...] = ()
    banned_words_removed: tuple[str, ...] = ()
    moderation_error_budget: int = 3
    # A channel where the bot posts the details of failed jobs for admins ('' = none).
    log_channel_id: str = ""
    # Server presets (issue 19): (name, parameters) pairs every member may use on /imagine.
    presets: tuple[tuple[str, str], ...] = ()
    # Issue 18: video on or off, and what a video job weighs in the quotas.
    video_enabled: bool = True
    video_weight: int = DEFAULT_VIDEO_WEIGHT

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "presets", _pairs(self.presets))
        set_(self, "video_weight", max(1, min(MAX_VIDEO_WEIGHT, int(self.video_weight))))
        set_(self, "guild_id", str(self.guild_id))
        set_(self, "allowed_channel_ids", _ids(self.allowed_channel_ids))
        set_(self, "allowed_role_ids", _ids(self.allowed_role_ids))
        set_(self, "allowed_modes", _ids(self.allowed_modes))
        set_(self, "banned_words_added", _words(self.banned_words_added))
        set_(self, "banned_words_removed", _words(self.banned_words_removed))
        if isinstance(self.limits, Mapping):
            set_(self, "limits", Limits.from_data(self.limits))
        if not isinstance(self.role_limits, RoleLimits):
            set_(self, "role_limits", RoleLimits(self.role_limits))

    # --- storage ---

    def to_data(self) -> dict[str, Any]:
        """Every field but `guild_id` (the row's key) as JSON values."""
        data: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "guild_id":
                continue
            value = getattr(self, f.name)
            if isinstance(value, Limits):
                value = value.to_data()
            elif isinstance(value, RoleLimits):
                value = {role: limits.to_data() for role, limits in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            data[f.name] = value
        return data

    @classmethod
    def from_data(cls, guild_id: str, data: Mapping[str, Any]) -> GuildSettings:
        """Settings from stored JSON: unknown keys ignored, missing or unreadable values
        replaced by their defaults (a bad value never makes a server unusable)."""
        defaults = cls(guild_id)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "guild_id" or f.name not in data:
                continue
            value = data[f.name]
            default = getattr(defaults, f.name)
            if f.name == "limits":
                value = Limits.from_data(value) if isinstance(value, Mapping) else default
            elif f.name == "role_limits":
                value = (
                    {
                        str(k): Limits.from_data(v)
                        for k, v in value.items()
                        if isinstance(v, Mapping)
                    }
                    if isinstance(value, Mapping)
                    else default
                )
            elif isinstance(default, tuple):
                value = value if isinstance(value, list) else default
            elif isinstance(default, bool):
                value = value if isinstance(value, bool) else default
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
                value = value if ok else default
            elif isinstance(default, str):
                value = value if isinstance(value, str) else default
            kwargs[f.name] = value
        settings = cls(guild_id, **kwargs)
        if settings.default_mode not in MODES:
            settings = settings.with_changes(default_mode=defaults.default_mode)
        if settings.follow_up_clicks not in (CLICKS_ANYONE, CLICKS_REQUESTER):
            settings = settings.with_changes(follow_up_clicks=CLICKS_ANYONE)
        return settings

    # --- helpers ---

    def with_changes(self, **changes: Any) -> GuildSettings:
        """A copy with `changes` applied (lists and dicts are accepted and normalised)."""
        return dataclasses.replace(self, **changes)

    def limits_for(self, role_ids: Iterable[str]) -> Limits:
        """The limits of a member with `role_ids`: the most generous, field by field, of
        the overrides of the roles they have (None, unlimited, beats any number); the
        server's `limits` when none of their roles has an override.

        An override replaces the server's limits rather than adding to them, so a role
        can also be held to less (a "newcomer" role, say)."""
        result: Limits | None = None
        for role_id in dict.fromkeys(str(r) for r in role_ids):
            override = self.role_limits.get(role_id)
            if override is not None:
                result = override if result is None else result.most_generous(override)
        return self.limits if result is None else result

    def banned_words(self) -> BannedWords:
        """The server's compiled banned-word matcher (the defaults ± its own words).
        Compiled once per distinct pair of lists and shared."""
        return _banned_words(self.banned_words_added, self.banned_words_removed)


@lru_cache(maxsize=64)
def _banned_words(added: tuple[str, ...], removed: tuple[str, ...]) -> BannedWords:
    return BannedWords.build(extra=added, removed=removed)


# --- the rules --------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Why a member may not do something now.

    `code`: channel | role | mode | concurrent | daily | fast_daily | clicks.
    `resets_at`: when the refusal lifts by itself (Unix seconds), if it does.
    """

    code: str
    message: str
    resets_at: float | None = None


def _list(items: Iterable[str], *, conjunction: str = "or") -> str:
    items = list(items)
    if len(items) <= 2:
        return f" {conjunction} ".join(items)
    return ", ".join(items[:-1]) + f" {conjunction} " + items[-1]


def may_generate(
    settings: GuildSettings,
    *,
    channel_id: str | None,
    parent_channel_id: str | None,
    role_ids: Iterable[str],
    is_manager: bool,
) -> Refusal | None:
    """Whether a member may generate in this channel at all.

    The channel rule applies to everyone (a thread follows its parent channel's rule);
    the role rule does not apply to members with Manage Server (`is_manager`), so an
    admin cannot lock themselves out.
    """
    allowed_channels = settings.allowed_channel_ids
    if allowed_channels and not (
        (channel_id is not None and channel_id in allowed_channels)
        or (parent_channel_id is not None and parent_channel_id in allowed_channels)
    ):
        where = _list(f"<#{c}>" for c in allowed_channels)
        return Refusal("channel", f"On this server, images can be made only in {where}.")
    allowed_roles = settings.allowed_role_ids
    if allowed_roles and not is_manager and not set(map(str, role_ids)) & set(allowed_roles):
        roles = _list(f"<@&{r}>" for r in allowed_roles)
        return Refusal(
            "role", f"On this server, only members with the role {roles} can make images."
        )
    return None


def check_mode(settings: GuildSettings, mode: str) -> Refusal | None:
    """Whether the server allows the speed `mode` (relax | fast | turbo)."""
    if mode in settings.allowed_modes:
        return None
    allowed = _list((f"**{m}**" for m in settings.allowed_modes), conjunction="and")
    return Refusal(
        "mode",
        f"The **{mode}** speed is not allowed on this server"
        + (f"; you can use {allowed}." if allowed else "."),
    )


def check_quota(
    limits: Limits,
    *,
    active_jobs: int,
    jobs_today: int,
    fast_jobs_today: int,
    mode: str,
    now: float,
    day_start: float,
    videos_today: int = 0,
    fast_videos_today: int = 0,
    video_weight: int = 1,
    is_video: bool = False,
) -> Refusal | None:
    """Whether one more job fits the member's limits.

    `jobs_today` and `fast_jobs_today` count from `day_start` (use `utc_day_start(now)`);
    the day's limits reset 24 hours after it, which is the next UTC midnight after
    `now`. The daily limits are checked first: when they are spent, waiting for a
    running job would not help. A video job (`videos_today` of those counts, and the new
    one when `is_video`) weighs `video_weight` image jobs.
    """
    extra = max(0, video_weight - 1)
    cost = video_weight if is_video else 1
    jobs_today += videos_today * extra + cost - 1
    fast_jobs_today += fast_videos_today * extra + cost - 1
    resets_at = day_start + DAY_SECONDS
    if not day_start <= now < resets_at:
        resets_at = utc_day_start(now) + DAY_SECONDS
    when = f"<t:{int(resets_at)}:R>"
    if limits.jobs_per_day is not None and jobs_today >= limits.jobs_per_day:
        return Refusal(
            "daily",
            f"You have reached this server's limit of {limits.jobs_per_day} image job(s) a "
            f"day{_weighed(is_video, video_weight)}; it resets {when}.",
            resets_at,
        )
    if (
        mode in FAST_MODES
        and limits.fast_jobs_per_day is not None
        and fast_jobs_today >= limits.fast_jobs_per_day
    ):
        return Refusal(
            "fast_daily",
            f"You have reached this server's limit of {limits.fast_jobs_per_day} fast or "
            f"turbo job(s) a day{_weighed(is_video, video_weight)}; choose relax if it is "
            f"allowed, or wait until the limit "
            f"resets {when}.",
            resets_at,
        )
    if limits.concurrent_jobs is not None and active_jobs >= limits.concurrent_jobs:
        return Refusal(
            "concurrent",
            f"You already have {active_jobs} job(s) on the way, and this server allows "
            f"{limits.concurrent_jobs} at once; start another when one has finished.",
        )
    return None


def _weighed(is_video: bool, weight: int) -> str:
    return f" (a video counts as {weight} image jobs)" if is_video and weight != 1 else ""


def may_click(
    settings: GuildSettings, *, clicker_id: str, requester_id: str | None, is_moderator: bool
) -> Refusal | None:
    """Whether a member may use the buttons under someone's job.

    With `follow_up_clicks == "requester"`, only the member who asked for the job and
    moderators may (a job with no known requester: moderators only).
    """
    if settings.follow_up_clicks != CLICKS_REQUESTER or is_moderator:
        return None
    if requester_id is not None and str(clicker_id) == str(requester_id):
        return None
    who = f"<@{requester_id}>, who asked for it," if requester_id else "the member who asked for it"
    return Refusal(
        "clicks", f"On this server, only {who} or a moderator can use this image's buttons."
    )


# --- the audit log ----------------------------------------------------------------------


def _limit_text(value: int | None) -> str:
    return "no limit" if value is None else str(value)


def _limits_text(limits: Limits) -> str:
    return ", ".join(f"{k} {_limit_text(v)}" for k, v in limits.to_data().items())


_MENTION = {"allowed_channel_ids": "<#{}>", "allowed_role_ids": "<@&{}>"}


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "no limit"
    return str(value)


def describe_change(before: GuildSettings, after: GuildSettings) -> str:
    """What changed from `before` to `after`, for the audit log; "" when nothing did.

    One "; "-separated part per changed setting: `default_mode: fast → relax`,
    `allowed_channel_ids: added <#1>; removed <#2>`, `limits.jobs_per_day: 100 → 5`,
    `role_limits <@&7>: added (concurrent_jobs 3, …)`. Lists compare as sets: reordering
    alone is no change.
    """
    parts: list[str] = []
    for f in dataclasses.fields(GuildSettings):
        name = f.name
        old, new = getattr(before, name), getattr(after, name)
        if name == "guild_id" or old == new:
            continue
        if isinstance(old, Limits) and isinstance(new, Limits):
            parts += _limits_diff(name, old, new)
        elif name == "role_limits":
            parts += _role_limits_diff(old, new)
        elif isinstance(old, tuple) and isinstance(new, tuple):
            template = _MENTION.get(name, "{}")
            added = [template.format(v) for v in new if v not in old]
            removed = [template.format(v) for v in old if v not in new]
            changes = []
            if added:
                changes.append("added " + ", ".join(added))
            if removed:
                changes.append("removed " + ", ".join(removed))
            if changes:
                parts.append(f"{name}: " + ", ".join(changes))
        else:
            parts.append(f"{name}: {_value_text(old)} → {_value_text(new)}")
    return "; ".join(parts)


class SettingsEdit:
    """One admin's change to a server's settings, inside `GuildSettingsRepository.edit`.

    `before` is the row as read under the store's lock; set `settings` (or call `update`)
    to the changed version. On leaving the block the store saves `settings` and one audit
    row saying `change` — or nothing at all when `change` is "" (nothing changed).
    """

    def __init__(self, before: GuildSettings) -> None:
        self.before = before
        self.settings = before

    def update(self, **changes: Any) -> GuildSettings:
        self.settings = self.settings.with_changes(**changes)
        return self.settings

    @property
    def change(self) -> str:
        """What the audit row says changed; "" when nothing did."""
        if self.settings.guild_id != self.before.guild_id:
            raise ValueError("an edit cannot move settings to another server")
        return describe_change(self.before, self.settings)


def _limits_diff(prefix: str, old: Limits, new: Limits) -> list[str]:
    return [
        f"{prefix}.{key}: {_limit_text(value)} → {_limit_text(new.to_data()[key])}"
        for key, value in old.to_data().items()
        if value != new.to_data()[key]
    ]


def _role_limits_diff(old: Mapping[str, Limits], new: Mapping[str, Limits]) -> list[str]:
    parts: list[str] = []
    for role in dict.fromkeys([*old, *new]):
        label = f"role_limits <@&{role}>"
        if role not in old:
            parts.append(f"{label}: added ({_limits_text(new[role])})")
        elif role not in new:
            parts.append(f"{label}: removed")
        elif old[role] != new[role]:
            parts += _limits_diff(label, old[role], new[role])
    return parts
