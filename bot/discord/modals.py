"""The forms a follow-up opens when it needs input: Remix prompt, Custom Zoom, Vary (Region),
Edit.

A modal's custom_id is `mjm:<action>:<job_id>`, and a submit is handled from that id
and the submitted values alone (`FollowUps.on_modal_submit`, an `on_interaction`
listener), never through the Modal instance that sent it. So a form opened before a
restart still works after it, like the persistent buttons. The Modal classes only
build the form; their default `on_submit` does nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import discord

from bot.actions import MAX_ZOOM, MIN_ZOOM, REMIXABLE, ActionInputError, parse_action
from bot.domain import Placement, Size
from bot.edit_canvas import POSITIONS, check_edit_prompt, edit_geometry
from bot.media import PRESETS

MODAL_PREFIX = "mjm"
MAX_CUSTOM_ID = 100
MAX_TEXT = 4000  # Discord's limit for a text input's value (DISCORD_PROTOCOL.md §8)
# discord.py stops listening after this; the submit is still handled (see module doc).
MODAL_TIMEOUT_S = 15 * 60

FIELD_PROMPT = "prompt"
FIELD_ZOOM = "zoom_ratio"
FIELD_REGION = "region"
FIELD_MASK_URL = "mask_url"
FIELD_CANVAS = "canvas"
FIELD_POSITION = "position"
FIELD_SCALE = "scale"

_CUSTOM_ID = re.compile(rf"^{MODAL_PREFIX}:(?P<action>.+):(?P<job_id>[0-9a-z]+)$", re.DOTALL)

REGION_LABELS = {
    "center": "Centre",
    "left_half": "Left half",
    "right_half": "Right half",
    "top_half": "Top half",
    "bottom_half": "Bottom half",
    "background": "Background (keep the subject)",
    "subject": "Subject (keep the background)",
}


def modal_custom_id(action: str, job_id: str) -> str:
    custom_id = f"{MODAL_PREFIX}:{action}:{job_id}"
    if len(custom_id) > MAX_CUSTOM_ID:
        raise ValueError(f"modal custom id for {action[:40]!r} exceeds {MAX_CUSTOM_ID} chars")
    return custom_id


def parse_modal_custom_id(custom_id: str) -> tuple[str, str] | None:
    """`(action, job_id)` of one of our modals, or None."""
    match = _CUSTOM_ID.match(custom_id)
    return (match["action"], match["job_id"]) if match else None


def has_modal(action: str) -> bool:
    """Whether `modal_for` can build a form for `action`."""
    return action in ("zoom_custom", "vary_region") or is_edit(action) or is_remixable(action)


def _family(action: str) -> str | None:
    parsed = parse_action(action)
    return None if parsed is None else parsed.family


def is_edit(action: str) -> bool:
    return _family(action) == "edit"


def is_remixable(action: str) -> bool:
    return action in REMIXABLE or _family(action) == "vary_grid"


# --- the forms ---------------------------------------------------------------------------


def _prompt_input(
    prompt: str | None, *, max_length: int, required: bool
) -> discord.ui.TextInput[Any]:
    limit = max(1, min(max_length, MAX_TEXT))
    return discord.ui.TextInput(
        label="Prompt",
        custom_id=FIELD_PROMPT,
        style=discord.TextStyle.paragraph,
        default=(prompt or "")[:limit] or None,
        required=required,
        max_length=limit,
    )


class _Form(discord.ui.Modal):
    def __init__(self, *, title: str, action: str, job_id: str) -> None:
        super().__init__(
            title=title, custom_id=modal_custom_id(action, job_id), timeout=MODAL_TIMEOUT_S
        )


class RemixModal(_Form):
    def __init__(self, action: str, job_id: str, prompt: str | None, *, max_length: int) -> None:
        super().__init__(title="Remix Prompt", action=action, job_id=job_id)
        self.add_item(_prompt_input(prompt, max_length=max_length, required=True))


class CustomZoomModal(_Form):
    def __init__(self, job_id: str, prompt: str | None, *, max_length: int) -> None:
        super().__init__(title="Zoom Out", action="zoom_custom", job_id=job_id)
        self.add_item(_prompt_input(prompt, max_length=max_length, required=False))
        self.add_item(
            discord.ui.TextInput(
                label=f"Zoom ratio ({MIN_ZOOM}–{MAX_ZOOM})",
                custom_id=FIELD_ZOOM,
                default="2",
                placeholder="e.g. 1.7",
                max_length=10,
            )
        )


class VaryRegionModal(_Form):
    """Prompt + a preset region, or a link to a black-and-white mask (white = repaint).

    discord.py 2.7 has `FileUpload` for modals, but a link works on every client and
    goes through the same download checks as any other image the bot fetches.
    """

    def __init__(self, job_id: str, prompt: str | None, *, max_length: int) -> None:
        super().__init__(title="Vary (Region)", action="vary_region", job_id=job_id)
        self.add_item(_prompt_input(prompt, max_length=max_length, required=False))
        select: discord.ui.Select[Any] = discord.ui.Select(
            custom_id=FIELD_REGION,
            placeholder="Choose the region to repaint",
            min_values=0,
            max_values=1,
            required=False,
            options=[
                discord.SelectOption(label=REGION_LABELS.get(p, p.replace("_", " ")), value=p)
                for p in PRESETS
            ],
        )
        self.add_item(discord.ui.Label(text="Region", component=select))
        self.add_item(
            discord.ui.TextInput(
                label="…or a mask image link (optional)",
                custom_id=FIELD_MASK_URL,
                placeholder="https://… black-and-white PNG, white = repaint",
                required=False,
                max_length=1000,
            )
        )


class EditModal(_Form):
    """Midjourney's editor as a form: a new prompt, the canvas, where the image sits on it
    and how large, and optionally a mask of what to repaint (see bot/edit_canvas.py)."""

    def __init__(
        self, action: str, job_id: str, prompt: str | None, *, max_length: int, aspect: str | None
    ) -> None:
        tile = parse_action(action)
        title = f"Edit image {tile.index}" if tile and tile.index else "Edit"
        super().__init__(title=title, action=action, job_id=job_id)
        self.add_item(_prompt_input(prompt, max_length=max_length, required=True))
        self.add_item(
            discord.ui.TextInput(
                label="Canvas: aspect ratio or pixels",
                custom_id=FIELD_CANVAS,
                default=aspect or "1:1",
                placeholder="16:9 or 1536x1024",
                required=False,
                max_length=20,
            )
        )
        select: discord.ui.Select[Any] = discord.ui.Select(
            custom_id=FIELD_POSITION,
            placeholder="Centre",
            min_values=0,
            max_values=1,
            required=False,
            options=[
                discord.SelectOption(label=p.replace("-", " ").capitalize(), value=p)
                for p in POSITIONS
            ],
        )
        self.add_item(discord.ui.Label(text="Where the image sits", component=select))
        self.add_item(
            discord.ui.TextInput(
                label="Image size on the canvas (0.1–1)",
                custom_id=FIELD_SCALE,
                default="1",
                required=False,
                max_length=10,
            )
        )
        self.add_item(
            discord.ui.TextInput(
                label="Mask image link (optional)",
                custom_id=FIELD_MASK_URL,
                placeholder="https://… black-and-white PNG, white = repaint",
                required=False,
                max_length=1000,
            )
        )


def modal_for(
    action: str,
    job_id: str,
    prompt: str | None,
    *,
    max_prompt_length: int,
    aspect: str | None = None,
) -> discord.ui.Modal:
    """The form for `action` on job `job_id`, its prompt pre-filled with `prompt`
    (and Edit's canvas with the image's own `aspect` ratio)."""
    if is_edit(action):
        return EditModal(action, job_id, prompt, max_length=max_prompt_length, aspect=aspect)
    if action == "zoom_custom":
        return CustomZoomModal(job_id, prompt, max_length=max_prompt_length)
    if action == "vary_region":
        return VaryRegionModal(job_id, prompt, max_length=max_prompt_length)
    if is_remixable(action):
        return RemixModal(action, job_id, prompt, max_length=max_prompt_length)
    raise ValueError(f"no form for action {action!r}")


# --- reading a submit --------------------------------------------------------------------


def submitted_values(data: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """custom_id → value (text input) or values (select) of a type-5 interaction's data."""
    values: dict[str, str | list[str]] = {}

    def walk(components: Iterable[Any]) -> None:
        for component in components:
            if not isinstance(component, Mapping):
                continue
            if component.get("type") == 1:
                walk(component.get("components") or [])
            elif component.get("type") == 18:
                walk([component.get("component")])
            elif isinstance(component.get("custom_id"), str):
                if "values" in component:
                    values[component["custom_id"]] = [str(v) for v in component["values"]]
                else:
                    values[component["custom_id"]] = str(component.get("value") or "")

    walk(data.get("components") or [])
    return values


@dataclass(frozen=True, slots=True)
class FormInput:
    """A submit, checked: what `bot.actions.ActionInput` needs, before any download."""

    prompt: str | None = None
    zoom_ratio: Decimal | None = None
    region: str | None = None
    mask_url: str | None = None
    canvas: Size | None = None
    placement: Placement | None = None


def read_form(
    action: str,
    values: Mapping[str, str | list[str]],
    *,
    max_prompt_length: int,
    source_aspect: str | None = None,
) -> FormInput:
    """Check a submit for `action`; ActionInputError says what is wrong, for the member.

    `source_aspect` is the parent image's aspect ratio (Edit places the image by it)."""
    prompt = " ".join(_text(values, FIELD_PROMPT).split()) or None
    if prompt is not None and len(prompt) > max_prompt_length:
        raise ActionInputError(
            f"The prompt is {len(prompt)} characters long; the limit is {max_prompt_length}."
        )
    if is_edit(action):
        chosen = values.get(FIELD_POSITION) or []
        position = chosen[0] if isinstance(chosen, list) and chosen else ""
        canvas, placement = edit_geometry(
            _text(values, FIELD_CANVAS),
            position,
            _text(values, FIELD_SCALE),
            source_aspect=source_aspect,
        )
        return FormInput(
            prompt=check_edit_prompt(prompt),
            mask_url=_text(values, FIELD_MASK_URL).strip() or None,
            canvas=canvas,
            placement=placement,
        )
    if action == "zoom_custom":
        return FormInput(prompt=prompt, zoom_ratio=parse_zoom_ratio(_text(values, FIELD_ZOOM)))
    if action == "vary_region":
        chosen = values.get(FIELD_REGION) or []
        region = chosen[0] if isinstance(chosen, list) and chosen else None
        if region is not None and region not in PRESETS:
            raise ActionInputError(f"Unknown region {region[:30]!r}.")
        mask_url = _text(values, FIELD_MASK_URL).strip() or None
        if region is None and mask_url is None:
            raise ActionInputError("Vary (Region) needs a region: choose one or link a mask.")
        return FormInput(prompt=prompt, region=region, mask_url=mask_url)
    if prompt is None:
        raise ActionInputError("Remix needs a prompt.")
    return FormInput(prompt=prompt)


def parse_zoom_ratio(text: str) -> Decimal:
    try:
        ratio = Decimal(text.strip().removesuffix("x"))
    except InvalidOperation:
        ratio = None
    if ratio is None or not ratio.is_finite() or not MIN_ZOOM <= ratio <= MAX_ZOOM:
        raise ActionInputError(
            f"`{text.strip()[:10]}` is not a zoom ratio: "
            f"give a number from {MIN_ZOOM} to {MAX_ZOOM}."
        )
    return ratio


def _text(values: Mapping[str, str | list[str]], key: str) -> str:
    value = values.get(key)
    return value if isinstance(value, str) else ""
