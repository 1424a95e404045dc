"""Edit's canvas and placement, from what a member types: checked before anything is sent.

Midjourney's editor (Legnext `/v1/edit`, Vtrix `midjourney_edit`) takes a canvas in pixels
and where the source image sits on it (`imgPos`: size and offset from the top-left). A
member thinks in shapes and places instead, so the form and `/edit` take:

    canvas    an aspect ratio ("16:9") or pixels ("1536x1024")
    position  center, top, bottom, left, right, top-left, top-right, bottom-left, bottom-right
    scale     0.1–1: the image's size relative to the largest that fits the canvas

and this module turns them into `Size` and `Placement`, or an `ActionInputError` that
says what is wrong.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from bot.actions import ActionInputError
from bot.domain import Placement, Size

# A canvas given as a ratio gets this many pixels on its long side.
CANVAS_LONG_SIDE = 1024
MIN_CANVAS, MAX_CANVAS = 256, 4096
MIN_SCALE, MAX_SCALE = Decimal("0.1"), Decimal("1")
MAX_EDIT_PROMPT = 8192  # Legnext / Vtrix: remixPrompt 1–8192 characters

POSITIONS = (
    "center",
    "top",
    "bottom",
    "left",
    "right",
    "top-left",
    "top-right",
    "bottom-left",
    "bottom-right",
)
_ALIASES = {"centre": "center", "middle": "center"}
_RATIO = re.compile(r"^\s*(\d{1,4})\s*:\s*(\d{1,4})\s*$")
_PIXELS = re.compile(r"^\s*(\d{1,5})\s*[x×*]\s*(\d{1,5})\s*$", re.IGNORECASE)


def parse_ratio(text: str | None, default: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """`W:H` as two positive integers; `default` when empty or malformed (a job's own
    aspect ratio was checked when it was asked for)."""
    match = _RATIO.match(text or "")
    if not match or int(match[1]) == 0 or int(match[2]) == 0:
        return default
    return int(match[1]), int(match[2])


def parse_canvas(text: str, *, source_ratio: tuple[int, int]) -> Size:
    """A canvas from "16:9" (long side 1024 px) or "1536x1024"; empty keeps the source's shape."""
    text = text.strip()
    if match := _PIXELS.match(text):
        size = Size(int(match[1]), int(match[2]))
        if not all(MIN_CANVAS <= side <= MAX_CANVAS for side in (size.width, size.height)):
            raise ActionInputError(
                f"Each side of the canvas must be {MIN_CANVAS}–{MAX_CANVAS} pixels."
            )
    else:
        ratio = _RATIO.match(text)
        if text and (not ratio or int(ratio[1]) == 0 or int(ratio[2]) == 0):
            raise ActionInputError(
                f"`{text[:20]}` is not a canvas: give an aspect ratio like 16:9 or pixels "
                "like 1536x1024."
            )
        w, h = parse_ratio(text, source_ratio) if text else source_ratio
        if w == 0 or h == 0 or max(w / h, h / w) > 14:
            raise ActionInputError("The canvas ratio must be between 1:14 and 14:1.")
        if w >= h:
            size = Size(CANVAS_LONG_SIDE, max(1, round(CANVAS_LONG_SIDE * h / w)))
        else:
            size = Size(max(1, round(CANVAS_LONG_SIDE * w / h)), CANVAS_LONG_SIDE)
    return size


def parse_position(text: str) -> str:
    position = text.strip().lower().replace(" ", "-").replace("_", "-") or "center"
    position = _ALIASES.get(position, position)
    if position not in POSITIONS:
        raise ActionInputError(
            f"`{text.strip()[:20]}` is not a position: use one of {', '.join(POSITIONS)}."
        )
    return position


def parse_scale(text: str) -> Decimal:
    text = text.strip().removesuffix("x") or "1"
    try:
        scale = Decimal(text)
    except InvalidOperation:
        scale = None
    if scale is None or not scale.is_finite() or not MIN_SCALE <= scale <= MAX_SCALE:
        raise ActionInputError(
            f"`{text[:10]}` is not a scale: give a number from {MIN_SCALE} to {MAX_SCALE}."
        )
    return scale


def place_image(
    canvas: Size, *, source_ratio: tuple[int, int], position: str, scale: Decimal
) -> Placement:
    """The source image (of `source_ratio`) fitted into `canvas`, times `scale`, at `position`.

    The result always lies inside the canvas, which the backends require.
    """
    sw, sh = source_ratio
    fit = min(canvas.width / sw, canvas.height / sh)
    width = max(1, min(canvas.width, int(sw * fit * float(scale))))
    height = max(1, min(canvas.height, int(sh * fit * float(scale))))
    free_x, free_y = canvas.width - width, canvas.height - height
    x = 0 if "left" in position else free_x if "right" in position else free_x // 2
    y = 0 if "top" in position else free_y if "bottom" in position else free_y // 2
    return Placement(width=width, height=height, x=x, y=y)


def check_edit_prompt(prompt: str | None) -> str:
    prompt = " ".join((prompt or "").split())
    if not prompt:
        raise ActionInputError("Edit needs a prompt: describe what the new image should show.")
    if len(prompt) > MAX_EDIT_PROMPT:
        raise ActionInputError(
            f"The prompt is {len(prompt)} characters long; the limit is {MAX_EDIT_PROMPT}."
        )
    return prompt


def edit_geometry(
    canvas_text: str, position_text: str, scale_text: str, *, source_aspect: str | None
) -> tuple[Size, Placement]:
    """Canvas and placement from the three fields of the form (or /edit's options)."""
    source_ratio = parse_ratio(source_aspect)
    canvas = parse_canvas(canvas_text, source_ratio=source_ratio)
    placement = place_image(
        canvas,
        source_ratio=source_ratio,
        position=parse_position(position_text),
        scale=parse_scale(scale_text),
    )
    return canvas, placement
