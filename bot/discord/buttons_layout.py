"""The button catalog: neutral action names → Midjourney-style buttons, laid out in rows.

Pure data, no discord import, so the layout can be tested alone and reused by the
persistent view, the publisher and messages ("Upscale (Subtle) by @user").

Midjourney's own rows (PROVIDERS.md §7) are the model:

    grid      U1 U2 U3 U4 🔄 / V1 V2 V3 V4 / ✏️1 ✏️2 ✏️3 ✏️4 (where the backend edits tiles)
    upscaled  Upscale (Subtle) Upscale (Creative) / 🪄 Vary (Subtle) 🪄 Vary (Strong)
              🖌️ Vary (Region) ✏️ Edit / 🔍 Zoom Out 2x 🔍 Zoom Out 1.5x 🔍 Custom Zoom
              ↔️ Make Square / ⬅️ ➡️ ⬆️ ⬇️ / 🌱 Seed + unknown actions
    describe  1 2 3 4 🔄
    video     per video: 1️⃣ Extend (Low motion) 1️⃣ Extend (High motion) 1️⃣ HD / 2️⃣ … (upscaled
              images add 🎞️ Animate (Low motion) 🎞️ Animate (High motion) after the upscales)

Labels are derived from the action names (an exact table, then the neutral grammar of
bot.actions.parse_action, then raw provider spellings), so an action the bot has never
heard of still gets a readable button instead of vanishing.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from bot.actions import ParsedAction, parse_action

log = logging.getLogger(__name__)

CUSTOM_ID_PREFIX = "mj"
MAX_CUSTOM_ID = 100  # Discord's limit for a component custom_id
MAX_LABEL = 80  # Discord's limit for a button label
MAX_ROWS = 5
MAX_PER_ROW = 5
MAX_BUTTONS = MAX_ROWS * MAX_PER_ROW
JOB_ID_LENGTH = 12  # bot.domain.new_job_id
# The longest action that still fits a custom id with a full-length job id.
MAX_ACTION_LENGTH = MAX_CUSTOM_ID - len(CUSTOM_ID_PREFIX) - 2 - JOB_ID_LENGTH
# For discord.ui.DynamicItem templates: greedy action, so the job id is after the LAST colon.
# (?s): a provider's raw action name may hold any character, newlines included.
CUSTOM_ID_PATTERN = r"(?s)mj:(?P<action>.+):(?P<job_id>[0-9a-z]+)"
_CUSTOM_ID_RE = re.compile(CUSTOM_ID_PATTERN)

PROVIDER_PREFIX = "provider:"

STYLE_SECONDARY = "secondary"  # grey: every button until used
STYLE_PRIMARY = "primary"  # blue: a used button, as Midjourney shows it
STYLE_SUCCESS = "success"  # green: used with Remix on, as Midjourney shows it


@dataclass(frozen=True)
class ButtonSpec:
    action: str
    label: str | None
    emoji: str | None
    row: int
    disabled: bool = False
    style: str = STYLE_SECONDARY

    def custom_id(self, job_id: str) -> str:
        return custom_id_for(self.action, job_id)


def custom_id_for(action: str, job_id: str) -> str:
    """The persistent custom id of a button: `mj:<action>:<job_id>`.

    Raises ValueError when it cannot round-trip or exceeds Discord's 100 characters:
    truncating would make the button resolve to a different (or no) action.
    """
    if not action:
        raise ValueError("empty action")
    if not job_id or ":" in job_id:
        raise ValueError(f"invalid job id {job_id!r}")
    custom_id = f"{CUSTOM_ID_PREFIX}:{action}:{job_id}"
    if len(custom_id) > MAX_CUSTOM_ID:
        raise ValueError(f"custom id for action {action[:40]!r}… exceeds {MAX_CUSTOM_ID} chars")
    return custom_id


def parse_custom_id(custom_id: str) -> tuple[str, str] | None:
    """`(action, job_id)` from a custom id, or None when it is not one of ours."""
    if len(custom_id) > MAX_CUSTOM_ID:
        return None
    match = _CUSTOM_ID_RE.fullmatch(custom_id)
    if match is None:
        return None
    return match["action"], match["job_id"]


class Group(IntEnum):
    """Row groups in display order; a higher value is also a lower priority when dropping."""

    PICK = 0  # U1..U4 🔄
    DESCRIBE = 1  # 1 2 3 4 🔄
    VARY_GRID = 2  # V1..V4
    EDIT_GRID = 3  # ✏️1..✏️4 (backends that edit a grid's tiles directly)
    UPSCALE = 4
    ANIMATE = 5  # 🎞️ Animate (Low motion) / (High motion) on an upscaled image
    VIDEO_1 = 6  # per video of a video job: Extend (Low/High motion), HD
    VIDEO_2 = 7
    VIDEO_3 = 8
    VIDEO_4 = 9
    VARY = 10
    ZOOM = 11
    PAN = 12
    EXTRA = 13  # offered by the bot itself (seed)
    UNKNOWN = 14


@dataclass(frozen=True)
class ActionLook:
    """How an action is shown: `title` is always text (for messages), `emoji_only`
    buttons show just the emoji, like Midjourney's 🔄 and arrows."""

    title: str
    emoji: str | None
    group: Group
    order: int
    emoji_only: bool = False
    short: str | None = None  # a button label shorter than the title ("1" for "Edit image 1")

    @property
    def button_label(self) -> str | None:
        return None if self.emoji_only else self.short or self.title


_EXACT: dict[str, ActionLook] = {
    "reroll": ActionLook("Reroll", "🔄", Group.PICK, 9, emoji_only=True),
    "describe_reroll": ActionLook("Reroll", "🔄", Group.DESCRIBE, 9, emoji_only=True),
    "describe_all": ActionLook("Imagine all", "🎉", Group.DESCRIBE, 10),
    "enhance": ActionLook("Enhance", "✨", Group.UPSCALE, 8),
    "vary_subtle": ActionLook("Vary (Subtle)", "🪄", Group.VARY, 0),
    "vary_strong": ActionLook("Vary (Strong)", "🪄", Group.VARY, 1),
    "vary_region": ActionLook("Vary (Region)", "🖌️", Group.VARY, 2),
    "edit": ActionLook("Edit", "✏️", Group.VARY, 3),
    "remix": ActionLook("Remix", "🎛️", Group.VARY, 4),
    "zoom_out_2x": ActionLook("Zoom Out 2x", "🔍", Group.ZOOM, 0),
    "zoom_out_1_5x": ActionLook("Zoom Out 1.5x", "🔍", Group.ZOOM, 1),
    "zoom_custom": ActionLook("Custom Zoom", "🔍", Group.ZOOM, 2),
    "make_square": ActionLook("Make Square", "↔️", Group.ZOOM, 3),
    "seed": ActionLook("Seed", "🌱", Group.EXTRA, 0),
    # Raw PiAPI spellings that may reach us as `provider:<raw>` from another backend.
    f"{PROVIDER_PREFIX}outpaint_1x": ActionLook("Make Square", "↔️", Group.ZOOM, 3),
}

_UPSCALE_ORDER = {"subtle": 0, "creative": 1, "2x": 2, "4x": 3}
_PAN_LOOK = {
    "left": ("⬅️", 0),
    "right": ("➡️", 1),
    "up": ("⬆️", 2),
    "down": ("⬇️", 3),
}


def _upscale_look(variant: str, redo: bool) -> ActionLook:
    title = variant if variant[:1].isdigit() else variant.title()
    prefix = "Redo Upscale" if redo else "Upscale"
    return ActionLook(f"{prefix} ({title})", None, Group.UPSCALE, _UPSCALE_ORDER.get(variant, 6))


def _pan_look(direction: str) -> ActionLook:
    emoji, order = _PAN_LOOK[direction]
    return ActionLook(f"Pan {direction.title()}", emoji, Group.PAN, order, emoji_only=True)


_KEYCAP = ("1️⃣", "2️⃣", "3️⃣", "4️⃣")
_VIDEO_GROUPS = (Group.VIDEO_1, Group.VIDEO_2, Group.VIDEO_3, Group.VIDEO_4)


def _video_look(n: int, kind: str) -> ActionLook:
    """Midjourney's labels for one video; its keycap tells the videos of a batch apart."""
    title = "HD" if kind == "hd" else f"Extend ({kind.title()} motion)"
    order = {"low": 0, "high": 1, "hd": 2}[kind]
    return ActionLook(title, _KEYCAP[n - 1], _VIDEO_GROUPS[n - 1], order)


def _zoom(ratio: str) -> ActionLook:
    # After the fixed zooms (2x, 1.5x, Custom, Make Square) from the exact table.
    return ActionLook(f"Zoom Out {ratio}x", "🔍", Group.ZOOM, 4)


_TILE_LOOK = {  # family -> (title, group) of a numbered button
    "pick": ("U{n}", Group.PICK),
    "vary_grid": ("V{n}", Group.VARY_GRID),
    "describe_pick": ("{n}", Group.DESCRIBE),
    "shorten_pick": ("{n}", Group.DESCRIBE),
}


def _neutral_look(p: ParsedAction) -> ActionLook | None:
    """The look of a neutral name taken apart by bot.actions' grammar (None: not one)."""
    n = p.index or 0
    if p.family in _TILE_LOOK:
        title, group = _TILE_LOOK[p.family]
        return ActionLook(title.format(n=n), None, group, n)
    if p.family == "enhance" and p.index is not None:
        # A draft grid's Enhance per image: its own row (a grid has no upscale buttons).
        return ActionLook(f"Enhance image {n}", "✨", Group.UPSCALE, n, short=f"Enhance {n}")
    if p.family == "edit" and p.index is not None:
        return ActionLook(f"Edit image {n}", "✏️", Group.EDIT_GRID, n, short=str(n))
    if p.family == "upscale" and p.variant:
        return _upscale_look(p.variant, p.redo)
    if p.family == "animate" and p.motion:
        order = 0 if p.motion == "low" else 1
        return ActionLook(f"Animate ({p.motion.title()} motion)", "🎞️", Group.ANIMATE, order)
    if p.family == "extend" and p.motion:
        return _video_look(n, p.motion)
    if p.family == "video_hd":
        return _video_look(n, "hd")
    if p.direction is not None:
        return _pan_look(p.direction.value)
    if p.zoom is not None:
        return _zoom(str(p.zoom))
    return None


def _provider_tile(title: str, group: Group) -> Callable[[re.Match[str]], ActionLook]:
    return lambda m: ActionLook(title.format(n=int(m[1])), None, group, int(m[1]))


# Raw provider spellings (PROVIDERS.md §7 step 1), tried after the neutral grammar, so
# `provider:upscale5` still reads `U5`: a provider's own names are not bot.actions' grammar
# (PiAPI's outpaint_3x has no neutral name), so they keep their own looser patterns here.
_P = re.escape(PROVIDER_PREFIX)
_PROVIDER_FAMILIES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], ActionLook]]] = [
    (re.compile(rf"^{_P}upscale(\d{{1,2}})$"), _provider_tile("U{n}", Group.PICK)),
    (re.compile(rf"^{_P}variation(\d{{1,2}})$"), _provider_tile("V{n}", Group.VARY_GRID)),
    (
        re.compile(rf"^{_P}(redo_)?upscale_([a-z0-9]{{1,20}})$"),
        lambda m: _upscale_look(m[2], bool(m[1])),
    ),
    (re.compile(rf"^{_P}pan_(left|right|up|down)$"), lambda m: _pan_look(m[1])),
    (re.compile(rf"^{_P}outpaint_(\d{{1,2}}(?:\.\d{{1,2}})?)x$"), lambda m: _zoom(m[1])),
]


_WORD_SPLIT = re.compile(r"[\s_:/\-]+")


def humanise(action: str) -> str:
    """A readable label for an action without a catalog entry (`foo_bar_2x` → `Foo Bar 2x`)."""
    raw = action.removeprefix(PROVIDER_PREFIX)
    words = [w for w in _WORD_SPLIT.split(raw) if w]
    label = " ".join(w[0].upper() + w[1:] for w in words) or "Action"
    return clip(label, MAX_LABEL)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, marking a cut with `…`."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"


def look_of(action: str) -> ActionLook | None:
    """The catalog entry for an action, or None when the bot has no name for it."""
    if (look := _EXACT.get(action)) is not None:
        return look
    parsed = parse_action(action)
    if parsed is not None and (look := _neutral_look(parsed)) is not None:
        return look
    for pattern, build in _PROVIDER_FAMILIES:
        if match := pattern.match(action):
            return build(match)
    return None


def describe_action(action: str) -> tuple[str, str | None]:
    """`(title, emoji)` of an action for text, e.g. "Upscale (Subtle) by @user".

    The title is always text, even for emoji-only buttons (🔄 → "Reroll").
    """
    look = look_of(action)
    if look is None:
        return humanise(action), None
    return look.title, look.emoji


@functools.lru_cache(maxsize=1024)  # bounded memory of what was logged: once per name
def _log_once(kind: str, action: str) -> None:
    if kind == "unknown":
        log.info("no button label for action %r; showing it as %r", action, humanise(action))
    else:
        log.warning("action %r cannot be a button: custom id too long; skipped", action[:120])


@dataclass(frozen=True)
class _Entry:
    action: str
    look: ActionLook
    seen: int  # position in the input, to keep ties stable


def layout_buttons(
    actions: Sequence[str],
    *,
    used: frozenset[str] = frozenset(),
    stale: bool = False,
    square: bool = True,
    extra: Iterable[str] = (),
    remix: bool = False,
    job_id: str | None = None,
) -> list[ButtonSpec]:
    """Buttons for a finished job's actions, in Midjourney's rows.

    `extra` are actions the bot itself offers (seed, edit). `used` buttons turn blue
    (green when `remix`), `stale` disables every follow-up (the provider's window is
    over). `job_id` only matters for the custom-id length check; a full-length id is
    assumed otherwise. Actions whose custom id cannot fit are skipped and logged.
    """
    id_probe = job_id or "0" * JOB_ID_LENGTH
    entries: list[_Entry] = []
    seen: set[str] = set()
    for action in [*actions, *extra]:
        if action in seen:
            continue
        seen.add(action)
        try:
            custom_id_for(action, id_probe)
        except ValueError:
            _log_once("too_long", action)
            continue
        look = look_of(action)
        if look is None:
            _log_once("unknown", action)
            look = ActionLook(humanise(action), None, Group.UNKNOWN, 0)
        if look.title == "Make Square" and square:
            continue  # Midjourney offers Make Square on non-square images only
        entries.append(_Entry(action, look, len(entries)))

    entries.sort(key=lambda e: (e.look.group, e.look.order, e.seen))
    entries = _fit_count(entries)
    rows = _assign_rows(entries)

    used_style = STYLE_SUCCESS if remix else STYLE_PRIMARY
    return [
        ButtonSpec(
            action=e.action,
            label=e.look.button_label,
            emoji=e.look.emoji,
            row=row,
            disabled=stale,
            style=used_style if e.action in used else STYLE_SECONDARY,
        )
        for e, row in zip(entries, rows, strict=True)
    ]


def _fit_count(entries: list[_Entry]) -> list[_Entry]:
    """At most 25 buttons: drop whole families from the lowest priority up (logged)."""
    while len(entries) > MAX_BUTTONS:
        groups = sorted({e.look.group for e in entries})
        if len(groups) == 1:
            # One family alone is too big: keep its first 25 rather than nothing.
            dropped = entries[MAX_BUTTONS:]
            entries = entries[:MAX_BUTTONS]
        else:
            lowest = groups[-1]
            dropped = [e for e in entries if e.look.group == lowest]
            entries = [e for e in entries if e.look.group != lowest]
        log.warning(
            "more than %d buttons; dropped %s", MAX_BUTTONS, [e.action for e in dropped][:30]
        )
    return entries


def _row_group(group: Group) -> Group:
    # The bot's own extras (seed) share the last row with unknown actions.
    return Group.EXTRA if group is Group.UNKNOWN else group


def _assign_rows(entries: list[_Entry]) -> list[int]:
    """Row numbers: one family per row when that fits in 5 rows, else pack tighter.

    Tried in order: (1) each family starts a row, wrapping at 5; (2) a family joins the
    current row when it fits there whole; (3) plain flow, 5 per row. With ≤25 buttons
    (3) always fits, and the order within the message never changes.
    """
    for pack_families in (False, True):
        rows: list[int] = []
        row, used_in_row = -1, MAX_PER_ROW
        previous: Group | None = None
        for i, entry in enumerate(entries):
            group = _row_group(entry.look.group)
            if group != previous:
                size = sum(1 for e in entries[i:] if _row_group(e.look.group) == group)
                fits = pack_families and used_in_row + size <= MAX_PER_ROW
                if not fits:
                    row, used_in_row = row + 1, 0
                previous = group
            if used_in_row == MAX_PER_ROW:
                row, used_in_row = row + 1, 0
            rows.append(row)
            used_in_row += 1
        if not rows or rows[-1] < MAX_ROWS:
            return rows
    return [i // MAX_PER_ROW for i in range(len(entries))]
