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

_PICK = re.compile(r"^pick:([1-4])$")
_VARY_GRID = re.compile(r"^vary_grid:([1-4])$")
_UPSCALE = re.compile(r"^(redo_)?upscale_(subtle|creative|2x|4x)$")
_PAN = re.compile(r"^pan_(left|right|up|down)$")
_EDIT_TILE = re.compile(r"^edit:([1-4])$")
_ENHANCE_TILE = re.compile(r"^enhance:([1-4])$")  # Enhance image n of a draft grid
_ANIMATE = re.compile(r"^animate_(low|high):([1-4])$")
_EXTEND = re.compile(r"^extend_(low|high):([1-4])$")
_VIDEO_HD = re.compile(r"^video_hd:([1-4])$")


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
    if action in ALWAYS_NEEDS_INPUT or _EDIT_TILE.match(action):
        return True
    return remix_mode and (action in REMIXABLE or bool(_VARY_GRID.match(action)))


def kind_of(action: str) -> OperationKind | None:
    """The kind of job an action starts (None: not a follow-up the bot knows), so that an
    action the backend cannot serve is refused before any form opens."""
    if _PICK.match(action) or _UPSCALE.match(action):
        return OperationKind.UPSCALE
    if _VARY_GRID.match(action) or action in ("vary_subtle", "vary_strong"):
        return OperationKind.VARIATION
    if _PAN.match(action):
        return OperationKind.PAN
    if _EDIT_TILE.match(action):
        return OperationKind.EDIT
    if _ENHANCE_TILE.match(action):
        return OperationKind.ENHANCE
    if action in ZOOM_FIXED or action == "zoom_custom":
        return OperationKind.OUTPAINT
    if action.startswith("provider:"):
        return OperationKind.PROVIDER_ACTION
    if _ANIMATE.match(action):
        return OperationKind.VIDEO
    if _EXTEND.match(action):
        return OperationKind.VIDEO_EXTEND
    if _VIDEO_HD.match(action):
        return OperationKind.VIDEO_UPSCALE
    simple = {
        "reroll": OperationKind.REROLL,
        "vary_region": OperationKind.INPAINT,
        "remix": OperationKind.REMIX,
        "edit": OperationKind.EDIT,
        "enhance": OperationKind.ENHANCE,
        "seed": OperationKind.SEED,
    }
    return simple.get(action)


def operation_for(action: str, parent: Job, given: ActionInput | None = None) -> Operation:
    """Translate a neutral action on `parent` into the Operation that performs it."""
    given = given or ActionInput()
    base = parent.operation
    prompt = given.prompt if given.prompt is not None else base.prompt

    def follow(kind: OperationKind, **fields: Any) -> Operation:
        # Every follow-up carries the prompt on: the next one down the chain (a pan of an
        # upscale of a grid) still needs the words, and the message shows them.
        fields.setdefault("prompt", prompt)
        fields.setdefault("aspect_ratio", base.aspect_ratio)
        return Operation(kind, parent_job_id=parent.id, mode=base.mode, **fields)

    if m := _PICK.match(action):
        return follow(OperationKind.UPSCALE, index=int(m[1]))
    if m := _ENHANCE_TILE.match(action):
        return follow(OperationKind.ENHANCE, index=int(m[1]))
    if m := _VARY_GRID.match(action):
        return follow(
            OperationKind.VARIATION,
            index=int(m[1]),
            prompt=prompt,
            aspect_ratio=base.aspect_ratio,
        )
    if action == "reroll":
        return follow(OperationKind.REROLL, prompt=prompt, aspect_ratio=base.aspect_ratio)
    if m := _UPSCALE.match(action):
        return follow(OperationKind.UPSCALE, variant=m[2])
    if action in ("vary_subtle", "vary_strong"):
        variant = action.removeprefix("vary_")
        return follow(OperationKind.VARIATION, variant=variant, prompt=prompt)
    if action == "vary_region":
        if not given.mask_png_base64:
            raise ActionInputError("Vary (Region) needs a region: upload a mask or choose one.")
        return follow(OperationKind.INPAINT, prompt=prompt, mask_png_base64=given.mask_png_base64)
    if action in ZOOM_FIXED:
        return follow(OperationKind.OUTPAINT, zoom_ratio=ZOOM_FIXED[action], prompt=prompt)
    if action == "zoom_custom":
        ratio = given.zoom_ratio
        if ratio is None or not (MIN_ZOOM <= ratio <= MAX_ZOOM):
            raise ActionInputError("Custom Zoom needs a zoom ratio between 1.0 and 2.0.")
        return follow(OperationKind.OUTPAINT, zoom_ratio=ratio, prompt=prompt)
    if m := _PAN.match(action):
        return follow(OperationKind.PAN, direction=PanDirection(m[1]), prompt=prompt)
    if action == "remix":
        if not given.prompt:
            raise ActionInputError("Remix needs a prompt.")
        return follow(OperationKind.REMIX, prompt=given.prompt, index=given.index)
    if (m := _EDIT_TILE.match(action)) or action == "edit":
        index = int(m[1]) if m else given.index
        if not given.prompt or given.canvas is None or given.placement is None:
            raise ActionInputError("Edit needs a prompt, a canvas and where the image sits on it.")
        return follow(
            OperationKind.EDIT,
            prompt=given.prompt,
            index=index,
            canvas=given.canvas,
            placement=given.placement,
            mask_png_base64=given.mask_png_base64,
        )
    if action == "enhance":
        return follow(OperationKind.ENHANCE)
    if action == "seed":
        return Operation(OperationKind.SEED, parent_job_id=parent.id)
    if video := _video_operation(action, parent, prompt):
        return video
    if action.startswith("provider:"):
        return follow(OperationKind.PROVIDER_ACTION, raw_action=action.removeprefix("provider:"))
    raise ActionInputError(f"Unknown action {action!r}.")


def _video_operation(action: str, parent: Job, prompt: str | None) -> Operation | None:
    """Animate, Extend and HD: the video follow-ups (None when `action` is none of them).
    The words carry on; image-only flags do not (a video has no --ar or --stylize)."""
    words = video_words(prompt)
    kind, index, motion = OperationKind.VIDEO, 1, None
    if m := _ANIMATE.match(action):
        index, motion = int(m[2]), m[1]
    elif m := _EXTEND.match(action):
        kind, index, motion = OperationKind.VIDEO_EXTEND, int(m[2]), m[1]
    elif m := _VIDEO_HD.match(action):
        kind, index = OperationKind.VIDEO_UPSCALE, int(m[1])
    else:
        return None
    return Operation(
        kind,
        prompt=words,
        mode=parent.operation.mode,
        parent_job_id=parent.id,
        index=index,
        motion=motion,
    )


_FLAGS = re.compile(r"(?<!\S)--\w.*$", re.DOTALL)


def video_words(prompt: str | None) -> str | None:
    """The prompt's words without its trailing --flags (None when nothing is left)."""
    if not prompt:
        return None
    words = _FLAGS.sub("", prompt).strip()
    return words or None
