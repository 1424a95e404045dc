"""The neutral follow-up actions and how each becomes an Operation.

Neutral names (PROVIDERS.md §6.3) are what the store, the buttons and the cogs use:

    pick:N            U1..U4 on a grid          vary_grid:N     V1..V4 on a grid
    reroll            🔄                          upscale_<v>     subtle|creative|2x|4x
    redo_upscale_<v>  Redo Upscale (…)          vary_subtle / vary_strong
    vary_region       Vary (Region)             zoom_out_2x / zoom_out_1_5x / zoom_custom
    make_square                                  pan_left|right|up|down
    remix / edit / enhance                       seed (🌱, offered by the bot itself)
    edit:N            ✏️ N on a grid: edit tile N (backends that address single images)
    provider:<raw>    an action the bot has no name for; replayed as the provider spells it
    animate_low:N / animate_high:N   Animate (Low|High motion) on image N (1 on a single)
    extend_low:V / extend_high:V     Extend (Low|High motion) video V of a video job
    video_hd:V                       HD: upscale video V to 720p
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.domain import Job, Operation, OperationKind, PanDirection, Placement, Size

UPSCALE_VARIANTS = ("subtle", "creative", "2x", "4x")
ZOOM_FIXED = {
    "zoom_out_2x": Decimal("2"),
    "zoom_out_1_5x": Decimal("1.5"),
    "make_square": Decimal("1"),
}
MIN_ZOOM, MAX_ZOOM = Decimal("1.0"), Decimal("2.0")

# Actions that cannot run without something the user types or uploads.
ALWAYS_NEEDS_INPUT = frozenset({"vary_region", "zoom_custom", "remix", "edit"})
# Actions that open a prompt box first when the member has remix mode on.
REMIXABLE = frozenset(
    {"reroll", "vary_subtle", "vary_strong", "pan_left", "pan_right", "pan_up", "pan_down"}
)

# The one grammar for action names (the `<action>` of a button's `mj:<action>:<job>`).
# Grid tiles and videos run 1..4: every backend's grid and video batch holds four
# (Midjourney's U1..U4, V1..V4, PiAPI's upscale1..4, Legnext's index 0..3). A prompt list
# (/describe, /shorten) runs 1..9: a keycap or "N." line per prompt, one digit each.
_TILE = "[1-4]"
_LIST_ITEM = "[1-9]"
_GRAMMAR = re.compile(
    rf"""(?x)^(?:
      (?P<tiled>pick|vary_grid|edit|enhance|video_hd
               |(?P<moving>animate|extend)_(?P<motion>low|high)):(?P<tile>{_TILE})
    | (?P<listed>describe_pick|shorten_pick):(?P<item>{_LIST_ITEM})
    | (?P<redo>redo_)?upscale_(?P<variant>subtle|creative|2x|4x)
    | pan_(?P<direction>left|right|up|down)
    | zoom_out_(?P<zoom>[12](?:_[0-9]{{1,2}})?)x
    | (?P<word>reroll|vary_subtle|vary_strong|vary_region|zoom_custom|make_square|remix
              |edit|enhance|seed|describe_reroll|describe_all)
    )\Z"""  # \Z, not $: "reroll\n" is no action
)
_PROVIDER = "provider:"


@dataclass(frozen=True, slots=True)
class ParsedAction:
    """One neutral action name, taken apart. `family` names the shape (`pick`, `upscale`,
    `pan`, `zoom_out`, `animate`, `extend`, `video_hd`, `provider`, or the plain word such
    as `reroll`); the other fields are set only where that family has them."""

    family: str
    index: int | None = None  # grid tile, video or prompt-list item, from 1
    redo: bool = False  # redo_upscale_<v>
    variant: str | None = None  # upscale flavour: subtle|creative|2x|4x
    direction: PanDirection | None = None
    zoom: Decimal | None = None  # zoom_out_<z>x, 1 < z <= 2
    motion: str | None = None  # animate/extend: low|high
    raw: str | None = None  # provider:<raw>, replayed as the provider spells it

    @property
    def name(self) -> str:
        """The action name again: `parse_action(a).name == a` for every accepted `a`."""
        if self.family == "provider":
            return f"{_PROVIDER}{self.raw}"
        if self.family == "upscale":
            return f"{'redo_' if self.redo else ''}upscale_{self.variant}"
        if self.family == "pan" and self.direction is not None:
            return f"pan_{self.direction.value}"
        if self.family == "zoom_out":
            return f"zoom_out_{str(self.zoom).replace('.', '_')}x"
        stem = f"{self.family}_{self.motion}" if self.motion else self.family
        return stem if self.index is None else f"{stem}:{self.index}"


def parse_action(name: str) -> ParsedAction | None:
    """`name` taken apart, or None when it is no action the bot can name (pick:0, pick:99,
    zoom_out_x, ""). `provider:<raw>` passes any non-empty raw spelling through."""
    if name.startswith(_PROVIDER):
        raw = name.removeprefix(_PROVIDER)
        return ParsedAction("provider", raw=raw) if raw else None
    m = _GRAMMAR.match(name)
    if m is None:
        return None
    if m["tiled"]:
        family = m["moving"] or m["tiled"]
        return ParsedAction(family, index=int(m["tile"]), motion=m["motion"])
    if m["listed"]:
        return ParsedAction(m["listed"], index=int(m["item"]))
    if m["variant"]:
        return ParsedAction("upscale", redo=bool(m["redo"]), variant=m["variant"])
    if m["direction"]:
        return ParsedAction("pan", direction=PanDirection(m["direction"]))
    if m["zoom"]:
        zoom = Decimal(m["zoom"].replace("_", "."))
        return ParsedAction("zoom_out", zoom=zoom) if MIN_ZOOM < zoom <= MAX_ZOOM else None
    return ParsedAction(m["word"])


class ActionInputError(ValueError):
    """The user's input for an action is missing or out of range; the message says which."""


@dataclass(frozen=True, slots=True)
class ActionInput:
    """What a member may add to a follow-up (through a modal)."""

    prompt: str | None = None
    zoom_ratio: Decimal | None = None
    mask_png_base64: str | None = None
    canvas: Size | None = None
    placement: Placement | None = None
    index: int | None = None  # the tile an edit or remix applies to


def needs_input(action: str, *, remix_mode: bool = False) -> bool:
    parsed = parse_action(action)
    if action in ALWAYS_NEEDS_INPUT or (parsed and parsed.family == "edit"):
        return True
    grid_tile = parsed is not None and parsed.family == "vary_grid"
    return remix_mode and (action in REMIXABLE or grid_tile)


# The kind of job each family starts; families missing here (describe_pick, shorten_pick,
# describe_reroll, describe_all) are the cogs' own, not follow-ups of a job.
_KIND_OF_FAMILY = {
    "pick": OperationKind.UPSCALE,
    "upscale": OperationKind.UPSCALE,
    "vary_grid": OperationKind.VARIATION,
    "vary_subtle": OperationKind.VARIATION,
    "vary_strong": OperationKind.VARIATION,
    "pan": OperationKind.PAN,
    "edit": OperationKind.EDIT,
    "enhance": OperationKind.ENHANCE,
    "zoom_out": OperationKind.OUTPAINT,
    "zoom_custom": OperationKind.OUTPAINT,
    "make_square": OperationKind.OUTPAINT,
    "provider": OperationKind.PROVIDER_ACTION,
    "animate": OperationKind.VIDEO,
    "extend": OperationKind.VIDEO_EXTEND,
    "video_hd": OperationKind.VIDEO_UPSCALE,
    "reroll": OperationKind.REROLL,
    "vary_region": OperationKind.INPAINT,
    "remix": OperationKind.REMIX,
    "seed": OperationKind.SEED,
}


def kind_of(action: str) -> OperationKind | None:
    """The kind of job an action starts (None: not a follow-up the bot knows), so that an
    action the backend cannot serve is refused before any form opens."""
    parsed = parse_action(action)
    return None if parsed is None else _KIND_OF_FAMILY.get(parsed.family)


def operation_for(action: str, parent: Job, given: ActionInput | None = None) -> Operation:
    """Translate a neutral action on `parent` into the Operation that performs it."""
    given = given or ActionInput()
    parsed = parse_action(action)
    if parsed is None or parsed.family not in _KIND_OF_FAMILY:
        raise ActionInputError(f"Unknown action {action!r}.")
    if parsed.family == "seed":
        return Operation(OperationKind.SEED, parent_job_id=parent.id)
    base = parent.operation
    prompt = given.prompt if given.prompt is not None else base.prompt
    if parsed.family in ("animate", "extend", "video_hd"):
        return _video_operation(parsed, parent, prompt)
    kind = _KIND_OF_FAMILY[parsed.family]
    # Every follow-up carries the prompt on: the next one down the chain (a pan of an
    # upscale of a grid) still needs the words, and the message shows them.
    fields = {"prompt": prompt, "aspect_ratio": base.aspect_ratio, **_fields_for(parsed, given)}
    return Operation(kind, parent_job_id=parent.id, mode=base.mode, **fields)


def _fields_for(parsed: ParsedAction, given: ActionInput) -> dict[str, Any]:
    """The Operation fields an image follow-up sets beyond the carried prompt and ratio;
    raises ActionInputError when the member's input is missing or out of range."""
    family = parsed.family
    if family in ("pick", "enhance", "vary_grid") and parsed.index is not None:
        return {"index": parsed.index}
    if family == "upscale":
        return {"variant": parsed.variant}
    if family in ("vary_subtle", "vary_strong"):
        return {"variant": family.removeprefix("vary_")}
    if family == "vary_region":
        if not given.mask_png_base64:
            raise ActionInputError("Vary (Region) needs a region: upload a mask or choose one.")
        return {"mask_png_base64": given.mask_png_base64}
    if family in ("zoom_out", "make_square"):
        return {"zoom_ratio": parsed.zoom if parsed.zoom is not None else Decimal(1)}
    if family == "zoom_custom":
        ratio = given.zoom_ratio
        if ratio is None or not (MIN_ZOOM <= ratio <= MAX_ZOOM):
            raise ActionInputError("Custom Zoom needs a zoom ratio between 1.0 and 2.0.")
        return {"zoom_ratio": ratio}
    if family == "pan":
        return {"direction": parsed.direction}
    if family == "remix":
        if not given.prompt:
            raise ActionInputError("Remix needs a prompt.")
        return {"prompt": given.prompt, "index": given.index}
    if family == "edit":
        return _edit_fields(parsed, given)
    if family == "provider":
        return {"raw_action": parsed.raw}
    return {}  # reroll, enhance (a whole image)


def _edit_fields(parsed: ParsedAction, given: ActionInput) -> dict[str, Any]:
    if not given.prompt or given.canvas is None or given.placement is None:
        raise ActionInputError("Edit needs a prompt, a canvas and where the image sits on it.")
    return {
        "prompt": given.prompt,
        "index": parsed.index if parsed.index is not None else given.index,
        "canvas": given.canvas,
        "placement": given.placement,
        "mask_png_base64": given.mask_png_base64,
    }


def _video_operation(parsed: ParsedAction, parent: Job, prompt: str | None) -> Operation:
    """Animate, Extend and HD: the video follow-ups. The words carry on; image-only flags
    do not (a video has no --ar or --stylize)."""
    return Operation(
        _KIND_OF_FAMILY[parsed.family],
        prompt=video_words(prompt),
        mode=parent.operation.mode,
        parent_job_id=parent.id,
        index=parsed.index,
        motion=parsed.motion,
    )


_FLAGS = re.compile(r"(?<!\S)--\w.*$", re.DOTALL)


def video_words(prompt: str | None) -> str | None:
    """The prompt's words without its trailing --flags (None when nothing is left)."""
    if not prompt:
        return None
    words = _FLAGS.sub("", prompt).strip()
    return words or None
